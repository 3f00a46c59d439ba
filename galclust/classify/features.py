"""Photometry and morphology measured on cutouts: the feature model's inputs.

Every feature is computed for all sources at once (no per-source loop), on
stamps centred on their source:

- the **curve of growth** of each band, from the flux in one-pixel rings;
- **asinh magnitudes** (Lupton et al. 1999; finite for faint or negative
  fluxes) in apertures of 2 px, of the source's half-light radius and of its
  total radius, and the **colours** of adjacent bands in them;
- on the detection image (bands summed, each in noise units): the radii
  enclosing 20, 50 and 80% of the light, the **concentration**
  ``C = 5 log10(r80 / r20)`` (Conselice 2003), the **Gini** coefficient of
  the pixels inside r80 (Lotz et al. 2004), the 180-degree **asymmetry**
  ``sum|I - I_180| / sum|I|`` inside r80, the second-moment **axis ratio**
  and size, the central **peak fraction** (a star's light is concentrated in
  its PSF core), and the **S/N**;
- the stamp's **neighbour** contrast (a brighter structure beside the source).

These are the whole-stamp definitions used to classify, not the Petrosian
regions of a morphology catalogue: comparable between sources, cheap, and
finite for every stamp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galclust.catalog.scaling import border_noise
from galclust.errors import InputError

__all__ = ["check_cutouts", "cutout_features", "feature_names"]

_LN10 = np.log(10.0)


def check_cutouts(cutouts: object, *, argument: str = "cutouts") -> np.ndarray:
    """``cutouts`` as a (source, band, y, x) float32 array, refused when unusable.

    Raises
    ------
    InputError
        Not 4-D (or a list of stamps of mixed sizes, naming the sizes and the
        first sources of each), no source, or stamps with no finite pixel
        (naming their positions).
    """
    if isinstance(cutouts, (list, tuple)):
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i, c in enumerate(cutouts):
            shapes.setdefault(np.shape(c), []).append(i)
        if len(shapes) > 1:
            text = "; ".join(f"{'x'.join(map(str, s))}: {len(ix)} (e.g. positions {ix[:3]})"
                             for s, ix in sorted(shapes.items(), key=lambda kv: -len(kv[1])))
            raise InputError(f"{argument}: cutouts of mixed sizes — {text}. Cut every source "
                             "to the same size and number of bands.")
    arr = np.asarray(cutouts, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise InputError(f"{argument} must be a (source, band, y, x) array; got shape "
                         f"{arr.shape}.")
    if len(arr) == 0:
        raise InputError(f"{argument} holds no source.")
    empty = ~np.isfinite(arr).any(axis=(1, 2, 3))
    if empty.any():
        raise InputError(f"{argument}: {int(empty.sum())} cutout(s) have no finite pixel "
                         f"(positions {np.flatnonzero(empty)[:10].tolist()}); drop them or "
                         "fix their source positions.")
    return arr


def feature_names(n_bands: int) -> list[str]:
    """Names of the columns of :func:`cutout_features` for ``n_bands`` bands."""
    names = [f"mag_{a}_{b}" for a in ("2px", "r50", "tot") for b in range(n_bands)]
    names += [f"colour_{a}_{b}" for a in ("2px", "r50", "tot") for b in range(n_bands - 1)]
    names += ["r20", "r50", "r80", "concentration", "gini", "asymmetry", "axis_ratio",
              "size", "peak_fraction", "snr", "neighbour"]
    return names


def _ring_flux(img: np.ndarray, nring: int) -> np.ndarray:
    """Flux in one-pixel rings around the stamp centre: (n, band, nring)."""
    n, nb, ny, nx = img.shape
    yy, xx = np.mgrid[:ny, :nx]
    r = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    ring = np.minimum(np.floor(r + 0.5).astype(np.int64), nring).ravel()  # nring = outside
    rows = img.reshape(n * nb, ny * nx)
    sums = np.stack([np.bincount(ring, weights=row, minlength=nring + 1) for row in rows]) \
        if len(rows) else np.zeros((0, nring + 1))
    return sums.reshape(n, nb, nring + 1)[..., :nring]


def _radius_at(cog: np.ndarray, frac: float) -> np.ndarray:
    """Radius (px) where a normalised curve of growth (n, R) first reaches ``frac``."""
    n, nr = cog.shape
    above = cog >= frac
    k = np.where(above.any(axis=1), above.argmax(axis=1), nr - 1)
    lo = np.where(k > 0, cog[np.arange(n), np.maximum(k - 1, 0)], 0.0)
    hi = cog[np.arange(n), k]
    t = np.clip((frac - lo) / np.where(hi > lo, hi - lo, 1.0), 0, 1)
    return np.maximum(k - 0.5 + t, 0.25)  # ring k spans radii k-0.5 .. k+0.5


def _asinh_mag(flux: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """Asinh magnitude (Lupton et al. 1999) with softening ``soft`` (same units)."""
    return -2.5 / _LN10 * (np.arcsinh(flux / (2 * soft)) + np.log(soft))


def _gini(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Gini of |values| over the pixels ``keep`` of each row (Lotz et al. 2004)."""
    out = np.zeros(len(values))
    for i, (row, k) in enumerate(zip(values, keep, strict=True)):
        v = np.sort(np.abs(row[k]).astype(np.float64))
        m, total = len(v), v.sum()
        if m > 1 and total > 0:
            out[i] = np.dot(2 * np.arange(1, m + 1) - m - 1, v) / (total * (m - 1))
    return out


