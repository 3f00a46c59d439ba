"""estimate_noise: white and correlated noise with sources, 3-D input, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from galclust.errors import InputError
from galclust.sources.noise import _disk, estimate_noise
from galclust.synth.profiles import sersic

SIGMA = 2.0


def _sources(shape, rng, n=25):
    img = np.zeros(shape)
    for _ in range(n):
        y0, x0 = rng.uniform(10, shape[0] - 10, 2)
        img += rng.uniform(50, 500) * sersic(shape, y0, x0, r_eff=rng.uniform(1, 4))
    return img


def _correlated(shape, rng, smooth=1.0):
    n = ndimage.gaussian_filter(rng.normal(size=shape), smooth)
    return SIGMA * n / n.std()


def test_white_noise_sigma_within_5_percent():
    rng = np.random.default_rng(1)
    shape = (256, 256)
    img = _sources(shape, rng) + SIGMA * rng.normal(size=shape) + 3.0   # + a background
    err, info = estimate_noise(img)
    assert err.shape == shape and err.dtype == np.float32
    assert abs(np.median(err) / SIGMA - 1) < 0.05
    assert abs(info["rms_median"] / SIGMA - 1) < 0.05
    # white noise: every aperture ratio ~ 1, so the factor is ~ 1
    assert info["correlation_factor"] == 1.0 or abs(info["correlation_factor"] - 1) < 0.05
    assert abs(info["correlation_factor_measured"] - 1) < 0.08
    for key in ("method", "rms_median", "correlation_factor", "aperture_radii",
                "aperture_ratio", "n_apertures", "tile"):
        assert key in info


def test_correlated_noise_aperture_errors_within_10_percent():
    rng = np.random.default_rng(2)
    shape = (256, 256)
    img = _sources(shape, rng) + _correlated(shape, rng)
    err, info = estimate_noise(img)
    r = info["source_radius"]
    k = _disk(r)
    # truth: std of aperture sums of the same noise process, measured on a large noise field
    field = _correlated((2048, 2048), np.random.default_rng(3))
    true_std = signal.fftconvolve(field, k, mode="valid")[::23, ::23].std()
    est_std = np.median(err) * np.sqrt(k.sum())
    assert abs(est_std / true_std - 1) < 0.10, (est_std, true_std, info)
    # the per-pixel RMS before the correction is still the per-pixel sigma
    assert abs(info["rms_median"] / SIGMA - 1) < 0.05
    assert info["correlation_factor"] > 1.5
    ratios = [x for x in info["aperture_ratio"] if np.isfinite(x)]
    assert ratios == sorted(ratios)          # correlated noise: grows with the radius


def test_cube_returns_per_band_maps_and_infos():
    rng = np.random.default_rng(4)
    cube = np.stack([s * rng.normal(size=(128, 128)) for s in (1.0, 3.0)])
    cube[0, :4, :4] = np.nan
    err, infos = estimate_noise(cube, tile=32)
    assert err.shape == cube.shape and len(infos) == 2
    assert np.isnan(err[0, 0, 0])
    assert abs(np.nanmedian(err[1]) / 3.0 - 1) < 0.08
    again, _ = estimate_noise(cube, tile=32)
    np.testing.assert_array_equal(err, again)             # deterministic


def test_bad_input():
    img = np.zeros((64, 64))
    with pytest.raises(InputError, match="mask"):
        estimate_noise(img, mask=np.zeros((10, 10), bool))
    with pytest.raises(InputError, match="image"):
        estimate_noise(np.zeros(5))
    with pytest.raises(InputError, match="band 1"):
        estimate_noise(np.stack([np.ones((64, 64)), np.full((64, 64), np.nan)]))
    with pytest.raises(InputError, match="tile"):
        estimate_noise(img, tile=2)
