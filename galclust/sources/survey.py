"""Detection and morphology of a whole cube: the Dask mapping of :mod:`galclust.sources`.

The only module of :mod:`galclust.sources` that imports dask.

**Detection** (:func:`detect_cube`) runs :func:`~galclust.sources.detection.detect`
on square tiles (the cube's chunks) read with a halo of ``halo`` pixels, in two
passes of one task per tile, so memory is bounded by a tile and its halo:

1. Detect on the tile with its halo. A source belongs to the tile whose core
   holds its centroid, so a source crossing a tile edge gets exactly one id.
   The tile's core is written to the target array with the tile's own labels;
   the task returns its sources (owned or not) as a small table.
2. Owned sources are numbered 1..N in (y, x) order of their centroids: the ids
   are a function of the pixels (stable across reruns when they are
   unchanged). Each tile's core is read back and relabelled: its own sources
   by that order, a neighbour's source by its centroid (the same source seen
   from both tiles).

A source whose footprint reaches the halo's outer edge is flagged
``TILE_EDGE`` (its footprint and fluxes may be cut; raise ``halo``).

**Morphology** (:func:`morphology_tables`) groups segments by the tile that
holds their centre, as the pixel stage does, and measures every segment of a
tile in one vectorised :func:`~galclust.sources.nonparametric.morphology` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import dask
import numpy as np
import pandas as pd
import xarray as xr

from galclust.errors import InputError

__all__ = ["TILE_EDGE", "SegTarget", "cluster_morphology", "cluster_morphology_tables",
           "compute_tasks", "cube_tiles", "detect_cube", "group_by_tile", "region_of",
           "detection_image_band", "morphology_tables"]

#: Flag bit of a source whose footprint reaches the edge of the tile's halo.
TILE_EDGE = 1 << 8
#: Centroids of one source seen from two tiles agree to this many pixels.
MATCH_PX = 3.0


class SegTarget(Protocol):
    """Where the tiled detection writes its segmentation map (a store's array)."""

    def write(self, y0: int, x0: int, block: np.ndarray) -> None: ...

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...


def cube_tiles(cube: xr.Dataset, tile: int | None) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of every tile: the cube's chunks, or squares of ``tile``."""
    ny, nx = int(cube.sizes["y"]), int(cube.sizes["x"])
    if tile is None:
        chunks = cube["sci"].chunks
        ys = np.concatenate([[0], np.cumsum(chunks[1])]) if chunks else np.array([0, ny])
        xs = np.concatenate([[0], np.cumsum(chunks[2])]) if chunks else np.array([0, nx])
    else:
        ys, xs = np.r_[np.arange(0, ny, tile), ny], np.r_[np.arange(0, nx, tile), nx]
    return [(int(ys[i]), int(ys[i + 1]), int(xs[j]), int(xs[j + 1]))
            for i in range(len(ys) - 1) for j in range(len(xs) - 1)]


def _detect_tile(sci: np.ndarray, err: np.ndarray, core: tuple[int, int, int, int],
                 origin: tuple[int, int], shape: tuple[int, int], target: SegTarget,
                 options: Mapping[str, Any], bands: Sequence[str]) -> pd.DataFrame:
    """Pass 1 on one tile: detect with the halo, write the core's local labels, return
    the table of every source seen in the core (``owned`` marks this tile's own)."""
    from galclust.sources.detection import detect

    y0, y1, x0, x1 = core
    oy, ox = origin
    err = np.where(np.isfinite(err) & (err > 0), err, np.inf)
    sci = np.where(np.isfinite(sci), sci, 0.0)
    if not np.isfinite(err).any():  # no coverage at all: nothing to detect
        target.write(y0, x0, np.zeros((y1 - y0, x1 - x0), np.int32))
        return pd.DataFrame()
    seg, table = detect(sci, err, bands=list(bands), **options)
    cy0, cx0 = y0 - oy, x0 - ox
    target.write(y0, x0, np.ascontiguousarray(seg[cy0:cy0 + y1 - y0, cx0:cx0 + x1 - x0],
                                              dtype=np.int32))
    if table.empty:
        return table
    in_core = np.unique(seg[cy0:cy0 + y1 - y0, cx0:cx0 + x1 - x0])
    table = table[table["id"].isin(in_core[in_core > 0])].copy()
    table["x"] += ox
    table["y"] += oy
    gy, gx = np.floor(table["y"] + 0.5), np.floor(table["x"] + 0.5)
    table["owned"] = (gy >= y0) & (gy < y1) & (gx >= x0) & (gx < x1)
    # a footprint reaching the halo's outer edge (not the mosaic's) may be cut
    h, w = seg.shape
    edges = []
    if oy > 0:
        edges.append(seg[0])
    if oy + h < shape[0]:
        edges.append(seg[-1])
    if ox > 0:
        edges.append(seg[:, 0])
    if ox + w < shape[1]:
        edges.append(seg[:, -1])
    cut = np.unique(np.concatenate(edges)) if edges else np.array([], int)
    table["flag"] = table["flag"].astype(np.int64) | np.where(
        table["id"].isin(cut[cut > 0]), TILE_EDGE, 0)
    table["tile_y0"], table["tile_x0"] = y0, x0
    return table.rename(columns={"id": "local_id", "parent": "local_parent"})


def _number(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Owned sources of every tile, numbered 1..N in (y, x) order of their centroids."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    owned = table[table["owned"]].copy()
    order = np.lexsort((owned["x"].round(3).to_numpy(), owned["y"].round(3).to_numpy()))
    owned = owned.iloc[order].reset_index(drop=True)
    owned.insert(0, "id", np.arange(1, len(owned) + 1, dtype=np.int64))
    # the parent: the smallest id of the sources sharing a pre-deblending segment
    owned["parent"] = owned.groupby(["tile_y0", "tile_x0", "local_parent"])["id"].transform(
        "min").to_numpy()
    return owned


def _relabel_tile(core: tuple[int, int, int, int], seen: pd.DataFrame, owned: pd.DataFrame,
                  target: SegTarget) -> int:
    """Pass 2 on one tile: relabel the core from local to survey ids; returns the
    number of pixels of sources that no tile owns (unmatched, set to sky)."""
    y0, y1, x0, x1 = core
    block = target.read(y0, y1, x0, x1)
    if not block.any():
        return 0
    mine = owned[(owned["tile_y0"] == y0) & (owned["tile_x0"] == x0)]
    top = max(int(block.max()), int(seen["local_id"].max()) if len(seen) else 0)
    lut = np.zeros(top + 1, dtype=np.int32)
    lut[mine["local_id"].to_numpy()] = mine["id"].to_numpy()
    others = seen[~seen["owned"]] if len(seen) else seen
    if len(others):
        from scipy.spatial import cKDTree

        near = owned[(owned["tile_y0"] != y0) | (owned["tile_x0"] != x0)]
        if len(near):
            tree = cKDTree(near[["y", "x"]].to_numpy())
            dist, idx = tree.query(others[["y", "x"]].to_numpy(), distance_upper_bound=MATCH_PX)
            ok = np.isfinite(dist)
            lut[others["local_id"].to_numpy()[ok]] = near["id"].to_numpy()[idx[ok]]
    out = lut[block]
    target.write(y0, x0, out)
    return int(((out == 0) & (block > 0)).sum())


def detect_cube(cube: xr.Dataset, target: SegTarget, *, options: Mapping[str, Any] | None = None,
                halo: int = 64, tile: int | None = None, client: Any = None,
                progress: Callable[[int], Any] | None = None) -> tuple[pd.DataFrame, dict]:
    """Detect every source of a cube on overlapping tiles; write the segmentation map.

    Parameters
    ----------
    cube : xarray.Dataset
        ``sci`` and ``err`` (band, y, x), dask-backed.
    target : SegTarget
        The (y, x) int32 array the map is written to (a store's; see
        :mod:`galclust.store.segmaps`), chunked like the tiles.
    options : mapping, optional
        Keyword arguments of :func:`~galclust.sources.detection.detect`
        (``nsigma``, ``npixels``, ``deblend``).
    halo : int
        Pixels read around each tile: sources up to about this size crossing a
        tile edge are detected whole.
    tile : int, optional
        Tile size (default: the cube's chunks; must be a multiple of them).
    client : distributed.Client, optional
        Compute on this cluster (default: local threads).
    progress : callable, optional
        Called with the number of tiles done.

    Returns
    -------
    sources : pandas.DataFrame
        One row per source: ``id`` (1..N), ``x, y`` (mosaic pixels), fluxes
        and shape from :func:`~galclust.sources.detection.detect`, ``parent``
        and ``flag`` (with :data:`TILE_EDGE`).
    info : dict
        ``tiles``, ``halo``, ``unmatched_pixels`` (pixels of a source seen
        from a neighbour but owned by no tile: set to sky).
    """
    if halo < 0:
        raise InputError(f"halo={halo}: give a non-negative number of pixels.")
    options = dict(options or {})
    ny, nx = int(cube.sizes["y"]), int(cube.sizes["x"])
    bands = [str(b) for b in cube["band"].values]
    tiles = cube_tiles(cube, tile)
    scheduler = client if client is not None else "threads"
    detect_task = dask.delayed(_detect_tile, pure=True)
    parts = []
    for core in tiles:
        y0, y1, x0, x1 = core
        oy, ox = max(y0 - halo, 0), max(x0 - halo, 0)
        ey, ex = min(y1 + halo, ny), min(x1 + halo, nx)
        region = cube.isel(y=slice(oy, ey), x=slice(ox, ex))
        parts.append(detect_task(region["sci"].data, region["err"].data, core, (oy, ox),
                                 (ny, nx), target, options, bands))
    seen = compute_tasks(parts, client, scheduler, progress)
    owned = _number(seen)
    if owned.empty:
        return _empty_sources(bands), {"tiles": len(tiles), "halo": halo, "unmatched_pixels": 0}
    relabel = dask.delayed(_relabel_tile, pure=False)
    jobs = []
    for core, part in zip(tiles, seen, strict=True):
        y0, y1, x0, x1 = core
        sel = ((owned["x"] > x0 - halo - MATCH_PX) & (owned["x"] < x1 + halo + MATCH_PX)
               & (owned["y"] > y0 - halo - MATCH_PX) & (owned["y"] < y1 + halo + MATCH_PX))
        jobs.append(relabel(core, part, owned[sel].reset_index(drop=True), target))
    unmatched = compute_tasks(jobs, client, scheduler, progress)
    sources = owned.drop(columns=["owned", "local_id", "local_parent", "tile_y0", "tile_x0"])
    return sources, {"tiles": len(tiles), "halo": halo,
                     "unmatched_pixels": int(sum(unmatched))}


def compute_tasks(tasks: list[Any], client: Any, scheduler: Any, progress: Any) -> list[Any]:
    """Compute delayed ``tasks`` on ``client`` (or ``scheduler``), calling ``progress(n)``
    as they finish; results in task order."""
    if client is not None:
        futures = client.compute(tasks)
        if progress is not None:
            from distributed import as_completed

            for _ in as_completed(futures):
                progress(1)
        return client.gather(futures)
    out = []
    for chunk in range(0, len(tasks), 8):  # small batches: progress as tiles finish
        out.extend(dask.compute(*tasks[chunk:chunk + 8], scheduler=scheduler))
        if progress is not None:
            progress(len(tasks[chunk:chunk + 8]))
    return out


def _empty_sources(bands: Sequence[str]) -> pd.DataFrame:
    cols = {"id": "int64", "x": "float64", "y": "float64",
            **{f"flux_{b}": "float64" for b in bands},
            **{f"flux_err_{b}": "float64" for b in bands},
            "area": "int64", "a": "float64", "b": "float64", "theta": "float64",
            "snr": "float64", "parent": "int64", "flag": "int64"}
    return pd.DataFrame({k: pd.Series(dtype=v) for k, v in cols.items()})


# --------------------------------------------------------------------------- morphology
def detection_image_band(cube: xr.Dataset, band: str | None) -> int:
    """The index of the band morphology is measured in (default: the reddest)."""
    bands = [str(b) for b in cube["band"].values]
    if band is None:
        return int(np.argmax(np.asarray(cube["wavelength"].values, dtype=float)))
    if band not in bands:
        from galclust.errors import did_you_mean

        raise InputError(f"band {band!r} is not in the cube (bands: {', '.join(bands)})"
                         f"{did_you_mean(band, bands)}.")
    return bands.index(band)


def _morph_tile(sci: np.ndarray, err: np.ndarray, seg: np.ndarray, ids: np.ndarray,
                origin: tuple[int, int]) -> pd.DataFrame:
    from galclust.sources.nonparametric import morphology

    ok = np.isfinite(err) & (err > 0)
    image = np.where(ok, sci, np.nan)
    present = np.intersect1d(ids, np.unique(seg))
    if not len(present):
        return pd.DataFrame()
    table = morphology(image, seg, err=np.where(ok, err, np.nan), ids=present)
    return _to_mosaic(table, origin)


def _to_mosaic(table: pd.DataFrame, origin: tuple[int, int]) -> pd.DataFrame:
    """Positions of a region's morphology rows in mosaic pixels."""
    for c in table.columns:
        if c in ("x_centroid", "x_asym"):
            table[c] = table[c] + origin[1]
        elif c in ("y_centroid", "y_asym"):
            table[c] = table[c] + origin[0]
    return table


def morphology_tables(cube: xr.Dataset, seg: Any, boxes: pd.DataFrame, *, band: int,
                      margin: int = 16, client: Any = None,
                      progress: Callable[[int], Any] | None = None) -> pd.DataFrame:
    """Morphology of every segment of ``seg`` in band ``band``, one task per tile.

    Parameters
    ----------
    cube : xarray.Dataset
        ``sci`` and ``err``.
    seg : array-like
        (y, x) segmentation map (dask or numpy): the cube's or a detection's.
    boxes : pandas.DataFrame
        ``id, y0, y1, x0, x1`` bounding boxes of the segments to measure
        (:func:`galclust.pixels.survey.segment_boxes`).
    band : int
        Band index.
    margin : int
        Pixels around each segment's box (the Petrosian and asymmetry regions
        reach past the segment).
    """
    if boxes.empty:
        return pd.DataFrame()
    ny, nx = int(cube.sizes["y"]), int(cube.sizes["x"])
    task = dask.delayed(_morph_tile, pure=True)
    parts = []
    for members in group_by_tile(cube, boxes):
        y0, y1, x0, x1 = region_of(members, margin, (ny, nx))
        sci = cube["sci"].data[band, y0:y1, x0:x1]
        err = cube["err"].data[band, y0:y1, x0:x1]
        parts.append(task(sci, err, seg[y0:y1, x0:x1], members["id"].to_numpy(), (y0, x0)))
    scheduler = client if client is not None else "threads"
    out = [p for p in compute_tasks(parts, client, scheduler, progress) if len(p)]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def cluster_morphology(sci: np.ndarray, err: np.ndarray, stamps: pd.DataFrame,
                       decode: Callable[[bytes, int, int], np.ndarray]) -> pd.DataFrame:
    """Morphology of every SED cluster of the pixel stage's galaxies in one region.

    ``stamps`` rows (``id, y0, x0, ny, nx, labels``) are relative to the
    region ``sci``/``err`` (y, x) covers. The clusters of all galaxies are put
    in one label map (their footprints do not overlap) and measured in one call.
    Returns ``id`` (the galaxy), ``cluster`` and the morphology columns.
    """
    from galclust.sources.nonparametric import morphology

    labels = np.zeros(sci.shape, dtype=np.int32)
    keys: list[tuple[int, int]] = []
    for row in stamps.itertuples(index=False):
        stamp = decode(row.labels, row.ny, row.nx)
        view = labels[row.y0:row.y0 + row.ny, row.x0:row.x0 + row.nx]
        for c in np.unique(stamp[stamp >= 0]):
            keys.append((int(row.id), int(c)))
            view[(stamp == c) & (view == 0)] = len(keys)
    if not keys:
        return pd.DataFrame()
    ok = np.isfinite(err) & (err > 0)
    table = morphology(np.where(ok, sci, np.nan), labels, err=np.where(ok, err, np.nan))
    ident = np.asarray(keys, dtype=np.int64)[table["id"].to_numpy() - 1]
    table = table.drop(columns=["id"])
    table.insert(0, "cluster", ident[:, 1].astype(np.int32))
    table.insert(0, "id", ident[:, 0])
    return table


def _cluster_tile(sci: np.ndarray, err: np.ndarray, origin: tuple[int, int], reader: Any,
                  ids: np.ndarray, decode: Callable[[bytes, int, int], np.ndarray]
                  ) -> pd.DataFrame:
    rows = reader(ids, columns=["id", "y0", "x0", "ny", "nx", "labels"])
    rows = rows.assign(y0=rows["y0"] - origin[0], x0=rows["x0"] - origin[1])
    return _to_mosaic(cluster_morphology(np.asarray(sci, float), np.asarray(err, float), rows,
                                         decode), origin)


def cluster_morphology_tables(cube: xr.Dataset, stamps: pd.DataFrame, reader: Any, *,
                              band: int, decode: Callable[[bytes, int, int], np.ndarray],
                              margin: int = 16, client: Any = None,
                              progress: Callable[[int], Any] | None = None) -> pd.DataFrame:
    """Morphology of every SED cluster of the pixel stage, one task per tile.

    ``stamps`` holds ``id, y0, x0, ny, nx`` (mosaic pixels) of the label stamps;
    each task reads its galaxies' stamps with ``reader(ids, columns=...)`` and
    its region of band ``band``.
    """
    if stamps.empty:
        return pd.DataFrame()
    boxes = pd.DataFrame({"id": stamps["id"], "y0": stamps["y0"], "x0": stamps["x0"],
                          "y1": stamps["y0"] + stamps["ny"], "x1": stamps["x0"] + stamps["nx"]})
    ny, nx = int(cube.sizes["y"]), int(cube.sizes["x"])
    task = dask.delayed(_cluster_tile, pure=True)
    parts = []
    for members in group_by_tile(cube, boxes):
        y0, y1, x0, x1 = region_of(members, margin, (ny, nx))
        parts.append(task(cube["sci"].data[band, y0:y1, x0:x1],
                          cube["err"].data[band, y0:y1, x0:x1], (y0, x0), reader,
                          members["id"].to_numpy(), decode))
    scheduler = client if client is not None else "threads"
    out = [p for p in compute_tasks(parts, client, scheduler, progress) if len(p)]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def region_of(boxes: pd.DataFrame, margin: int, shape: tuple[int, int]
              ) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the region holding every box plus ``margin``, on the mosaic."""
    return (max(int(boxes["y0"].min()) - margin, 0), min(int(boxes["y1"].max()) + margin,
                                                         shape[0]),
            max(int(boxes["x0"].min()) - margin, 0), min(int(boxes["x1"].max()) + margin,
                                                         shape[1]))


def group_by_tile(cube: xr.Dataset, boxes: pd.DataFrame) -> list[pd.DataFrame]:
    """``boxes`` grouped by the cube tile holding each box's centre."""
    tiles = cube_tiles(cube, None)
    y_edges = np.array(sorted({t[0] for t in tiles}))
    x_edges = np.array(sorted({t[2] for t in tiles}))
    cy = (boxes["y0"].to_numpy() + boxes["y1"].to_numpy()) // 2
    cx = (boxes["x0"].to_numpy() + boxes["x1"].to_numpy()) // 2
    key = (np.searchsorted(y_edges, cy, side="right") * (len(x_edges) + 1)
           + np.searchsorted(x_edges, cx, side="right"))
    return [g for _, g in boxes.groupby(key, sort=True)]
