"""Ingest: a survey's FITS mosaics -> one chunked, WCS-aware zarr cube store.

Every header and table is checked, and a sample of every image's pixels read
(:mod:`galclust.store.sanity`), before anything is written; the store is
claimed first (:mod:`galclust.store.safety`: new, empty, or a galclust cube).
The block tasks (all bands x a row of square tiles) each read only their block
from every FITS file and write whole zarr chunks, so no two tasks write the
same chunk and memory is bounded by the block, not by the mosaic. The layout of
the store is described in :mod:`galclust.store.cube`.

A survey without a segmentation map and catalog is detected once its bands
are written, and a band without an error or weight map gets errors estimated
from its image (:mod:`galclust.store.ingest_detect`). A manifest with a PSF image
per band has every band matched to the broadest PSF, block by block with a
halo (:mod:`galclust.store.psfmatch`); the PSFs are read before any pixel.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import galclust
from galclust.config import Manifest, load_manifest, warn_units
from galclust.errors import InputError, check_choice
from galclust.store.blocks import _what, plan_blocks, run_block_tasks
from galclust.store.cube import (
    DEFAULT_TILE,
    _open_group,
    _quiet_zarr,
    _read_attrs,
    _zarr_store,
    open_cube,
)
from galclust.store.fits import (
    CHECKSUM,
    ImageInfo,
    checksum,
    file_fingerprint,
    grid_offset,
    image_info,
)
from galclust.store.ingest_detect import (
    MADE_BY,
    detect_into_cube,
    detected_inputs,
    estimated_inputs,
    noise_attrs,
    write_table,
)
from galclust.store.ingest_parts import _parts, _todo
from galclust.store.psfmatch import PsfPlan, plan_psf
from galclust.store.safety import claim_store
from galclust.store.sanity import check_pixels
from galclust.store.tables import normalise_catalog, read_table
from galclust.store.urls import check_writable, get_fs, join

__all__ = ["COMPRESSIONS", "DEFAULT_COMPRESSION", "IngestReport", "ingest"]

log = logging.getLogger(__name__)

_WCS_TOLERANCE_PX = 0.01

# --------------------------------------------------------------------------- validation
@dataclass
class _Inputs:
    manifest: Manifest
    sci: list[ImageInfo]
    noise: list[ImageInfo | None]  # None: estimated from the image
    seg: ImageInfo | None  # None (with catalog): galclust detects
    catalog: pd.DataFrame | None
    labels: pd.DataFrame | None
    shape: tuple[int, int]
    psf: PsfPlan = field(default_factory=lambda: PsfPlan("none"))


def _validate(manifest: Manifest) -> _Inputs:
    """Open every header and table and check they fit together; no mosaic pixel is read
    (the PSF images are, and the matching kernels built)."""
    sci: list[ImageInfo] = []
    noise: list[ImageInfo | None] = []
    for b in manifest.bands:
        sci.append(image_info(b.sci, b.sci_hdu, what=f"band {b.name} sci image"))
        noise.append(None if b.estimated else image_info(
            b.noise_path, b.noise_hdu, what=f"band {b.name} {b.noise_kind} image"))
    ref = sci[0]
    for b, s, n in zip(manifest.bands, sci, noise, strict=True):
        for info, kind in ((s, "sci"), (n, b.noise_kind)):
            if info is None:
                continue
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
    psf = plan_psf(manifest, pixel_scale=_wcs_attrs(ref)[1] if ref.wcs.has_celestial else None)
    labels = None
    if manifest.labels is not None:
        from galclust.store.labels import read_labels

        ls = manifest.labels
        labels = read_labels(ls.path, id=ls.id, reliable=ls.reliable, reason=ls.reason)
    if manifest.detects:
        return _Inputs(manifest, sci, noise, None, None, labels, ref.shape, psf)
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
    return _Inputs(manifest, sci, noise, seg, catalog, labels, ref.shape, psf)


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
    return {**out, **estimated_inputs(manifest)}  # no file: the error was estimated


def _layout(inputs: _Inputs, tile: int, compression: str) -> dict[str, Any]:
    m = inputs.manifest
    return {"bands": m.band_names, "wavelengths": m.wavelengths,
            "shape": list(inputs.shape), "tile": tile, "compression": compression}


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
    detected : bool
        Whether galclust detected the sources (and wrote ``seg`` and the catalog).
    bytes_read : int
        Raw FITS bytes read.
    seconds : float
        Wall time.
    """

    store: str
    bands_written: list[str] = field(default_factory=list)
    seg_written: bool = False
    tables_written: bool = False
    detected: bool = False
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
    with _quiet_zarr():  # a rewritten store's tables/ folder is not zarr's
        template.to_zarr(_zarr_store(url), mode="a", compute=False, encoding=encoding,
                         consolidated=False, zarr_format=3)


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
    Without ``[segmentation]`` and ``[catalog]`` the sources are detected once
    the bands are written (attributes ``detection``, ``segmentation``); a band
    without an error or weight map gets errors estimated from its image
    (attribute ``noise``). See :mod:`galclust.store.ingest_detect`. With a
    PSF image per band every band is matched to the broadest PSF (attribute
    ``psf``; :mod:`galclust.store.psfmatch`).

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
    manifest = _check_call(manifest, tile, compression)
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
    prov = _provenance_inputs(manifest, previous.get("inputs", {}), verify=verify, defer=fresh)
    bands, write_seg, write_tables, kept = _todo(manifest, prov, previous, fresh, inputs.psf)
    rep = IngestReport(store=store)
    psf_attrs = inputs.psf.attrs()
    if (not (bands or write_seg or write_tables) and attrs.get("ingest_status") == "complete"
            and attrs.get("psf", {"status": "none"}) == psf_attrs):
        log.info("ingest %s: inputs unchanged, nothing written", store)
        rep.seconds = time.perf_counter() - t0
        cube = open_cube(store)
        return (cube, rep) if report else cube

    if fresh:
        _create(store, inputs, tile, compression, existing=state == "existing")
    group = _open_group(store, "r+")
    group.attrs.update({"ingest_status": "writing", "layout": layout,
                        "wcs": _wcs_attrs(inputs.sci[0])[0],
                        "provenance": {"inputs": prov, "written": kept}})
    read_seg = write_seg and not manifest.detects
    jobs = plan_blocks(store, inputs, tile, bands, read_seg) if (bands or read_seg) else []
    to_hash = [k for k, v in prov.items() if v[CHECKSUM] is None]
    stats, digests = run_block_tasks(jobs, [prov[k]["path"] for k in to_hash], client,
                                     progress)
    for key, digest in zip(to_hash, digests, strict=True):
        prov[key][CHECKSUM] = digest
    rep.bands_written = [manifest.bands[i].name for i in bands]
    rep.seg_written = write_seg
    rep.bytes_read = int(sum(s["bytes"] for s in stats))
    if write_tables:
        if inputs.catalog is not None:
            write_table(inputs.catalog, join(store, "tables", "catalog.parquet"))
        if inputs.labels is not None:
            write_table(inputs.labels, join(store, "tables", "labels.parquet"))
        rep.tables_written = True
    detection = attrs.get("detection") if manifest.detects else None
    if manifest.detects and write_seg:
        detection = detect_into_cube(store, manifest.detect_options, client=client,
                                     progress=progress)
        rep.detected = rep.tables_written = True
        seg_info = {"made_by": MADE_BY, "n_segments": detection["n_segments"],
                    "ids_not_in_catalog": detection["ids_not_in_catalog"]}
    elif write_seg:
        seg_info = _segmentation_info(stats, inputs.catalog, manifest)
    else:
        seg_info = dict(attrs.get("segmentation", {}))
    band_parts, seg_part, table_part = _parts(manifest, prov, inputs.psf)
    if manifest.detects:  # the stages keyed by the cube's seg and catalog see the detection
        prov.update(detected_inputs(seg_part))
    written = sorted(set(kept) | set(band_parts.values()) | {seg_part, table_part})
    noise = noise_attrs(store, manifest, stats, bands, attrs.get("noise") or {})
    group.attrs.update(_cube_attrs(inputs, prov, written, seg_info, layout)
                       | {"noise": noise, "detection": detection, "psf": psf_attrs})
    group.attrs["ingest_status"] = "complete"  # last: the store is now readable
    with _quiet_zarr():
        zarr.consolidate_metadata(_zarr_store(store), zarr_format=3)
    rep.seconds = time.perf_counter() - t0
    log.info("ingest %s: wrote bands %s, seg=%s, tables=%s in %.1f s", store,
             rep.bands_written, rep.seg_written, rep.tables_written, rep.seconds)
    cube = open_cube(store)
    return (cube, rep) if report else cube


