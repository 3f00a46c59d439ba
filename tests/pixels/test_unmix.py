"""Spectral unmixing (galclust.pixels.unmix): the fit, the choice of k, fractions and SED errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.evaluation.mixtures import score_labels
from galclust.pixels.core import cluster_galaxy
from galclust.pixels.mixing import rescale_from_sky
from galclust.pixels.unmix import hysime, unmix, weighted_nmf
from galclust.synth.mixtures import make_mixture_galaxy

nmf = importlib.import_module("galclust.pixels.nmf")

TWO = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])


def _mixture(n_pix=600, seeds=TWO, noise=0.01, pure=0.3, seed=0):
    """Pixels mixing fixed SEDs with Dirichlet-like fractions; a share of them pure."""
    rng = np.random.default_rng(seed)
    k, nb = seeds.shape
    frac = rng.dirichlet(np.ones(k), n_pix)
    n_pure = int(pure * n_pix)
    frac[:n_pure] = np.eye(k)[rng.integers(k, size=n_pure)]
    total = rng.uniform(1.0, 3.0, n_pix)
    clean = (frac * total[:, None]) @ seeds
    err = np.full_like(clean, noise)
    return clean + rng.normal(0, noise, clean.shape), err, frac, seeds


def _angle(s):
    return np.degrees(np.arccos(np.clip(
        s[0] @ s[1] / np.linalg.norm(s[0]) / np.linalg.norm(s[1]), -1, 1)))


@pytest.mark.parametrize("fit", ["weighted_nmf", "unmix"])
def test_recovers_seds_and_fractions_of_a_noisy_mixture(fit):
    flux, err, frac, seeds = _mixture()
    if fit == "weighted_nmf":
        a, s, chi2 = weighted_nmf(flux, err, 2)
    else:
        res = unmix(flux, err, n_components=2)
        a, s = res.abundances, res.seds
        chi2 = res.chi2 * (flux.size - flux.shape[0] * 2 - 2 * 3)
    order = np.argsort(s[:, 0])  # match components by their blue flux
    np.testing.assert_allclose(s[order], seeds, atol=0.01)
    got = (a / a.sum(axis=1, keepdims=True))[:, order]
    assert np.sqrt(np.mean((got - frac) ** 2)) < 0.03
    # χ² per degree of freedom near 1 with the right errors
    dof = flux.size - flux.shape[0] * 2 - 2 * 3
    assert 0.8 < chi2 / dof < 1.2


def test_the_volume_term_tightens_the_cone_only_as_far_as_the_noise_allows():
    """No pure pixel: any wider cone fits as well; unmix pulls the SEDs in to the data's
    edges, while a fixed large weight would pull them past (χ² far above the noise)."""
    # (the tolerance is documented in galclust.pixels.unmix.VOLUME_TOLERANCE)
    rng = np.random.default_rng(1)
    seeds = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    f = rng.uniform(0.15, 0.85, 800)
    frac = np.c_[f, 1 - f]
    clean = (frac * rng.uniform(1, 3, 800)[:, None]) @ seeds
    err = np.full_like(clean, 0.01)
    flux = clean + rng.normal(0, 0.01, clean.shape)
    a0, wide, chi_wide = weighted_nmf(flux, err, 2)
    res = unmix(flux, err, n_components=2)
    _, forced, chi_forced = weighted_nmf(flux, err, 2, volume=1.0)
    edges = np.array([0.15, 0.85]) @ seeds, np.array([0.85, 0.15]) @ seeds
    assert _angle(res.seds) <= _angle(wide) + 0.1
    assert _angle(res.seds) == pytest.approx(_angle(np.array(edges)), abs=2.0)
    dof = flux.size - 800 * 2 - 6
    # within the tolerance: sqrt(2 dof) or 10 % of the plain fit's χ²
    assert res.chi2 * dof - chi_wide <= max(np.sqrt(2 * dof), 0.1 * chi_wide) + 1e-6
    assert chi_forced - chi_wide > 10 * np.sqrt(2 * dof)


@pytest.mark.parametrize("k_true", [1, 2, 3])
def test_unmix_chooses_the_number_of_components(k_true):
    seeds = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1],
                      [0.1, 0.5, 0.1, 0.5, 0.1]])[:k_true]
    seeds = seeds / seeds.sum(axis=1, keepdims=True)
    flux, err, _, _ = _mixture(seeds=seeds, noise=0.02, seed=k_true)
    for rule in ("null", "aic"):
        res = unmix(flux, err, penalty=rule)
        assert res.n_components == k_true, (rule, res.k_scores)
        assert res.criterion == rule
    assert hysime(flux, err) == k_true


def test_unmix_does_not_split_a_single_population_with_rescaled_errors():
    flux, err, _, _ = _mixture(seeds=np.array([[0.1, 0.2, 0.3, 0.4]]), noise=0.02, seed=4)
    assert unmix(flux, err).n_components == 1
    # errors 30 % too small make noise look like structure: the rule must be told the truth
    assert unmix(flux, err * 0.7, penalty="aic").n_components > 1


def test_unmix_results_are_consistent():
    flux, err, _, _ = _mixture(seed=5)
    res = unmix(flux, err, n_components=2)
    assert res.criterion == "fixed" and res.n_components == 2
    np.testing.assert_allclose(res.seds.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.nansum(res.fractions, axis=1), 1.0, atol=1e-9)
    assert (res.abundances >= 0).all() and (res.seds >= 0).all()
    np.testing.assert_array_equal(res.labels, res.abundances.argmax(axis=1))
    # SED errors shrink as sqrt(n): 4x the pixels, half the error
    more = unmix(*_mixture(n_pix=2400, seed=5)[:2], n_components=2)
    ratio = np.median(more.sed_err / res.sed_err)
    assert 0.4 < ratio < 0.6


def test_same_seed_same_result():
    flux, err, _, _ = _mixture(seed=6)
    a, b = unmix(flux, err, random_state=2), unmix(flux, err, random_state=2)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.fractions, b.fractions)


def test_missing_band_is_left_out_of_the_fit():
    flux, err, frac, seeds = _mixture(seed=7)
    flux[:50, 2] = 0.0
    err[:50, 2] = np.inf  # no coverage there
    res = unmix(flux, err, n_components=2)
    order = np.argsort(res.seds[:, 0])
    np.testing.assert_allclose(res.seds[order], seeds, atol=0.015)


def test_bad_input_is_refused_with_the_reason():
    flux, err, _, _ = _mixture(n_pix=50)
    with pytest.raises(InputError, match="one shape"):
        unmix(flux, err[:, :2])
    bad = flux.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        unmix(bad, err)
    with pytest.raises(InputError, match="positive"):
        unmix(flux, np.zeros_like(err))
    with pytest.raises(InputError, match="k_range"):
        unmix(flux, err, k_range=(3, 2))
    with pytest.raises(InputError, match="penalty"):
        unmix(flux, err, penalty="cv")
    with pytest.raises(InputError, match="n_components"):
        weighted_nmf(flux, err, 0)


def test_too_few_pixels_is_one_component():
    flux, err, _, _ = _mixture(n_pix=6)
    res = unmix(flux, err)
    assert res.n_components == 1 and res.criterion == "degenerate"


def test_a_component_owns_pixels_in_its_tightest_cone_not_only_in_the_plain_fit():
    """Two fits of one χ²: the data's own cone, and a cone whose second SED lies far outside
    the data. In the wide one the second component dominates no pixel; the ownership test
    must still keep it, and must still refuse a hot pixel's component."""
    u = importlib.import_module("galclust.pixels.unmix")
    seeds = np.array([[0.1, 0.2, 0.3, 0.4], [0.2, 0.25, 0.25, 0.3]])
    flux, err, _, _ = _mixture(seeds=seeds, noise=0.01, pure=0.0, seed=8)
    w = 1.0 / err**2
    a, s, chi = weighted_nmf(flux, err, 2, init=seeds)
    assert np.bincount(a.argmax(axis=1), minlength=2).min() >= 200
    # the second SED moved along the data's line to where a band reaches 0: every pixel's
    # second-component light is then at most a quarter of it, and χ² does not change
    far = seeds[1] + 3.0 * (seeds[1] - seeds[0])
    wide = np.vstack([seeds[0], far])
    a_wide = nmf._nnls_abundances(flux, w, wide)
    chi_wide = nmf._chi2(flux, w, a_wide, wide)
    assert chi_wide == pytest.approx(chi, rel=0.01)
    assert np.bincount(a_wide.argmax(axis=1), minlength=2).min() == 0
    dof = u._dof(*flux.shape, 2)
    assert u._owns(flux, err, a_wide, wide, chi_wide, dof, u.VOLUME)
    # one hot pixel with its own SED: a component that fits it owns one pixel in any cone
    one, _, _, _ = _mixture(seeds=seeds[:1], noise=0.01, seed=9)
    one[7] = [0.0, 0.0, 5.0, 0.0]
    a1, s1, chi1 = weighted_nmf(one, err, 2)
    assert not u._owns(one, err, a1, s1, chi1, dof, u.VOLUME)


