"""The source table of a segmentation map: centroids, fluxes, shapes, flags.

Every quantity is a labelled sum (``numpy.bincount`` over the segment ids),
so the cost is a few passes over the image whatever the number of sources.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["FLAG_BLENDED", "FLAG_EDGE", "FLAG_MASKED", "measure_sources"]

#: The segment touches the border of the image (its flux and shape are truncated).
FLAG_EDGE = 1
#: The segment contains a masked or non-finite pixel in at least one band.
FLAG_MASKED = 2
#: The segment is one of several deblended from one detection (see ``parent``).
FLAG_BLENDED = 4


def _sums(lab: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(lab, weights=values, minlength=n + 1)


def measure_sources(sci: np.ndarray, err: np.ndarray, seg: np.ndarray, det: np.ndarray, *,
                    bands: Sequence[str], parent: np.ndarray | None = None,
                    bad: np.ndarray | None = None, wcs=None) -> pd.DataFrame:
    """One row per segment of ``seg``.

    Parameters
    ----------
    sci, err : numpy.ndarray
        ``(band, y, x)`` image and 1-sigma errors; non-finite pixels count as 0.
    seg : numpy.ndarray
        ``(y, x)`` int segmentation with ids ``1..N`` (0 sky).
    det : numpy.ndarray
        ``(y, x)`` detection image (S/N units, unit noise per pixel): the
        weights of centroids and second moments (negative values clipped to
        0) and the ``snr``.
    bands : sequence of str
        Band names for the ``flux_<band>`` columns.
    parent : numpy.ndarray, optional
        ``(N + 1,)`` parent id of each segment id (index 0 unused); default
        each its own parent.
    bad : numpy.ndarray of bool, optional
        ``(y, x)`` pixels masked or non-finite in any band.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of the image; adds ``ra`` and ``dec`` (degrees).

    Returns
    -------
    pandas.DataFrame
        Columns ``id, x, y, [ra, dec,] flux_<band>, flux_err_<band>, area, a,
        b, theta, snr, parent, flag``. ``x, y`` are the flux-weighted
        centroid (0-based pixels) on ``det``; ``a, b`` the semi-axes (pixels,
        square roots of the eigenvalues of the weighted second central
        moments); ``theta`` the position angle of ``a`` in degrees
        counter-clockwise from +x (in (-90, 90]); ``snr`` the summed ``det``
        over the segment divided by ``sqrt(area)``; ``flag`` a bit mask of
        :data:`FLAG_EDGE`, :data:`FLAG_MASKED` and :data:`FLAG_BLENDED`.
    """
    seg = np.asarray(seg)
    n = int(seg.max()) if seg.size else 0
    lab = seg.ravel()
    ny, nx = seg.shape
    yy, xx = np.indices(seg.shape, dtype=np.float64)
    yy, xx = yy.ravel(), xx.ravel()
    w = np.clip(np.nan_to_num(det.ravel().astype(np.float64)), 0.0, None)
    area = np.bincount(lab, minlength=n + 1).astype(float)
    wsum = _sums(lab, w, n)
    gx, gy = _sums(lab, xx, n) / np.maximum(area, 1), _sums(lab, yy, n) / np.maximum(area, 1)
    ok = wsum > 0
    safe = np.where(ok, wsum, 1.0)
    cx = np.where(ok, _sums(lab, w * xx, n) / safe, gx)
    cy = np.where(ok, _sums(lab, w * yy, n) / safe, gy)
    w2 = np.where(ok[lab], w, 1.0)                     # geometric moments if no positive flux
    s2 = _sums(lab, w2, n)
    dx, dy = xx - cx[lab], yy - cy[lab]
    mxx = _sums(lab, w2 * dx * dx, n) / s2 + 1.0 / 12.0   # + pixel-size term
    myy = _sums(lab, w2 * dy * dy, n) / s2 + 1.0 / 12.0
    mxy = _sums(lab, w2 * dx * dy, n) / s2
    tr, dif = 0.5 * (mxx + myy), np.sqrt(0.25 * (mxx - myy) ** 2 + mxy**2)
    a = np.sqrt(np.clip(tr + dif, 0, None))
    b = np.sqrt(np.clip(tr - dif, 0, None))
    theta = np.degrees(0.5 * np.arctan2(2.0 * mxy, mxx - myy))
    snr = _sums(lab, np.nan_to_num(det.ravel().astype(np.float64)), n) / np.sqrt(
        np.maximum(area, 1))

    flag = np.zeros(n + 1, dtype=np.int64)
    edge = np.zeros(seg.shape, bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    flag[np.unique(seg[edge])] |= FLAG_EDGE
    if bad is not None and bad.any():
        flag[np.unique(seg[bad])] |= FLAG_MASKED
    if parent is None:
        parent = np.arange(n + 1)
    parent = np.asarray(parent)
    siblings = np.bincount(parent[1:], minlength=n + 1)
    flag[1:][siblings[parent[1:]] > 1] |= FLAG_BLENDED

    ids = np.arange(1, n + 1)
    cols: dict[str, np.ndarray] = {"id": ids, "x": cx[1:], "y": cy[1:]}
    if wcs is not None:
        sky = wcs.celestial.pixel_to_world_values(cx[1:], cy[1:])
        cols["ra"], cols["dec"] = np.asarray(sky[0], float), np.asarray(sky[1], float)
    for k, name in enumerate(bands):
        f = np.nan_to_num(sci[k].ravel().astype(np.float64))
        v = np.nan_to_num(err[k].ravel().astype(np.float64)) ** 2
        cols[f"flux_{name}"] = _sums(lab, f, n)[1:]
        cols[f"flux_err_{name}"] = np.sqrt(_sums(lab, v, n)[1:])
    cols.update({"area": area[1:].astype(np.int64), "a": a[1:], "b": b[1:],
                 "theta": theta[1:], "snr": snr[1:], "parent": parent[1:].astype(np.int64),
                 "flag": flag[1:]})
    return pd.DataFrame(cols)
