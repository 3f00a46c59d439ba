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
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import galclust
from galclust.config import Manifest, load_manifest, warn_units
from galclust.errors import InputError, StoreError, check_choice
from galclust.store.fits import (
    CHECKSUM,
    ImageInfo,
    ImageReader,
    checksum,
    file_fingerprint,
    grid_offset,
    image_info,
)
from galclust.store.safety import claim_store
from galclust.store.sanity import check_pixels
from galclust.store.tables import normalise_catalog, read_table
from galclust.store.urls import check_writable, exists, get_fs, is_url, join, storage_options

__all__ = ["DEFAULT_TILE", "IngestReport", "ingest", "open_catalog", "open_cube", "open_labels"]

log = logging.getLogger(__name__)

#: Default square tile (pixels) of a chunk. Chosen with benchmarks/ingest.py
#: (8 bands x 8192^2, lz4, local threads; ratio to the raw baseline): 512 px
#: 0.47-0.63 (per-chunk overhead of zarr's writes), 1024 px 0.55-1.11 at
#: 0.6 GB peak RSS, 2048 px 0.85-0.97 at 1.0 GB. 1024 px (32 MiB raw per
#: variable and chunk) keeps memory and the downstream per-tile tasks small.
DEFAULT_TILE = 1024
#: Largest number of raw bytes one block task reads (sets chunks per task).
TASK_BYTES = 256 * 2**20
_WCS_TOLERANCE_PX = 0.01


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


# --------------------------------------------------------------------------- validation
@dataclass
class _Inputs:
    manifest: Manifest
    sci: list[ImageInfo]
    noise: list[ImageInfo]
    seg: ImageInfo
    catalog: pd.DataFrame
    labels: pd.DataFrame | None
    shape: tuple[int, int]


def _what(band: str, kind: str, path: str) -> str:
    return f"band {band} {kind} image ({path})"


def _validate(manifest: Manifest) -> _Inputs:
    """Open every header and table and check they fit together; no pixel is read."""
    sci, noise = [], []
    for b in manifest.bands:
        sci.append(image_info(b.sci, b.sci_hdu, what=f"band {b.name} sci image"))
        noise.append(image_info(b.noise_path, b.noise_hdu,
                                what=f"band {b.name} {b.noise_kind} image"))
    ref = sci[0]
    for b, s, n in zip(manifest.bands, sci, noise, strict=True):
        for info, kind in ((s, "sci"), (n, b.noise_kind)):
            if info.shape != ref.shape:
                raise InputError(
                    f"{_what(b.name, kind, info.path)} is {info.shape[1]}x{info.shape[0]} px but "
                    f"band {manifest.bands[0].name} sci ({ref.path}) is "
                    f"{ref.shape[1]}x{ref.shape[0]} px: every band must be on one pixel grid. "
                    "galclust does not reproject; resample the mosaics onto a common grid first."
                )
            off = grid_offset(ref, info)
            if off > _WCS_TOLERANCE_PX:
                raise InputError(
                    f"{_what(b.name, kind, info.path)}: its WCS differs from band "
                    f"{manifest.bands[0].name}'s ({ref.path}); the pixel grids are not aligned "
                    f"(offset up to {off:.3g} px). galclust does not reproject; resample the "
                    "mosaics onto a common grid first (e.g. with reproject or SWarp)."
                )
    seg = image_info(manifest.segmentation.path, manifest.segmentation.hdu,
                     what="segmentation map")
    if seg.shape != ref.shape:
        raise InputError(
            f"segmentation map {seg.path} is {seg.shape[1]}x{seg.shape[0]} px but the bands are "
            f"{ref.shape[1]}x{ref.shape[0]} px; give the segmentation map made on these mosaics."
        )
    if seg.header.get("BITPIX", 0) < 0:
        raise InputError(f"segmentation map {seg.path}: BITPIX={seg.header['BITPIX']} is a "
                         "float image; a segmentation map holds integer source ids.")
    spec = manifest.catalog
    raw = read_table(spec.path, what="source catalog", hdu=spec.hdu)
    catalog = normalise_catalog(raw, id=spec.id, ra=spec.ra, dec=spec.dec,
                                redshift=spec.redshift, path=spec.path)
    if catalog.empty:
        raise InputError(f"source catalog {spec.path}: the table has no rows; galclust needs "
                         "the catalog of the sources in the segmentation map.")
    x, y = ref.wcs.world_to_pixel_values(catalog["ra"].to_numpy(), catalog["dec"].to_numpy())
    catalog.insert(3, "x", np.asarray(x, dtype="float64"))
    catalog.insert(4, "y", np.asarray(y, dtype="float64"))
    labels = None
    if manifest.labels is not None:
        from galclust.store.labels import read_labels

        ls = manifest.labels
        labels = read_labels(ls.path, id=ls.id, reliable=ls.reliable, reason=ls.reason)
    return _Inputs(manifest, sci, noise, seg, catalog, labels, ref.shape)


