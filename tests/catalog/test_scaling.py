"""Noise estimates, asinh scaling and binning against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.catalog.scaling import (
    asinh_scale,
    band_noise,
    bin_stamps,
    border_noise,
    finite_median,
    stamp_vectors,
)
from galclust.errors import InputError


def test_border_noise_recovers_sigma_despite_source_and_padding():
    rng = np.random.default_rng(0)
    sigma = np.array([1.0, 3.0, 0.2])
    st = rng.normal(size=(40, 3, 31, 31)) * sigma[None, :, None, None]
    st[:, :, 10:21, 10:21] += 500.0  # a bright source in the middle: ignored
    st[:20, :, :, :12] = 0.0  # padding (no coverage) on the left of half the stamps
    est = border_noise(st.astype(np.float32))
    np.testing.assert_allclose(np.median(est, axis=0), sigma, rtol=0.08)
    np.testing.assert_allclose(band_noise(est), sigma, rtol=0.08)


def test_border_noise_empty_border_is_nan_and_band_noise_falls_back():
    st = np.zeros((2, 2, 11, 11), dtype=np.float32)
    st[0, 0] = np.random.default_rng(1).normal(size=(11, 11))
    est = border_noise(st)
    assert np.isfinite(est[0, 0]) and np.isnan(est[0, 1]) and np.isnan(est[1]).all()
    bn = band_noise(est)
    assert bn[1] == bn[0] == est[0, 0]  # a band without estimate takes the others' median


def test_finite_median():
    v = np.array([[1.0, 5.0, np.inf, 3.0], [np.inf] * 4, [2.0, 4.0, 6.0, 8.0]])
    np.testing.assert_array_equal(finite_median(v), [3.0, np.nan, 5.0])


def test_asinh_scale_linear_then_log():
    st = np.array([0.0, 0.3, 3e4, np.nan], dtype=np.float32).reshape(1, 1, 2, 2)
    out = asinh_scale(st, np.array([0.1]), softening=3.0)
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 1, 1] == 0.0  # NaN -> 0
    assert out[0, 0, 0, 1] == pytest.approx(np.arcsinh(1.0), rel=1e-6)
    assert out[0, 0, 1, 0] == pytest.approx(np.log(2e5), rel=1e-3)


def test_asinh_scale_zeroes_infinities_and_leaves_its_input_alone():
    st = np.array([[1.0, np.inf], [-np.inf, -2.0]], dtype=np.float32).reshape(1, 1, 2, 2)
    before = st.copy()
    out = asinh_scale(st, np.array([1.0]), softening=1.0)
    np.testing.assert_array_equal(out.ravel(), np.arcsinh(np.float32([1.0, 0.0, 0.0, -2.0])))
    np.testing.assert_array_equal(st, before)  # scaled in a copy, not in place
    assert out.dtype == np.float32
    ints = asinh_scale(np.arange(4).reshape(1, 1, 2, 2), np.array([2.0]), softening=1.0)
    np.testing.assert_allclose(ints.ravel(), np.arcsinh(np.arange(4) / 2.0), rtol=1e-6)


def test_bin_and_vectors():
    st = np.arange(1 * 2 * 7 * 7, dtype=np.float32).reshape(1, 2, 7, 7)
    b = bin_stamps(st, 3)  # crop to the central 6x6 (offset 0: (7 - 6) // 2 = 0)
    assert b.shape == (1, 2, 2, 2)
    assert b[0, 0, 0, 0] == pytest.approx(st[0, 0, 0:3, 0:3].mean())
    assert b[0, 1, 1, 1] == pytest.approx(st[0, 1, 3:6, 3:6].mean())
    assert bin_stamps(st, 1) is st
    v = stamp_vectors(st, np.ones(2), bin=3)
    assert v.shape == (1, 8) and v.dtype == np.float32


def test_bad_inputs():
    with pytest.raises(InputError, match="bands"):
        asinh_scale(np.zeros((1, 2, 3, 3)), np.ones(3))
    with pytest.raises(InputError, match="> 0"):
        asinh_scale(np.zeros((1, 1, 3, 3)), np.zeros(1))
    with pytest.raises(InputError, match="larger than"):
        bin_stamps(np.zeros((1, 1, 3, 3)), 5)
    with pytest.raises(InputError, match="source, band"):
        border_noise(np.zeros((3, 3)))
