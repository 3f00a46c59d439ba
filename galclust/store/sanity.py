"""A cheap look at every input's pixels before ingest writes anything.

Headers can be right while the pixels cannot: a band that is all NaN, an
all-zero weight map, an error map holding negative values (often a science
image named as the error), a catalog whose RA/Dec fall off the image, a
segmentation map with negative ids. :func:`check_pixels` reads a sample of
rows of every image (evenly spaced rows plus the rows of a sample of catalog
sources, so a small covered region around the sources is seen), and refuses,
naming the file and what would fix it, what cannot be right. It reads a few
dozen rows per file: milliseconds locally, a few ranged reads on S3.

What the manifest leaves out is not checked: a band whose errors are estimated
from its image has no error map (its science image is still checked), and a
survey galclust detects has no segmentation map or catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from galclust.config import Manifest
from galclust.errors import InputError
from galclust.store.fits import ImageInfo, ImageReader
from galclust.store.urls import is_url

__all__ = ["MAX_NEGATIVE_FRACTION", "check_pixels"]

log = logging.getLogger(__name__)

#: Largest fraction of sampled pixels an error or weight map may hold below zero.
MAX_NEGATIVE_FRACTION = 1e-3


def _rows(ny: int, cat_y: np.ndarray, remote: bool) -> np.ndarray:
    n_even, n_cat = (16, 16) if remote else (48, 64)
    even = np.linspace(0, ny - 1, min(ny, n_even)).round().astype(np.int64)
    pick = np.linspace(0, len(cat_y) - 1, min(len(cat_y), n_cat)).round().astype(np.int64)
    return np.unique(np.concatenate([even, cat_y[pick] if len(cat_y) else even[:0]]))


def _read_rows(info: ImageInfo, rows: np.ndarray, what: str, dtype: type) -> np.ndarray:
    """``image[rows, :]``, reading each run of consecutive rows once."""
    out = np.empty((len(rows), info.shape[1]), dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    with ImageReader(info, what=what, dtype=dtype) as reader:
        for run in np.split(np.arange(len(rows)), breaks):
            r0, r1 = int(rows[run[0]]), int(rows[run[-1]]) + 1
            reader.read(slice(r0, r1), slice(0, info.shape[1]), out=out[run[0]:run[-1] + 1])
    return out


def _check_catalog(catalog: pd.DataFrame, shape: tuple[int, int], path: str,
                   sci_path: str) -> np.ndarray:
    ny, nx = shape
    x, y = catalog["x"].to_numpy(float), catalog["y"].to_numpy(float)
    inside = (np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < nx - 0.5)
              & (y >= -0.5) & (y < ny - 0.5))
    if not inside.any():
        ra, dec = catalog["ra"], catalog["dec"]
        raise InputError(
            f"source catalog {path}: none of its {len(catalog)} sources falls on the image "
            f"({sci_path}, {nx}x{ny} px): catalog RA {ra.min():.5f} to {ra.max():.5f} deg, Dec "
            f"{dec.min():+.5f} to {dec.max():+.5f} deg lie off its WCS footprint (pixel x "
            f"{np.nanmin(x):.0f} to {np.nanmax(x):.0f}, y {np.nanmin(y):.0f} to "
            f"{np.nanmax(y):.0f}). Check the catalog's ra/dec columns (degrees) and that it "
            "belongs to these mosaics.")
    if not inside.all():
        log.warning("source catalog %s: %d of %d sources fall off the image; they will be "
                    "flagged, not clustered", path, int((~inside).sum()), len(catalog))
    return inside


def check_pixels(manifest: Manifest, sci: Sequence[ImageInfo],
                 noise: Sequence[ImageInfo | None], seg: ImageInfo | None,
                 catalog: pd.DataFrame | None) -> None:
    """Refuse inputs whose pixels cannot be right, from a sample of rows.

    Parameters
    ----------
    manifest : Manifest
        The survey manifest (band names, noise kinds, paths for messages).
    sci, noise : sequence of ImageInfo
        Each band's science and error/weight image headers (noise None: the
        band's errors are estimated from its image).
    seg : ImageInfo or None
        The segmentation map's header (None: galclust detects).
    catalog : pandas.DataFrame or None
        The normalised catalog with pixel positions ``x``, ``y`` (None: galclust
        detects).

    Raises
    ------
    InputError
        Naming the file, when the catalog falls wholly off the image, a band
        has no finite pixel, an error or weight map holds negative values
        (more than :data:`MAX_NEGATIVE_FRACTION` of the sample) or no
        covered pixel, no sampled catalog source lies on a covered pixel of
        any band, or the segmentation map holds negative ids.
    """
    shape = sci[0].shape
    if catalog is not None:
        inside = _check_catalog(catalog, shape, manifest.catalog.path, sci[0].path)
        xi = np.clip(np.round(catalog["x"].to_numpy(float)[inside]), 0, shape[1] - 1)
        yi = np.clip(np.round(catalog["y"].to_numpy(float)[inside]), 0, shape[0] - 1)
        xi, yi = xi.astype(int), yi.astype(int)
    else:
        xi = yi = np.zeros(0, int)
    rows = _rows(shape[0], np.sort(yi), is_url(sci[0].path))
    on_rows = np.isin(yi, rows)
    row_of = np.searchsorted(rows, yi[on_rows])
    cols = xi[on_rows]
    covered_source = np.zeros(int(on_rows.sum()), bool)
    n_px = len(rows) * shape[1]
    for band, s_info, n_info in zip(manifest.bands, sci, noise, strict=True):
        kind = band.noise_kind
        s = _read_rows(s_info, rows, f"band {band.name} sci image ({s_info.path})", np.float32)
        finite = np.isfinite(s)
        if not finite.any():
            raise InputError(
                f"band {band.name} sci image {s_info.path}: all {n_px} sampled pixels "
                f"({len(rows)} rows) are NaN or infinite; the band holds no data. Check the "
                "file (and sci_hdu), or leave the band out of the manifest.")
        if n_info is None:  # errors estimated from the image: the sci pixels decide coverage
            covered_source |= finite[row_of, cols]
            continue
        n = _read_rows(n_info, rows, f"band {band.name} {kind} image ({n_info.path})",
                       np.float32)
        negative = np.isfinite(n) & (n < 0)
        if negative.mean() > MAX_NEGATIVE_FRACTION:
            raise InputError(
                f"band {band.name} {kind} image {n_info.path}: {int(negative.sum())} of {n_px} "
                f"sampled pixels are negative; a{'n error' if kind == 'err' else ' weight'} map "
                "cannot be. Check that the manifest names the right file (not the science "
                "image) and the right kind (err = 1-sigma error, weight = inverse variance).")
        covered = finite & np.isfinite(n) & (n > 0)
        if not covered.any():
            raise InputError(
                f"band {band.name} {kind} image {n_info.path}: no sampled pixel has coverage "
                f"(the {kind} map is zero, NaN or infinite in all {n_px} sampled pixels"
                + (", an all-zero weight map" if kind == "weight" and not n.any() else "")
                + "). Check the file and its HDU (" + f"{kind}_hdu).")
        covered_source |= covered[row_of, cols]
    if len(covered_source) and not covered_source.any():
        raise InputError(
            f"source catalog {manifest.catalog.path}: none of the {len(covered_source)} sampled "
            "sources lies on a covered pixel of any band; the catalog and the mosaics do not "
            "overlap. Check the catalog's ra/dec columns and that it belongs to these mosaics.")
    if seg is None:
        return
    ids = _read_rows(seg, rows, f"segmentation map ({seg.path})", np.int64)
    if ids.min() < 0:
        r = int(rows[np.argwhere(ids < 0)[0][0]])
        raise InputError(
            f"segmentation map {seg.path}: negative ids (e.g. {int(ids.min())} in row {r}); a "
            "segmentation map holds 0 for sky and positive catalog ids. Renumber it.")
