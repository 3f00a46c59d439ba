"""Pixel clustering of every selected galaxy of a cube: the Dask mapping.

The only module of :mod:`galclust.pixels` that imports dask. Plan:

1. Validate the cube, the catalog, the selection and the clustering options
   (errors before any compute).
2. Bounding box of every segment, once: :func:`segment_bboxes` on each chunk
   of ``seg`` (one task per chunk), merged per id (:func:`segment_boxes`).
3. Each galaxy is assigned to the spatial tile (chunk of the cube) holding its
   catalog centre. One task per tile (module-level :func:`cluster_tile`)
   reads the tile's region padded to cover its galaxies' boxes plus
   ``margin``, runs :func:`~galclust.pixels.core.cluster_galaxy` on each
   galaxy's stamp and returns three tables. A galaxy that raises is a row
   with the ``FAILED`` flag and the message in ``error``, never a failed task.
4. The three tables are Dask DataFrames (:func:`dask.dataframe.from_delayed`)
   whose ``meta`` comes from the schemas declared here once
   (:data:`SCHEMAS`); :func:`run_pixels` writes them through a results-store
   run, computing them together so each tile is clustered once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize

import galclust.pixels.options as _defaults
from galclust.errors import InputError
from galclust.pixels.composites import composites_to_frame
from galclust.pixels.core import check_estimator_options, cluster_galaxy
from galclust.pixels.flags import PixelFlag, flag_names
from galclust.pixels.options import check_cone, check_options, check_selection_numbers
from galclust.pixels.rows import (
    SKY_MARGIN,
    component_rows,
    decode_fractions,
    fraction_rows,
    rescaled_stamp,
)
from galclust.pixels.selection import footprint_from_segmentation, segment_bboxes
from galclust.pixels.skynoise import sky_from_segmentation
from galclust.products import (
    COMPONENTS_SCHEMA,
    COMPOSITES_SCHEMA,
    FRACTIONS_SCHEMA,
    GALAXIES_SCHEMA,
    SCHEMAS,
    STAMPS_SCHEMA,
    empty_frame,
)
from galclust.progress import Progress, compute_counting
from galclust.sky import in_cone

__all__ = [
    "COMPOSITES_SCHEMA",
    "GALAXIES_SCHEMA",
    "SCHEMAS",
    "STAMPS_SCHEMA",
    "PixelTables",
    "cluster_tile",
    "decode_fractions",
    "decode_labels",
    "empty_frame",
    "pixel_tables",
    "run_pixels",
    "segment_boxes",
]

#: Key prefix of the per-tile clustering tasks (their progress is counted in galaxies).
TILE_TASK = "cluster_tile"
def _frame(rows: list[dict[str, Any]], schema: Mapping[str, Any]) -> pd.DataFrame:
    if not rows:
        return empty_frame(schema)
    return pd.DataFrame(rows, columns=list(schema)).astype(dict(schema))


def decode_labels(labels: bytes, ny: int, nx: int) -> np.ndarray:
    """The (ny, nx) int16 label stamp stored in a ``stamps`` row."""
    return np.frombuffer(labels, dtype="<i2").reshape(int(ny), int(nx))


# --------------------------------------------------------------------------- validation
def _check_cube(cube: Any) -> None:
    if not isinstance(cube, xr.Dataset):
        raise InputError(f"cube must be an xarray.Dataset (galclust.open_cube); got "
                         f"{type(cube).__name__}.")
    for name, dims in (("sci", ("band", "y", "x")), ("err", ("band", "y", "x")),
                       ("seg", ("y", "x"))):
        if name not in cube:
            raise InputError(f"cube has no variable {name!r}; a cube holds sci, err (band, y, "
                             "x) and seg (y, x): open it with galclust.open_cube.")
        if tuple(cube[name].dims) != dims:
            raise InputError(f"cube[{name!r}] has dims {cube[name].dims}; expected {dims}.")
    if "wavelength" not in cube.coords:
        raise InputError("cube has no 'wavelength' coordinate (band pivots in micron).")


def _select(catalog: pd.DataFrame, ids: Sequence[int] | None, box: Sequence[float] | None,
            cone: Sequence[float] | None, z_range: Sequence[float] | None) -> pd.DataFrame:
    if not isinstance(catalog, pd.DataFrame):
        raise InputError(f"catalog must be a pandas DataFrame; got {type(catalog).__name__}.")
    missing = [c for c in ("id", "x", "y") if c not in catalog.columns]
    if missing:
        raise InputError(f"catalog lacks column(s) {missing}; it needs id, x, y (and ra, dec, "
                         "z for sky and redshift selections): use galclust.store.cube."
                         "open_catalog.")
    cat = catalog.copy()
    for col in ("ra", "dec", "z"):
        if col not in cat.columns:
            cat[col] = np.nan
    cat["id"] = cat["id"].astype("int64")
    keep = np.ones(len(cat), bool)
    if ids is not None:
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        absent = np.setdiff1d(wanted, cat["id"].to_numpy())
        if absent.size:
            raise InputError(f"ids not in the catalog: {absent[:10].tolist()}"
                             f"{' ...' if absent.size > 10 else ''}; check the ids.")
        keep &= np.isin(cat["id"].to_numpy(), wanted)
    if box is not None:
        if len(box) != 4:
            raise InputError(f"box={box!r} must be (x_min, x_max, y_min, y_max) in pixels.")
        x0, x1, y0, y1 = (float(v) for v in box)
        keep &= cat["x"].between(x0, x1, inclusive="left").to_numpy() & \
            cat["y"].between(y0, y1, inclusive="left").to_numpy()
    if cone is not None:
        cone = check_cone(cone)
        if cat["ra"].isna().all():
            raise InputError("cone selection needs the catalog's ra and dec columns.")
        keep &= in_cone(cat["ra"].to_numpy(float), cat["dec"].to_numpy(float), cone)
    if z_range is not None:
        if len(z_range) != 2:
            raise InputError(f"z_range={z_range!r} must be (z_min, z_max).")
        keep &= cat["z"].between(float(z_range[0]), float(z_range[1])).to_numpy()
    return cat[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- boxes
def _block_boxes(block: np.ndarray, y_offset: int, x_offset: int) -> pd.DataFrame:
    return segment_bboxes(np.asarray(block), y_offset=y_offset, x_offset=x_offset)


def _merge_boxes(*parts: pd.DataFrame) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True)
    return df.groupby("id", sort=True).agg(y0=("y0", "min"), y1=("y1", "max"), x0=("x0", "min"),
                                           x1=("x1", "max"),
                                           n_pixels=("n_pixels", "sum")).reset_index()


def segment_boxes(seg: Any, *, scheduler: Any = None) -> pd.DataFrame:
    """Bounding box and pixel count of every segment of a (dask-backed) segmentation map.

    One task per chunk (:func:`~galclust.pixels.selection.segment_bboxes`),
    merged per id; computed now.

    Returns
    -------
    pandas.DataFrame
        ``id, y0, y1, x0, x1, n_pixels`` (half-open boxes in mosaic pixels).
    """
    data = seg.data if isinstance(seg, xr.DataArray) else seg
    if not hasattr(data, "to_delayed"):
        return segment_bboxes(np.asarray(data))
    y_starts = np.r_[0, np.cumsum(data.chunks[0])[:-1]]
    x_starts = np.r_[0, np.cumsum(data.chunks[1])[:-1]]
    blocks = data.to_delayed()
    parts = [dask.delayed(_block_boxes)(blocks[i, j], int(y_starts[i]), int(x_starts[j]))
             for i in range(blocks.shape[0]) for j in range(blocks.shape[1])]
    (merged,) = dask.compute(dask.delayed(_merge_boxes)(*parts), scheduler=scheduler)
    return merged


# --------------------------------------------------------------------------- per tile
def _galaxy_row(gal: Mapping[str, Any], tile: int, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": int(gal["id"]), "ra": gal["ra"], "dec": gal["dec"], "x": gal["x"],
            "y": gal["y"], "z": gal["z"], "tile": tile, "n_pixels": 0, "n_clusters": 0,
            "method": params["method"], "normalize": params["normalize"],
            "metric": params["metric"], "criterion": "none", "score": np.nan,
            "chi2_single": np.nan, "flags": 0, "flag_names": "", "used_bands": "",
            "dropped_bands": "", "err_scale": "", "n_bins": 0, "error": ""}


def cluster_tile(sci: np.ndarray, err: np.ndarray, seg: np.ndarray, members: pd.DataFrame,
                 origin: tuple[int, int], wavelength: np.ndarray, bands: Sequence[str],
                 tile: int, params: Mapping[str, Any], options: Mapping[str, Any],
                 redshifts: pd.Series | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cluster every galaxy of one tile (the body of one Dask task).

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
        The tile's padded region.
    seg : ndarray, (y, x)
    members : pandas.DataFrame
        The tile's galaxies: ``id, ra, dec, x, y, z`` and their stamp boxes
        ``sy0, sy1, sx0, sx1`` in mosaic pixels.
    origin : (int, int)
        Mosaic (y, x) of the region's first pixel.
    wavelength, bands
        Band pivots and names.
    tile : int
    params : mapping
        ``method, normalize, metric, n_clusters, random_state, snr_threshold,
        min_pixels, z_tolerance``, and optionally ``unmix``, ``bin_snr``,
        ``rescale_errors`` (default True: errors rescaled from the sky within
        :data:`SKY_MARGIN` of each stamp, outside every segment grown by 2 px)
        and ``psf_unmatched`` (flag every galaxy ``PSF_UNMATCHED``).
    options : mapping
        Extra :class:`~galclust.pixels.estimator.PixelClusterer` options.
    redshifts : pandas.Series, optional
        id -> z, for neighbours at the same redshift.

    Returns
    -------
    galaxies, composites, stamps, fractions, components : pandas.DataFrame
        Following :data:`SCHEMAS` (the last two empty unless ``unmix``).
    """
    sci, err, seg = np.asarray(sci), np.asarray(err), np.asarray(seg)
    oy, ox = origin
    g_rows, c_parts, s_rows, f_rows, u_parts = [], [], [], [], []
    kw = {k: params[k] for k in ("method", "normalize", "metric", "n_clusters",
                                 "random_state", "snr_threshold", "min_pixels")}
    kw.update(unmix=params.get("unmix", False), bin_snr=params.get("bin_snr"))
    extra = PixelFlag(PixelFlag.PSF_UNMATCHED if params.get("psf_unmatched") else 0)
    sky_all = sky_from_segmentation(seg) if params.get("rescale_errors", True) else None
    for gal in members.to_dict("records"):
        row = _galaxy_row(gal, tile, params)
        y0, y1 = int(gal["sy0"]) - oy, int(gal["sy1"]) - oy
        x0, x1 = int(gal["sx0"]) - ox, int(gal["sx1"]) - ox
        try:
            foot = footprint_from_segmentation(
                seg[y0:y1, x0:x1], int(gal["id"]), redshifts=redshifts,
                z_tolerance=params["z_tolerance"])
            e, scale, sky_ok, corr = rescaled_stamp(sci, err, sky_all, (y0, y1, x0, x1), bands,
                                                    correlation=bool(kw["unmix"]))
            res = cluster_galaxy(sci[:, y0:y1, x0:x1], e, foot, wavelength, bands=bands,
                                 noise_correlation=corr, **kw, **options)
        except Exception as exc:  # one pathological galaxy must not fail the tile
            row.update(flags=int(PixelFlag.FAILED), flag_names="FAILED",
                       error=f"{type(exc).__name__}: {exc}")
            g_rows.append(row)
            continue
        res.error_scale = scale
        res.flags |= extra | (PixelFlag(0) if sky_ok else PixelFlag.SKY_TOO_SMALL)
        row.update(res.summary(), dropped_bands=";".join(
            f"{b}: {why}" for b, why in res.dropped_bands.items()))
        g_rows.append(row)
        comp = composites_to_frame(res.composites)
        comp.insert(0, "id", int(gal["id"]))
        c_parts.append(comp)
        box = {"id": int(gal["id"]), "y0": y0 + oy, "x0": x0 + ox, "ny": y1 - y0, "nx": x1 - x0}
        s_rows.append({**box, "labels": res.labels.astype("<i2").tobytes()})
        if res.fractions is not None:
            f_rows.extend(fraction_rows(box, res))
            u_parts.append(component_rows(int(gal["id"]), res.components))
    comps = (pd.concat(c_parts, ignore_index=True)[list(COMPOSITES_SCHEMA)].astype(
        COMPOSITES_SCHEMA) if c_parts else empty_frame(COMPOSITES_SCHEMA))
    unmixed = (pd.concat(u_parts, ignore_index=True).astype(COMPONENTS_SCHEMA)
               if u_parts else empty_frame(COMPONENTS_SCHEMA))
    return (_frame(g_rows, GALAXIES_SCHEMA), comps, _frame(s_rows, STAMPS_SCHEMA),
            _frame(f_rows, FRACTIONS_SCHEMA), unmixed)


