"""Ingest of a survey that brings less: no segmentation map and catalog, or no error maps.

**Detection at ingest.** A manifest without ``[segmentation]`` and ``[catalog]``
has its bands written as usual (the cube's ``seg`` all 0), then
:func:`detect_into_cube` runs the tiled detection
(:func:`galclust.sources.survey.detect_cube`, with the manifest's
``[detection]`` options) over the cube being written: it writes the cube's
``seg`` tile by tile (:class:`~galclust.store.segmaps.ZarrSegTarget`) and
``tables/catalog.parquet`` (``id, ra, dec, x, y, z`` with ``z`` NaN, then the
detection's columns). The ids are a function of the pixels, so they are stable
across re-ingests. The detection is one part of the store, keyed
(:func:`detect_part`) by the bands' input checksums and the options: a changed
band or option re-runs it, an unchanged survey writes nothing.

**Errors from the image.** A band without an error or weight map has its
errors estimated block by block (:mod:`galclust.store.blocks`); its provenance
entry (:func:`estimated_inputs`) says so, and :func:`noise_attrs` summarises the
per-block estimates per band for the cube's ``"noise"`` attribute.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
import xxhash

from galclust.config import Manifest
from galclust.sources.defaults import DETECT_VERSION
from galclust.store.cube import _open_group, _quiet_zarr, _zarr_store
from galclust.store.fits import CHECKSUM
from galclust.store.segmaps import ZarrSegTarget
from galclust.store.urls import get_fs, is_url, join

__all__ = ["ESTIMATOR", "MADE_BY", "detect_into_cube", "detect_part", "detected_inputs",
           "estimated_inputs", "noise_attrs", "write_table"]

log = logging.getLogger(__name__)

#: What estimates a band's errors when the survey gives no error or weight map.
ESTIMATOR = "galclust.sources.noise.estimate_noise"
#: The cube's ``segmentation`` attribute ``made_by`` when galclust detected the sources.
MADE_BY = "galclust.detect"


def write_table(df: pd.DataFrame, url: str) -> None:
    """Write ``df`` as parquet at ``url`` (locally through a temporary file and a rename)."""
    fs, path = get_fs(url)
    if not is_url(url):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    else:
        with fs.open(path, "wb") as fh:
            df.to_parquet(fh, index=False)


# --------------------------------------------------------------------------- provenance
def estimated_inputs(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Provenance entries ``"<band>.err"`` of the bands whose errors are estimated.

    There is no file to checksum: the entry's checksum is a constant naming the
    estimator, so the band's part key (its sci checksum and this) changes
    exactly when the science image does.
    """
    return {f"{b.name}.err": {"path": None, "estimated": True, "method": ESTIMATOR,
                              CHECKSUM: f"estimated-by:{ESTIMATOR}"}
            for b in manifest.bands if b.estimated}


def detected_inputs(part: str) -> dict[str, dict[str, Any]]:
    """Provenance entries ``"seg"`` and ``"catalog"`` of a detection made at ingest.

    Their checksum is the detection's part key (:func:`detect_part`), which the
    map and the table are a function of: the stages keyed by the cube's ``seg``
    and ``catalog`` inputs see a new detection as new inputs.
    """
    return {k: {"path": None, "made_by": MADE_BY, CHECKSUM: part} for k in ("seg", "catalog")}


def detect_part(band_keys: Sequence[str], manifest: Manifest) -> str:
    """The key of the detection's part of the store (``seg`` and the catalog): the
    bands' input keys, the ``[detection]`` options (defaults filled in) and the
    detection method's version (a newer deblender redoes a stored detection)."""
    options = manifest.detect_options
    blob = json.dumps({"bands": list(band_keys),
                       "options": {**options.kwargs(), "halo": options.halo},
                       "version": DETECT_VERSION}, sort_keys=True)
    return f"detect:{xxhash.xxh3_128_hexdigest(blob.encode())}"


# --------------------------------------------------------------------------- noise
def _summary(infos: list[dict[str, Any]]) -> dict[str, Any]:
    if not infos:
        return {"estimator": ESTIMATOR, "n_blocks": 0}
    rms = np.array([i["rms_median"] for i in infos], float)
    factor = np.array([i["correlation_factor"] for i in infos], float)
    methods = collections.Counter(i["method"] for i in infos)
    return {"estimator": ESTIMATOR, "method": methods.most_common(1)[0][0],
            "rms_median": float(np.nanmedian(rms)),
            "correlation_factor": float(np.nanmedian(factor)),
            "err_median": float(np.nanmedian(rms * factor)), "n_blocks": len(infos)}


