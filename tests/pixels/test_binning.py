"""Voronoi binning to a target S/N (Cappellari & Copin 2003) and binned SEDs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from galclust.errors import InputError
from galclust.pixels.binning import (
    bin_roundness,
    bin_seds,
    bin_snr,
    binned_signal_noise,
    noise_factor,
    voronoi_bins,
)

TARGET = 10.0


def disc(*, n: int = 80, peak: float = 40.0, h: float = 8.0, seed: int = 0):
    """An inclined exponential disc (peak S/N ``peak``), unit noise, mask out to 3.5 h."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - (n - 1) / 2, (xx - (n - 1) / 2) / 0.7)
    signal = peak * np.exp(-r / h) + rng.standard_normal((n, n))
    return signal, np.ones((n, n)), r < 3.5 * h


@pytest.fixture(scope="module")
def binned():
    signal, noise, mask = disc()
    return signal, noise, mask, voronoi_bins(signal, noise, mask, TARGET)


def test_every_mask_pixel_is_in_exactly_one_bin(binned):
    signal, noise, mask, labels = binned
    assert labels.shape == mask.shape and labels.dtype == np.int32
    assert np.array_equal(labels >= 0, mask)
    assert (labels[~mask] == -1).all()
    n = np.bincount(labels[mask])
    assert (n > 0).all()  # bins are numbered 0..n-1 without gaps


def test_bins_reach_the_target_with_a_small_scatter(binned):
    signal, noise, mask, labels = binned
    sn = bin_snr(signal, noise, labels) / TARGET
    n = np.bincount(labels[mask])
    multi = n > 1
    assert multi.sum() > 100  # the faint outskirts really are binned
    assert sn.min() >= 0.8  # every bin, single pixels included
    # CC03 and vorbin report ~10% rms scatter of the bin S/N; here 0.11 (0.10-0.12 over seeds)
    assert np.std(sn[multi], ddof=1) < 0.15
    assert np.sqrt(np.mean((sn[multi] - 1) ** 2)) < 0.2  # about the target itself


def test_pixels_above_target_stay_single_pixel_bins(binned):
    signal, noise, mask, labels = binned
    high = mask & (signal / noise >= TARGET)
    assert high.sum() > 50
    n = np.bincount(labels[mask])
    assert (n[labels[high]] == 1).all()


def test_bins_are_compact_and_connected(binned):
    *_, mask, labels = binned
    n = np.bincount(labels[mask])
    multi = np.flatnonzero(n > 1)
    rnd = bin_roundness(labels)[multi]
    assert np.median(rnd) < 0.0 and np.percentile(rnd, 95) < 0.3 and rnd.max() < 0.5
    for k in multi:
        assert ndimage.label(labels == k)[1] == 1


def test_binning_is_deterministic(binned):
    signal, noise, mask, labels = binned
    assert np.array_equal(voronoi_bins(signal, noise, mask, TARGET), labels)


def test_a_faint_pocket_in_a_bright_core_and_a_faint_island_still_reach_the_floor():
    signal = np.full((12, 12), 20.0)  # every pixel far above target...
    signal[5, 5] = 2.0  # ...but one noise dip, enclosed by bright pixels
    signal[:, 9:] = 2.5  # a faint strip, binned normally
    signal[:, 8] = np.nan  # with a gap in the mask cutting off ...
    mask = np.isfinite(signal)
    mask[0:2, 9:12] = False  # ... and a small faint island in the corner
    signal[0, 9:12], mask[0, 9:12] = 3.0, True
    noise = np.ones((12, 12))
    labels = voronoi_bins(signal, noise, mask, TARGET)
    sn = bin_snr(signal, noise, labels)
    assert sn.min() >= 0.8 * TARGET
    n = np.bincount(labels[mask])
    high = mask & (signal >= TARGET)
    # only the dip's partner gives up its single-pixel bin
    assert (n[labels[high]] > 1).sum() == 1
    assert n[labels[5, 5]] == 2


