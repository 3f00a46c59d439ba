"""Noise estimates, asinh scaling and flattening of stamps (pure numpy).

Stamps of a catalog span orders of magnitude in brightness; an asinh stretch
``asinh(f / (softening * sigma_b))`` is linear near the noise level and
logarithmic for bright pixels, so faint structure (spikes, edges, neighbours)
and bright cores both count in the embedding. ``sigma_b`` is one robust noise
level per band for the whole catalog, so that brightness differences between
sources survive the scaling.
"""

from __future__ import annotations

import numpy as np

from galclust.errors import InputError

__all__ = [
    "MAD_TO_SIGMA",
    "asinh_scale",
    "band_noise",
    "bin_stamps",
    "border_noise",
    "finite_median",
    "stamp_vectors",
]

MAD_TO_SIGMA = 1.482602218505602


def _check4(stamps: np.ndarray) -> np.ndarray:
    stamps = np.asarray(stamps)
    if stamps.ndim != 4:
        raise InputError(f"cutouts must be a (source, band, y, x) array; got shape {stamps.shape}.")
    return stamps


def border_noise(stamps: np.ndarray, *, width: int = 5) -> np.ndarray:
    """Robust per-stamp, per-band noise from the stamp borders.

    ``1.4826 * MAD`` of the pixels within ``width`` of the stamp edge, ignoring
    exact zeros (padding / no coverage) and non-finite values.

    Parameters
    ----------
    stamps : ndarray, shape (n, band, y, x)
    width : int
        Border width in pixels.

    Returns
    -------
    ndarray, shape (n, band), float32
        NaN where a border has fewer than 8 usable pixels.
    """
    stamps = _check4(stamps)
    n, nb, ny, nx = stamps.shape
    w = int(max(1, min(width, ny // 2, nx // 2)))
    ring = np.ones((ny, nx), dtype=bool)
    ring[w:ny - w, w:nx - w] = False
    vals = stamps[:, :, ring].astype(np.float32)  # (n, band, npix)
    vals[(vals == 0) | ~np.isfinite(vals)] = np.inf
    enough = np.sum(np.isfinite(vals), axis=2) >= 8
    med = finite_median(vals)
    mad = finite_median(np.abs(vals - med[..., None].astype(np.float32)))
    return np.where(enough, MAD_TO_SIGMA * mad, np.nan).astype(np.float32)


def finite_median(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring +inf (NaN where nothing is finite).

    Parameters
    ----------
    values : ndarray, shape (..., m)
        Finite values or +inf (missing).

    Returns
    -------
    ndarray, shape (...)
    """
    v = np.sort(np.asarray(values, dtype=np.float64), axis=-1)
    m = np.isfinite(v).sum(axis=-1)
    lo = np.take_along_axis(v, np.clip((m - 1) // 2, 0, None)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(v, np.clip(m // 2, 0, v.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    return np.where(m > 0, 0.5 * (lo + hi), np.nan)


def band_noise(per_stamp: np.ndarray) -> np.ndarray:
    """One noise level per band: the median of positive per-stamp estimates.

    Parameters
    ----------
    per_stamp : ndarray, shape (n, band)
        From :func:`border_noise` or the median error of each stamp.

    Returns
    -------
    ndarray, shape (band,), float64
        Bands without any estimate get the median of the other bands (or 1).
    """
    per_stamp = np.asarray(per_stamp, dtype=np.float64)
    if per_stamp.ndim != 2:
        raise InputError(f"per-stamp noise must be (source, band); got {per_stamp.shape}.")
    vals = np.where(np.isfinite(per_stamp) & (per_stamp > 0), per_stamp, np.nan)
    nb = per_stamp.shape[1]
    out = np.full(nb, np.nan)
    has = np.isfinite(vals).any(axis=0) if len(vals) else np.zeros(nb, dtype=bool)
    if has.any():
        out[has] = np.nanmedian(vals[:, has], axis=0)
    fallback = float(np.nanmedian(out)) if has.any() else 1.0
    out[~has] = fallback
    return out


def asinh_scale(stamps: np.ndarray, noise: np.ndarray, *, softening: float = 3.0) -> np.ndarray:
    """``asinh(stamps / (softening * noise_b))``, non-finite pixels set to 0.

    Parameters
    ----------
    stamps : ndarray, shape (n, band, y, x)
    noise : ndarray, shape (band,)
        Noise level per band (same units as ``stamps``), > 0.
    softening : float
        Where the stretch turns from linear to logarithmic, in noise units.

    Returns
    -------
    ndarray, float32, same shape as ``stamps``
    """
    stamps = _check4(stamps)
    noise = np.asarray(noise, dtype=np.float64).reshape(-1)
    if noise.shape[0] != stamps.shape[1]:
        raise InputError(f"noise has {noise.shape[0]} values but the cutouts have "
                         f"{stamps.shape[1]} bands.")
    if not np.all(np.isfinite(noise) & (noise > 0)):
        raise InputError(f"noise must be finite and > 0 for every band; got {noise.tolist()}.")
    if softening <= 0:
        raise InputError(f"softening={softening!r} must be > 0.")
    scale = (1.0 / (softening * noise)).astype(np.float32)[None, :, None, None]
    out = np.array(stamps, dtype=np.float32)  # one copy, then in place (cutouts are large)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = 0.0
    out *= scale
    return np.arcsinh(out, out=out)


def bin_stamps(stamps: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` pixel blocks (the centre block stays centred).

    The stamp is cropped symmetrically to a multiple of ``factor``.

    Parameters
    ----------
    stamps : ndarray, shape (n, band, y, x)
    factor : int
        1 returns ``stamps`` unchanged.

    Returns
    -------
    ndarray, shape (n, band, y // factor, x // factor)
    """
    stamps = _check4(stamps)
    factor = int(factor)
    if factor < 1:
        raise InputError(f"bin={factor!r} must be an integer >= 1.")
    if factor == 1:
        return stamps
    n, nb, ny, nx = stamps.shape
    my, mx = ny // factor, nx // factor
    if my == 0 or mx == 0:
        raise InputError(f"bin={factor} is larger than the {ny}x{nx} cutouts.")
    y0, x0 = (ny - my * factor) // 2, (nx - mx * factor) // 2
    cut = stamps[:, :, y0:y0 + my * factor, x0:x0 + mx * factor]
    return cut.reshape(n, nb, my, factor, mx, factor).mean(axis=(3, 5), dtype=np.float32)


def stamp_vectors(stamps: np.ndarray, noise: np.ndarray, *, softening: float = 3.0,
                  bin: int = 1) -> np.ndarray:
    """Scaled, binned and flattened stamps: the rows the embedding is fitted on.

    Parameters
    ----------
    stamps : ndarray, shape (n, band, y, x)
    noise : ndarray, shape (band,)
    softening : float
        See :func:`asinh_scale`.
    bin : int
        See :func:`bin_stamps`.

    Returns
    -------
    ndarray, shape (n, band * (y // bin) * (x // bin)), float32
    """
    scaled = bin_stamps(asinh_scale(stamps, noise, softening=softening), bin)
    return np.ascontiguousarray(scaled.reshape(scaled.shape[0], -1), dtype=np.float32)
