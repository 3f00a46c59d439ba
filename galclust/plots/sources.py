"""Pictures of sources and their shapes: segmentation contours over the colour image, and
the Gini-M20 diagram of a survey.

The colour image is the asinh composite of :func:`galclust.plots.pixels.colour_image`
(red = reddest band). The Gini-M20 diagram draws the Lotz, Primack & Madau
(2008) lines that separate mergers, early types (E/S0/Sa) and late types
(Sb-Ir): ``G = -0.14 M20 + 0.33`` and ``G = 0.14 M20 + 0.80``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from galclust.errors import InputError
from galclust.plots._style import halo, wrap_title
from galclust.plots.naming import picture_stem, picture_title

__all__ = ["plot_gini_m20", "plot_segmentation", "save_source_figures"]


def _title(subject: str, run_id: str | None, options: Mapping[str, Any] | None) -> str:
    return wrap_title(picture_title(subject, options=options, run_id=run_id), 70)


def plot_segmentation(sci: np.ndarray, seg: np.ndarray, *, wavelength: Sequence[float] | None
                      = None, origin: tuple[int, int] = (0, 0), sources: pd.DataFrame | None
                      = None, label: int = 40, run_id: str | None = None,
                      options: Mapping[str, Any] | None = None, subject: str = "segmentation",
                      ax: Any = None) -> Figure:
    """Segment outlines over the colour image of a region.

    Parameters
    ----------
    sci : ndarray, shape (band, y, x)
        The region's fluxes.
    seg : ndarray, shape (y, x)
        Its segmentation map (0 = sky).
    wavelength : sequence of float, optional
        Band wavelengths (orders the colour channels).
    origin : (int, int)
        Mosaic pixel (y, x) of the region's first pixel (axes are in mosaic pixels).
    sources : DataFrame, optional
        ``id, x, y`` (mosaic pixels): the ``label`` brightest are marked with
        their ids.
    """
    from matplotlib.colors import ListedColormap

    from galclust.plots.pixels import colour_image

    sci, seg = np.asarray(sci, float), np.asarray(seg)
    if sci.ndim != 3 or sci.shape[1:] != seg.shape:
        raise InputError(f"sci {sci.shape} and seg {seg.shape}: give a (band, y, x) region and "
                         "its (y, x) segmentation map.")
    if ax is None:
        fig = Figure(figsize=(7.5, 7.5 * seg.shape[0] / max(seg.shape[1], 1) + 0.6))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    oy, ox = origin
    extent = (ox - 0.5, ox + seg.shape[1] - 0.5, oy - 0.5, oy + seg.shape[0] - 0.5)
    ax.imshow(colour_image(sci, wavelength=wavelength), origin="lower", extent=extent,
              interpolation="nearest")
    edge = np.zeros(seg.shape, bool)  # a pixel whose neighbour holds another id
    edge[1:, :] |= seg[1:, :] != seg[:-1, :]
    edge[:-1, :] |= seg[1:, :] != seg[:-1, :]
    edge[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    edge[:, :-1] |= seg[:, 1:] != seg[:, :-1]
    edge &= seg > 0
    ax.imshow(np.where(edge, 1.0, np.nan), origin="lower", extent=extent,
              cmap=ListedColormap(["#ffd21f"]), interpolation="nearest", alpha=0.9)
    n = int(len(np.unique(seg[seg > 0])))
    if sources is not None and len(sources) and label:
        inside = sources[(sources["x"] >= ox) & (sources["x"] < ox + seg.shape[1])
                         & (sources["y"] >= oy) & (sources["y"] < oy + seg.shape[0])]
        order = "snr" if "snr" in inside else "id"
        for r in inside.sort_values(order, ascending=order == "id").head(label).itertuples():
            ax.annotate(str(int(r.id)), (r.x, r.y), color="white", fontsize=7,
                        ha="center", va="center", path_effects=halo(2.0))
    ax.set_xlabel("x (mosaic pixel)")
    ax.set_ylabel("y (mosaic pixel)")
    ax.set_title(_title(f"{subject}: {n} segments", run_id, options), fontsize="medium")
    return fig


def plot_gini_m20(table: pd.DataFrame, *, level: str = "galaxies", run_id: str | None = None,
                  options: Mapping[str, Any] | None = None, ax: Any = None) -> Figure:
    """Gini against M20 of every unflagged row, with the Lotz et al. (2008) class lines.

    Parameters
    ----------
    table : DataFrame
        A morphology table (``gini``, ``m20``, ``flag``; ``asymmetry`` colours
        the points when present).
    level : str
        What the rows are (galaxies, detections, clusters), for the title.
    """
    good = table[(table["flag"] == 0) & np.isfinite(table["gini"]) & np.isfinite(table["m20"])]
    if ax is None:
        fig = Figure(figsize=(6.4, 5.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    colour = good["asymmetry"].clip(-0.05, 0.6) if "asymmetry" in good else None
    pts = ax.scatter(good["m20"], good["gini"], c=colour, s=10, cmap="viridis",
                     edgecolors="none")
    if colour is not None and len(good):
        fig.colorbar(pts, ax=ax, label="asymmetry A")
    m = np.linspace(-3.0, 0.0, 50)
    ax.plot(m, -0.14 * m + 0.33, "k--", lw=1, label="mergers above (Lotz+08)")
    edge = m <= -1.68  # the E/S0/Sa - Sb/Ir line, below the merger line
    ax.plot(m[edge], 0.14 * m[edge] + 0.80, "k:", lw=1, label="E/S0/Sa | Sb-Ir")
    ax.set_xlim(0.0, -3.0)  # M20 conventionally decreases to the right
    ax.set_ylim(0.2, 0.8)
    ax.set_xlabel(r"$M_{20}$")
    ax.set_ylabel("Gini")
    ax.legend(loc="lower left", fontsize="small", frameon=False)
    ax.set_title(_title(f"Gini–M20, {level}: N = {len(good)} (of {len(table)}; flagged "
                        "left out)", run_id, options), fontsize="medium")
    return fig


def save_source_figures(store: str, results: str, run: str, folder: str, *,
                        what: str = "detect", size: int = 512) -> list[str]:
    """Write the pictures of a published run's detection or morphology as PNG.

    ``what="detect"``: segmentation contours of the detection map over the
    colour image of the ``size`` px region around the brightest source (the
    cube's own map when the run has none). ``what="morphology"``: the Gini-M20
    diagram of each morphology table. Returns the files written.
    """
    import galclust
    from galclust.plots.catalog import save_figure

    res = galclust.open_results(results, run=run)
    cube = galclust.open_cube(store)
    out = []
    settings = res.params.get("settings", {})
    if what == "detect":
        seg_da = (res.dataset("detect/seg")["seg"] if "detect/seg" in res.products
                  else cube["seg"])
        if "detect/sources" in res.products:
            sources = res.table("detect/sources")
        else:
            from galclust.store.cube import open_catalog

            sources = open_catalog(store)
        ny, nx = int(cube.sizes["y"]), int(cube.sizes["x"])
        if len(sources):
            top = sources.sort_values("snr", ascending=False).iloc[0] if "snr" in sources \
                else sources.iloc[0]
            cy, cx = int(top["y"]), int(top["x"])
        else:
            cy, cx = ny // 2, nx // 2
        y0, x0 = max(min(cy - size // 2, ny - size), 0), max(min(cx - size // 2, nx - size), 0)
        ys, xs = slice(y0, min(y0 + size, ny)), slice(x0, min(x0 + size, nx))
        sci = np.asarray(cube["sci"][:, ys, xs].values)
        seg = np.asarray(seg_da[ys, xs].values)
        opts = settings.get("detect")
        fig = plot_segmentation(sci, seg, wavelength=cube["wavelength"].values,
                                origin=(y0, x0), sources=sources, run_id=run, options=opts,
                                subject=f"detections, region y{y0} x{x0}")
        out.append(save_figure(fig, os.path.join(folder, picture_stem(
            f"segmentation-y{y0}-x{x0}", options=opts, run_id=run) + ".png")))
    else:
        for level in ("galaxies", "detections", "clusters"):
            name = f"morphology/{level}"
            if name not in res.products:
                continue
            table = res.table(name)
            band = str(table["band"].iloc[0]) if len(table) else ""
            fig = plot_gini_m20(table, level=f"{level}, band {band}", run_id=run)
            out.append(save_figure(fig, os.path.join(folder, picture_stem(
                f"gini-m20-{level}", options={"band": band}, run_id=run) + ".png")))
    return out
