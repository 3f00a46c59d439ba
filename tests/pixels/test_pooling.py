"""Spatially pooled unmixing: smoothing inside the footprint, and fractions it improves.

The pooling's constants were chosen on ``family="default"`` seeds 0-2. The
fraction test runs on held-out galaxies; the guard that each component must
dominate some of the SED fit's pixels was added after seeing held-out seed 5,
so seed 12 is the one no choice saw.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from galclust.evaluation.mixtures import fraction_rms
from galclust.pixels.mixing import rescale_from_sky
from galclust.pixels.pooling import pool_unmixing, smooth_cube
from galclust.synth.mixtures import make_mixture_galaxy

unmix_module = importlib.import_module("galclust.pixels.unmix")


def test_smoothed_errors_match_the_scatter_of_smoothed_noise():
    rng = np.random.default_rng(3)
    sigma = np.array([1.0, 2.5])
    noise = rng.normal(0.0, 1.0, (2, 400, 400)) * sigma[:, None, None]
    err = np.broadcast_to(sigma[:, None, None], noise.shape).copy()
    support = np.zeros((400, 400), bool)
    support[20:380, 20:380] = True
    sm, sm_err = smooth_cube(noise, err, support, 1.5)
    inner = np.zeros_like(support)
    inner[40:360, 40:360] = True
    for b in range(2):
        ratio = sm[b][inner].std() / np.median(sm_err[b][inner])
        assert ratio == pytest.approx(1.0, abs=0.05), b      # exact for independent noise
        assert np.median(sm_err[b][inner]) < 0.25 * sigma[b]  # and ~1/(2 sqrt(pi) 1.5)
    # on the support's edge fewer pixels contribute: a larger error, still the right one
    edge = sm[0][[20, 379], 40:360]
    assert sm_err[0][20, 200] > 1.25 * sm_err[0][200, 200]
    assert edge.std() / np.median(sm_err[0][[20, 379], 40:360]) == pytest.approx(1.0, abs=0.08)
    _, wide = smooth_cube(noise, err, support, 1.5, correlation=4.0)
    np.testing.assert_allclose(wide[:, inner], 2.0 * sm_err[:, inner])
    assert not np.isfinite(sm_err[0][0, 0]) and np.isnan(sm[0][0, 0])  # outside: nothing


def test_no_light_enters_from_outside_the_support_or_from_bad_pixels():
    sci = np.ones((1, 40, 40))
    err = np.ones_like(sci)
    support = np.zeros((40, 40), bool)
    support[10:30, 10:20] = True
    sci[0, 10:30, 21:25] = 1e6            # a neighbour just outside the footprint
    sci[0, 15, 15] = np.nan               # a masked pixel inside it
    sm, sm_err = smooth_cube(sci, err, support, 2.5)
    np.testing.assert_allclose(sm[0][support], 1.0)
    assert np.all(np.isfinite(sm_err[0][support]))


def _fraction_rms_pair(seed: int, n: int, layout: str) -> tuple[float, float]:
    g = make_mixture_galaxy(n, snr=30, layout=layout, family="heldout", seed=seed)
    err, _, _, corr = rescale_from_sky(g.sci, g.err, g.sky, g.bands)
    m = g.mask
    fit = unmix_module.unmix(g.sci[:, m].T, err[:, m].T, n_components=n)
    hull = pool_unmixing(g.sci, err, m, fit, correlation=corr, profiles=False)
    pooled = pool_unmixing(g.sci, err, m, fit, correlation=corr)
    assert pooled.n_components == n and pooled.fractions.shape == fit.fractions.shape
    np.testing.assert_allclose(np.nansum(pooled.fractions, axis=1), 1.0, atol=1e-9)
    # the profiles move the SEDs and fractions, not the labels (the colour partition)
    np.testing.assert_array_equal(pooled.labels, hull.labels)
    light = np.clip(g.sci.sum(axis=0), 0.0, None)
    out = []
    for r in (fit, hull, pooled):
        f = np.zeros((n,) + m.shape)
        f[:, m] = np.nan_to_num(r.fractions.T)
        out.append(fraction_rms(g.fractions, f, m, light))
    return tuple(out)


def test_pooling_recovers_held_out_fractions_better_than_pixel_by_pixel():
    rms = np.array([_fraction_rms_pair(12, n, layout)
                    for n in (2, 3, 4) for layout in ("overlapping", "separated")])
    per_pixel, hull, pooled = rms.T
    # measured: median 0.234 -> 0.167, every galaxy better (ratio 0.44-0.96)
    assert np.median(hull) <= 0.8 * np.median(per_pixel)
    assert np.all(hull < per_pixel)
    # SEDs placed by the light's profiles (profilefit): measured median 0.167 -> 0.135,
    # better on 5 of 6 (0.085-0.244 -> 0.058-0.175; the worse one 0.169 -> 0.173)
    assert np.median(pooled) <= 0.85 * np.median(hull)
    assert np.sum(pooled < hull) >= 5


def test_pure_pixels_come_out_pure():
    # a separated pair at S/N 100: the pixel-by-pixel cone is widened by the faint
    # pixels' noise, so a pure peak reads as ~0.90 of its component
    g = make_mixture_galaxy(2, snr=100, layout="separated", seed=78)
    err, _, _, corr = rescale_from_sky(g.sci, g.err, g.sky, g.bands)
    m = g.mask
    flux = g.sci[:, m].T
    fit = unmix_module.unmix(flux, err[:, m].T, n_components=2)
    pooled = pool_unmixing(g.sci, err, m, fit, correlation=corr)
    brightest = np.argsort(flux.sum(axis=1))[::-1][:10]
    assert np.all(g.fractions[:, m].max(axis=0)[brightest] > 0.99)
    assert np.median(fit.fractions[brightest].max(axis=1)) < 0.93
    assert np.median(pooled.fractions[brightest].max(axis=1)) > 0.97
    match = [int(np.abs(g.seds - s).sum(axis=1).argmin()) for s in pooled.seds]
    assert sorted(match) == [0, 1]
    np.testing.assert_allclose(pooled.seds, g.seds[match], atol=0.01)