# --------------------------------------------------------------------------- graph
@dataclass(frozen=True)
class PixelTables:
    """The three lazy output tables of :func:`pixel_tables`.

    Attributes
    ----------
    galaxies, composites, stamps, fractions, components : dask.dataframe.DataFrame
    n_galaxies : int
        Selected galaxies (rows of ``galaxies``).
    n_tiles : int
        Tile tasks.
    """

    galaxies: Any
    composites: Any
    stamps: Any
    fractions: Any
    components: Any
    n_galaxies: int
    n_tiles: int
    weights: dict[str, int] = field(default_factory=dict)

    def items(self) -> list[tuple[str, Any]]:
        """``[(name, dask DataFrame), ...]`` in :data:`SCHEMAS` order."""
        return [(name, getattr(self, name)) for name in SCHEMAS]

    def compute(self, **kwargs: Any) -> tuple[pd.DataFrame, ...]:
        """Compute the five tables together (each tile clustered once), in :data:`SCHEMAS` order."""
        return dask.compute(*(getattr(self, name) for name in SCHEMAS), **kwargs)


def _edges(chunks: Sequence[int]) -> np.ndarray:
    return np.r_[0, np.cumsum(chunks)]


def pixel_tables(cube: xr.Dataset, catalog: pd.DataFrame, *, ids: Sequence[int] | None = None,
                 box: Sequence[float] | None = None, cone: Sequence[float] | None = None,
                 z_range: Sequence[float] | None = None,
                 normalize: str = _defaults.DEFAULT_NORMALIZE,
                 metric: str = _defaults.DEFAULT_METRIC, method: str = _defaults.DEFAULT_METHOD,
                 n_clusters: Any = "auto", random_state: int = 0,
                 snr_threshold: float = _defaults.DEFAULT_SNR_THRESHOLD,
                 min_pixels: int = _defaults.DEFAULT_MIN_PIXELS,
                 z_tolerance: float | None = None, margin: int = 2,
                 unmix: bool | str = False, bin_snr: float | None = None,
                 rescale_errors: bool = True, psf_unmatched: bool = False,
                 boxes: pd.DataFrame | None = None, scheduler: Any = None,
                 **options: Any) -> PixelTables:
    """Lazy tables of the pixel clustering of the selected galaxies of a cube.

    Parameters
    ----------
    cube : xarray.Dataset
        ``sci``, ``err`` (band, y, x), ``seg`` (y, x), coordinate ``wavelength``.
    catalog : pandas.DataFrame
        ``id, x, y`` (mosaic pixels) and optionally ``ra, dec, z``.
    ids : sequence of int, optional
        Only these galaxies (each must be in the catalog and the segmentation).
    box : (x_min, x_max, y_min, y_max), optional
        Only galaxies centred in this pixel box.
    cone : (ra, dec, radius), optional
        Only galaxies within ``radius`` arcsec of (ra, dec) (degrees).
    z_range : (z_min, z_max), optional
        Only galaxies with a redshift in this range.
    normalize, metric, method, n_clusters, random_state, snr_threshold, min_pixels
        As :func:`~galclust.pixels.core.cluster_galaxy`.
    z_tolerance : float, optional
        Add touching segments within this redshift of the galaxy (the part of
        them inside the galaxy's stamp: its segment box plus ``margin``).
    margin : int
        Pixels added around each galaxy's segment box for its stamp.
    unmix, bin_snr
        As :func:`~galclust.pixels.core.cluster_galaxy` (fraction maps and
        component SEDs go to the ``fractions`` and ``components`` tables).
    rescale_errors : bool
        Rescale each galaxy's errors per band from the empty sky within
        :data:`SKY_MARGIN` pixels of its stamp (the factors are the
        ``err_scale`` column).
    psf_unmatched : bool
        The cube's bands are not PSF-matched: flag every galaxy
        ``PSF_UNMATCHED``.
    boxes : pandas.DataFrame, optional
        Precomputed :func:`segment_boxes` (else computed now, one task per chunk).
    scheduler : optional
        Dask scheduler or ``distributed.Client`` for the box computation.
    **options
        Extra :class:`~galclust.pixels.estimator.PixelClusterer` options.

    Returns
    -------
    PixelTables

    Raises
    ------
    InputError
        A malformed cube or catalog, a bad selection or option, or ``ids``
        absent from the segmentation map.
    """
    _check_cube(cube)
    check_selection_numbers(snr_threshold=snr_threshold, min_pixels=min_pixels)
    check_options(method=method, normalize=normalize, metric=metric,
                  linkage=options.get("linkage", "ward"), n_clusters=n_clusters,
                  k_range=options.get("k_range", (1, 6)))
    check_estimator_options(options)
    if z_tolerance is not None and "z" not in catalog.columns:
        raise InputError("z_tolerance needs a 'z' column in the catalog.")
    sel = _select(catalog, ids, box, cone, z_range)
    boxes = segment_boxes(cube["seg"], scheduler=scheduler) if boxes is None else boxes
    sel = sel.merge(boxes[["id", "y0", "y1", "x0", "x1"]], on="id", how="left")
    absent = sel["y0"].isna().to_numpy()
    if ids is not None and absent.any():
        raise InputError(f"galaxy ids absent from the segmentation map: "
                         f"{sel.loc[absent, 'id'].head(10).tolist()}; they have no pixels.")
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    params = {"method": method, "normalize": normalize, "metric": metric,
              "n_clusters": n_clusters, "random_state": random_state,
              "snr_threshold": snr_threshold, "min_pixels": min_pixels,
              "z_tolerance": z_tolerance, "unmix": unmix, "bin_snr": bin_snr,
              "rescale_errors": bool(rescale_errors), "psf_unmatched": bool(psf_unmatched)}
    chunks = cube["sci"].data.chunks if hasattr(cube["sci"].data, "chunks") else (
        (cube.sizes["band"],), (ny,), (nx,))
    y_edges, x_edges = _edges(chunks[1]), _edges(chunks[2])
    found = sel[~absent].copy()
    for c in ("y0", "y1", "x0", "x1"):
        found[c] = found[c].astype(np.int64)
    cy = np.where(np.isfinite(found["y"]), found["y"], (found["y0"] + found["y1"] - 1) / 2)
    cx = np.where(np.isfinite(found["x"]), found["x"], (found["x0"] + found["x1"] - 1) / 2)
    ty = np.clip(np.searchsorted(y_edges, np.round(cy), side="right") - 1, 0, len(chunks[1]) - 1)
    tx = np.clip(np.searchsorted(x_edges, np.round(cx), side="right") - 1, 0, len(chunks[2]) - 1)
    found["tile"] = (ty * len(chunks[2]) + tx).astype(np.int64)
    found["sy0"] = np.maximum(found["y0"] - margin, 0)
    found["sy1"] = np.minimum(found["y1"] + margin, ny)
    found["sx0"] = np.maximum(found["x0"] - margin, 0)
    found["sx1"] = np.minimum(found["x1"] + margin, nx)
    wavelength = np.asarray(cube["wavelength"].values, dtype=np.float64)
    bands = [str(b) for b in cube["band"].values] if "band" in cube.coords else None
    redshifts = None
    if z_tolerance is not None:
        redshifts = dask.delayed(catalog.set_index(catalog["id"].astype("int64"))["z"],
                                 pure=True)
    cluster = dask.delayed(cluster_tile, nout=len(SCHEMAS), pure=True)
    parts: dict[str, list[Any]] = {name: [] for name in SCHEMAS}
    weights: dict[str, int] = {}  # tile task key -> galaxies in it (for progress)
    pad = SKY_MARGIN if rescale_errors else 0  # the sky around each stamp
    for tile, members in found.groupby("tile", sort=True):
        y0, y1 = max(int(members["sy0"].min()) - pad, 0), min(int(members["sy1"].max()) + pad, ny)
        x0, x1 = max(int(members["sx0"].min()) - pad, 0), min(int(members["sx1"].max()) + pad, nx)
        region = cube.isel(y=slice(y0, y1), x=slice(x0, x1))
        cols = ["id", "ra", "dec", "x", "y", "z", "sy0", "sy1", "sx0", "sx1"]
        args = (region["sci"].data, region["err"].data, region["seg"].data,
                members[cols].reset_index(drop=True), (y0, x0), wavelength, bands,
                int(tile), params, dict(options), redshifts)
        key = f"{TILE_TASK}-{tokenize(*args)}"
        weights[key] = len(members)
        out = cluster(*args, dask_key_name=key)
        for name, part in zip(SCHEMAS, out, strict=True):
            parts[name].append(part)
    n_tiles = len(parts["galaxies"])
    if absent.any():  # catalog galaxies without pixels: flagged rows, no clustering
        rows = [{**_galaxy_row(g, -1, params), "flags": int(PixelFlag.NOT_IN_SEGMENTATION),
                 "flag_names": ",".join(flag_names(PixelFlag.NOT_IN_SEGMENTATION))}
                for g in sel[absent].to_dict("records")]
        parts["galaxies"].append(dask.delayed(_frame(rows, GALAXIES_SCHEMA)))
    frames = {}
    for name, schema in SCHEMAS.items():
        meta = empty_frame(schema)
        frames[name] = (dd.from_delayed(parts[name], meta=meta, verify_meta=False)
                        if parts[name] else dd.from_pandas(meta, npartitions=1))
    return PixelTables(**frames, n_galaxies=len(sel), n_tiles=n_tiles, weights=weights)