def noise_attrs(store: str, manifest: Manifest, stats: list[dict[str, Any]],
                written: Sequence[int], previous: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The cube's ``"noise"`` attribute: per estimated band, the median of its blocks'
    background RMS and correlation factor, the method and the number of blocks.

    Bands not rewritten (index not in ``written``) keep their ``previous`` entry.
    Logs the bands whose errors were just estimated.
    """
    out, estimated = {}, []
    for i, band in enumerate(manifest.bands):
        if not band.estimated:
            continue
        if i in written:
            out[band.name] = _summary([s["noise"][i] for s in stats if i in s.get("noise", {})])
            estimated.append(band.name)
        elif band.name in previous:
            out[band.name] = previous[band.name]
    if estimated:
        log.info("ingest %s: no error or weight map for band%s %s: errors estimated from the "
                 "image (sigma-clipped background RMS x empty-aperture correlation factor)",
                 store, "s" if len(estimated) > 1 else "", ", ".join(estimated))
    return out


# --------------------------------------------------------------------------- detection
def _unique_ids(block: np.ndarray) -> np.ndarray:
    ids = pd.unique(np.asarray(block).ravel())
    return ids[ids > 0]


def _seg_ids(seg: Any, client: Any) -> np.ndarray:
    """Every id in the (dask) segmentation map, one task per chunk."""
    tasks = [dask.delayed(_unique_ids, pure=True)(b) for b in seg.to_delayed().ravel()]
    parts = (client.gather(client.compute(tasks)) if client is not None
             else dask.compute(*tasks, scheduler="threads"))
    return np.unique(np.concatenate([np.zeros(0, np.int64), *parts]))


def _catalog(sources: pd.DataFrame, wcs_header: dict[str, Any]) -> pd.DataFrame:
    """``id, ra, dec, x, y, z`` (z NaN), then the detection's other columns."""
    from galclust.sky import pixel_to_sky

    x, y = sources["x"].to_numpy(float), sources["y"].to_numpy(float)
    ra, dec = pixel_to_sky(wcs_header, x, y)
    head = pd.DataFrame({"id": sources["id"].to_numpy(np.int64),
                         "ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
                         "x": x, "y": y, "z": np.full(len(sources), np.nan)})
    rest = sources.drop(columns=["id", "x", "y"]).reset_index(drop=True)
    return pd.concat([head, rest], axis=1)


def detect_into_cube(store: str, options: Any, *, client: Any = None,
                     progress: bool = False) -> dict[str, Any]:
    """Detect the sources of a cube being ingested; write its ``seg`` and catalog.

    Parameters
    ----------
    store : str
        The cube store, its bands written (its ``ingest_status`` is not yet
        ``"complete"``; its attributes hold the ``wcs``).
    options : galclust.options.DetectOptions
        The detection options (``nsigma``, ``npixels``, ``deblend``, ``halo``).
    client : distributed.Client, optional
        Run the tile tasks on this Dask cluster (default: local threads).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``options`` (with ``halo``), ``version`` (of the detection method),
        ``n_sources``, ``tiles``, ``unmatched_pixels``
        (from :func:`~galclust.sources.survey.detect_cube`), ``n_segments``
        (ids in the written ``seg``) and ``ids_not_in_catalog`` (0 unless the
        map and the table disagree).
    """
    from galclust.progress import Progress
    from galclust.sources.survey import cube_tiles, detect_cube

    wcs = _open_group(store, "r").attrs["wcs"]
    with _quiet_zarr():
        cube = xr.open_zarr(_zarr_store(store), consolidated=False, chunks={},
                            zarr_format=3)[["sci", "err"]]
    bar = (Progress(2 * len(cube_tiles(cube, None)), what="tiles", desc="detect", enabled=True)
           if progress else None)
    try:
        sources, info = detect_cube(cube, ZarrSegTarget(store, "seg"),
                                    options=options.kwargs(), halo=options.halo,
                                    client=client, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    catalog = _catalog(sources, wcs)
    write_table(catalog, join(store, "tables", "catalog.parquet"))
    with _quiet_zarr():
        seg = xr.open_zarr(_zarr_store(store), consolidated=False, chunks={},
                           zarr_format=3)["seg"].data
    ids = _seg_ids(seg, client)
    missing = np.setdiff1d(ids, catalog["id"].to_numpy())
    if len(missing):
        log.warning("detection in %s: %d segment ids are not in the catalog (e.g. %s)", store,
                    len(missing), missing[:5].tolist())
    log.info("detection in %s: %d sources on %d tiles", store, len(catalog), info["tiles"])
    return {"options": {**options.kwargs(), "halo": options.halo},
            "version": DETECT_VERSION, "n_sources": len(catalog), "tiles": int(info["tiles"]),
            "unmatched_pixels": int(info["unmatched_pixels"]),
            "n_segments": len(ids), "ids_not_in_catalog": len(missing)}
