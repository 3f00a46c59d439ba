"""Multi-band stamps around given centres, with edge padding (pure numpy).

A stamp that runs off the array (the mosaic, or the region a task was given)
is padded: science with 0 and error with +inf (no coverage). Its *coverage* is
the fraction of its pixels, over all bands, that have a finite error: stamps at
the edge of the data are themselves a signal of spurious detections.
"""

from __future__ import annotations

import numpy as np

from galclust.catalog import defaults
from galclust.catalog.scaling import finite_median
from galclust.errors import InputError

__all__ = ["cut_stamps", "extract_stamps", "stamp_coverage"]


def _as_cube(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise InputError(f"{name} must be a (band, y, x) or (y, x) array; got shape {image.shape}.")
    return image


def _check_size(size: int) -> int:
    if int(size) != size or size < 1 or size % 2 == 0:
        raise InputError(f"size={size!r} must be a positive odd number of pixels (e.g. 51), "
                         "so that the source sits on the central pixel.")
    return int(size)


def extract_stamps(image: np.ndarray, centres: np.ndarray, *, size: int = defaults.CUTOUT_SIZE,
                   origin: tuple[int, int] = (0, 0), fill: float = 0.0,
                   dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Cut square stamps centred on ``centres`` out of ``image``.

    Parameters
    ----------
    image : ndarray, shape (band, ny, nx) or (ny, nx)
        The array (or a region of a larger mosaic, see ``origin``).
    centres : ndarray, shape (n, 2)
        ``(y, x)`` pixel coordinates of the centres in the *mosaic* frame; each
        is rounded to the nearest pixel, which becomes the stamp's centre pixel.
    size : int
        Odd stamp side in pixels.
    origin : (int, int)
        Mosaic coordinates ``(y0, x0)`` of ``image[..., 0, 0]``.
    fill : float
        Value for pixels outside ``image``.
    dtype : dtype
        Output dtype.

    Returns
    -------
    ndarray, shape (n, band, size, size)
        Stamps; ``stamps[i, :, size // 2, size // 2]`` is centre ``i``'s pixel.
    """
    image = _as_cube(image, "image")
    size = _check_size(size)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    nb, ny, nx = image.shape
    n = len(centres)
    if n == 0:
        return np.zeros((0, nb, size, size), dtype=dtype)
    if not np.all(np.isfinite(centres)):
        raise InputError("centres must be finite pixel coordinates; "
                         f"{int((~np.isfinite(centres)).any(axis=1).sum())} are NaN/inf.")
    half = size // 2
    cy = np.floor(centres[:, 0] + 0.5).astype(np.int64) - int(origin[0])
    cx = np.floor(centres[:, 1] + 0.5).astype(np.int64) - int(origin[1])
    out = np.full((n, nb, size, size), fill, dtype=dtype)
    # window of each stamp inside the image, and where it lands in the stamp
    y0, y1 = np.clip(cy - half, 0, ny), np.clip(cy + half + 1, 0, ny)
    x0, x1 = np.clip(cx - half, 0, nx), np.clip(cx + half + 1, 0, nx)
    sy0, sx0 = y0 - (cy - half), x0 - (cx - half)
    for i in np.flatnonzero((y1 > y0) & (x1 > x0)):
        h, w = y1[i] - y0[i], x1[i] - x0[i]
        out[i, :, sy0[i]:sy0[i] + h, sx0[i]:sx0[i] + w] = image[:, y0[i]:y1[i], x0[i]:x1[i]]
    return out


def cut_stamps(sci: np.ndarray, err: np.ndarray, centres: np.ndarray, *, size: int = defaults.CUTOUT_SIZE,
               origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Science stamps, their coverage and per-band error level around ``centres``.

    Parameters
    ----------
    sci, err : ndarray, shape (band, ny, nx)
        Science and 1-sigma error arrays (``err`` is +inf where there is no
        coverage; NaN science there is allowed).
    centres : ndarray, shape (n, 2)
        ``(y, x)`` in the mosaic frame.
    size : int
        Odd stamp side.
    origin : (int, int)
        Mosaic coordinates of ``sci[:, 0, 0]``.

    Returns
    -------
    stamps : ndarray, shape (n, band, size, size), float32
        Science, 0 wherever there is no coverage (off the array or infinite
        error).
    coverage : ndarray, shape (n,), float32
        Fraction of stamp pixels (all bands) with a finite error.
    err_level : ndarray, shape (n, band), float32
        Median finite error per band over a 5-pixel grid of the stamp (NaN if
        none).
    """
    sci = _as_cube(sci, "sci")
    err = _as_cube(err, "err")
    if sci.shape != err.shape:
        raise InputError(f"sci and err must have the same shape; got {sci.shape} and {err.shape}.")
    stamps = extract_stamps(sci, centres, size=size, origin=origin, fill=0.0)
    errs = extract_stamps(err, centres, size=size, origin=origin, fill=np.inf)
    good = np.isfinite(errs) & (errs > 0)
    stamps[~good | ~np.isfinite(stamps)] = 0.0
    coverage = stamp_coverage(good)
    # error level from a 5-px grid of the stamp (enough for a median, 25x cheaper)
    n, nb = stamps.shape[:2]
    sub = np.where(good[:, :, ::5, ::5], errs[:, :, ::5, ::5], np.inf).reshape(n, nb, -1)
    level = finite_median(sub).astype(np.float32)
    return stamps, coverage, level


def stamp_coverage(good: np.ndarray) -> np.ndarray:
    """Fraction of covered pixels per stamp.

    Parameters
    ----------
    good : ndarray of bool, shape (n, band, y, x)
        True where a pixel has data.

    Returns
    -------
    ndarray, shape (n,), float32
    """
    good = np.asarray(good, dtype=bool)
    if good.ndim != 4:
        raise InputError(f"good must be (source, band, y, x); got shape {good.shape}.")
    if good.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    return good.reshape(good.shape[0], -1).mean(axis=1).astype(np.float32)