# --------------------------------------------------------------------------- provenance
def _provenance_inputs(manifest: Manifest, previous: dict[str, Any], *, verify: bool,
                       defer: bool = False) -> dict[str, dict[str, Any]]:
    """Checksum every input; reuse a stored checksum when size and stamp are unchanged.

    With ``defer=True`` the checksums still to compute are left as ``None``
    (a fresh ingest computes them in parallel with the block writes).
    """
    out = {}
    for key, path in manifest.input_paths().items():
        fp = file_fingerprint(path)
        old = previous.get(key, {})
        if (not verify and old.get("path") == path and old.get("size") == fp["size"]
                and old.get("stamp") == fp["stamp"] and old.get(CHECKSUM)):
            digest = old[CHECKSUM]
        else:
            digest = None if defer else checksum(path)
        out[key] = {"path": path, **fp, CHECKSUM: digest}
    return out


def _layout(inputs: _Inputs, tile: int, compression: str) -> dict[str, Any]:
    m = inputs.manifest
    return {"bands": m.band_names, "wavelengths": m.wavelengths,
            "shape": list(inputs.shape), "tile": tile, "compression": compression}


def _read_attrs(url: str) -> dict[str, Any] | None:
    try:
        if not exists(join(url, "zarr.json")):
            return None
        return dict(_open_group(url, "r").attrs)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None


# --------------------------------------------------------------------------- block tasks
@dataclass(frozen=True)
class _BandJob:
    index: int
    sci: ImageInfo
    noise: ImageInfo
    noise_kind: str
    what_sci: str
    what_noise: str


@dataclass(frozen=True)
class _BlockJob:
    url: str
    ys: tuple[int, int]
    xs: list[tuple[int, int]]
    n_bands: int
    bands: tuple[_BandJob, ...]
    seg: ImageInfo | None


def _to_err(sci: np.ndarray, err: np.ndarray, kind: str) -> bool:
    """Turn a noise block into 1-sigma errors and mark no-coverage pixels, in place.

    Weight maps are inverse variances: ``err = 1/sqrt(w)``. Zero or negative
    weight, a non-finite or non-positive error, or a NaN flux all mean "no
    coverage": ``err = +inf`` and ``sci = 0`` there.

    Returns
    -------
    bool
        True when no pixel of the block is covered.
    """
    # In place on freshly read float32 blocks: this runs on every pixel, so it
    # makes as few passes as it can (the machine is memory-bound here).
    covered = err > 0  # False for NaN, zero and negative noise
    covered &= err < np.inf
    covered &= np.isfinite(sci)
    if kind == "weight":
        with np.errstate(divide="ignore", invalid="ignore"):
            np.sqrt(err, out=err)
            np.divide(1.0, err, out=err)
    if covered.all():  # the common case inside a mosaic: nothing to mark
        return False
    uncovered = np.logical_not(covered, out=covered)
    np.copyto(err, np.float32(np.inf), where=uncovered)
    np.copyto(sci, np.float32(0), where=uncovered)
    return bool(uncovered.all())


