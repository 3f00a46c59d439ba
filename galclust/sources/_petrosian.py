"""Curves of growth, Petrosian radii and light-fraction radii on one cutout.

Helpers of :mod:`galclust.sources.nonparametric`. Aperture sums use a linear
(``clip(r - d + 1/2, 0, 1)``) pixel-overlap weight instead of photutils' exact
overlap: for a pixel at (elliptical) radius ``d`` the weight rises from 0 to 1
as ``r`` goes from ``d - 1/2`` to ``d + 1/2``. The weight is linear in ``r``, so
once the pixels are binned a sum at any radius costs a few look-ups of
cumulative sums (:class:`Growth`), and a whole curve of growth is one vectorised
call. For elliptical apertures the ramp is stretched by the change of the
elliptical radius across the pixel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Growth", "ellip_radius", "fraction_radius", "petrosian_radius", "soft_weight"]

_N_GRID = 100
_N_FINE = 64


def soft_weight(d: np.ndarray, r: float) -> np.ndarray:
    """Overlap weight of pixels at radius ``d`` with an aperture of radius ``r``."""
    return np.clip(r - d + 0.5, 0.0, 1.0)


class Growth:
    """Aperture sums of several pixel-value arrays about one centre.

    A pixel at radius ``d`` whose radius changes by ``width`` across it enters an
    aperture of radius ``r`` with the weight ``clip((r - d) / width + 1/2, 0, 1)``
    (``width`` = 1 for circles; ``|grad a|`` for ellipses, see :func:`ellip_radius`).
    The weight is a ramp between ``s = d - width/2`` and ``e = d + width/2``, so

    ``S(r) = sum_{s<r} v (r - s) / w - sum_{e<r} v (r - e) / w``,

    i.e. four cumulative sums over pixels binned by ``s`` and by ``e`` in bins of
    ``BIN`` px (``bincount``, no sort): a sum at any radius is a few look-ups, a
    whole curve of growth one vectorised call, off by at most ``BIN`` times the
    value of the pixels whose ramp ends in the edge bins.

    Parameters
    ----------
    d : numpy.ndarray
        Radius (circular, or elliptical semi-major axis) of every pixel.
    values : sequence of numpy.ndarray
        Arrays of the same size as ``d`` whose aperture sums are wanted.
    width : numpy.ndarray or float, optional
        Change of ``d`` across each pixel (default 1).
    """

    BIN = 0.02

    def __init__(self, d: np.ndarray, values: list[np.ndarray],
                 width: np.ndarray | float = 1.0) -> None:
        d = d.ravel()
        w = np.broadcast_to(np.asarray(width, dtype=np.float64).ravel(), d.shape)
        s, e = d - 0.5 * w, d + 0.5 * w
        i_s = np.clip(np.floor(s / self.BIN).astype(np.int64) + 1, 0, None)
        i_e = np.floor(e / self.BIN).astype(np.int64) + 1
        self.nbin = int(i_e.max()) + 2
        self._c = []
        for v in values:
            vw = v.ravel().astype(np.float64, copy=False) / w
            sums = [np.bincount(i, x, minlength=self.nbin)
                    for i, x in ((i_s, vw), (i_s, vw * s), (i_e, vw), (i_e, vw * e))]
            self._c.append([np.cumsum(x) for x in sums])

    def sum(self, k: int, r: np.ndarray | float) -> np.ndarray:
        """Sum of values array ``k`` within radius ``r`` (array or scalar)."""
        r = np.asarray(r, dtype=np.float64)
        a_s, b_s, a_e, b_e = self._c[k]
        j = np.clip(np.floor(r / self.BIN).astype(np.int64), 0, self.nbin - 1)
        return r * a_s[j] - b_s[j] - r * a_e[j] + b_e[j]


def ellip_radius(xx: np.ndarray, yy: np.ndarray, xc: float, yc: float, elong: float,
                 theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Elliptical radius (semi-major axis through each pixel) and its change across
    a pixel, ``|grad a| = sqrt(u^2 + elong^4 v^2) / a`` (1 at the centre)."""
    dx, dy = xx - xc, yy - yc
    c, s = np.cos(theta), np.sin(theta)
    u, v = dx * c + dy * s, -dx * s + dy * c
    a = np.hypot(u, v * elong)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(a > 0, np.hypot(u, v * elong**2) / np.where(a > 0, a, 1), 1.0)
    return a, g


