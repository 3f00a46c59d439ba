"""SED families: physically sensible shapes that stay distinct after L2 normalisation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.synth import FAMILIES, NIRCAM_BANDS, sed_fluxes
from galclust.synth.seds import band_widths, calzetti_k, stellar_fluxes

LAM = np.array(list(NIRCAM_BANDS.values()))
WIDTHS = band_widths(LAM, list(NIRCAM_BANDS))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_nircam_bands_are_the_contract_pivots():
    assert NIRCAM_BANDS == {"F090W": 0.901, "F115W": 1.154, "F150W": 1.501, "F200W": 1.988,
                            "F277W": 2.776, "F356W": 3.565, "F410M": 4.083, "F444W": 4.402}
    # medium band narrower than the wide ones around it
    assert WIDTHS[6] < WIDTHS[5] / 2 and WIDTHS[6] < WIDTHS[7] / 2


@pytest.mark.parametrize("z", np.linspace(0.5, 7.0, 14))
def test_families_are_distinct_in_shape(z):
    seds = {f: _unit(sed_fluxes(f, LAM, z, bandwidths=WIDTHS)) for f in FAMILIES}
    for a, b in itertools.combinations(FAMILIES, 2):
        assert np.linalg.norm(seds[a] - seds[b]) > 0.18, (z, a, b)


def test_emission_line_boosts_the_band_it_lands_in():
    # z = 5.6: H-alpha at 4.33 um falls in F444W (and not in F410M)
    z = 5.6
    kw = {"bandwidths": WIDTHS, "ew_oiii": 0.0, "ew_hbeta": 0.0, "ew_oii": 0.0}
    with_line = sed_fluxes("starforming", LAM, z, ew_halpha=800.0, **kw)
    without = sed_fluxes("starforming", LAM, z, ew_halpha=0.0, **kw)
    ratio = with_line / without
    assert ratio[7] > 1.3                       # F444W boosted
    np.testing.assert_allclose(ratio[:7], 1.0)  # every other band untouched
    # the boost is EW_obs / bandwidth times the continuum at the line
    assert ratio[7] - 1 == pytest.approx(800e-4 * (1 + z) / WIDTHS[7], rel=0.1)


def test_old_population_has_a_4000A_break():
    z = 2.0  # 4000 A -> 1.2 um, between F115W and F150W
    f = sed_fluxes("old", LAM, z, bandwidths=WIDTHS)
    assert f[2] / f[0] > 5          # F150W vs F090W across the break
    sf = sed_fluxes("starforming", LAM, z, bandwidths=WIDTHS)
    assert f[2] / f[0] > 5 * sf[2] / sf[0]


def test_dust_reddens_and_calzetti_curve_is_monotonic():
    k = calzetti_k(np.array([0.15, 0.3, 0.55, 1.0, 2.0]))
    assert np.all(np.diff(k) < 0)
    assert calzetti_k(np.array([0.55]))[0] == pytest.approx(4.05, abs=0.1)  # k(V) = R_V
    clear = sed_fluxes("dusty", LAM, 1.0, ebv=0.0)
    dusty = sed_fluxes("dusty", LAM, 1.0, ebv=0.5)
    assert dusty[-1] / dusty[0] > 4 * clear[-1] / clear[0]


def test_lyman_break_blanks_blue_bands_at_high_z():
    f = sed_fluxes("starforming", LAM, 7.0, bandwidths=WIDTHS)
    assert f[0] < 0.25 * f[1]
    low = sed_fluxes("starforming", LAM, 2.0, bandwidths=WIDTHS)
    assert low[0] > 0.5 * low[1]


def test_jitter_is_seeded_and_quiescent_is_an_alias():
    a = sed_fluxes("old", LAM, 3.0, rng=np.random.default_rng(4))
    b = sed_fluxes("old", LAM, 3.0, rng=np.random.default_rng(4))
    c = sed_fluxes("old", LAM, 3.0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(sed_fluxes("quiescent", LAM, 3.0), sed_fluxes("old", LAM, 3.0))


def test_stars_are_black_bodies_peaking_where_wien_says():
    hot = stellar_fluxes(LAM, 9000.0)
    cool = stellar_fluxes(LAM, 3000.0)
    assert hot.max() == 1.0 and cool.max() == 1.0
    assert np.argmax(hot) < np.argmax(cool)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("starforimng", LAM, 1.0), {}, "Did you mean 'starforming'"),
    (("old", LAM, 1.0), {"ebv": 0.3}, "unknown parameter 'ebv'"),
    (("old", LAM, -1.0), {}, "non-negative redshift"),
    (("old", np.array([1.0, -2.0]), 1.0), {}, "positive microns"),
    (("old", LAM, 1.0), {"bandwidths": [0.1]}, "one entry per wavelength"),
])
def test_bad_arguments_are_refused(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        sed_fluxes(*args, **kwargs)
