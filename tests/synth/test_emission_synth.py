"""Synthetic galaxies with extended line emission (galclust.synth.emission)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import galclust.synth as synth
from galclust.errors import InputError
from galclust.synth.emission import EMISSION_BANDS, make_emission_galaxy


def test_exported():
    assert synth.make_emission_galaxy is make_emission_galaxy
    assert "make_emission_galaxy" in synth.__all__ and "EmissionGalaxy" in synth.__all__


def test_shapes_band_and_truth():
    g = make_emission_galaxy(snr=20, size=3, random_state=0)
    n = len(EMISSION_BANDS)
    assert g.sci.shape == g.err.shape == (n, 64, 64)
    assert g.bands == list(EMISSION_BANDS) and len(g.wavelength) == n
    assert g.bands[g.band] == "F410M" and g.line == "halpha"
    assert g.region.any() and g.region.dtype == bool
    # snr is the integrated S/N of the emission over its true region (err = 1)
    assert g.emission[g.region].sum() / math.sqrt(g.region.sum()) == pytest.approx(20)
    assert g.region.sum() == np.count_nonzero(g.emission >= 0.2 * g.emission.max())
    # the cone is offset from the host centre
    yy, xx = np.nonzero(g.region)
    cx, cy = g.meta["centre"]
    assert math.hypot(xx.mean() - cx, yy.mean() - cy) > 0.5 * g.meta["offset"]


def test_line_in_medium_and_diluted_in_broad_band():
    a = make_emission_galaxy(snr=60, size=3, random_state=1, noiseless=True)
    # Halpha at z = 5.22 (4.08 um) is in the top-hats of F410M and F444W only
    m, w = a.band, a.bands.index("F444W")
    line = a.emission
    host = a.sci.astype(float).copy()
    host[m] -= line
    host[w] -= line * 0.436 / 1.024
    # removing the line leaves a continuum that is smooth across the bands:
    # F410M and F444W then sit on the log-lambda line through F356W and F460M
    lam = np.log(a.wavelength)
    i, j = a.bands.index("F356W"), a.bands.index("F460M")
    for k in (m, w):
        t = (lam[k] - lam[i]) / (lam[j] - lam[i])
        interp = (1 - t) * host[i] + t * host[j]
        assert np.max(np.abs(host[k] - interp)) < 0.02 * host[m].max()
    # and the other bands carry no line
    assert np.abs(a.sci[i] - host[i]).max() == 0


def test_controls_have_no_region():
    c = make_emission_galaxy(extended=False, nuclear=False, random_state=2)
    assert not c.region.any() and not c.emission.any() and not c.meta["nuclear"]
    n = make_emission_galaxy(extended=False, nuclear=True, random_state=2)
    assert not n.region.any() and n.meta["nuclear"]
    # a nuclear control's medium band is brighter than its neighbours' interpolation
    m = n.band
    assert n.sci[m].sum() > c.sci[m].sum()
    flags = [make_emission_galaxy(extended=False, random_state=s).meta["nuclear"]
             for s in range(20)]
    assert 3 <= sum(flags) <= 17


def test_deterministic_and_families_differ():
    a = make_emission_galaxy(random_state=4)
    b = make_emission_galaxy(random_state=4)
    np.testing.assert_array_equal(a.sci, b.sci)
    kinds = {make_emission_galaxy(family="heldout", random_state=s).meta["morphology"]
             for s in range(12)}
    assert kinds <= {"bubble", "bipolar", "clumpy"} and len(kinds) >= 2
    hosts = {make_emission_galaxy(family="heldout", random_state=s).meta["host"]
             for s in range(12)}
    assert hosts == {"devauc", "disc+clumps"}
    assert make_emission_galaxy(random_state=4).meta["morphology"] == "cone"
    # held-out noise is correlated: neighbouring sky pixels correlate
    h = make_emission_galaxy(family="heldout", extended=False, nuclear=False, random_state=5)
    d = make_emission_galaxy(extended=False, nuclear=False, random_state=5)
    sky_h, sky_d = h.sci[0, :10, :], d.sci[0, :10, :]

    def corr(s):
        return np.corrcoef(s[:, :-1].ravel(), s[:, 1:].ravel())[0, 1]

    assert corr(sky_h) > 0.3 > abs(corr(sky_d))
    # so the held-out emission's true S/N is below the nominal (white-noise) one
    e = make_emission_galaxy(family="heldout", snr=20, random_state=6)
    assert 7 < e.meta["snr_true"] < 14
    assert make_emission_galaxy(snr=20, random_state=6).meta["snr_true"] == pytest.approx(20)


def test_redshift_moves_the_line():
    g = make_emission_galaxy(z=4.13, random_state=0)
    assert g.bands[g.band] == "F335M"
    with pytest.raises(InputError):
        make_emission_galaxy(z=0.01)
    with pytest.raises(InputError):
        make_emission_galaxy(family="nope")
