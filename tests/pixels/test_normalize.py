"""Normalisations remove brightness and keep shape."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.pixels import NORMALIZATIONS, normalize_seds, shape_distance


@pytest.fixture
def seds():
    rng = np.random.default_rng(3)
    shapes = rng.uniform(0.5, 2.0, size=(30, 6))
    brightness = rng.uniform(1.0, 100.0, size=(30, 1))
    return shapes, brightness


@pytest.mark.parametrize("method", ["l2", "sum", "median_sed"])
def test_scaling_a_pixel_does_not_change_its_features(seds, method):
    shapes, brightness = seds
    a = normalize_seds(shapes, method).features
    b = normalize_seds(shapes * brightness, method).features
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_none_keeps_brightness(seds):
    shapes, brightness = seds
    out = normalize_seds(shapes * brightness, "none")
    np.testing.assert_array_equal(out.features, shapes * brightness)
    assert out.valid.all() and (out.scale == 1).all()


def test_l2_and_sum_values(seds):
    shapes, _ = seds
    l2 = normalize_seds(shapes, "l2")
    np.testing.assert_allclose(np.linalg.norm(l2.features, axis=1), 1.0)
    np.testing.assert_allclose(l2.features * l2.scale[:, None], shapes)
    s = normalize_seds(shapes, "sum")
    np.testing.assert_allclose(s.features.sum(axis=1), 1.0)


def test_median_sed_residual_is_orthogonal_and_its_length_is_the_xcorr_distance(seds):
    shapes, brightness = seds
    flux = shapes * brightness
    out = normalize_seds(flux, "median_sed")
    m_hat = out.reference
    np.testing.assert_allclose(out.features @ m_hat, 0.0, atol=1e-12)
    # (f - a m)/||f|| with a = Σ f m / Σ m²: its length is b(f, m) as written in the design
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1),
                               shape_distance(flux, m_hat[None, :]), rtol=1e-10)
    a = (flux @ m_hat) / (m_hat @ m_hat)
    explicit = (flux - a[:, None] * m_hat[None]) / np.linalg.norm(flux, axis=1)[:, None]
    np.testing.assert_allclose(out.features, explicit, atol=1e-12)


def test_colour_equals_magnitude_difference_for_bright_pixels():
    flux = np.array([[100.0, 200.0, 400.0], [50.0, 50.0, 25.0]]) * 1e3
    err = np.ones_like(flux)
    out = normalize_seds(flux, "colour", err=err, ref_band=1)
    expected = -2.5 * np.log10(flux / flux[:, [1]])
    np.testing.assert_allclose(out.features, expected, atol=1e-6)
    assert (out.features[:, 1] == 0).all()


def test_colour_stays_finite_for_faint_and_negative_flux():
    flux = np.array([[-3.0, 1.0, 5.0], [0.0, 0.0, 0.0]])
    out = normalize_seds(flux, "colour", err=np.ones_like(flux))
    assert np.isfinite(out.features).all() and out.valid.all()


def test_default_reference_band_is_highest_snr():
    flux = np.array([[1.0, 50.0, 5.0], [2.0, 60.0, 4.0]])
    out = normalize_seds(flux, "colour", err=np.ones_like(flux))
    assert int(out.reference) == 1


def test_invalid_rows_are_marked_not_raised():
    flux = np.array([[1.0, 2.0], [0.0, 0.0], [np.nan, 1.0], [-1.0, 0.5]])
    l2 = normalize_seds(flux, "l2")
    assert l2.valid.tolist() == [True, False, False, True]
    s = normalize_seds(flux, "sum")
    assert s.valid.tolist() == [True, False, False, False]
    assert np.isfinite(s.features).all()


def test_unknown_normalisation_names_the_valid_ones_and_suggests():
    with pytest.raises(InputError, match=r"normalize='medain_sed'.*'l2'.*Did you mean "
                                         r"'median_sed'\?"):
        normalize_seds(np.ones((2, 3)), "medain_sed")
    with pytest.raises(InputError, match="Did you mean 'colour'"):
        normalize_seds(np.ones((2, 3)), "color")
    assert set(NORMALIZATIONS) == {"none", "l2", "median_sed", "colour", "sum"}
