"""Density structures and emission regions of a whole cube: the Dask mapping.

The only module of :mod:`galclust.structures` that imports dask.

- :func:`structure_tables` runs :func:`~galclust.structures.density.find_structures`
  on every catalog galaxy's footprint (its segment, in a stamp of its box plus a
  margin), galaxies batched per tile; or, for a deep field (``mode="tile"``),
  on abutting tiles of the whole cube, a structure crossing a tile edge merged
  by :func:`~galclust.structures.density.merge_tile_structures`.
- :func:`emission_tables` runs :func:`~galclust.structures.emission.emission_regions`
  on every galaxy's stamp in the medium band its redshift calls for
  (:func:`~galclust.structures._continuum.band_for_redshift`), or a given band.

A galaxy that cannot be measured (too few pixels, no band for its redshift,
an error in the method) is a flagged row with its reason, never a failed task.

AstroLink compiles its numba kernels for 40-60 s in every new process and does
not cache them: :class:`AstroLinkWarmup`, a Dask worker plugin, compiles them
once when each worker starts, so no galaxy task pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
from distributed.diagnostics.plugin import WorkerPlugin

from galclust.sources.survey import compute_tasks, cube_tiles, group_by_tile, region_of

__all__ = ["AstroLinkWarmup", "emission_tables", "encode_labels", "structure_tables",
           "warm_workers"]

#: Galaxies with fewer footprint pixels than this get a flagged row, not structures.
MIN_PIXELS = 20


class AstroLinkWarmup(WorkerPlugin):
    """Compile AstroLink's numba kernels once per Dask worker, when it starts."""

    name = "galclust-astrolink-warmup"

    def setup(self, worker: Any) -> None:
        from galclust.structures.density import warm_astrolink

        worker.galclust_astrolink_seconds = warm_astrolink()


def warm_workers(client: Any) -> None:
    """Register :class:`AstroLinkWarmup` on ``client`` (each worker compiles once)."""
    if client is not None:
        client.register_plugin(AstroLinkWarmup())


def encode_labels(labels: np.ndarray) -> bytes:
    """A (ny, nx) label stamp as int16 little-endian bytes (the stamps tables' format)."""
    return np.ascontiguousarray(np.clip(labels, -1, 32767), dtype="<i2").tobytes()


def _stamp(y0: int, x0: int, box: Any, shape: tuple[int, int], margin: int
           ) -> tuple[slice, slice]:
    return (slice(max(int(box.y0) - margin - y0, 0), min(int(box.y1) + margin - y0, shape[0])),
            slice(max(int(box.x0) - margin - x0, 0), min(int(box.x1) + margin - x0, shape[1])))


def _flagged(gid: int, reason: str, **extra: Any) -> dict[str, Any]:
    return {"id": gid, "flag": 1, "reason": reason, **extra}


def _structures_tile(sci: np.ndarray, err: np.ndarray, seg: np.ndarray, members: pd.DataFrame,
                     origin: tuple[int, int], options: Mapping[str, Any], bands: Sequence[str],
                     margin: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from galclust.structures.density import find_structures

    sci, err, seg = np.asarray(sci, float), np.asarray(err, float), np.asarray(seg)
    err = np.where(np.isfinite(err) & (err > 0), err, np.nan)
    y0, x0 = origin
    rows, galaxies, stamps = [], [], []
    for box in members.itertuples(index=False):
        gid = int(box.id)
        ys, xs = _stamp(y0, x0, box, seg.shape, margin)
        mask = seg[ys, xs] == gid
        if mask.sum() < MIN_PIXELS:
            galaxies.append(_flagged(gid, f"{int(mask.sum())} footprint pixels (< {MIN_PIXELS})",
                                     n_structures=0, n_leaves=0))
            continue
        try:
            st = find_structures(sci[:, ys, xs], mask, err=err[:, ys, xs], bands=list(bands),
                                 **options)
        except Exception as exc:  # one pathological galaxy is a flagged row
            galaxies.append(_flagged(gid, f"{type(exc).__name__}: {exc}", n_structures=0,
                                     n_leaves=0))
            continue
        t = st.table.rename(columns={"id": "structure"})
        t["x"] += xs.start + x0
        t["y"] += ys.start + y0
        t.insert(0, "id", gid)
        rows.append(t)
        leaves = int((~t["structure"].isin(t["parent"])).sum()) if len(t) else 0
        galaxies.append({"id": gid, "flag": 0, "reason": "", "n_structures": len(t),
                         "n_leaves": leaves,
                         "max_significance": float(t["significance"].max()) if len(t)
                         else np.nan, "n_samples": int(st.options.get("n_samples", 0))})
        stamps.append({"id": gid, "y0": ys.start + y0, "x0": xs.start + x0,
                       "ny": ys.stop - ys.start, "nx": xs.stop - xs.start,
                       "labels": encode_labels(np.where(mask, st.labels, -1))})
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
            pd.DataFrame(galaxies), pd.DataFrame(stamps))


