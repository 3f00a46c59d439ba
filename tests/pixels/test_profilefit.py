"""Component SEDs placed by a multi-band Sérsic decomposition (galclust.pixels.profilefit)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from galclust.pixels.profilefit import profile_seds, sersic_profiles

unmix_module = importlib.import_module("galclust.pixels.unmix")
nmf_module = importlib.import_module("galclust.pixels.nmf")

SEDS = np.array([[0.10, 0.15, 0.20, 0.25, 0.30], [0.30, 0.25, 0.20, 0.15, 0.10]])


def _grid(size=41):
    y, x = np.mgrid[:size, :size]
    return y.ravel().astype(float), x.ravel().astype(float)


def test_profiles_are_normalised_centred_and_oriented():
    y, x = _grid()
    # an elongated profile along +x (position angle 0) and one along +y (pi / 2)
    p = sersic_profiles(np.array([20.0, 20.0, np.log(4.0), 0.0, 0.6, 0.0,
                                  12.0, 25.0, np.log(3.0), np.log(2.0), 0.5, np.pi / 2]), y, x)
    np.testing.assert_allclose(p.sum(axis=0), 1.0)
    assert (y[p[:, 0].argmax()], x[p[:, 0].argmax()]) == (20.0, 20.0)
    assert (y[p[:, 1].argmax()], x[p[:, 1].argmax()]) == (25.0, 12.0)
    for c, along_x in ((0, True), (1, False)):
        w = p[:, c]
        vx = w @ (x - w @ x) ** 2
        vy = w @ (y - w @ y) ** 2
        assert (vx > 2 * vy) if along_x else (vy > 2 * vx)


def _overlapping_pair(seed=0, snr=50.0):
    """A compact component on an extended one's light, no pixel of it purer than 85 %:
    the narrowest cone that holds the pixels mixes their SEDs."""
    y, x = _grid()
    params = np.array([20.0, 20.0, np.log(6.0), np.log(1.5), 0.2, 0.3,
                       23.0, 21.0, np.log(3.0), 0.0, 0.3, 1.2])
    prof = sersic_profiles(params, y, x) * np.array([1.0, 0.5])
    clean = prof @ SEDS
    sigma = clean.sum(axis=1).max() / snr / np.sqrt(SEDS.shape[1])
    rng = np.random.default_rng(seed)
    flux = clean + rng.normal(0.0, sigma, clean.shape)
    keep = clean.sum(axis=1) > 2 * sigma * np.sqrt(SEDS.shape[1])
    err = np.full_like(flux, sigma)
    truth = prof / prof.sum(axis=1, keepdims=True)
    return flux[keep], err[keep], y[keep], x[keep], truth[keep]


def _mixing(estimated):
    """The estimated SEDs as combinations of the true ones, matched to them."""
    c = np.linalg.lstsq(SEDS.T, estimated.T, rcond=None)[0].T
    return c if c[0, 0] >= c[0, 1] else c[::-1]


def test_profile_seds_place_the_seds_the_narrowest_cone_mixes():
    flux, err, y, x, truth = _overlapping_pair()
    assert truth[:, 1].max() < 0.86  # the compact component has no pure pixel
    hull = unmix_module.unmix(flux, err, n_components=2)
    mixed = _mixing(hull.seds)
    assert max(mixed[0, 1], mixed[1, 0]) > 0.1  # the compact one carries 15 % of the other
    out = profile_seds(flux, err, y, x, hull.abundances)
    assert out is not None
    seds, params = out
    np.testing.assert_allclose(seds.sum(axis=1), 1.0)
    placed = _mixing(seds)
    # measured: mixing 0.046 and -0.027 (the fit's χ² is the true parameters', 863
    # against 878 for 880 values: the rest is the noise's, not the optimiser's)
    np.testing.assert_allclose(placed, np.eye(2), atol=0.06)
    # the fractions they give beat the narrowest cone's
    frac = nmf_module._nnls_abundances(flux, 1 / err**2, seds)
    frac /= frac.sum(axis=1, keepdims=True)
    # over the pixels of band-summed S/N >= 10, where a pixel's own noise does not rule
    snr = flux.sum(axis=1) / np.sqrt((err**2).sum(axis=1))
    bright = snr >= 10

    def rms(f):
        return np.sqrt(np.mean((f[bright] - truth[bright]) ** 2))

    # measured 0.087 against 0.150 (46 pixels)
    assert rms(frac[:, _order(seds)]) < 0.7 * rms(hull.fractions[:, _order(hull.seds)])


def _order(seds):
    """The estimated components in the order of SEDS (nearest SED)."""
    return [int(np.abs(seds - s).sum(axis=1).argmin()) for s in SEDS]


def test_too_few_pixels_or_an_empty_component_gives_none():
    flux, err, y, x, _ = _overlapping_pair()
    a = unmix_module.unmix(flux, err, n_components=2).abundances
    assert profile_seds(flux[:50], err[:50], y[:50], x[:50], a[:50]) is None
    # a band left out (err = inf, flux NaN) is ignored, not fatal
    flux2, err2 = flux.copy(), err.copy()
    flux2[:, 2], err2[:, 2] = np.nan, np.inf
    out = profile_seds(flux2, err2, y, x, a)
    assert out is not None and np.isfinite(out[0]).all()
    assert out[0][:, 2] == pytest.approx(0.0)
