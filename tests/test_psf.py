"""PSF matching on arrays: FWHM, kernels, cropping, convolution with variance and coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from galclust.errors import InputError
from galclust.psf import (
    convolve_matched,
    crop_kernel,
    kernel_radius,
    matching_kernel,
    matching_kernels,
    psf_fwhm,
    tukey_window,
)
from galclust.synth.profiles import gaussian, moffat

SIG = 2.3548


def _gauss(sigma: float, size: int = 41) -> np.ndarray:
    c = size // 2
    return gaussian((size, size), c, c, sigma=sigma)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_fwhm_of_a_gaussian(sigma):
    assert psf_fwhm(_gauss(sigma)) == pytest.approx(SIG * sigma, rel=0.02)


def test_fwhm_of_a_moffat_and_of_an_off_centre_star():
    assert psf_fwhm(moffat((41, 41), 20, 20, 3.5)) == pytest.approx(3.5, rel=0.03)
    star = gaussian((31, 31), 14.3, 16.6, sigma=2.0) * 1e4  # between pixels, any scale
    assert psf_fwhm(star) == pytest.approx(SIG * 2.0, rel=0.03)


def test_kernel_matches_a_narrow_gaussian_to_a_broad_one():
    src, tgt = _gauss(1.0), _gauss(3.0)
    k = matching_kernel(src, tgt)
    assert k.shape == (41, 41) and k.sum() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(k), k.shape) == (20, 20)
    out = fftconvolve(src, k, mode="same")
    assert np.abs(out - tgt).max() < 0.01 * tgt.max()
    # cropped to the radius holding 99.9% of |k|: still matches
    r = kernel_radius(k)
    assert 5 <= r < 20
    kc = crop_kernel(k, r)
    assert kc.shape == (2 * r + 1, 2 * r + 1) and kc.sum() == pytest.approx(1.0)
    assert np.abs(fftconvolve(src, kc, mode="same") - tgt).max() < 0.01 * tgt.max()


def test_psfs_of_different_sizes_and_an_even_stamp_are_padded_and_centred():
    src = _gauss(1.0, size=21)
    even = np.zeros((40, 40))  # an even stamp whose peak is on pixel (20, 20)
    even[:, :] = gaussian((40, 40), 20, 20, sigma=3.0)
    k = matching_kernel(src, even)
    assert k.shape == (41, 41)
    out = fftconvolve(np.pad(src, 10), k, mode="same")
    assert np.abs(out - _gauss(3.0)).max() < 0.01 * _gauss(3.0).max()


def test_moffat_kernel_with_the_default_window():
    src, tgt = moffat((41, 41), 20, 20, 1.0), moffat((41, 41), 20, 20, 3.5)
    src, tgt = src / src.sum(), tgt / tgt.sum()
    out = fftconvolve(src, matching_kernel(src, tgt), mode="same")
    assert np.abs(out - tgt).max() < 0.012 * tgt.max()
    assert psf_fwhm(out) == pytest.approx(psf_fwhm(tgt), rel=0.01)
    exact = fftconvolve(src, matching_kernel(src, tgt, window=None), mode="same")
    assert np.abs(exact - tgt).max() < 0.002 * tgt.max()


def test_matching_kernels_pick_the_broadest_psf():
    psfs = {"blue": _gauss(1.0), "green": _gauss(2.0), "red": _gauss(3.0)}
    target, kernels = matching_kernels(psfs)
    assert target == "red" and kernels["red"] is None
    for band in ("blue", "green"):
        k = kernels[band]
        assert k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1.0)
        out = fftconvolve(np.pad(psfs[band], 20), k, mode="same")[20:-20, 20:-20]
        assert np.abs(out - psfs["red"]).max() < 0.01 * psfs["red"].max()
    assert kernels["blue"].shape[0] > kernels["green"].shape[0]


def test_tukey_window():
    w = tukey_window((21, 21), 0.4)
    assert w[10, 10] == 1.0 and w[10, 0] == 0.0 and 0 < w[10, 2] < 1
    with pytest.raises(InputError, match="alpha"):
        tukey_window((21, 21), 1.5)


@pytest.mark.parametrize("psf, match", [
    (np.ones(41), "2-D"),
    (np.zeros((41, 41)), "sums to 0"),
    (np.full((41, 41), np.nan), "NaN"),
    (gaussian((40, 40), 19.5, 19.5, sigma=2.0), "between pixels"),
    (np.ones((2, 2)), "at least 3x3"),
])
def test_bad_psfs_raise(psf, match):
    with pytest.raises(InputError, match=match):
        matching_kernels({"F150W": psf, "F444W": _gauss(3.0)})
    with pytest.raises(InputError, match="band F150W PSF"):
        matching_kernels({"F150W": psf, "F444W": _gauss(3.0)})


def test_source_broader_than_target_refused():
    with pytest.raises(InputError, match="deconvolve"):
        matching_kernel(_gauss(3.0), _gauss(1.0))


def test_convolution_of_white_noise_propagates_the_variance():
    rng = np.random.default_rng(0)
    sigma = 2.0
    sci = rng.standard_normal((400, 400)).astype(np.float32) * sigma
    err = np.full_like(sci, sigma)
    k = crop_kernel(matching_kernel(_gauss(1.0), _gauss(2.5)), 12)
    out, out_err = convolve_matched(sci, err, k)
    inner = (slice(20, -20), slice(20, -20))
    expected = sigma * np.sqrt((k ** 2).sum())
    np.testing.assert_allclose(out_err[inner], expected, rtol=1e-4)
    assert out[inner].std() == pytest.approx(expected, rel=0.03)
    assert out.dtype == np.float32 and out_err.dtype == np.float32
    # the plain convolution where the kernel lies on covered pixels
    np.testing.assert_allclose(out[inner], fftconvolve(sci, k, mode="same")[inner],
                               atol=1e-5 * np.abs(sci).max())


def test_uncovered_pixels_do_not_poison_their_neighbours():
    rng = np.random.default_rng(1)
    sci = (100.0 + rng.standard_normal((80, 80))).astype(np.float32)
    err = np.ones_like(sci)
    sci[:, 50:], err[:, 50:] = np.nan, np.inf   # no coverage on the right
    sci[20, 20], err[20, 20] = 0.0, np.inf      # one dead pixel
    k = crop_kernel(matching_kernel(_gauss(1.0), _gauss(2.5)), 10)
    out, out_err = convolve_matched(sci, err, k)
    assert np.isfinite(out).all()
    assert np.isinf(out_err[:, 50:]).all() and (out[:, 50:] == 0).all()
    assert np.isinf(out_err[20, 20]) and out[20, 20] == 0
    # covered pixels keep the flat level right up to the edge and around the dead pixel
    covered = np.isfinite(out_err)
    expected = np.zeros_like(covered)
    expected[5:-5, :50], expected[20, 20] = True, False
    assert covered[expected].all() and not covered[20, 20]
    # the image's corners see under half of the kernel: no coverage there
    assert not covered[0, 0]
    np.testing.assert_allclose(out[covered], 100.0, atol=1.5)
    # near the edge fewer pixels average: larger errors than far from it
    assert out_err[40, 48] > out_err[40, 30]


def test_no_kernel_weight_below_threshold_marks_uncovered():
    sci = np.ones((30, 30), np.float32)
    err = np.full_like(sci, np.inf)
    err[15, 15] = 1.0  # one covered pixel: a broad kernel puts < 0.5 of its weight on it
    k = crop_kernel(matching_kernel(_gauss(0.7), _gauss(3.0)), 10)
    out, out_err = convolve_matched(sci, err, k)
    assert np.isinf(out_err).all() and (out == 0).all()


def test_convolve_checks_shapes():
    with pytest.raises(InputError, match="one shape"):
        convolve_matched(np.ones((5, 5)), np.ones((5, 6)), np.ones((3, 3)) / 9)
    with pytest.raises(InputError, match="odd square"):
        convolve_matched(np.ones((5, 5)), np.ones((5, 5)), np.ones((2, 2)) / 4)