def _petro_ratio(g: Growth, r: np.ndarray, eta: float) -> np.ndarray:
    """Annulus mean over aperture mean minus ``eta`` (Lotz et al. 2004, eq. 4).

    ``g`` holds the masked-and-zeroed image (k=0) and the unmasked-pixel indicator
    (k=1), so the means divide by the unmasked overlap area like statmorph.
    """
    f_ap, a_ap = g.sum(0, r), g.sum(1, r)
    f_an = g.sum(0, r + 0.5) - g.sum(0, r - 0.5)
    a_an = g.sum(1, r + 0.5) - g.sum(1, r - 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_ap = np.abs(np.where(a_ap > 0, f_ap / np.where(a_ap > 0, a_ap, 1), 0.0))
        m_an = np.abs(np.where(a_an > 0, f_an / np.where(a_an > 0, a_an, 1), 0.0))
        ratio = np.where(m_ap == 0, (m_an != 0).astype(float), m_an / np.where(m_ap == 0, 1, m_ap))
    return ratio - eta


def _first_crossing(fun, r0: float, r1: float) -> float:
    """Root of ``fun`` (vectorised) between ``r0`` (>0 side) and ``r1`` (<=0 side)."""
    grid = np.linspace(r0, r1, _N_FINE)
    val = fun(grid)
    k = int(np.argmax(val <= 0)) if np.any(val <= 0) else len(grid) - 1
    if k == 0:
        return float(grid[0])
    v0, v1 = val[k - 1], val[k]
    t = v0 / (v0 - v1) if v0 != v1 else 0.0
    return float(grid[k - 1] + t * (grid[k] - grid[k - 1]))


def petrosian_radius(g: Growth, r_outer: float, *, eta: float = 0.2,
                     annulus_width: float = 1.0) -> tuple[float, int]:
    """Petrosian radius where the annulus/aperture mean ratio falls to ``eta``.

    Statmorph's two-stage search: a coarse grid of 100 radii from the annulus
    width to ``r_outer``, then a root between the last positive and first
    non-positive grid points.

    Returns
    -------
    r : float
        The radius; NaN when the ratio is already below ``eta`` at the annulus width.
    flag : int
        0 good; 2 when no crossing was found (r is set to ``r_outer``) or r is NaN.
    """
    r_inner = annulus_width
    if not r_outer > r_inner:
        return np.nan, 2
    grid = np.linspace(r_inner, r_outer, _N_GRID)
    val = _petro_ratio(g, grid, eta)
    below = np.flatnonzero(val <= 0)
    if below.size == 0:
        return float(r_outer), 2
    k = int(below[0])
    if k == 0:
        return np.nan, 2
    if val[k] == 0:
        return float(grid[k]), 0
    return _first_crossing(lambda r: _petro_ratio(g, r, eta), grid[k - 1], grid[k]), 0


def fraction_radius(g: Growth, r_total: float, fraction: float) -> tuple[float, int]:
    """Radius holding ``fraction`` of the light within ``r_total`` (value array k=0).

    Returns
    -------
    r : float
        The radius (NaN when the total is zero).
    flag : int
        0 good, 2 when the total flux is zero or negative (statmorph's flag).
    """
    total = float(g.sum(0, r_total))
    if total == 0 or not np.isfinite(total):
        return np.nan, 2
    flag = 2 if total < 0 else 0
    total = abs(total)

    def fun(r: np.ndarray) -> np.ndarray:
        # negative of (fraction enclosed - wanted), so that "<= 0" means crossed
        return fraction - np.abs(g.sum(0, r)) / total

    grid = np.linspace(0.0, r_total, _N_GRID)
    val = fun(grid)
    val[0] = fraction  # statmorph: fraction 0 at r = 0
    crossed = np.flatnonzero(val < 0)
    if crossed.size == 0:
        return float(r_total), 2
    k = int(crossed[0])
    return _first_crossing(fun, grid[k - 1], grid[k]), flag
