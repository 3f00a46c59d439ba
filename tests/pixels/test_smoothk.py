"""The k test repeated on the smoothed stamp: its margin, its power, and single components.

The hand-made stamps here are two overlapping Gaussian components (sigma 6
and 5 px, 9 px apart) in five bands whose SEDs differ by 0.2 mag end to end,
or the same light with one SED; no suite generator made them and no
constant of :mod:`galclust.pixels.smoothk` was chosen on them.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy import ndimage

from galclust.pixels.mixing import rescale_from_sky, unmix_footprint
from galclust.pixels.pooling import smooth_cube
from galclust.pixels.smoothk import K_SIGMAS, _variance_area, smoothed_k

unmix_module = importlib.import_module("galclust.pixels.unmix")
nmf_module = importlib.import_module("galclust.pixels.nmf")


def _stamp(two: bool, snr: float, seed: int, nb: int = 5, size: int = 48
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    flat = np.full(nb, 1.0 / nb)
    tilt = 10 ** (-0.4 * 0.2 * np.linspace(-1, 1, nb))
    tilt /= tilt.sum()
    b1 = np.exp(-((yy - 24) ** 2 + (xx - 20) ** 2) / (2 * 6.0**2))
    b2 = 0.8 * np.exp(-((yy - 24) ** 2 + (xx - 29) ** 2) / (2 * 5.0**2))
    clean = flat[:, None, None] * b1 + (tilt if two else flat)[:, None, None] * b2
    sigma = clean.max() / snr
    err = np.full(clean.shape, sigma)
    pixels = clean.sum(axis=0) > 0.05 * clean.sum(axis=0).max()
    return clean + rng.normal(size=clean.shape) * sigma, err, pixels, np.stack([flat, tilt])


def _ks(sci: np.ndarray, err: np.ndarray, pixels: np.ndarray) -> tuple[int, int]:
    fit = unmix_module.unmix(sci[:, pixels].T, err[:, pixels].T)
    return fit.n_components, smoothed_k(sci, err, pixels, fit.n_components, fit.seds)[0]


@pytest.mark.parametrize("seed", range(4))
def test_smoothing_shows_a_component_the_pixels_alone_do_not(seed):
    # at peak S/N 10 per band the pixel-by-pixel margin (~3 sqrt(2 x 775)) hides the
    # second component; smoothed by 1-2 px its gain grows ~4 pi sigma^2 times, the
    # margin's scatter ~sqrt(2 pi) sigma times
    sci, err, pixels, _ = _stamp(True, 10.0, seed)
    assert _ks(sci, err, pixels) == (1, 2)


@pytest.mark.parametrize("snr", [5.0, 10.0, 30.0, 100.0])
def test_one_sed_stays_one_component_at_every_snr(snr):
    for seed in range(3):
        sci, err, pixels, _ = _stamp(False, snr, 10 + seed)
        assert _ks(sci, err, pixels) == (1, 1), seed


def test_drizzle_like_correlated_noise_does_not_split_one_sed():
    # one SED, noise through a 3 x 3 boxcar (as drizzling correlates it) and an error
    # map half the true RMS; the errors and the correlation are measured on the sky.
    # The null's noise carries that correlation; with white noise instead (the
    # correlation ignored) the drop on the data would beat it
    nb, size = 5, 64
    yy, xx = np.mgrid[:size, :size].astype(float)
    r = np.hypot(yy - 32, (xx - 32) / 0.7)
    sed = np.array([0.15, 0.18, 0.2, 0.22, 0.25])
    clean = sed[:, None, None] * np.exp(-r / 4.0)
    pixels, sky = np.exp(-r / 4.0) > 0.05, r > 20
    for seed, snr in [(0, 10.0), (1, 30.0), (2, 100.0)]:
        rng = np.random.default_rng(seed)
        sigma = clean.max() / snr
        noise = ndimage.uniform_filter(rng.normal(size=clean.shape), size=(1, 3, 3)) * 3.0
        sci = clean + noise * sigma
        err, _, _, corr = rescale_from_sky(sci, np.full(clean.shape, sigma / 2.0), sky,
                                           [f"b{i}" for i in range(nb)])
        assert 4.0 < corr < 8.0   # a 3 x 3 boxcar: 5.8 over 5 x 5 boxes
        fit = unmix_module.unmix(sci[:, pixels].T, err[:, pixels].T, correlation=corr)
        assert fit.n_components == 1
        assert smoothed_k(sci, err, pixels, 1, fit.seds, correlation=corr)[0] == 1, seed
        assert smoothed_k(sci, err, pixels, 1, fit.seds, correlation=1.0)[0] >= 2, seed


def test_the_margin_does_not_understate_the_scatter_of_the_drop_on_noise():
    # the drop from k to k + 1 on smoothed noise scatters by sqrt(2 D0 A); A from
    # _variance_area must not be smaller than the scatter measured over draws
    sci, err, pixels, _ = _stamp(True, 30.0, 0)
    for sigma in K_SIGMAS:
        sm, sm_err = smooth_cube(sci, err, pixels, sigma)
        flux, e = sm[:, pixels].T, sm_err[:, pixels].T
        w = 1.0 / e**2
        a, s, _ = nmf_module._best_fit(flux, e, w, 2, None, 0, 0.0)
        drops = []
        rng = np.random.default_rng(1)
        for t in range(12):
            noise, _ = smooth_cube(rng.normal(size=sci.shape) * err, err, pixels, sigma)
            sim = a @ s + noise[:, pixels].T
            base = nmf_module._best_fit(sim, e, w, 2, None, t, 0.0)
            more = nmf_module._best_fit(sim, e, w, 3, base[:2], t, 0.0)
            drops.append(base[2] - more[2])
        drops = np.asarray(drops)
        area = np.var(drops, ddof=1) / (2.0 * drops.mean())
        # measured 0.54 (sigma 1) and 0.62 (sigma 2) of it on this stamp; more than 1
        # would make the margin too small, much less would make it needlessly wide
        assert 0.3 * _variance_area(sigma, 1.0) < area <= _variance_area(sigma, 1.0), sigma


def test_unmix_footprint_takes_the_smoothed_k_and_says_so():
    sci, err, pixels, seds = _stamp(True, 10.0, 0)
    used = np.ones(5, bool)
    bands = [f"b{i}" for i in range(5)]
    wl = np.linspace(1.0, 4.0, 5)
    kw = {"n_components": "auto", "k_range": (1, 6), "random_state": 0}
    plain = unmix_footprint(sci, err, pixels, used, bands, wl, k_sigmas=(), **kw)
    smoothed = unmix_footprint(sci, err, pixels, used, bands, wl, **kw)
    assert plain.n_components == 1 and plain.criterion == "null"
    assert smoothed.n_components == 2 and smoothed.criterion == "null-smoothed"
    # the SEDs found are the two drawn (to 0.06 mag in every band; measured 0.037, the
    # two differ by up to 0.2), each nearer its own than the other
    got = smoothed.components["sed"].values
    got = got[np.argsort(got[:, 0] - got[:, -1])]
    order = np.argsort(seds[:, 0] - seds[:, -1])
    np.testing.assert_allclose(-2.5 * np.log10(got / seds[order]), 0.0, atol=0.06)
    dist = np.abs(got[:, None, :] - seds[order][None, :, :]).sum(axis=2)
    assert np.all(dist.argmin(axis=1) == [0, 1])
    # an explicit k and the AIC rule are not re-tested
    aic = unmix_footprint(sci, err, pixels, used, bands, wl, rule="aic", **kw)
    assert aic.criterion == "aic"


def test_the_pixel_rule_keeps_the_pixel_by_pixel_test_alone_through_the_options():
    from galclust.options import PixelOptions
    from galclust.pixels.core import cluster_galaxy

    sci, err, pixels, _ = _stamp(True, 10.0, 1)
    wl = np.linspace(1.0, 4.0, 5)
    both = cluster_galaxy(sci, err, pixels, wl, unmix=True)
    alone = cluster_galaxy(sci, err, pixels, wl, unmix=PixelOptions(unmix="pixel").kwargs()["unmix"])
    assert (both.n_clusters, both.criterion) == (2, "unmix-null-smoothed")
    assert (alone.n_clusters, alone.criterion) == (1, "unmix-null")


def test_the_margin_holds_its_tail_probability_when_the_drop_has_few_degrees_of_freedom():
    """A drop on smoothed noise is a sum of squares of correlated Gaussians: about 18
    independent terms on a 20 x 20 footprint smoothed by 2 px. Its tail is longer than a
    Gaussian's of the same mean and variance; the margin takes it as a scaled χ²
    (``needed_drop``). At 2 sigma (2.3 % one-sided) on 10,000 draws: the Gaussian margin
    is beaten by 4.2 % of them, the χ² one by 2.7 %; pixel by pixel both hold."""
    rng = np.random.default_rng(0)

    def drops(sigma: float, n: int) -> np.ndarray:
        out = []
        for _ in range(n // 2000):
            z = rng.normal(size=(2000, 36, 36))
            if sigma:
                z = ndimage.gaussian_filter(z, (0, sigma, sigma))
                z /= np.sqrt((ndimage.gaussian_filter(np.pad([[1.0]], 8), sigma) ** 2).sum())
            out.append((z[:, 8:28, 8:28] ** 2).sum(axis=(1, 2)))
        return np.concatenate(out)

    for sigma, lo, hi in ((2.0, 0.015, 0.033), (0.0, 0.015, 0.03)):
        d = drops(sigma, 14000)
        mean, area = d[:4000].mean(), d[:4000].var() / (2 * d[:4000].mean())
        rest = d[4000:]
        chi2_rate = (rest > unmix_module.needed_drop(mean, area, 2.0)).mean()
        gauss_rate = (rest > mean + 2.0 * np.sqrt(2 * mean * area)).mean()
        assert lo < chi2_rate < hi, (sigma, chi2_rate)
        if sigma:
            assert gauss_rate > 0.036 and area > 10, (gauss_rate, area)
    # many degrees of freedom: the Gaussian margin
    assert unmix_module.needed_drop(2000.0, 1.0, 3.0) == pytest.approx(
        2000 + 3 * np.sqrt(4000), rel=0.01)
    assert unmix_module.needed_drop(0.0, 5.0) == 0.0