def _structures_region(sci: np.ndarray, err: np.ndarray, options: Mapping[str, Any],
                       bands: Sequence[str]) -> Any:
    from galclust.structures.density import find_structures

    err = np.where(np.isfinite(err) & (err > 0), err, np.nan)
    mask = np.isfinite(err).all(axis=0)
    return find_structures(np.asarray(sci, float), mask, err=np.asarray(err, float),
                           bands=list(bands), **options)


def structure_tables(cube: xr.Dataset, boxes: pd.DataFrame | None, *,
                     options: Mapping[str, Any], mode: str = "galaxies", margin: int = 8,
                     client: Any = None, progress: Callable[[int], Any] | None = None
                     ) -> dict[str, Any]:
    """Density structures of every galaxy footprint (or every tile) of a cube.

    Parameters
    ----------
    cube : xarray.Dataset
        ``sci``, ``err`` (band, y, x) and ``seg``.
    boxes : pandas.DataFrame or None
        ``id, y0, y1, x0, x1`` of the galaxies (mode ``"galaxies"``).
    options : mapping
        Keyword arguments of :func:`~galclust.structures.density.find_structures`.
    mode : {"galaxies", "tile"}
        Per galaxy footprint, or per abutting tile (a deep field) with structures
        crossing tile edges merged.
    margin : int
        Pixels around each galaxy's box in its stamp.

    Returns
    -------
    dict
        ``structures`` (one row per structure: galaxy ``id`` in galaxies mode,
        ``structure``, ``parent``, ``significance``, ...), ``galaxies`` (one row
        per galaxy, galaxies mode) or ``labels`` (the (y, x) map, tile mode), and
        ``stamps`` (galaxies mode: per-galaxy label stamps).
    """
    bands = [str(b) for b in cube["band"].values]
    scheduler = client if client is not None else "threads"
    if options.get("method", "astrolink") == "astrolink":
        warm_workers(client)
    if mode == "tile":
        from galclust.structures.density import merge_tile_structures

        tiles = cube_tiles(cube, None)
        task = dask.delayed(_structures_region, pure=True)
        parts = [task(cube["sci"].data[:, y0:y1, x0:x1], cube["err"].data[:, y0:y1, x0:x1],
                      dict(options), bands) for y0, y1, x0, x1 in tiles]
        done = compute_tasks(parts, client, scheduler, progress)
        labels, table = merge_tile_structures(
            [(t[0], t[2], st) for t, st in zip(tiles, done, strict=True)],
            (int(cube.sizes["y"]), int(cube.sizes["x"])))
        return {"structures": table.rename(columns={"id": "structure"}), "labels": labels}
    return _per_tile(cube, boxes, margin, _structures_tile, ("structures", "galaxies", "stamps"),
                     (dict(options), bands, margin), client, progress)


def _per_tile(cube: xr.Dataset, boxes: pd.DataFrame, margin: int, func: Callable[..., Any],
              names: tuple[str, ...], args: tuple[Any, ...], client: Any,
              progress: Callable[[int], Any] | None) -> dict[str, pd.DataFrame]:
    """``func(sci, err, seg, members, origin, *args)`` -> tables, one task per tile of
    galaxies (their boxes plus ``margin``); the tables concatenated by name."""
    task = dask.delayed(func, nout=len(names), pure=True)
    ny, nx = int(cube.sizes["y"]), int(cube.sizes["x"])
    parts = []
    for members in group_by_tile(cube, boxes):
        y0, y1, x0, x1 = region_of(members, margin, (ny, nx))
        parts.append(dask.delayed(tuple)(task(
            cube["sci"].data[:, y0:y1, x0:x1], cube["err"].data[:, y0:y1, x0:x1],
            cube["seg"].data[y0:y1, x0:x1], members.reset_index(drop=True), (y0, x0), *args)))
    done = compute_tasks(parts, client, client if client is not None else "threads", progress)
    return {name: _concat([d[i] for d in done]) for i, name in enumerate(names)}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- emission
