"""The mixing-galaxy generator of the pixel-clustering validation suite."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.synth.mixtures import MIXTURE_LAYOUTS, make_mixture_galaxy


@pytest.mark.parametrize("family", ["default", "heldout"])
@pytest.mark.parametrize("layout", MIXTURE_LAYOUTS)
def test_truth_is_consistent(family, layout):
    g = make_mixture_galaxy(3, snr=30, layout=layout, family=family, seed=3)
    assert g.fractions.shape == (3, *g.mask.shape) and g.seds.shape == (3, 6)
    np.testing.assert_allclose(g.fractions.sum(axis=0)[g.mask], 1.0, atol=1e-9)
    assert (g.fractions[:, ~g.mask] == 0).all()
    np.testing.assert_allclose(g.seds.sum(axis=1), 1.0)
    # labels: the dominant component where it gives more than 70 % of the light
    dom = g.labels >= 0
    np.testing.assert_array_equal(g.labels[dom], g.fractions.argmax(axis=0)[dom])
    assert (g.fractions.max(axis=0)[dom] > 0.7).all() and not (dom & ~g.mask).any()
    # every component countable: > 50 % of the light of at least 8 footprint pixels
    top = g.fractions.argmax(axis=0)
    for c in range(3):
        assert ((top == c) & (g.fractions[c] > 0.5) & g.mask).sum() >= 8
    # SEDs pairwise at least 0.15 mag RMS apart in colour
    for i in range(3):
        for j in range(i):
            d = 2.5 * np.log10(g.seds[i] / g.seds[j])
            assert np.sqrt(np.mean((d - d.mean()) ** 2)) >= 0.15
    assert not (g.sky & g.mask).any() and g.sky.sum() > 500


def test_snr_and_noise_are_as_declared():
    g = make_mixture_galaxy(2, snr=50, seed=1)
    noise = g.err[:, 0, 0]
    peak = np.array([b.max() for b in g.sci]) / noise
    assert np.median(peak) == pytest.approx(50, rel=0.15)
    resid = g.sci[:, g.sky]
    np.testing.assert_allclose(resid.std(axis=1) / noise, 1.0, atol=0.08)
    assert np.ptp(noise) > 0  # noise differs per band
    held = make_mixture_galaxy(2, snr=50, family="heldout", seed=1)
    # the heldout error map is too small by err_scale (as drizzled maps are)
    ratio = held.sci[:, held.sky].std(axis=1) / held.err[:, 0, 0]
    np.testing.assert_allclose(ratio, held.err_scale, rtol=0.1)
    assert (held.err_scale > 1.1).all()


def test_native_psf_grows_with_wavelength():
    g = make_mixture_galaxy(1, snr=200, psf="native", seed=2)
    blue, red = g.sci[0], g.sci[-1]
    # the red band's light is spread wider: lower peak-to-total
    assert blue.max() / blue[g.mask].sum() > 1.5 * red.max() / red[g.mask].sum()


def test_same_seed_same_galaxy_and_bad_arguments():
    a, b = make_mixture_galaxy(2, seed=4), make_mixture_galaxy(2, seed=4)
    np.testing.assert_array_equal(a.sci, b.sci)
    for kw, match in [({"n_components": 6}, "n_components"), ({"snr": -1}, "snr"),
                      ({"layout": "spiral"}, "layout"), ({"family": "x"}, "family"),
                      ({"size": 20}, "size"), ({"psf": "wide"}, "psf")]:
        args = {"n_components": 2, **kw}
        with pytest.raises(InputError, match=match):
            make_mixture_galaxy(**args)