def test_unmix_keeps_a_component_the_plain_fit_puts_outside_the_data():
    """Held-out suite galaxy (2 overlapping components, S/N 30, correlated noise): the plain
    2-component fit gives the second component one pixel, its tightest cone 75; the truth
    has it dominate 55. Before ownership was asked of the tightest cone, k was 1."""
    u = importlib.import_module("galclust.pixels.unmix")
    g = make_mixture_galaxy(2, snr=30, layout="overlapping", family="heldout", seed=140)
    flux, e, w, corr = _suite_pixels(g)
    a1, s1, _ = nmf._best_fit(flux, e, w, 1, None, 0, 0.0)
    a2, _, _ = nmf._best_fit(flux, e, w, 2, (a1, s1), 0, 0.0)
    assert np.bincount(a2.argmax(axis=1), minlength=2).min() < u.MIN_COMPONENT_PIXELS
    assert unmix(flux, e, correlation=corr).n_components == 2
    _pixel_stage_labels_like_the_truth(g, 2, min_coverage=0.5)


def _suite_pixels(g):
    """A suite galaxy's footprint pixels, sky-rescaled errors, weights and correlation."""
    err, _, _, corr = rescale_from_sky(g.sci, g.err, g.sky, g.bands)
    flux, e = g.sci[:, g.mask].T, err[:, g.mask].T
    return flux, e, 1.0 / e**2, corr