def _emission_tile(sci: np.ndarray, err: np.ndarray, seg: np.ndarray, members: pd.DataFrame,
                   origin: tuple[int, int], wavelength: np.ndarray, bands: Sequence[str],
                   options: Mapping[str, Any], margin: int
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from galclust.structures.emission import band_for_redshift, emission_regions

    sci, err, seg = np.asarray(sci, float), np.asarray(err, float), np.asarray(seg)
    y0, x0 = origin
    options = dict(options)
    fixed = options.pop("band", None)
    rows, galaxies, stamps = [], [], []
    for box in members.itertuples(index=False):
        gid, z = int(box.id), float(box.z) if np.isfinite(box.z) else None
        if fixed is None and z is None:
            galaxies.append(_flagged(gid, "no redshift: give --emission-band BAND",
                                     n_regions=0, n_candidates=0))
            continue
        band, line = ((bands.index(fixed), None) if fixed is not None
                      else band_for_redshift(z, bands, wavelength))
        if band is None:
            galaxies.append(_flagged(gid, f"no medium band holds Halpha, [OIII], Hbeta or "
                                     f"Pabeta at z={z:.3f}", n_regions=0, n_candidates=0))
            continue
        ys, xs = _stamp(y0, x0, box, seg.shape, margin)
        stamp_seg = seg[ys, xs]
        try:
            em = emission_regions(sci[:, ys, xs], err[:, ys, xs], wavelength, band, z=z,
                                  bands=list(bands), mask=(stamp_seg > 0) & (stamp_seg != gid),
                                  **options)
        except Exception as exc:  # one pathological galaxy is a flagged row
            galaxies.append(_flagged(gid, f"{type(exc).__name__}: {exc}", n_regions=0,
                                     n_candidates=0))
            continue
        t = em.table.rename(columns={"id": "region"})
        t["x"] += xs.start + x0
        t["y"] += ys.start + y0
        t.insert(0, "id", gid)
        rows.append(t)
        galaxies.append({"id": gid, "flag": 0, "reason": "", "band": bands[em.band],
                         "line": line or em.line or "", "reference": bands[em.reference],
                         "n_regions": len(t), "n_candidates": int(t["candidate"].sum()),
                         "best_score": float(t["outflow_score"].max()) if len(t) else 0.0,
                         "noise_factor": float(em.noise_factor)})
        stamps.append({"id": gid, "y0": ys.start + y0, "x0": xs.start + x0,
                       "ny": ys.stop - ys.start, "nx": xs.stop - xs.start,
                       "labels": encode_labels(em.labels)})
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
            pd.DataFrame(galaxies), pd.DataFrame(stamps))


def emission_tables(cube: xr.Dataset, boxes: pd.DataFrame, *, options: Mapping[str, Any],
                    margin: int = 16, client: Any = None,
                    progress: Callable[[int], Any] | None = None) -> dict[str, pd.DataFrame]:
    """Emission-line regions of every galaxy of a cube, one task per tile.

    ``boxes`` holds ``id, y0, y1, x0, x1, z``; ``options`` the keyword arguments
    of :func:`~galclust.structures.emission.emission_regions` plus ``band`` (a
    band name for every galaxy, or None: each galaxy's redshift picks it).
    Returns ``regions``, ``galaxies`` and ``stamps`` tables.
    """
    bands = [str(b) for b in cube["band"].values]
    wavelength = np.asarray(cube["wavelength"].values, dtype=float)
    return _per_tile(cube, boxes, margin, _emission_tile, ("regions", "galaxies", "stamps"),
                     (wavelength, bands, dict(options), margin), client, progress)
