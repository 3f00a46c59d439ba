"""Prefect flows: thin orchestration; every task calls one galclust function."""