def test_no_coverage_outside_the_mask_is_ignored():
    signal, noise, mask = disc(n=40, seed=3)
    signal[~mask], noise[~mask] = np.nan, np.inf  # as binned_signal_noise gives off coverage
    noise[0, 0] = 0.0
    with np.errstate(all="raise"):
        labels = voronoi_bins(signal, noise, mask, TARGET)
    assert np.array_equal(labels >= 0, mask)


def test_cvt_regularisation_also_meets_the_floor():
    signal, noise, mask = disc(seed=1)
    labels = voronoi_bins(signal, noise, mask, TARGET, wvt=False)
    assert np.array_equal(labels >= 0, mask)
    assert bin_snr(signal, noise, labels).min() >= 0.8 * TARGET


def test_correlated_noise_makes_bigger_bins_that_still_reach_the_target():
    signal, noise, mask = disc(seed=2)
    plain = voronoi_bins(signal, noise, mask, TARGET)
    corr = voronoi_bins(signal, noise, mask, TARGET, covariance=0.5)
    assert corr.max() < plain.max()
    assert bin_snr(signal, noise, corr, covariance=0.5).min() >= 0.8 * TARGET
    assert bin_snr(signal, noise, corr).min() >= 0.8 * TARGET  # the factor only raises noise


def test_degenerate_masks():
    signal, noise, mask = disc(n=30)
    assert (voronoi_bins(signal, noise, np.zeros_like(mask), TARGET) == -1).all()
    # everything above target: one bin per pixel
    bright = np.ones((5, 6), bool)
    labels = voronoi_bins(np.full((5, 6), 50.0), np.ones((5, 6)), bright, TARGET)
    assert sorted(labels.ravel()) == list(range(30))
    # far too faint: one bin holds it all (flag it with bin_snr)
    faint = voronoi_bins(np.full((8, 8), 0.05), np.ones((8, 8)), np.ones((8, 8), bool), TARGET)
    assert (faint == 0).all()
    assert bin_snr(np.full((8, 8), 0.05), np.ones((8, 8)), faint)[0] == pytest.approx(0.4)


def test_bad_calls_raise_naming_the_argument():
    signal, noise, mask = disc(n=20)
    with pytest.raises(InputError, match="noise must have the shape"):
        voronoi_bins(signal, noise[:5], mask, TARGET)
    with pytest.raises(InputError, match="mask must have the shape"):
        voronoi_bins(signal, noise, mask[:5], TARGET)
    bad = noise.copy()
    bad[10, 10] = np.inf
    with pytest.raises(InputError, match=r"restrict the mask"):
        voronoi_bins(signal, bad, mask, TARGET)
    with pytest.raises(InputError, match="target_snr"):
        voronoi_bins(signal, noise, mask, 0.0)
    with pytest.raises(InputError, match="covariance"):
        voronoi_bins(signal, noise, mask, TARGET, covariance=-1.0)
    with pytest.raises(InputError, match="labels, signal and noise"):
        bin_snr(signal, noise, np.zeros((3, 3), int))


def _cube(seed=0, n_band=4, shape=(12, 14)):
    rng = np.random.default_rng(seed)
    sci = rng.normal(5.0, 1.0, (n_band, *shape))
    err = rng.uniform(0.5, 2.0, (n_band, *shape))
    labels = rng.integers(-1, 6, shape).astype(np.int32)
    labels[0, :6] = np.arange(6)  # every bin present
    return sci, err, labels


def test_bin_seds_are_the_direct_sums():
    sci, err, labels = _cube()
    flux, ferr, n_pixels, n_cov = bin_seds(sci, err, labels)
    assert flux.shape == ferr.shape == n_cov.shape == (6, 4)
    for k in range(6):
        sel = labels == k
        assert n_pixels[k] == sel.sum()
        np.testing.assert_allclose(flux[k], sci[:, sel].sum(axis=1))
        np.testing.assert_allclose(ferr[k], np.sqrt((err[:, sel] ** 2).sum(axis=1)))
    _, ferr_a, _, _ = bin_seds(sci, err, labels, alpha=0.3)
    np.testing.assert_allclose(ferr_a, ferr * (1 + 0.3 * np.log10(n_pixels))[:, None])


