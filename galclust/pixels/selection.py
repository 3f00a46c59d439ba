"""Which of a galaxy's pixels, in which bands, take part in the clustering.

Pure numpy on a stamp: ``sci``/``err`` ``(band, y, x)`` and a segmentation
stamp ``seg`` ``(y, x)``.

Rules
-----
1. Footprint: the pixels of the galaxy's segment (``seg == id``); optionally
   plus every segment that *touches* it (8-connected) whose redshift is within
   ``z_tolerance`` of the galaxy's (a neighbour at the same photometric
   redshift, e.g. a clump split off by the deblender).
2. Coverage: a pixel is covered in a band when ``err`` is finite and > 0 and
   ``sci`` is finite (the cube stores "no coverage" as ``err = +inf``). A band
   covering less than ``min_band_coverage`` of the footprint is dropped and the
   reason recorded; footprint pixels not covered in every remaining band are
   left out.
3. S/N: a pixel is kept when its median S/N (``sci/err``) over the used bands
   is at least ``snr_threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from galclust.errors import InputError
from galclust.pixels.flags import PixelFlag

__all__ = [
    "Selection",
    "coverage",
    "footprint_from_segmentation",
    "segment_bboxes",
    "select_galaxy",
    "select_pixels",
]


@dataclass(frozen=True)
class Selection:
    """The pixels and bands of one galaxy that are clustered.

    Attributes
    ----------
    mask : ndarray of bool, (y, x)
        Selected pixels.
    footprint : ndarray of bool, (y, x)
        The footprint the selection started from.
    used_bands : ndarray of bool, (band,)
        Bands used.
    dropped_bands : dict of int to str
        Band index -> why it was dropped.
    snr : ndarray, (y, x)
        Median S/N over used bands (NaN outside the footprint or uncovered).
    n_uncovered : int
        Footprint pixels left out for lack of coverage in a used band.
    n_low_snr : int
        Covered footprint pixels left out for median S/N below the threshold.
    flags : PixelFlag
        ``ALL_NAN``, ``SINGLE_BAND``, ``BANDS_DROPPED``, ``NO_PIXELS`` as met.
    """

    mask: np.ndarray
    footprint: np.ndarray
    used_bands: np.ndarray
    dropped_bands: dict[int, str] = field(default_factory=dict)
    snr: np.ndarray | None = None
    n_uncovered: int = 0
    n_low_snr: int = 0
    flags: PixelFlag = PixelFlag(0)

    @property
    def n_pixels(self) -> int:
        """Number of selected pixels."""
        return int(self.mask.sum())


def coverage(sci: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Where each band has data: finite ``sci`` and finite, positive ``err``.

    Parameters
    ----------
    sci, err : ndarray, (band, ...)

    Returns
    -------
    ndarray of bool, same shape
    """
    with np.errstate(invalid="ignore"):
        return np.isfinite(sci) & np.isfinite(err) & (err > 0)


def select_pixels(sci: np.ndarray, err: np.ndarray, footprint: np.ndarray, *,
                  snr_threshold: float = 3.0, min_band_coverage: float = 0.5) -> Selection:
    """Select the covered, high-S/N pixels of a footprint and the usable bands.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
        Flux and 1-sigma error (``+inf`` = no coverage).
    footprint : ndarray of bool, (y, x)
        The galaxy's pixels.
    snr_threshold : float
        Minimum median S/N across used bands (default 3).
    min_band_coverage : float
        A band covering less than this fraction of the footprint is dropped.

    Returns
    -------
    Selection
        Never raises for a degenerate galaxy: see ``Selection.flags``.
    """
    footprint = np.asarray(footprint, dtype=bool)
    n_band = sci.shape[0]
    cov = coverage(sci, err) & footprint[None]
    n_foot = int(footprint.sum())
    frac = cov.reshape(n_band, -1).sum(axis=1) / max(n_foot, 1)
    used = (frac >= min_band_coverage) & (frac > 0)
    dropped = {}
    for b in np.flatnonzero(~used):
        dropped[int(b)] = ("no coverage" if frac[b] == 0
                           else f"covers {frac[b]:.0%} of the footprint < {min_band_coverage:.0%}")
    flags = PixelFlag(0)
    if n_foot and not used.any():
        flags |= PixelFlag.ALL_NAN
    if dropped and used.any():
        flags |= PixelFlag.BANDS_DROPPED
    if used.sum() == 1:
        flags |= PixelFlag.SINGLE_BAND
    covered_all = cov[used].all(axis=0) & footprint if used.any() else np.zeros_like(footprint)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cov[used], sci[used] / err[used], np.nan)
    snr = (np.full(footprint.shape, np.nan) if not used.any()
           else np.where(covered_all, np.median(ratio, axis=0), np.nan))
    with np.errstate(invalid="ignore"):
        mask = covered_all & (snr >= snr_threshold)
    if not mask.any():
        flags |= PixelFlag.NO_PIXELS
    return Selection(mask=mask, footprint=footprint, used_bands=used, dropped_bands=dropped,
                     snr=snr, n_uncovered=int(n_foot - covered_all.sum()),
                     n_low_snr=int(covered_all.sum() - mask.sum()), flags=flags)


