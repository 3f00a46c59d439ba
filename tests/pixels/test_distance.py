"""Distances: vectorised blockwise pairwise matrices equal the pair-by-pair definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.pixels import (
    chi2_distance,
    embed,
    nearest,
    pairwise_distances,
    shape_distance,
    trapezoid_weights,
)
from galclust.pixels.distance import rows_per_block

WL = np.array([0.9, 1.15, 1.5, 2.0, 2.8, 3.6])


@pytest.fixture
def pixels():
    rng = np.random.default_rng(7)
    flux = rng.uniform(0.2, 3.0, size=(25, 6)) * rng.uniform(1, 50, size=(25, 1))
    err = rng.uniform(0.5, 2.0, size=(25, 6))
    return flux, err


def _loop(flux, err, metric, w=None):
    """The research-code reference: a Python loop over pixel pairs."""
    n = len(flux)
    out = np.zeros((n, n))
    for i, j in itertools.product(range(n), range(n)):
        f1, f2 = flux[i], flux[j]
        if metric == "euclidean":
            out[i, j] = np.sqrt(((f1 - f2) ** 2).sum())
        elif metric == "wavelength":
            out[i, j] = np.sqrt((w * (f1 - f2) ** 2).sum())
        elif metric == "xcorr":
            a12 = (f1 * f2).sum() / (f2 * f2).sum()
            out[i, j] = np.sqrt(((f1 - a12 * f2) ** 2).sum() / (f1 * f1).sum())
        else:  # chi2: scale fitted with inverse-variance weights in units of each norm
            n1, n2 = np.linalg.norm(f1), np.linalg.norm(f2)
            u, v, t1, t2 = f1 / n1, f2 / n2, err[i] / n1, err[j] / n2
            wt = 1 / (t1**2 + t2**2)
            chis = []
            for p, q in ((u, v), (v, u)):
                a = (wt * p * q).sum() / (wt * q * q).sum()
                chis.append((wt * (p - a * q) ** 2).sum())
            out[i, j] = np.sqrt(np.mean(chis) / (len(f1) - 1))
    return out


@pytest.mark.parametrize("metric", ["euclidean", "xcorr", "wavelength", "chi2"])
def test_pairwise_equals_pair_loop(pixels, metric):
    flux, err = pixels
    w = trapezoid_weights(WL)
    got = pairwise_distances(flux, metric=metric, err=err, weights=w)
    np.testing.assert_allclose(got, _loop(flux, err, metric, w), atol=1e-7)
    np.testing.assert_allclose(got, got.T, atol=1e-7)


def test_xcorr_b12_as_written_is_symmetric(pixels):
    flux, _ = pixels
    b12 = shape_distance(flux[:, None, :], flux[None, :, :])
    np.testing.assert_allclose(b12, b12.T, atol=1e-12)  # b12 = b21 = |sin θ|
    cos = (flux @ flux.T) / np.outer(*[np.linalg.norm(flux, axis=1)] * 2)
    np.testing.assert_allclose(b12, np.sqrt(np.clip(1 - cos**2, 0, None)), atol=1e-7)


def test_chi2_is_asymmetric_per_direction_but_the_distance_is_symmetric(pixels):
    flux, err = pixels
    d = chi2_distance(flux[:, None, :], err[:, None, :], flux[None, :, :], err[None, :, :])
    np.testing.assert_allclose(d, pairwise_distances(flux, metric="chi2", err=err), atol=1e-10)
    assert np.allclose(d, d.T)


def test_chi2_of_same_shape_is_zero_and_grows_with_snr():
    sed = np.array([1.0, 2.0, 3.0, 2.0])
    other = np.array([1.0, 2.5, 3.0, 1.5])
    low = pairwise_distances(np.stack([sed * 10, sed * 3, other * 5]), metric="chi2",
                             err=np.ones((3, 4)))
    high = pairwise_distances(np.stack([sed * 100, sed * 30, other * 50]), metric="chi2",
                              err=np.ones((3, 4)))
    assert low[0, 1] == pytest.approx(0, abs=1e-7) and high[0, 1] == pytest.approx(0, abs=1e-6)
    assert high[0, 2] == pytest.approx(10 * low[0, 2], rel=1e-6)  # χ ∝ S/N


@pytest.mark.parametrize("metric", ["euclidean", "xcorr", "wavelength"])
def test_embeddings_are_exact(pixels, metric):
    flux, _ = pixels
    x = flux / np.linalg.norm(flux, axis=1, keepdims=True) if metric != "xcorr" else flux
    w = trapezoid_weights(WL)
    z = embed(x, metric=metric, weights=w)
    d_embed = pairwise_distances(z, metric="euclidean")
    np.testing.assert_allclose(d_embed, pairwise_distances(x, metric=metric, weights=w),
                               atol=1e-7)


def test_xcorr_is_monotone_in_euclidean_distance_of_l2_seds(pixels):
    flux, _ = pixels
    u = flux / np.linalg.norm(flux, axis=1, keepdims=True)
    d = pairwise_distances(u, metric="euclidean")
    b = pairwise_distances(flux, metric="xcorr")
    np.testing.assert_allclose(b, d * np.sqrt(1 - d**2 / 4), atol=1e-7)


def test_chi2_embedding_orders_like_the_pairwise_distance_at_equal_snr():
    """The embedding whitens by the bands' typical errors but ignores each pixel's S/N."""
    rng = np.random.default_rng(7)
    flux = rng.uniform(0.2, 3.0, size=(25, 6))
    flux *= 20 / np.linalg.norm(flux, axis=1, keepdims=True)
    err = np.tile(rng.uniform(0.5, 2.0, size=(1, 6)), (25, 1))
    iu = np.triu_indices(25, 1)
    d_embed = pairwise_distances(embed(flux, metric="chi2", err=err))[iu]
    d_chi = pairwise_distances(flux, metric="chi2", err=err)[iu]
    rank = np.corrcoef(np.argsort(np.argsort(d_embed)), np.argsort(np.argsort(d_chi)))[0, 1]
    assert rank > 0.9
    # whitening matters: the plain xcorr embedding orders the χ² distances worse
    d_plain = pairwise_distances(embed(flux, metric="xcorr"))[iu]
    assert rank > np.corrcoef(np.argsort(np.argsort(d_plain)), np.argsort(np.argsort(d_chi)))[0, 1]


@pytest.mark.parametrize("metric", ["euclidean", "xcorr", "chi2"])
def test_blocks_and_float32_agree(pixels, metric):
    flux, err = pixels
    full = pairwise_distances(flux, metric=metric, err=err)
    assert rows_per_block(25, 6, metric=metric, itemsize=8, memory_budget=2000) < 25
    tiny = pairwise_distances(flux, metric=metric, err=err, memory_budget=2000)
    np.testing.assert_allclose(full, tiny, rtol=1e-12, atol=1e-12)
    f32 = pairwise_distances(flux, metric=metric, err=err, dtype="float32")
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, full, atol=2e-3 if metric == "xcorr" else 1e-4)


def test_cross_distances_and_nearest(pixels):
    flux, err = pixels
    d = pairwise_distances(flux[:5], flux[5:], metric="xcorr")
    assert d.shape == (5, 20)
    np.testing.assert_allclose(d, pairwise_distances(flux, metric="xcorr")[:5, 5:], atol=1e-12)
    np.testing.assert_array_equal(nearest(flux[:5], flux[5:], metric="xcorr", memory_budget=100),
                                  d.argmin(axis=1))


def test_trapezoid_weights():
    w = trapezoid_weights(np.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(w, np.array([0.5, 1.5, 1.0]) / 1.0)
    np.testing.assert_allclose(trapezoid_weights(np.array([4.0, 1.0, 2.0])), [1.0, 0.5, 1.5])
    with pytest.raises(InputError, match="distinct"):
        trapezoid_weights(np.array([1.0, 1.0]))


def test_bad_metric_and_missing_inputs():
    x = np.ones((3, 4))
    with pytest.raises(InputError, match=r"metric='xcor'.*Did you mean 'xcorr'"):
        pairwise_distances(x, metric="xcor")
    with pytest.raises(InputError, match="needs per-pixel errors"):
        pairwise_distances(x, metric="chi2")
    with pytest.raises(InputError, match="needs band weights"):
        pairwise_distances(x, metric="wavelength")
    with pytest.raises(InputError, match="float32 or float64"):
        pairwise_distances(x, dtype="int8")
