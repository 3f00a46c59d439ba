"""make_galaxy: requested S/N, meaningful per-pixel truth, PSF, noise, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.synth import NIRCAM_BANDS, galaxy_snr, half_light_mask, make_galaxy
from galclust.synth.galaxy import attach_seds, draw_components
from galclust.synth.seds import band_widths


def _noisy_snr(g) -> float:
    """The S/N definition measured on the noisy image (what a user would see)."""
    hl = half_light_mask(g.model)
    return float(np.median(np.median(g.sci[:, hl] / g.err[:, hl], axis=0)))


def test_fields_shapes_and_dtypes():
    g = make_galaxy(n_components=3, shape=(41, 45), seed=2)
    nb = len(NIRCAM_BANDS)
    assert g.sci.shape == g.err.shape == g.model.shape == (nb, 41, 45)
    assert g.sci.dtype == g.err.dtype == np.float32
    assert g.mask.shape == g.truth.shape == (41, 45) and g.mask.dtype == bool
    np.testing.assert_allclose(g.wavelength, list(NIRCAM_BANDS.values()))
    assert g.n_components == 3 and len(g.families) == 3 and g.seds.shape == (3, nb)
    assert np.all(g.err > 0)


@pytest.mark.parametrize("n_components", [1, 2, 3, 4])
@pytest.mark.parametrize("snr", [5.0, 20.0, 80.0])
def test_requested_snr_is_reached(n_components, snr):
    g = make_galaxy(n_components=n_components, snr=snr, seed=n_components)
    assert g.snr == pytest.approx(snr, rel=1e-6)          # exact on the model
    assert galaxy_snr(g.model, g.err) == pytest.approx(snr, rel=1e-4)
    # as measured on the noisy image: medians of noisy values carry a small bias at low S/N
    assert _noisy_snr(g) == pytest.approx(snr, rel=0.1 if snr >= 20 else 0.15)


def test_snr_is_linear_in_flux_and_footprint_grows_with_it():
    faint = make_galaxy(snr=5.0, seed=7)
    bright = make_galaxy(snr=50.0, seed=7)
    np.testing.assert_allclose(faint.model, bright.model)   # same galaxy, errors scaled
    np.testing.assert_allclose(faint.err / bright.err, 10.0, rtol=1e-5)
    assert bright.mask.sum() > 1.5 * faint.mask.sum()
    assert faint.mask[20, 20] and not faint.mask[0, 0]


@pytest.mark.parametrize("n_components", [1, 2, 3, 4])
def test_truth_labels_components_inside_the_mask(n_components):
    g = make_galaxy(n_components=n_components, snr=30.0, seed=11)
    assert np.all(g.truth[~g.mask] == -1)
    assert set(np.unique(g.truth[g.mask])) <= set(range(n_components))
    if n_components <= 3:
        assert len(set(g.families)) == n_components  # distinct families


def test_truth_follows_the_pixel_sed_shape():
    """With a band-independent (PSF-matched) PSF, a pixel labelled c has noise-free
    colours closest to component c's SED. (With the native chromatic PSF the
    red-band halo of a compact bulge reddens its surroundings and this drops.)"""
    for seed in range(4):
        g = make_galaxy(n_components=3, snr=40.0, seed=seed, psf_fwhm_px=2.0)
        seds = g.seds / np.linalg.norm(g.seds, axis=1, keepdims=True)
        pix = g.model[:, g.mask].T
        pix = pix / np.linalg.norm(pix, axis=1, keepdims=True)
        nearest = np.argmin(((pix[:, None, :] - seds[None]) ** 2).sum(-1), axis=1)
        assert np.mean(nearest == g.truth[g.mask]) > 0.85


def test_psf_grows_with_wavelength():
    g = make_galaxy(n_components=1, size=2.0, snr=50.0, seed=3)
    assert g.psf_fwhm[0] < g.psf_fwhm[-1]
    assert 0.9 <= g.psf_fwhm.min() and g.psf_fwhm.max() < 4.0

    def second_moment(img):
        yy, xx = np.indices(img.shape)
        w = img / img.sum()
        cy, cx = (w * yy).sum(), (w * xx).sum()
        return (w * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum()

    assert second_moment(g.model[-1]) > 1.3 * second_moment(g.model[0])
    flat = make_galaxy(n_components=1, size=2.0, snr=50.0, seed=3, psf_fwhm_px=2.0)
    np.testing.assert_allclose(flat.psf_fwhm, 2.0)


def test_noise_is_drawn_from_the_error_map():
    g = make_galaxy(n_components=2, snr=10.0, shape=(81, 81), seed=5)
    pulls = (g.sci - g.model) / g.err
    assert abs(pulls.mean()) < 0.02
    assert pulls.std() == pytest.approx(1.0, abs=0.02)


def test_deterministic_for_a_seed():
    a = make_galaxy(n_components=3, seed=9)
    b = make_galaxy(n_components=3, seed=9)
    c = make_galaxy(n_components=3, seed=10)
    for name in ("sci", "err", "mask", "truth", "model"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.sci, c.sci)


def test_custom_wavelengths_and_families():
    g = make_galaxy(n_components=2, wavelengths={"g": 0.48, "r": 0.62, "i": 0.77},
                    families=["dusty", "starforming"], redshift=0.3, seed=1)
    assert g.sci.shape[0] == 3 and g.families == ["dusty", "starforming"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_components": 5}, "n_components=5"),
    ({"snr": 0.0}, "snr=0.0"),
    ({"shape": (5, 41)}, "at least"),
    ({"n_components": 2, "families": ["old"]}, "one per component"),
    ({"families": ["old", "blue"]}, "family"),
    ({"psf_fwhm_px": [1.0, 2.0]}, "one per band"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        make_galaxy(**kwargs)


def test_batched_seds_equal_one_by_one():
    lam = np.array(list(NIRCAM_BANDS.values()))
    widths = band_widths(lam, list(NIRCAM_BANDS))
    drawn, direct, zs = [], [], [0.7, 3.1, 6.4]
    for k, z in enumerate(zs):
        drawn.append(draw_components(np.random.default_rng(k), 4, 3.0, lam, z,
                                     bandwidths=widths, evaluate=False))
        direct.append(draw_components(np.random.default_rng(k), 4, 3.0, lam, z,
                                      bandwidths=widths))
    for lazy, eager in zip(attach_seds(drawn, zs, lam, widths), direct, strict=True):
        for a, b in zip(lazy, eager, strict=True):
            np.testing.assert_allclose(a.sed, b.sed, rtol=1e-12)
            assert a.sed.mean() == pytest.approx(1.0)


def test_quiescent_is_accepted_as_old():
    g = make_galaxy(n_components=2, families=["quiescent", "starforming"], seed=1)
    assert g.families == ["old", "starforming"]
