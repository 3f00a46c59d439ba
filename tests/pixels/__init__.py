"""Tests of galclust.pixels (a package so that test module names cannot clash)."""
