"""The one cone search: galclust.sky against astropy's SkyCoord.separation.

Tolerance: |ours - astropy| <= 1e-9 arcsec + 1e-14 * separation (so 6.5e-9
arcsec at 180 deg). Both are the Vincenty formula in float64; the differences
seen are under 6 % of that tolerance (2.3e-10 arcsec at most, about one ulp of
648,000 arcsec). For sub-milliarcsecond separations astropy itself loses digits
to cancellation (~3e-11 arcsec), so their relative precision (1e-9) is checked
separately, along a meridian where the answer is |dDec| exactly.
"""

from __future__ import annotations

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from galclust.sky import in_cone, separation_arcsec

ATOL, RTOL = 1e-9, 1e-14  # arcsec, relative
N = 20_000


def _astropy(ra0, dec0, ra, dec):
    return SkyCoord(ra0 * u.deg, dec0 * u.deg).separation(
        SkyCoord(ra * u.deg, dec * u.deg)).to_value(u.arcsec)


def _random_sky(rng, n):
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


def _cases(rng):
    ra0, dec0 = _random_sky(rng, N)
    ra, dec = _random_sky(rng, N)
    jitter = rng.uniform(-1e-7, 1e-7, N)  # degrees: up to 0.36 mas
    pole = np.where(rng.random(N) < 0.5, 90.0, -90.0)
    return {
        "random": (ra0, dec0, ra, dec),
        "poles": (ra0, pole, ra, dec),
        "near a pole": (ra0, pole, ra, pole - np.sign(pole) * np.abs(rng.normal(0, 1e-3, N))),
        "across RA 0/360": (rng.uniform(359.999, 360.0, N) % 360, dec0 / 90,
                            rng.uniform(0.0, 0.001, N), dec / 90),
        "antipodal": (ra0, dec0, (ra0 + 180.0) % 360, -dec0),
        "near antipodal": (ra0, dec0, (ra0 + 180.0 + jitter) % 360,
                           np.clip(-dec0 + jitter[::-1], -90, 90)),
        "tiny (< 1 mas)": (ra0, dec0, (ra0 + jitter / np.maximum(np.cos(np.radians(dec0)), 1e-3))
                           % 360, np.clip(dec0 + jitter[::-1], -90, 90)),
    }


@pytest.mark.parametrize("case", ["random", "poles", "near a pole", "across RA 0/360",
                                  "antipodal", "near antipodal", "tiny (< 1 mas)"])
def test_separation_matches_astropy(case):
    ra0, dec0, ra, dec = _cases(np.random.default_rng(7))[case]
    got, want = separation_arcsec(ra0, dec0, ra, dec), _astropy(ra0, dec0, ra, dec)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    if case == "tiny (< 1 mas)":
        assert want.max() < 1e-3
    if case == "antipodal":
        np.testing.assert_allclose(got, 648_000.0, rtol=RTOL, atol=ATOL)


def test_tiny_separations_keep_their_relative_precision():
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 1000), rng.uniform(-89, 89, 1000)
    dec2 = dec + 10.0 ** rng.uniform(-12, -7, 1000)  # 3.6e-9 to 3.6e-4 arcsec away
    np.testing.assert_allclose(separation_arcsec(ra, dec, ra, dec2), (dec2 - dec) * 3600.0,
                               rtol=1e-9)


def test_separation_is_symmetric_broadcast_and_ignores_ra_wrapping():
    assert separation_arcsec(10.0, 20.0, 10.0, 20.0) == 0.0
    assert separation_arcsec(0.0, 90.0, 123.0, 90.0) < ATOL  # every RA is the pole
    assert separation_arcsec(0.0, 0.0, 0.0, 90.0) == pytest.approx(324_000.0, rel=1e-15)
    a = separation_arcsec(359.9999, 1.0, [0.0001, 360.0001, -359.9999], 1.0)
    np.testing.assert_allclose(a, a[0], rtol=1e-9)
    assert a[0] == pytest.approx(0.72 * np.cos(np.radians(1.0)), rel=1e-6)
    ra, dec = _random_sky(np.random.default_rng(1), 100)
    np.testing.assert_allclose(separation_arcsec(ra[:, None], dec[:, None], ra, dec),
                               separation_arcsec(ra, dec, ra[:, None], dec[:, None]),
                               rtol=RTOL, atol=ATOL)
    assert np.isnan(separation_arcsec(10.0, 20.0, [np.nan, 10.0], [20.0, np.nan])).all()


def test_in_cone_matches_astropy_and_includes_the_boundary():
    rng = np.random.default_rng(11)
    ra0, dec0 = 359.99, -89.99  # near a pole and across RA 0/360
    ra, dec = rng.uniform(0, 360, N), rng.uniform(-90, -89.9, N)
    got = in_cone(ra, dec, (ra0, dec0, 60.0))
    want = _astropy(ra0, dec0, ra, dec) <= 60.0
    assert got.sum() > 100 and (got == want).all()
    assert in_cone([10.0], [0.0], (10.0, 0.001, 3.6)).tolist() == [True]  # exactly on the edge
    assert in_cone([np.nan, 10.0], [0.0, np.nan], (10.0, 0.0, 1.0)).tolist() == [False, False]


def test_sky_module_is_dependency_free():
    code = ("import sys, galclust.sky; bad = [m for m in ('dask', 'zarr', 'fsspec', 'prefect') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
