"""Pictures of a whole run, written as PNG files (what the CLI's ``--plots`` makes)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["write_embedding_pictures", "write_label_maps"]


def write_label_maps(cube: xr.Dataset, results: Any, outdir: str, *, n: int = 12,
                     ids: list[int] | None = None) -> list[str]:
    """Label map + colour image + composite SEDs of galaxies of a published run.

    Parameters
    ----------
    cube : xarray.Dataset
        The cube the run clustered.
    results : galclust.store.results.Results
        A published run holding ``pixels/galaxies``, ``pixels/stamps`` and
        ``pixels/composites``.
    outdir : str
        Folder for the PNG files (``galaxy-<id>.png``).
    n : int
        Without ``ids``: the ``n`` clustered galaxies with the most pixels.
    ids : list of int, optional
        These galaxies instead.

    Returns
    -------
    list of str
        The files written.
    """
    import matplotlib.pyplot as plt

    from galclust.pixels.survey import decode_labels
    from galclust.plots.catalog import save_figure
    from galclust.plots.pixels import plot_composites, plot_labels

    gal = results.table("pixels/galaxies")
    if ids is None:
        ids = gal[gal["n_clusters"] > 0].nlargest(n, "n_pixels")["id"].tolist()
    stamps = results.table("pixels/stamps", filters=[("id", "in", list(ids))])
    comps = results.table("pixels/composites", filters=[("id", "in", list(ids))])
    os.makedirs(outdir, exist_ok=True)
    wl = cube["wavelength"].values
    paths = []
    for row in stamps.itertuples():
        labels = decode_labels(row.labels, row.ny, row.nx)
        sci = cube["sci"][:, row.y0:row.y0 + row.ny, row.x0:row.x0 + row.nx].values
        fig = plot_labels(sci, labels, wavelength=wl, title=f"galaxy {row.id}")
        path = save_figure(fig, os.path.join(outdir, f"galaxy-{row.id}-labels.png"))
        paths.append(path)
        fig = plot_composites(comps[comps["id"] == row.id])
        paths.append(save_figure(fig, os.path.join(outdir, f"galaxy-{row.id}-seds.png")))
        plt.close("all")
    return paths


def write_embedding_pictures(table: pd.DataFrame, labels: pd.DataFrame | None,
                             cube: xr.Dataset, catalog: pd.DataFrame, outdir: str, *,
                             size: int = 51, grid: int = 30) -> list[str]:
    """The embedding coloured by component, and the "imaged" embedding, as PNG.

    Only the cutouts drawn on the imaged embedding (one per grid cell) are
    computed, never the whole catalog's.

    Returns
    -------
    list of str
        ``embedding.png`` and ``embedding-imaged.png`` in ``outdir``.
    """
    import matplotlib.pyplot as plt

    from galclust.catalog.survey import survey_cutouts
    from galclust.plots.catalog import plot_embedding, plot_imaged_embedding, save_figure

    os.makedirs(outdir, exist_ok=True)
    paths = [save_figure(plot_embedding(table, labels),
                         os.path.join(outdir, "embedding.png"))]
    cut = survey_cutouts(cube, catalog[catalog["id"].isin(table["id"])], size=size)
    fig = plot_imaged_embedding(table, cut.stamps, np.asarray(cut.ids), grid=grid)
    paths.append(save_figure(fig, os.path.join(outdir, "embedding-imaged.png")))
    plt.close("all")
    return paths
