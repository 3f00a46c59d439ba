"""FITS mosaics → one chunked, WCS-aware zarr cube per field; and reading it back.

Layout of a cube store (zarr v3)::

    field.zarr/
      sci   (band, y, x) float32    flux; 0 where there is no coverage
      err   (band, y, x) float32    1-sigma error; +inf where there is no coverage
      seg   (y, x) int32            segmentation map (0 = sky, else catalog id)
      band, wavelength, y, x        coordinates (names, pivot micron, pixel indices)
      tables/catalog.parquet        the catalog, normalised (id, ra, dec, x, y, z, ...)
      tables/labels.parquet         inspection labels (id, reliable, reason), if any

Root attributes hold the WCS header, pixel scale, units, the survey name and
the provenance: each input's checksum and the galclust version. The attribute
``ingest_status`` is ``"complete"`` only once every block and table is
written; :func:`open_cube` refuses anything else, so an interrupted ingest is
never read as a finished one, and the rerun rewrites what is missing.

Ingest is a Dask graph of block tasks (all bands × a row of square tiles),
each reading only its block from every FITS file and writing whole zarr
chunks, so no two tasks write the same chunk and memory is bounded by the
block, not by the mosaic.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd
import xarray as xr
import zarr

from galclust.errors import StoreError
from galclust.store.tables import read_table
from galclust.store.urls import exists, is_url, join, storage_options

__all__ = ["DEFAULT_TILE", "open_catalog", "open_cube", "open_labels"]

log = logging.getLogger(__name__)

#: Default square tile (pixels) of a chunk. Chosen with benchmarks/ingest.py
#: (8 bands x 8192^2, lz4, local threads; ratio to the raw baseline): 512 px
#: 0.47-0.63 (per-chunk overhead of zarr's writes), 1024 px 0.55-1.11 at
#: 0.6 GB peak RSS, 2048 px 0.85-0.97 at 1.0 GB. 1024 px (32 MiB raw per
#: variable and chunk) keeps memory and the downstream per-tile tasks small.
DEFAULT_TILE = 1024


# --------------------------------------------------------------------------- zarr access
@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    """Silence zarr's notes on consolidated metadata (not in the v3 spec yet, but
    read by xarray and zarr-python) and on the ``tables/`` folder beside the arrays."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        yield


def _zarr_store(url: str) -> Any:
    if is_url(url):
        return zarr.storage.FsspecStore.from_url(url, storage_options=storage_options(url),
                                                 read_only=False)
    return url


def _open_group(url: str, mode: str = "r") -> zarr.Group:
    with _quiet_zarr():  # files a user keeps beside the arrays are not zarr's concern
        return zarr.open_group(_zarr_store(url), mode=mode, zarr_format=3)


def _read_attrs(url: str) -> dict[str, Any] | None:
    try:
        if not exists(join(url, "zarr.json")):
            return None
        return dict(_open_group(url, "r").attrs)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None


# --------------------------------------------------------------------------- readers
def open_cube(store: str, *, chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Open a cube store lazily (dask-backed).

    Parameters
    ----------
    store : str
        Local folder or ``s3://`` URL written by :func:`ingest`.
    chunks : dict, optional
        Dask chunks (default: the store's own chunks).

    Returns
    -------
    xarray.Dataset
        ``sci``, ``err`` (band, y, x), ``seg`` (y, x) with ``band``,
        ``wavelength``, ``y``, ``x`` coordinates and the store's attributes.

    Raises
    ------
    StoreError
        If there is no cube there, or its ingest did not complete.
    """
    store = str(store).rstrip("/")
    attrs = _read_attrs(store)
    if attrs is None:
        raise StoreError(f"{store}: no cube store here; create one with "
                         "`galclust ingest MANIFEST --store URL`.")
    if attrs.get("ingest_status") != "complete":
        raise StoreError(f"{store}: the cube's ingest did not complete (status "
                         f"{attrs.get('ingest_status')!r}); rerun `galclust ingest` to finish it.")
    with _quiet_zarr():
        ds = xr.open_zarr(_zarr_store(store), consolidated=True, chunks=chunks or {},
                          zarr_format=3)
    ds = ds.assign_coords(band=ds["band"].astype(object),
                          wavelength=ds["wavelength"].load())
    return ds


def open_catalog(store: str) -> pd.DataFrame:
    """The catalog ingested with the cube: ``id, ra, dec, x, y, z`` and the original columns."""
    return read_table(join(str(store).rstrip("/"), "tables", "catalog.parquet"),
                      what="ingested catalog")


def open_labels(store: str) -> pd.DataFrame | None:
    """The inspection labels ingested with the cube (``id, reliable, reason``), or None."""
    url = join(str(store).rstrip("/"), "tables", "labels.parquet")
    return read_table(url, what="ingested labels") if exists(url) else None