def _check_call(manifest: Any, tile: Any, compression: str) -> Manifest:
    """The manifest, loaded; ``tile`` and ``compression`` checked (before any I/O)."""
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int | np.integer)
                             or tile < 16):
        raise InputError(f"tile={tile!r}: give a whole number of pixels >= 16 "
                         f"(default {DEFAULT_TILE}).")
    check_choice("compression", compression, COMPRESSIONS)
    return manifest


def _segmentation_info(stats: list[dict[str, Any]], catalog: pd.DataFrame,
                       manifest: Manifest) -> dict[str, Any]:
    seg_ids = set().union(*(s["seg_ids"] for s in stats)) if stats else set()
    missing = sorted(seg_ids - set(catalog["id"].tolist()))
    if missing:
        log.warning("segmentation map %s: %d segment ids are not in the catalog (e.g. %s)",
                    manifest.segmentation.path, len(missing), missing[:5])
    return {"n_segments": len(seg_ids), "ids_not_in_catalog": len(missing),
            "example_ids_not_in_catalog": missing[:10]}


def _cube_attrs(inputs: _Inputs, prov: dict[str, Any], written: list[str],
                seg_info: dict[str, Any], layout: dict[str, Any]) -> dict[str, Any]:
    manifest = inputs.manifest
    wcs, pixel_scale = _wcs_attrs(inputs.sci[0])
    return {
        "galclust_store": "cube",
        "survey": manifest.name,
        "wcs": wcs,
        "pixel_scale": pixel_scale,
        "unit": manifest.bands[0].unit,
        "units": {b.name: b.unit for b in manifest.bands},
        "galclust_version": galclust.__version__,
        "segmentation": seg_info,
        "manifest": json.loads(json.dumps(manifest.to_dict(), default=str)),
        "provenance": {"inputs": prov, "written": written,
                       "galclust_version": galclust.__version__,
                       "ingested": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "layout": layout,
    }