def footprint_from_segmentation(seg: np.ndarray, galaxy_id: int, *,
                                redshifts: Mapping[int, float] | pd.Series | None = None,
                                z_tolerance: float | None = None) -> np.ndarray:
    """The footprint of ``galaxy_id`` in a segmentation stamp, optionally with neighbours.

    Parameters
    ----------
    seg : ndarray of int, (y, x)
        Segmentation stamp (0 = sky, else a catalog id).
    galaxy_id : int
        The galaxy.
    redshifts : mapping or pandas.Series, optional
        id -> redshift for (at least) the galaxy and the segments touching it.
    z_tolerance : float, optional
        Also include each segment that touches the galaxy's and whose redshift
        differs by at most this much (both redshifts finite). ``None``: no.

    Returns
    -------
    ndarray of bool, (y, x)

    Raises
    ------
    InputError
        If ``galaxy_id`` has no pixel in ``seg``, or ``z_tolerance`` is given
        without ``redshifts``.
    """
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise InputError(f"seg must be a (y, x) segmentation stamp; got shape {seg.shape}.")
    own = seg == galaxy_id
    if not own.any():
        raise InputError(f"galaxy id {galaxy_id} is absent from the segmentation map "
                         "(no pixel has that value); check the id or the stamp's region.")
    if z_tolerance is None:
        return own
    if redshifts is None:
        raise InputError("z_tolerance is given but redshifts is not; pass an id -> z mapping.")
    lookup = redshifts.to_dict() if isinstance(redshifts, pd.Series) else dict(redshifts)
    z0 = lookup.get(galaxy_id, np.nan)
    if not np.isfinite(z0):
        return own
    ring = ndimage.binary_dilation(own, structure=np.ones((3, 3), bool)) & ~own
    footprint = own.copy()
    for other in np.unique(seg[ring]):
        if other == 0:
            continue
        z = lookup.get(int(other), np.nan)
        if np.isfinite(z) and abs(z - z0) <= z_tolerance:
            footprint |= seg == other
    return footprint


def select_galaxy(sci: np.ndarray, err: np.ndarray, seg: np.ndarray, galaxy_id: int, *,
                  snr_threshold: float = 3.0, min_band_coverage: float = 0.5,
                  redshifts: Mapping[int, float] | pd.Series | None = None,
                  z_tolerance: float | None = None) -> Selection:
    """Footprint from the segmentation stamp, then :func:`select_pixels`.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    seg : ndarray of int, (y, x)
    galaxy_id : int
    snr_threshold, min_band_coverage
        See :func:`select_pixels`.
    redshifts, z_tolerance
        See :func:`footprint_from_segmentation`.

    Returns
    -------
    Selection

    Raises
    ------
    InputError
        If the shapes disagree or the id is absent from ``seg``.
    """
    sci = np.asarray(sci, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    if sci.ndim != 3 or err.shape != sci.shape or np.shape(seg) != sci.shape[1:]:
        raise InputError(f"sci {sci.shape}, err {err.shape} and seg {np.shape(seg)} must be "
                         "(band, y, x), (band, y, x) and (y, x) of the same stamp.")
    foot = footprint_from_segmentation(seg, galaxy_id, redshifts=redshifts,
                                       z_tolerance=z_tolerance)
    return select_pixels(sci, err, foot, snr_threshold=snr_threshold,
                         min_band_coverage=min_band_coverage)


def segment_bboxes(seg: np.ndarray, *, y_offset: int = 0, x_offset: int = 0) -> pd.DataFrame:
    """Bounding box and pixel count of every segment in a segmentation block.

    Works for ids of any size (``scipy.ndimage.find_objects`` allocates one
    slot per integer up to the largest id, which catalog ids make huge), by
    sorting the labelled pixels once.

    Parameters
    ----------
    seg : ndarray of int, (y, x)
    y_offset, x_offset : int
        Position of the block in the mosaic (added to the boxes).

    Returns
    -------
    pandas.DataFrame
        Columns ``id, y0, y1, x0, x1, n_pixels`` (int64; half-open boxes).
    """
    ys, xs = np.nonzero(seg)
    labels = seg[ys, xs].astype(np.int64)
    order = np.argsort(labels, kind="stable")
    labels, ys, xs = labels[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if labels.size else \
        np.zeros(0, dtype=np.int64)
    cols = {"id": labels[starts] if labels.size else np.zeros(0, np.int64)}
    if labels.size:
        cols.update(
            y0=np.minimum.reduceat(ys, starts) + y_offset,
            y1=np.maximum.reduceat(ys, starts) + 1 + y_offset,
            x0=np.minimum.reduceat(xs, starts) + x_offset,
            x1=np.maximum.reduceat(xs, starts) + 1 + x_offset,
            n_pixels=np.diff(np.r_[starts, labels.size]),
        )
    else:
        cols.update({k: np.zeros(0, np.int64) for k in ("y0", "y1", "x0", "x1", "n_pixels")})
    return pd.DataFrame({k: np.asarray(v, dtype=np.int64) for k, v in cols.items()})