def _ingest_block(job: _BlockJob) -> dict[str, Any]:
    """Read one block of every input that changed and write its zarr chunks.

    Works one chunk at a time, each held as one C-contiguous (band, y, x)
    array of exactly the chunk's shape: zarr then encodes it as it is, without
    the fill-and-copy it does for a chunk cut out of a larger array.

    Returns the block's statistics: bytes read and the segmentation ids present.
    """
    group = _open_group(job.url, "r+")
    # write_empty_chunks=True skips zarr's per-chunk "all fill value?" pass;
    # chunks with no coverage at all go through the checking array instead, so
    # they are not stored (or a stale one is removed).
    sci_arr, err_arr = group["sci"], group["err"]
    sci_w = sci_arr.with_config({"write_empty_chunks": True})
    err_w = err_arr.with_config({"write_empty_chunks": True})
    y0, y1 = job.ys
    ys = slice(y0, y1)
    nread = 0
    seg_ids: set[int] = set()
    readers = [(bj, ImageReader(bj.sci, what=bj.what_sci), ImageReader(bj.noise, what=bj.what_noise))
               for bj in job.bands]
    seg_reader = (ImageReader(job.seg, what=f"segmentation map ({job.seg.path})", dtype=np.int64)
                  if job.seg else None)
    whole = len(readers) == job.n_bands  # every band: whole chunks, no read-modify-write
    band_index = np.array([bj.index for bj, _, _ in readers], dtype=np.intp)
    # raw FITS bytes read per pixel of a chunk, whatever the files' BITPIX
    band_px_bytes = sum(rs.file_itemsize + rn.file_itemsize for _, rs, rn in readers)
    try:
        for xa, xb in job.xs:
            xs = slice(xa, xb)
            if readers:
                sci = np.empty((len(readers), y1 - y0, xb - xa), np.float32)
                err = np.empty_like(sci)
                empty = True
                for i, (bj, rs, rn) in enumerate(readers):
                    rs.read(ys, xs, out=sci[i])
                    rn.read(ys, xs, out=err[i])
                    empty &= _to_err(sci[i], err[i], bj.noise_kind)
                nread += sci[0].size * band_px_bytes
                if whole:
                    for arr, fast, data in ((sci_arr, sci_w, sci), (err_arr, err_w, err)):
                        (arr if empty else fast)[:, ys, xs] = data
                else:  # the changed bands only: one read-modify-write per chunk
                    sci_arr.oindex[band_index, ys, xs] = sci
                    err_arr.oindex[band_index, ys, xs] = err
                del sci, err
            if seg_reader is not None:
                seg = seg_reader.read(ys, xs)  # int64: ids exactly as in the file
                nread += seg.size * seg_reader.file_itemsize
                lo, hi = int(seg.min()), int(seg.max())
                if lo < 0 or hi > np.iinfo(np.int32).max:
                    raise InputError(
                        f"segmentation map ({job.seg.path}): ids from {lo} to {hi} at rows "
                        f"{y0}:{y1}; galclust stores ids as int32 (0 = sky, 1..2147483647). "
                        "Renumber the segmentation map and the catalog ids.")
                seg_int = seg.astype(np.int32)
                del seg
                group["seg"][ys, xs] = seg_int
                # hash-based unique: O(n), unlike np.unique's sort
                seg_ids.update(pd.unique(seg_int.ravel()).tolist())
    finally:
        for _, rs, rn in readers:
            rs.close()
            rn.close()
        if seg_reader is not None:
            seg_reader.close()
    seg_ids.discard(0)
    return {"bytes": nread, "seg_ids": sorted(seg_ids)}