def test_bin_seds_leave_uncovered_pixels_out_per_band():
    sci, err, labels = _cube(seed=1)
    y, x = np.argwhere(labels == 2)[0]
    err[1, y, x] = np.inf  # one pixel without coverage in band 1
    sci[1, y, x] = np.nan
    flux, ferr, n_pixels, n_cov = bin_seds(sci, err, labels)
    sel = labels == 2
    keep = sel.copy()
    keep[y, x] = False
    assert n_cov[2, 1] == n_pixels[2] - 1 and n_cov[2, 0] == n_pixels[2]
    assert flux[2, 1] == pytest.approx(sci[1, keep].sum())
    assert ferr[2, 1] == pytest.approx(np.sqrt((err[1, keep] ** 2).sum()))
    assert flux[2, 0] == pytest.approx(sci[0, sel].sum())
    # a bin with no coverage at all in band 3
    err[3, labels == 4] = np.inf
    flux, ferr, _, n_cov = bin_seds(sci, err, labels)
    assert np.isnan(flux[4, 3]) and np.isinf(ferr[4, 3]) and n_cov[4, 3] == 0
    assert np.isfinite(flux[4, :3]).all()


def test_bin_seds_checks_shapes():
    sci, err, labels = _cube()
    with pytest.raises(InputError, match="labels must be a"):
        bin_seds(sci, err, labels[:3])
    with pytest.raises(InputError, match="labels must be integers"):
        bin_seds(sci, err, labels.astype(float))


def test_binned_signal_noise_is_the_weighted_band_mean():
    rng = np.random.default_rng(3)
    sci = rng.normal(3.0, 1.0, (3, 6, 6))
    err = np.stack([np.full((6, 6), 1.0), np.full((6, 6), 2.0), np.full((6, 6), 1.0)])
    signal, noise = binned_signal_noise(sci, err)
    w = np.array([1.0, 0.25, 1.0])[:, None, None]
    np.testing.assert_allclose(signal, (w * sci).sum(0) / w.sum())
    np.testing.assert_allclose(noise, np.sqrt((w ** 2 * err ** 2).sum(0)) / w.sum())
    # the combined S/N beats every single band for a flat SED
    assert (noise < err.min(axis=0)).all()
    # an uncovered band is left out of that pixel; no band at all gives NaN / inf
    err[0, 1, 1] = np.inf
    err[:, 2, 2] = np.inf
    signal, noise = binned_signal_noise(sci, err)
    w1 = np.array([0.25, 1.0])
    assert signal[1, 1] == pytest.approx((w1 * sci[1:, 1, 1]).sum() / w1.sum())
    assert np.isnan(signal[2, 2]) and np.isinf(noise[2, 2])
    signal, _ = binned_signal_noise(sci, err, used_bands=np.array([True, False, False]))
    assert signal[0, 0] == pytest.approx(sci[0, 0, 0])


def test_binning_a_multiband_stamp_end_to_end():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:50, :50]
    r = np.hypot(yy - 24.5, (xx - 24.5) / 0.7)
    model, mask = 12.0 * np.exp(-r / 6.0), r < 21.0
    seds = np.array([0.5, 1.0, 2.0])
    sci = seds[:, None, None] * model[None] + rng.standard_normal((3, 50, 50))
    err = np.ones((3, 50, 50))
    signal, noise = binned_signal_noise(sci, err)
    labels = voronoi_bins(signal, noise, mask, TARGET)
    flux, ferr, n_pixels, _ = bin_seds(sci, err, labels)
    assert (bin_snr(signal, noise, labels) >= 0.8 * TARGET).all()
    # the faint outskirts' binned SEDs recover the true colours; single pixels would not
    outer = n_pixels >= 4
    assert outer.sum() >= 10
    ratio = flux[outer] / flux[outer, 1:2]
    np.testing.assert_allclose(np.median(ratio, axis=0), seds, rtol=0.1)
    faint = mask & (model < 1.0)
    single = sci[:, faint] / sci[1, faint]
    assert np.std(single[2]) > 5 * np.std(ratio[:, 2])


def test_noise_factor():
    np.testing.assert_allclose(noise_factor([1, 10, 100], 0.5), [1.0, 1.5, 2.0])
    assert noise_factor(0, 1.0) == 1.0
