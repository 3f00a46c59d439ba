"""Pictures of a whole run, written as PNG files (what the CLI's ``--plots`` makes)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from galclust.catalog import defaults
from galclust.errors import InputError
from galclust.products import COMPOSITES, GALAXIES, STAMPS

__all__ = ["write_embedding_pictures", "write_label_maps"]


def _stamp(cube: xr.Dataset, stamp: Any, method: str, params: dict[str, Any],
           redshifts: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A galaxy's cutout (its label box padded for context), its labels on the cutout
    and, for a density method, the pixels that were clustered (noise is −1 inside)."""
    from galclust.pixels.options import DENSITY_METHODS
    from galclust.pixels.selection import select_galaxy
    from galclust.pixels.survey import decode_labels

    sy, sx, ny, nx = int(stamp.y0), int(stamp.x0), int(stamp.ny), int(stamp.nx)
    pad = max(4, max(ny, nx) // 5)
    y0, x0 = max(sy - pad, 0), max(sx - pad, 0)
    box = {"y": slice(y0, min(sy + ny + pad, cube.sizes["y"])),
           "x": slice(x0, min(sx + nx + pad, cube.sizes["x"]))}
    sci = cube["sci"].isel(box).values
    labels = np.full(sci.shape[1:], -1, dtype=np.int16)
    labels[sy - y0:sy - y0 + ny, sx - x0:sx - x0 + nx] = decode_labels(stamp.labels, ny, nx)
    if method not in DENSITY_METHODS:  # every selected pixel has a cluster: no noise
        return sci, labels, None
    z_tol = params.get("z_tolerance")
    try:  # the selection again, as the run made it
        sel = select_galaxy(sci, cube["err"].isel(box).values, cube["seg"].isel(box).values,
                            int(stamp.id), snr_threshold=float(params.get("snr_threshold", 3.0)),
                            min_band_coverage=float(params.get("min_band_coverage", 0.5)),
                            redshifts=redshifts if z_tol is not None else None,
                            z_tolerance=z_tol)
    except InputError:  # e.g. the id is not in this cube's segmentation: noise unknown
        return sci, labels, None
    return sci, labels, sel.mask | (labels >= 0)


def _names(gid: int, galaxy: pd.Series, params: dict[str, Any],
           run_id: str) -> tuple[str, str]:
    """File stem and title of a galaxy's pictures: method, options, k and run."""
    from galclust.plots.naming import PIXEL_OPTIONS, picture_stem, picture_title, pixel_options

    src = {k: params.get(k) for k in PIXEL_OPTIONS} | {
        k: galaxy[k] for k in ("method", "normalize", "metric")
        if k in galaxy.index and pd.notna(galaxy[k])}  # what the galaxy was clustered with
    asked, found = params.get("n_clusters"), int(galaxy["n_clusters"])
    stem = picture_stem(f"galaxy-{gid}", run_id=run_id,
                        options=pixel_options(src, n_clusters=found if asked is None else asked))
    k_text = found if asked in (None, found) else f"{found} ({asked})"
    return stem, picture_title(f"galaxy {gid}", options=pixel_options(src, n_clusters=k_text),
                               run_id=run_id)


def write_label_maps(cube: xr.Dataset, results: Any, outdir: str, *, n: int = 12,
                     ids: list[int] | None = None,
                     pixel_scale: float | None = None) -> list[str]:
    """Cluster contours over the colour image, and normalised composite SEDs, of a run's galaxies.

    Two PNG files per galaxy, named after the galaxy, the method and options
    and the run (:func:`~galclust.plots.naming.picture_stem`), so runs with
    different methods never overwrite each other:
    ``galaxy-1042_kmeans-l2-euclidean-kauto_run-<run id>_labels.png`` and
    ``..._seds.png``. Titles say the same, with the k found.

    Parameters
    ----------
    cube : xarray.Dataset
        The cube the run clustered.
    results : galclust.store.results.Results
        A published run holding ``pixels/galaxies``, ``pixels/stamps`` and
        ``pixels/composites``; its ``run_id`` and pixel options (``params["pixels"]``
        or ``params["settings"]["pixels"]``) name the files.
    outdir : str
        Folder for the PNG files.
    n : int
        Without ``ids``: the ``n`` clustered galaxies with the most pixels.
    ids : list of int, optional
        These galaxies instead.
    pixel_scale : float, optional
        Arcsec per pixel for the scale bar (default: the cube's ``pixel_scale``).

    Returns
    -------
    list of str
        The files written.
    """
    import matplotlib.pyplot as plt

    from galclust.plots.catalog import save_figure
    from galclust.plots.pixels import plot_labels
    from galclust.plots.seds import pixel_spread, plot_composites

    gal = results.table(GALAXIES)
    if ids is None:
        ids = gal[gal["n_clusters"] > 0].nlargest(n, "n_pixels")["id"].tolist()
    stamps = results.table(STAMPS, filters=[("id", "in", list(ids))])
    comps = results.table(COMPOSITES, filters=[("id", "in", list(ids))])
    os.makedirs(outdir, exist_ok=True)
    params = results.params  # the run's pixel options, as the CLI or the run settings store them
    params = dict(params.get("pixels") or (params.get("settings") or {}).get("pixels") or {})
    scale = cube.attrs.get("pixel_scale") if pixel_scale is None else pixel_scale
    wl, names = cube["wavelength"].values, [str(b) for b in cube["band"].values]
    unit = cube["sci"].attrs.get("units") or cube.attrs.get("unit")
    redshifts = gal.drop_duplicates("id").set_index("id")["z"]
    paths = []
    for row in stamps.itertuples():
        galaxy = gal[gal["id"] == row.id].iloc[0]
        sci, labels, foot = _stamp(cube, row, str(galaxy["method"]), params, redshifts)
        stem, title = _names(int(row.id), galaxy, params, results.run_id)
        fig = plot_labels(sci, labels, wavelength=wl, bands=names, pixel_scale=scale,
                          footprint=foot, title=title)
        paths.append(save_figure(fig, os.path.join(outdir, f"{stem}_labels.png")))
        comp = comps[comps["id"] == row.id]
        fig = plot_composites(comp, spread=pixel_spread(sci, labels, comp, wavelength=wl),
                              unit=unit, title=title)
        paths.append(save_figure(fig, os.path.join(outdir, f"{stem}_seds.png")))
        plt.close("all")
    return paths


def write_embedding_pictures(table: pd.DataFrame, labels: pd.DataFrame | None,
                             cube: xr.Dataset, catalog: pd.DataFrame, outdir: str, *,
                             size: int = defaults.CUTOUT_SIZE, grid: int = 30, run_id: str | None = None,
                             options: dict[str, Any] | None = None) -> list[str]:
    """The embedding coloured by component, and the "imaged" embedding, as PNG.

    Only the cutouts drawn on the imaged embedding (one per grid cell) are
    computed, never the whole catalog's.

    Parameters
    ----------
    table : DataFrame
        Per-source table of the flagging run (``id``, map columns, ...).
    labels : DataFrame, optional
        Labelled sources (see :func:`~galclust.plots.catalog.plot_embedding`).
    cube : xarray.Dataset
    catalog : DataFrame
    outdir : str
    size : int
        Cutout side (px).
    grid : int
        Cells per side of the imaged embedding.
    run_id : str, optional
        The run, named in the titles and file names.
    options : dict, optional
        The options that made the map, in the order to name them (e.g.
        ``{"embedding": "umap", "model": "combined"}``), in titles and file names.

    Returns
    -------
    list of str
        ``embedding.png`` and ``embedding-imaged.png`` in ``outdir`` (with the
        options and run when given, e.g. ``embedding_umap-combined_run-<id>.png``).
    """
    import matplotlib.pyplot as plt

    from galclust.catalog.survey import survey_cutouts
    from galclust.plots.catalog import plot_embedding, plot_imaged_embedding, save_figure
    from galclust.plots.naming import picture_stem

    os.makedirs(outdir, exist_ok=True)
    tag = {"options": options, "run_id": run_id}
    paths = [save_figure(plot_embedding(table, labels, **tag),
                         os.path.join(outdir, picture_stem("embedding", **tag) + ".png"))]
    cut = survey_cutouts(cube, catalog[catalog["id"].isin(table["id"])], size=size)
    fig = plot_imaged_embedding(table, cut.stamps, np.asarray(cut.ids), grid=grid, **tag)
    paths.append(save_figure(fig, os.path.join(outdir,
                                               picture_stem("embedding-imaged", **tag) + ".png")))
    plt.close("all")
    return paths