def _plan_blocks(url: str, inputs: _Inputs, tile: int, bands: Sequence[int],
                 write_seg: bool) -> list[_BlockJob]:
    ny, nx = inputs.shape
    m = inputs.manifest
    band_jobs = tuple(
        _BandJob(i, inputs.sci[i], inputs.noise[i], m.bands[i].noise_kind,
                 _what(m.bands[i].name, "sci", inputs.sci[i].path),
                 _what(m.bands[i].name, m.bands[i].noise_kind, inputs.noise[i].path))
        for i in bands
    )
    per_chunk = max(1, (2 * len(band_jobs) + 1) * tile * tile * 4)
    chunks_per_task = max(1, TASK_BYTES // per_chunk)
    jobs = []
    for y0 in range(0, ny, tile):
        xs = [(x0, min(x0 + tile, nx)) for x0 in range(0, nx, tile)]
        for k in range(0, len(xs), chunks_per_task):
            jobs.append(_BlockJob(url, (y0, min(y0 + tile, ny)), xs[k:k + chunks_per_task],
                                  len(m.bands), band_jobs, inputs.seg if write_seg else None))
    return jobs


def _run_jobs(jobs: list[_BlockJob], to_hash: list[str], client: Any,
              progress: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the block tasks and the checksum tasks in one graph; return both results."""
    tasks = [dask.delayed(_ingest_block, pure=False)(job, dask_key_name=f"ingest-block-{i}")
             for i, job in enumerate(jobs)]
    tasks += [dask.delayed(checksum, pure=False)(path, dask_key_name=f"ingest-checksum-{i}")
              for i, path in enumerate(to_hash)]
    if client is not None:
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as dprogress

            dprogress(futures)
        results = client.gather(futures)
    elif progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=1.0):
            results = list(dask.compute(*tasks, scheduler="threads"))
    else:
        results = list(dask.compute(*tasks, scheduler="threads"))
    return results[:len(jobs)], results[len(jobs):]


# --------------------------------------------------------------------------- ingest
@dataclass
class IngestReport:
    """What an ingest did.

    Attributes
    ----------
    store : str
        The cube store URL.
    bands_written : list of str
        Bands whose pixels were (re)written; empty when nothing changed.
    seg_written, tables_written : bool
        Whether the segmentation map / the catalog tables were rewritten.
    bytes_read : int
        Raw FITS bytes read.
    seconds : float
        Wall time.
    """

    store: str
    bands_written: list[str] = field(default_factory=list)
    seg_written: bool = False
    tables_written: bool = False
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.bands_written or self.seg_written or self.tables_written)


#: Chunk compressors. Noise-dominated float32 mosaics compress only ~1.1-1.3x
#: losslessly; benchmarks/ingest.py weighs that against throughput.
COMPRESSIONS = ("lz4", "zstd", "none")
DEFAULT_COMPRESSION = "lz4"


def _codecs(name: str) -> list[Any] | None:
    if name == "none":
        return None
    if name == "lz4":
        return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
    return [ZstdCodec(level=3)]


#: What a cube store is made of: the only entries a rewrite of the store removes.
CUBE_ENTRIES = ("zarr.json", "sci", "err", "seg", "band", "wavelength", "y", "x",
                "tables/catalog.parquet", "tables/labels.parquet")


def _remove_cube(url: str) -> None:
    """Remove the arrays and tables galclust wrote in a cube store, and nothing else."""
    fs, path = get_fs(url)
    for name in CUBE_ENTRIES:
        target = f"{path}/{name}"
        if fs.exists(target):
            fs.rm(target, recursive=fs.isdir(target))
    fs.invalidate_cache(path)


def _create(url: str, inputs: _Inputs, tile: int, compression: str, *,
            existing: bool = False) -> None:
    import dask.array as da

    ny, nx = inputs.shape
    nb = len(inputs.manifest.bands)
    m = inputs.manifest
    template = xr.Dataset(
        {
            "sci": (("band", "y", "x"), da.zeros((nb, ny, nx), chunks=(nb, tile, tile),
                                                 dtype="f4")),
            "err": (("band", "y", "x"), da.zeros((nb, ny, nx), chunks=(nb, tile, tile),
                                                 dtype="f4")),
            "seg": (("y", "x"), da.zeros((ny, nx), chunks=(tile, tile), dtype="i4")),
        },
        coords={
            "band": np.array(m.band_names, dtype=object),
            "wavelength": ("band", np.asarray(m.wavelengths, dtype="f8")),
            "y": np.arange(ny, dtype="i4"),
            "x": np.arange(nx, dtype="i4"),
        },
    )
    template["sci"].attrs.update(long_name="flux", units=m.bands[0].unit)
    template["err"].attrs.update(long_name="1-sigma error; +inf where no coverage",
                                 units=m.bands[0].unit)
    template["seg"].attrs.update(long_name="segmentation map: 0 sky, else catalog id")
    template["wavelength"].attrs.update(units="micron", long_name="pivot wavelength")
    # the marker (galclust_store) is written with the group itself: from its
    # first byte the store says it is galclust's, and incomplete
    template.attrs.update(galclust_store="cube", ingest_status="writing")
    codec = _codecs(compression)
    encoding = {
        "sci": {"chunks": (nb, tile, tile), "fill_value": np.float32(0), "compressors": codec},
        "err": {"chunks": (nb, tile, tile), "fill_value": np.float32(np.inf),
                "compressors": codec},
        # segmentation maps are mostly 0: always worth compressing
        "seg": {"chunks": (tile, tile), "fill_value": np.int32(0),
                "compressors": _codecs("zstd")},
    }
    if existing:  # a galclust cube being rewritten: only its own arrays go
        _remove_cube(url)
    # mode "a", never "w": "w" deletes everything under the prefix, whoever wrote it
    template.to_zarr(_zarr_store(url), mode="a", compute=False, encoding=encoding,
                     consolidated=False, zarr_format=3)


def _write_table(df: pd.DataFrame, url: str) -> None:
    fs, path = get_fs(url)
    if not is_url(url):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    else:
        with fs.open(path, "wb") as fh:
            df.to_parquet(fh, index=False)


def _wcs_attrs(info: ImageInfo) -> tuple[dict[str, Any], float]:
    header = info.wcs.to_header(relax=True)
    wcs = {k: header[k] for k in header}
    scales = info.wcs.proj_plane_pixel_scales()
    pixel_scale = float(np.mean([s.to_value("arcsec") for s in scales]))
    return wcs, pixel_scale


def ingest(manifest: str | os.PathLike[str] | Manifest, store: str, *, tile: int | None = None,
           client: Any = None, verify: bool = False, progress: bool = False,
           report: bool = False, compression: str = DEFAULT_COMPRESSION,
           overwrite: bool = False) -> xr.Dataset | tuple[xr.Dataset, IngestReport]:
    """Ingest a survey's FITS mosaics into a zarr cube store.

    Every header and table is checked before any pixel is read. Re-ingesting
    an unchanged survey writes nothing; a changed band rewrites only that band
    (inputs are identified by XXH3-128 checksums kept in the provenance).

    Parameters
    ----------
    manifest : str, path-like or Manifest
        The survey manifest (TOML), local or ``s3://``.
    store : str
        The cube store: a local folder or ``s3://bucket/prefix``.
    tile : int, optional
        Square chunk size in pixels (default: an existing store's own, else
        :data:`DEFAULT_TILE`). Changing it for an existing store rewrites the
        store's arrays.
    client : distributed.Client, optional
        Run the block tasks on this Dask cluster (default: local threads).
    verify : bool
        Recompute every input checksum even when a file's size and
        modification stamp are unchanged.
    progress : bool
        Show a progress bar.
    report : bool
        Also return an :class:`IngestReport`.
    compression : {"lz4", "zstd", "none"}
        Chunk compressor of ``sci`` and ``err`` (default ``"lz4"``: Blosc LZ4
        with byte shuffle; ``"zstd"`` is smaller and slower).

    Returns
    -------
    xarray.Dataset
        The cube, lazily opened (see :func:`open_cube`); with ``report=True``
        a ``(cube, IngestReport)`` tuple.

    Raises
    ------
    ManifestError, MissingInputError, InputError
        For a malformed manifest or input (including pixels that cannot be
        right: an all-NaN band, an all-zero weight map, negative errors, a
        catalog off the image), before anything is written.
    StoreError
        If the store cannot be written (missing bucket, refused credentials),
        exists and is not a galclust cube store, or overlaps an input.

    Warns
    -----
    GalclustWarning
        Once, naming the bands that give no ``unit`` or one not in
        :data:`galclust.config.FLUX_UNITS`.
    """
    t0 = time.perf_counter()
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int | np.integer)
                             or tile < 16):
        raise InputError(f"tile={tile!r}: give a whole number of pixels >= 16 "
                         f"(default {DEFAULT_TILE}).")
    check_choice("compression", compression, COMPRESSIONS)
    store = str(store).rstrip("/")
    sources = [p for p in (manifest.source, *manifest.input_paths().values())
               if p and p != "<memory>"]
    state = claim_store(store, "cube", inputs=sources)
    check_writable(store)
    inputs = _validate(manifest)
    warn_units(manifest)  # no unit, or one galclust does not know: say so once
    check_pixels(inputs.manifest, inputs.sci, inputs.noise, inputs.seg, inputs.catalog)
    attrs = (_read_attrs(store) or {}) if state == "existing" else {}
    tile = int(tile or attrs.get("layout", {}).get("tile") or DEFAULT_TILE)
    layout = _layout(inputs, tile, compression)
    if attrs and attrs.get("layout") != layout:
        log.warning("ingest %s: the store's layout (bands, shape, tile, compression) differs "
                    "from this ingest's; its arrays are rewritten", store)
    previous = (attrs.get("provenance", {})
                if attrs.get("layout") == layout and not overwrite else {})
    fresh = not previous
    # A fresh ingest writes everything anyway: its checksums are computed as
    # tasks beside the block writes instead of in a serial pass before them.
    prov_inputs = _provenance_inputs(manifest, previous.get("inputs", {}), verify=verify,
                                     defer=fresh)
    done = set(previous.get("written", []))  # parts written completely, by checksum key

    def part_key(*keys: str) -> str:
        return "|".join(f"{k}:{prov_inputs[k][CHECKSUM]}" for k in keys)

    def parts() -> tuple[dict[int, str], str, str]:
        bands = {i: part_key(f"{b.name}.sci", f"{b.name}.{b.noise_kind}")
                 for i, b in enumerate(manifest.bands)}
        return (bands, part_key("seg"),
                part_key("catalog", *(["labels"] if manifest.labels else [])))

    if fresh:
        bands, write_seg, write_tables, kept = list(range(len(manifest.bands))), True, True, []
    else:
        band_parts, seg_part, table_part = parts()
        bands = [i for i, key in band_parts.items() if key not in done]
        write_seg = seg_part not in done
        write_tables = table_part not in done
        kept = [k for k in done if k in band_parts.values() or k in (seg_part, table_part)]
    rep = IngestReport(store=store)
    if not (bands or write_seg or write_tables) and attrs.get("ingest_status") == "complete":
        log.info("ingest %s: inputs unchanged, nothing written", store)
        rep.seconds = time.perf_counter() - t0
        cube = open_cube(store)
        return (cube, rep) if report else cube

    if fresh:
        _create(store, inputs, tile, compression, existing=state == "existing")
    group = _open_group(store, "r+")
    group.attrs.update({"ingest_status": "writing", "layout": layout,
                        "provenance": {"inputs": prov_inputs, "written": kept}})

    jobs = _plan_blocks(store, inputs, tile, bands, write_seg) if (bands or write_seg) else []
    to_hash = [k for k, v in prov_inputs.items() if v[CHECKSUM] is None]
    stats, digests = _run_jobs(jobs, [prov_inputs[k]["path"] for k in to_hash], client,
                               progress)
    for key, digest in zip(to_hash, digests, strict=True):
        prov_inputs[key][CHECKSUM] = digest
    band_parts, seg_part, table_part = parts()
    rep.bands_written = [manifest.bands[i].name for i in bands]
    rep.seg_written = write_seg
    rep.bytes_read = int(sum(s["bytes"] for s in stats))

    catalog = inputs.catalog
    if write_tables:
        _write_table(catalog, join(store, "tables", "catalog.parquet"))
        if inputs.labels is not None:
            _write_table(inputs.labels, join(store, "tables", "labels.parquet"))
        rep.tables_written = True

    wcs, pixel_scale = _wcs_attrs(inputs.sci[0])
    seg_info: dict[str, Any] = dict(attrs.get("segmentation", {})) if not write_seg else {}
    if write_seg:
        seg_ids = set().union(*(s["seg_ids"] for s in stats)) if stats else set()
        missing = sorted(seg_ids - set(catalog["id"].tolist()))
        seg_info = {"n_segments": len(seg_ids), "ids_not_in_catalog": len(missing),
                    "example_ids_not_in_catalog": missing[:10]}
        if missing:
            log.warning("segmentation map %s: %d segment ids are not in the catalog (e.g. %s)",
                        manifest.segmentation.path, len(missing), missing[:5])
    written = sorted(set(kept) | set(band_parts.values()) | {seg_part, table_part})
    group.attrs.update({
        "galclust_store": "cube",
        "survey": manifest.name,
        "wcs": wcs,
        "pixel_scale": pixel_scale,
        "unit": manifest.bands[0].unit,
        "units": {b.name: b.unit for b in manifest.bands},
        "galclust_version": galclust.__version__,
        "segmentation": seg_info,
        "manifest": json.loads(json.dumps(manifest.to_dict(), default=str)),
        "provenance": {"inputs": prov_inputs, "written": written,
                       "galclust_version": galclust.__version__,
                       "ingested": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "layout": layout,
    })
    group.attrs["ingest_status"] = "complete"  # last: the store is now readable
    with _quiet_zarr():
        zarr.consolidate_metadata(_zarr_store(store), zarr_format=3)
    rep.seconds = time.perf_counter() - t0
    log.info("ingest %s: wrote bands %s, seg=%s, tables=%s in %.1f s", store,
             rep.bands_written, rep.seg_written, rep.tables_written, rep.seconds)
    cube = open_cube(store)
    return (cube, rep) if report else cube


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