def cutout_features(cutouts: object, *, noise: object = None) -> pd.DataFrame:
    """Photometric and morphological features of centred cutouts.

    Parameters
    ----------
    cutouts : array_like, shape (source, band, y, x)
        Stamps centred on their source (any flux unit); non-finite pixels
        count as 0.
    noise : array_like, shape (source, band) or (band,), optional
        Per-pixel noise; default: measured on each stamp's border
        (:func:`galclust.catalog.scaling.border_noise`), with the band's median
        where a border has too few pixels.

    Returns
    -------
    DataFrame
        One row per source, the columns of :func:`feature_names`; every value
        finite.
    """
    x = check_cutouts(cutouts)
    n, nb, ny, nx = x.shape
    if not np.isfinite(x).all():
        x = np.where(np.isfinite(x), x, np.float32(0))
    if noise is None:
        sig = border_noise(x).astype(np.float64)
        band_med = np.nanmedian(np.where(np.isfinite(sig), sig, np.nan), axis=0)
        band_med = np.where(np.isfinite(band_med) & (band_med > 0), band_med, 1.0)
        sig = np.where(np.isfinite(sig) & (sig > 0), sig, band_med[None, :])
    else:
        sig = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n, nb)).copy()
        if not np.all(np.isfinite(sig) & (sig > 0)):
            raise InputError("noise must be finite and > 0 for every source and band.")
    nring = max(2, min(ny, nx) // 2)
    rings = _ring_flux(x.astype(np.float32), nring).astype(np.float64)  # (n, band, R)
    cog = np.cumsum(rings, axis=2)
    area = np.cumsum(_ring_flux(np.ones((1, 1, ny, nx), np.float32), nring)[0, 0])
    # detection image: bands in noise units, summed
    det_rings = (rings / sig[..., None]).sum(axis=1)
    det_cog = np.cumsum(det_rings, axis=1)
    # total radius: where the detection curve of growth peaks (beyond it: sky and neighbours)
    k_tot = np.clip(np.argmax(det_cog, axis=1), 1, nring - 1)
    total = det_cog[np.arange(n), k_tot]
    norm = det_cog / np.where(total > 0, total, 1.0)[:, None]
    r20, r50, r80 = (_radius_at(norm, f) for f in (0.2, 0.5, 0.8))
    conc = 5 * np.log10(np.maximum(r80, 0.5) / np.maximum(r20, 0.25))

    idx = np.arange(n)
    mags, cols = [], []
    for k in (np.full(n, 2), np.clip(np.round(r50).astype(int), 1, nring - 1), k_tot):
        flux = cog[idx, :, k]  # (n, band)
        soft = sig * np.sqrt(area[k])[:, None]
        m = _asinh_mag(flux, soft)
        mags.append(m)
        cols.append(m[:, :-1] - m[:, 1:])

    yy, xx = np.mgrid[:ny, :nx]
    dy, dx = yy - (ny - 1) / 2, xx - (nx - 1) / 2
    r = np.hypot(dy, dx)
    det_full = (x / sig[..., None, None].astype(np.float32)).sum(axis=1)  # (n, y, x)
    r_full = r
    # pixel measures inside r80 only: crop the stamps (symmetrically) to the largest r80
    k = max(0, min(ny, nx) // 2 - int(np.ceil(np.max(np.maximum(r80, 1.5)))) - 2)
    det = det_full[:, k:ny - k, k:nx - k]
    r, dy, dx = r[k:ny - k, k:nx - k], dy[k:ny - k, k:nx - k], dx[k:ny - k, k:nx - k]
    inside = r[None] <= np.maximum(r80, 1.5)[:, None, None]
    gini = _gini(det.reshape(n, -1), inside.reshape(n, -1))
    rot = det[:, ::-1, ::-1]
    if ny % 2 == 0 or nx % 2 == 0:  # rotate about the stamp centre, not a pixel
        rot = np.roll(rot, (1 - ny % 2, 1 - nx % 2), axis=(1, 2))
    absum = np.where(inside, np.abs(det), 0).sum(axis=(1, 2))
    asym = np.where(inside, np.abs(det - rot), 0).sum(axis=(1, 2)) / np.where(absum > 0,
                                                                              absum, 1)
    w = np.where(inside, np.clip(det, 0, None), 0)
    wsum = np.maximum(w.sum(axis=(1, 2)), 1e-12)
    my = (w * dy).sum(axis=(1, 2)) / wsum
    mx = (w * dx).sum(axis=(1, 2)) / wsum
    vyy = (w * dy**2).sum(axis=(1, 2)) / wsum - my**2
    vxx = (w * dx**2).sum(axis=(1, 2)) / wsum - mx**2
    vxy = (w * dy * dx).sum(axis=(1, 2)) / wsum - my * mx
    tr, dt = vyy + vxx, np.sqrt(np.maximum((vyy - vxx) ** 2 / 4 + vxy**2, 0))
    l1, l2 = np.maximum(tr / 2 + dt, 1e-6), np.maximum(tr / 2 - dt, 1e-6)
    axis_ratio = np.sqrt(l2 / l1)
    size = np.sqrt(l1 + l2)
    centre = r_full <= 1.0
    peak = det_full[:, centre].sum(axis=1) / np.where(total > 0, total, 1.0)
    snr = total / np.sqrt(area[k_tot] * nb)
    outer = (r_full > np.maximum(r80, 2.0)[:, None, None]) & (r_full <= nring)
    neighbour = (np.where(outer, det_full, -np.inf).max(axis=(1, 2))
                 - det_full[:, centre].max(axis=1))

    data = np.column_stack([*mags, *cols, r20, r50, r80, conc, gini, asym, axis_ratio, size,
                            peak, np.arcsinh(snr), np.arcsinh(neighbour)])
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    return pd.DataFrame(data, columns=feature_names(nb))
