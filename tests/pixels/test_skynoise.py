"""Error rescaling and correlated noise measured on the sky around a galaxy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d

from galclust.errors import InputError
from galclust.pixels.skynoise import (
    correlation_alpha,
    errors_from_sky,
    rescale_errors,
    robust_std,
    sky_error_scale,
    sky_from_segmentation,
)

SHAPE = (200, 200)
KERNEL = np.outer([0.25, 0.5, 0.25], [0.25, 0.5, 0.25])  # drizzle-like pixel mixing


def _sky():
    sky = np.ones(SHAPE, bool)
    sky[70:130, 70:130] = False  # the galaxy's segment
    return sky


def _correlated(rng, n_band):
    """White noise convolved with KERNEL; ``err`` is its true per-pixel rms."""
    pad = KERNEL.shape[0] // 2
    white = rng.standard_normal((n_band, SHAPE[0] + 2 * pad, SHAPE[1] + 2 * pad))
    sci = np.stack([convolve2d(w, KERNEL, mode="valid") for w in white])
    return sci, np.full_like(sci, np.sqrt((KERNEL ** 2).sum()))


def _expected_ratio(size):
    """Analytic box-sum std over its white-noise prediction for KERNEL-correlated noise."""
    box = convolve2d(np.ones((size, size)), KERNEL)  # each white pixel's weight in the box sum
    return np.sqrt((box ** 2).sum() / (size * size * (KERNEL ** 2).sum()))


def test_white_noise_with_errors_too_small_gives_the_factor():
    rng = np.random.default_rng(0)
    true_sigma = np.array([2.0, 1.0, 0.5])
    sci = rng.standard_normal((3, *SHAPE)) * true_sigma[:, None, None]
    sci[:, 70:130, 70:130] += 100.0  # the galaxy must not count
    err = np.ones((3, *SHAPE))
    err[:, :, :5] = np.inf  # uncovered strip
    result = sky_error_scale(sci, err, _sky())
    np.testing.assert_allclose(result.scale, true_sigma, rtol=0.03)  # measured: within 0.5%
    assert result.reliable.all() and not result.reasons
    assert (result.n_sky == _sky()[:, 5:].sum()).all()

    err_new, res2 = rescale_errors(sci, err, _sky())
    np.testing.assert_allclose(err_new[:, :, 5:],
                               np.broadcast_to(res2.scale[:, None, None], (3, 200, 195)))
    assert np.isinf(err_new[:, :, :5]).all()
    sky = _sky()
    sky[:, :5] = False
    for b in range(3):  # the sky now scatters by 1 in units of the new errors
        assert robust_std(sci[b][sky] / err_new[b][sky]) == pytest.approx(1.0, rel=0.01)


def test_sources_left_in_the_sky_do_not_bias_the_factor():
    rng = np.random.default_rng(1)
    sci = 2.0 * rng.standard_normal((1, *SHAPE))
    hits = rng.random(SHAPE) < 0.02  # 2% of the sky pixels in faint undetected sources
    sci[0][hits] += rng.uniform(5, 100, hits.sum())
    result = sky_error_scale(sci, np.ones_like(sci), _sky())
    assert result.scale[0] == pytest.approx(2.0, rel=0.03)
    assert np.std(sci[0][_sky()]) > 3.0  # a plain std would be far off


def test_too_few_sky_pixels_gives_factor_one_and_says_why():
    rng = np.random.default_rng(2)
    sci = 3.0 * rng.standard_normal((2, 20, 20))
    sky = np.zeros((20, 20), bool)
    sky[:3, :] = True  # 60 pixels
    result = sky_error_scale(sci, np.ones_like(sci), sky)
    assert (result.scale == 1.0).all() and not result.reliable.any()
    assert "min_pixels=200" in result.reasons[0]
    err_new, _ = rescale_errors(sci, np.ones_like(sci), sky)
    assert (err_new == 1.0).all()


def test_a_factor_outside_the_limits_is_clipped_and_flagged():
    rng = np.random.default_rng(3)
    sci = rng.standard_normal((2, *SHAPE)) * np.array([30.0, 0.05])[:, None, None]
    result = sky_error_scale(sci, np.ones_like(sci), _sky())
    np.testing.assert_allclose(result.scale, [10.0, 0.2])
    np.testing.assert_allclose(result.measured, [30.0, 0.05], rtol=0.03)
    assert not result.reliable.any()
    assert "outside limits" in result.reasons[0] and "clipped to 10" in result.reasons[0]


def test_correlated_noise_alpha_matches_the_kernel():
    rng = np.random.default_rng(4)
    sci, err = _correlated(rng, 2)
    result = correlation_alpha(sci, err, _sky())
    expected = np.array([_expected_ratio(s) for s in result.sizes])
    # each box size: the measured ratio agrees with the analytic one within 3 standard
    # errors of a MAD scatter of n_pix / N independent boxes (2% at N = 4, 15% at N = 64)
    n_pix = _sky().sum()
    tol = 3 * 1.166 / np.sqrt(n_pix / np.array(result.sizes, float) ** 2)
    assert (np.abs(result.ratio / expected - 1) < tol).all()
    assert expected[-1] > 2.4  # the 8x8 sums are 2.4x noisier than white noise
    # alpha from the analytic ratios with the same weighted fit
    n_sq = np.array(result.sizes[1:], float) ** 2
    x, y = np.log10(n_sq), expected[1:] - 1
    w = n_pix / n_sq / expected[1:] ** 2
    alpha_true = np.sum(w * x * y) / np.sum(w * x * x)
    assert alpha_true > 0.8
    np.testing.assert_allclose(result.alpha, alpha_true, rtol=0.1)
    assert (result.alpha > 10 * result.alpha_err).all() and result.reliable.all()
    # the per-pixel errors were right: factor ~1 despite the correlation
    np.testing.assert_allclose(sky_error_scale(sci, err, _sky()).scale, 1.0, rtol=0.03)


def test_white_noise_gives_alpha_zero_within_errors():
    rng = np.random.default_rng(5)
    sci = rng.standard_normal((3, *SHAPE)) * 0.3  # errors 3x too large: alpha must not care
    result = correlation_alpha(sci, np.ones_like(sci), _sky())
    assert (result.alpha < 0.05).all()
    assert (result.alpha <= 3 * result.alpha_err).all()
    np.testing.assert_allclose(result.ratio, 1.0, atol=0.05)


def test_alpha_needs_enough_sky():
    rng = np.random.default_rng(6)
    sci = rng.standard_normal((1, 30, 30))
    sky = np.zeros((30, 30), bool)
    sky[:4, :] = True
    result = correlation_alpha(sci, np.ones_like(sci), sky)
    assert result.alpha[0] == 0.0 and not result.reliable[0]
    assert "fewer than two box sizes" in result.reasons[0]


def test_errors_from_sky_for_a_survey_without_error_maps():
    rng = np.random.default_rng(7)
    sci = rng.standard_normal((2, *SHAPE)) * np.array([0.7, 3.0])[:, None, None]
    sci[1, 0, 0] = np.nan
    err, result = errors_from_sky(sci, _sky())
    np.testing.assert_allclose(err[:, 5, 5], [0.7, 3.0], rtol=0.03)
    assert np.isinf(err[1, 0, 0]) and result.reliable.all()
    err, result = errors_from_sky(sci[:, :10, :10], np.ones((10, 10), bool))
    assert np.isinf(err).all() and "uncovered" in result.reasons[0]


def test_sky_from_segmentation_keeps_away_from_segments():
    seg = np.zeros((15, 15), int)
    seg[7, 7] = 3
    assert sky_from_segmentation(seg, grow=0).sum() == 15 * 15 - 1
    sky = sky_from_segmentation(seg, grow=2)
    assert not sky[5:10, 5:10].any() and sky[4, 4] and sky.sum() == 15 * 15 - 25


def test_bad_calls_raise_naming_the_argument():
    sci = np.zeros((2, 10, 10))
    with pytest.raises(InputError, match="sky must be a boolean"):
        sky_error_scale(sci, np.ones_like(sci), np.ones((5, 5), bool))
    with pytest.raises(InputError, match="sci and err"):
        rescale_errors(sci, np.ones((2, 10, 9)), np.ones((10, 10), bool))
    with pytest.raises(InputError, match="limits"):
        sky_error_scale(sci, np.ones_like(sci), np.ones((10, 10), bool), limits=(2.0, 5.0))
    with pytest.raises(InputError, match="sizes"):
        correlation_alpha(sci, np.ones_like(sci), np.ones((10, 10), bool), sizes=(0, 2))


def test_alpha_makes_binned_errors_right_for_correlated_noise():
    from galclust.pixels.binning import bin_seds

    rng = np.random.default_rng(8)
    sci, err = _correlated(rng, 1)
    alpha = correlation_alpha(sci, err, _sky()).alpha
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    labels = ((yy // 4) * (SHAPE[1] // 4) + xx // 4).astype(np.int32)  # 4x4 bins
    for a, expected in ((0.0, _expected_ratio(4)), (alpha[0], 1.0)):
        flux, ferr, _, _ = bin_seds(sci, err, labels, alpha=a)
        # scatter of the bin sums in units of their errors: 2.17 without alpha, 1 with it
        assert np.std(flux[:, 0] / ferr[:, 0]) == pytest.approx(expected, rel=0.06)