def _pixel_stage_labels_like_the_truth(g, k, min_coverage):
    """Through the pixel stage: k components, labelled as the truth where one dominates."""
    r = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands, sky=g.sky,
                       unmix="null")
    assert r.n_clusters == k
    ari, coverage = score_labels(g.labels, r.labels)
    assert ari > 0.9 and coverage > min_coverage


def test_the_k_test_asks_a_fit_whose_every_component_owns_pixels_not_only_the_best():
    """Of k + 1 fits from different starts, the lowest χ² can hold a component that
    dominates no pixel (here: a hot pixel's, given a χ² below any real fit's). The test
    then asks the best fit whose components all own pixels; a hot pixel alone is never
    one (every k-means split of one colour fits it no better than k)."""
    u = importlib.import_module("galclust.pixels.unmix")
    flux, err, _, seeds = _mixture(seed=10)
    dof = u._dof(*flux.shape, 2)
    real = weighted_nmf(flux, err, 2, init=seeds)
    # a fit whose second component holds one pixel's light, with a χ² below the real
    # fit's by more than its tightest cone may rise
    spike_a = np.column_stack([real[0].sum(axis=1), np.zeros(len(flux))])
    spike_a[3, 1] = 4.0
    spike = (spike_a, np.vstack([seeds.mean(axis=0), [0.0, 0.0, 1.0, 0.0]]), 0.5 * real[2])
    assert not u._owns(flux, err, *spike, dof, u.VOLUME)
    chi1 = weighted_nmf(flux, err, 1)[2]
    asked = []

    def beats(drop):
        asked.append(drop)
        return drop > 0.0

    got, drop, owned = u._accepted_fit(flux, err, [spike, real], chi1, 0, dof, u.VOLUME, beats)
    assert owned and got[2] == pytest.approx(real[2], rel=1e-4)  # the real fit (or its equal)
    np.testing.assert_allclose(got[1][np.argsort(got[1][:, 0])], seeds, atol=0.01)
    assert np.bincount(got[0].argmax(axis=1), minlength=2).min() >= 200
    # the best fit's drop is asked first, then the owning fit's (never larger)
    assert asked == [chi1 - spike[2], drop] and drop == pytest.approx(chi1 - real[2])
    # no search when the best fit's drop does not beat the null: no other's can
    assert u._accepted_fit(flux, err, [spike, real], chi1, 0, dof, u.VOLUME,
                           lambda d: False)[:3:2] == (None, False)
    # the real two-component fit owns pixels: it is returned as it is, when best
    assert u._accepted_fit(flux, err, [real], chi1, 0, dof, u.VOLUME, beats)[0] is real
    # one colour plus a hot pixel: the fit that takes the hot pixel owns one; the owning
    # fits from other starts split the noise and do not beat the null
    one, err1, _, _ = _mixture(seeds=seeds[:1], noise=0.01, seed=11)
    one[7] = [0.0, 0.0, 5.0, 0.0]
    fits = nmf._fits(one, err1, 1.0 / err1**2, 2, weighted_nmf(one, err1, 1)[:2], 0, 0.0)
    assert not u._owns(one, err1, *min(fits, key=lambda f: f[2]), dof, u.VOLUME)
    assert unmix(one, err1).n_components == 1


def test_unmix_finds_a_component_whose_best_fit_leaves_it_no_pixels():
    """Default suite galaxy (4 overlapping components, S/N 100): the best 4-component fit
    (from the 3-fit's worst residuals) gives one component 3 pixels, its tightest cone the
    same; a k-means start's fit, 47 χ² higher, gives every component 82 or more, and it
    beats the 3-component fit by ~3100 against a margin of ~540. Before other starts were
    asked, k was 3."""
    u = importlib.import_module("galclust.pixels.unmix")
    g = make_mixture_galaxy(4, snr=100, layout="overlapping", family="default", seed=137)
    flux, e, w, corr = _suite_pixels(g)
    three = nmf._best_fit(flux, e, w, 3, nmf._best_fit(flux, e, w, 2, None, 0, 0.0)[:2], 0, 0.0)
    best = nmf._best_fit(flux, e, w, 4, three[:2], 0, 0.0)
    assert not u._owns(flux, e, *best, u._dof(*flux.shape, 4), u.VOLUME)
    assert unmix(flux, e, correlation=corr).n_components == 4
    _pixel_stage_labels_like_the_truth(g, 4, min_coverage=0.4)
