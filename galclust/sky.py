"""Angles on the sky: the one great-circle separation and cone test of galclust.

Pure numpy (no dask, zarr, fsspec or prefect), so science code, the survey
mappings and :mod:`galclust.query` all share it. Positions are (RA, Dec) in
degrees; separations and radii are in arcsec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["in_cone", "pixel_to_sky", "separation_arcsec"]

_ARCSEC_PER_RADIAN = 180.0 * 3600.0 / np.pi


def separation_arcsec(ra0: Any, dec0: Any, ra: Any, dec: Any) -> np.ndarray:
    r"""Great-circle separation between (``ra0``, ``dec0``) and (``ra``, ``dec``).

    The Vincenty form, exact at any angle (unlike the haversine near 180° or
    the cosine law near 0°):

    .. math::

        \theta = \operatorname{atan2}\left(\sqrt{(\cos\delta\sin\Delta\alpha)^2 +
        (\cos\delta_0\sin\delta - \sin\delta_0\cos\delta\cos\Delta\alpha)^2},\;
        \sin\delta_0\sin\delta + \cos\delta_0\cos\delta\cos\Delta\alpha\right)

    with the second term of the root written as
    :math:`\sin(\delta - \delta_0) + 2\sin\delta_0\cos\delta\sin^2(\Delta\alpha/2)`,
    so that sub-milliarcsecond separations keep their relative precision.

    Parameters
    ----------
    ra0, dec0 : float or array_like
        First position(s), degrees.
    ra, dec : float or array_like
        Second position(s), degrees; broadcast against the first. Any RA is
        accepted (no need to wrap into [0, 360)).

    Returns
    -------
    ndarray of float64
        Separations in arcsec, in [0, 648000]; NaN where an input is NaN.

    References
    ----------
    Vincenty, T. (1975), Survey Review 23, 88. The same formula as
    ``astropy.coordinates.angular_separation``.
    """
    ra0, dec0 = np.asarray(ra0, dtype=np.float64), np.asarray(dec0, dtype=np.float64)
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    # differences in degrees first: exact (Sterbenz) for nearby positions
    dl, dlat = np.radians(ra - ra0), np.radians(dec - dec0)
    lat0, lat = np.radians(dec0), np.radians(dec)
    sin0, cos0 = np.sin(lat0), np.cos(lat0)
    sin1, cos1 = np.sin(lat), np.cos(lat)
    north = np.sin(dlat) + 2.0 * sin0 * cos1 * np.sin(0.5 * dl) ** 2
    num = np.hypot(cos1 * np.sin(dl), north)
    den = sin0 * sin1 + cos0 * cos1 * np.cos(dl)
    return np.arctan2(num, den) * _ARCSEC_PER_RADIAN


def in_cone(ra: Any, dec: Any, cone: Sequence[float]) -> np.ndarray:
    """Which positions lie within a cone (boundary included).

    Parameters
    ----------
    ra, dec : array_like
        Positions, degrees.
    cone : (ra, dec, radius)
        Centre in degrees, radius in arcsec (check it first with
        :func:`galclust.pixels.options.check_cone` where it comes from a user).

    Returns
    -------
    ndarray of bool
        True where :func:`separation_arcsec` from the centre is <= radius;
        False where RA or Dec is NaN.
    """
    ra0, dec0, radius = (float(v) for v in cone)
    return separation_arcsec(ra0, dec0, ra, dec) <= radius


def pixel_to_sky(wcs_header: Any, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of 0-based pixel positions, from a WCS header (a cube's ``wcs``)."""
    from astropy.wcs import WCS

    wcs = WCS(dict(wcs_header)).celestial
    ra, dec = wcs.pixel_to_world_values(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(ra, float), np.asarray(dec, float)