def run_pixels(cube: xr.Dataset, catalog: pd.DataFrame, run: Any, *, client: Any = None,
               prefix: str = "pixels", **kwargs: Any) -> dict[str, Any]:
    """Cluster the selected galaxies of a cube and write the tables through a results run.

    Parameters
    ----------
    cube, catalog
        As :func:`pixel_tables`.
    run : galclust.store.results.RunWriter
        Receives ``run.write_table(f"{prefix}/{name}", ddf, compute=False)``
        for ``galaxies``, ``composites`` and ``stamps``; the writes are then
        computed together (each tile clustered once). The caller publishes.
    client : distributed.Client, optional
        Where to compute (default: the current Dask scheduler).
    prefix : str
        Product name prefix.
    **kwargs
        Passed to :func:`pixel_tables` (selection and clustering options).

    Returns
    -------
    dict
        ``n_galaxies``, ``n_tiles`` and the ``products`` written.
    """
    tables = pixel_tables(cube, catalog, scheduler=client, **kwargs)
    names = [f"{prefix}/{name}" for name, _ in tables.items()]
    writes = [run.write_table(n, ddf, compute=False) for n, (_, ddf) in
              zip(names, tables.items(), strict=True)]
    with Progress(tables.n_galaxies, what="galaxies", desc="pixel clustering") as progress:
        compute_counting([w for w in writes if w is not None], tables.weights, progress,
                         client=client, prefix=TILE_TASK)
        progress.update(progress.total - progress.done)  # galaxies without pixels
    return {"n_galaxies": tables.n_galaxies, "n_tiles": tables.n_tiles, "products": names}
