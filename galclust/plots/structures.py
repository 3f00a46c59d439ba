"""Pictures of density structures and emission regions.

- :func:`plot_structures` — a galaxy's structures (leaf labels) outlined over its
  colour image, with their ids;
- :func:`plot_dendrogram` — the hierarchy of its structures, each at the height
  of its significance;
- :func:`plot_excess` — the medium band's excess over the continuum, in units
  of its error, with the regions' contours;
- :func:`plot_region_sizes` — every region's size in the medium band against
  the reference band's (R_mf against R_rf), outflow candidates marked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from galclust.plots._style import cluster_colours, halo, wrap_title
from galclust.plots.naming import picture_stem, picture_title

__all__ = ["plot_dendrogram", "plot_excess", "plot_region_sizes", "plot_structures",
           "save_structure_figures"]


def _title(subject: str, run_id: str | None, options: Mapping[str, Any] | None = None) -> str:
    return wrap_title(picture_title(subject, options=options, run_id=run_id), 60)


def _outline(ax: Any, labels: np.ndarray, extent: tuple[float, ...], colours: list) -> None:
    ids = [int(i) for i in np.unique(labels) if i > 0]
    for k, i in enumerate(ids):
        ax.contour((labels == i).astype(float), levels=[0.5], extent=extent, origin="lower",
                   colors=[colours[k % len(colours)]], linewidths=1.2)


def plot_structures(sci: np.ndarray, labels: np.ndarray, table: pd.DataFrame, *,
                    wavelength: Sequence[float] | None = None, origin: tuple[int, int] = (0, 0),
                    galaxy: int | None = None, run_id: str | None = None,
                    options: Mapping[str, Any] | None = None) -> Figure:
    """A galaxy's structures over its colour image (axes in mosaic pixels)."""
    from galclust.plots.pixels import colour_image

    fig = Figure(figsize=(6.0, 6.0))
    ax = fig.add_subplot()
    oy, ox = origin
    extent = (ox - 0.5, ox + labels.shape[1] - 0.5, oy - 0.5, oy + labels.shape[0] - 0.5)
    ax.imshow(colour_image(np.asarray(sci, float), wavelength=wavelength), origin="lower",
              extent=extent, interpolation="nearest")
    ids = [int(i) for i in np.unique(labels) if i > 0]
    colours = cluster_colours(max(len(ids), 1))
    _outline(ax, labels, extent, colours)
    for r in table.itertuples(index=False):
        if int(r.structure) in ids:
            ax.annotate(str(int(r.structure)), (r.x, r.y), color="white", fontsize=8,
                        ha="center", va="center", path_effects=halo(2.0))
    ax.set_xlabel("x (mosaic pixel)")
    ax.set_ylabel("y (mosaic pixel)")
    what = f"galaxy {galaxy}: " if galaxy is not None else ""
    ax.set_title(_title(f"{what}{len(table)} density structure{'s' if len(table) != 1 else ''}"
                        f" ({len(ids)} labelled)", run_id,
                        options), fontsize="medium")
    return fig


def plot_dendrogram(table: pd.DataFrame, *, galaxy: int | None = None,
                    run_id: str | None = None, options: Mapping[str, Any] | None = None
                    ) -> Figure:
    """The structure hierarchy: each structure a vertical line from its parent's
    significance to its own, leaves ordered left to right."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    t = table.set_index("structure")
    children: dict[int, list[int]] = {}
    for s, p in zip(t.index, t["parent"], strict=True):
        children.setdefault(int(p), []).append(int(s))
    xpos: dict[int, float] = {}

    def place(node: int) -> float:
        kids = sorted(children.get(node, []))
        if not kids:
            xpos[node] = float(len([k for k in xpos if not children.get(k)]))
        else:
            xpos[node] = float(np.mean([place(k) for k in kids]))
        return xpos[node]

    roots = sorted(children.get(0, []))
    for r in roots:
        place(r)
    for s in t.index:
        s = int(s)
        top = float(t.loc[s, "significance"])
        p = int(t.loc[s, "parent"])
        base = float(t.loc[p, "significance"]) if p in t.index else 0.0
        ax.plot([xpos[s], xpos[s]], [base, top], color="C0", lw=1.5)
        if p in t.index:
            ax.plot([xpos[p], xpos[s]], [base, base], color="C0", lw=1.0)
        ax.annotate(str(s), (xpos[s], top), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=7)
    ax.set_xticks([])
    ax.set_xlabel("structures (leaves left to right)")
    ax.set_ylabel("significance (AstroLink: sigma above density noise;\nHDBSCAN: persistence)")
    what = f"galaxy {galaxy}: " if galaxy is not None else ""
    ax.set_title(_title(f"{what}structure hierarchy", run_id, options), fontsize="medium")
    return fig


def plot_excess(excess: np.ndarray, excess_err: np.ndarray, labels: np.ndarray, *,
                band: str, line: str | None = None, origin: tuple[int, int] = (0, 0),
                galaxy: int | None = None, run_id: str | None = None) -> Figure:
    """The medium band's excess S/N map with the regions' contours."""
    fig = Figure(figsize=(6.2, 5.4))
    ax = fig.add_subplot()
    oy, ox = origin
    extent = (ox - 0.5, ox + labels.shape[1] - 0.5, oy - 0.5, oy + labels.shape[0] - 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(excess_err > 0, excess / excess_err, np.nan)
    im = ax.imshow(snr, origin="lower", extent=extent, cmap="RdBu_r", vmin=-5, vmax=5,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label=f"{band} excess over continuum (sigma)")
    _outline(ax, labels, extent, ["black"])
    ax.set_xlabel("x (mosaic pixel)")
    ax.set_ylabel("y (mosaic pixel)")
    what = f"galaxy {galaxy}: " if galaxy is not None else ""
    n = len(np.unique(labels[labels > 0]))
    ax.set_title(_title(f"{what}{band} excess{f' ({line})' if line else ''}, "
                        f"{n} region{'s' if n != 1 else ''}", run_id),
                 fontsize="medium")
    return fig


def plot_region_sizes(regions: pd.DataFrame, *, run_id: str | None = None) -> Figure:
    """R_mf against R_rf of every region (px), outflow candidates marked."""
    fig = Figure(figsize=(5.6, 5.0))
    ax = fig.add_subplot()
    cand = regions["candidate"].astype(bool)
    for sel, style, name in ((~cand, dict(color="0.5", s=14), "regions"),
                             (cand, dict(color="C3", s=24, marker="*"), "outflow candidates")):
        r = regions[sel]
        ax.errorbar(r["R_rf"], r["R_mf"], xerr=r.get("R_rf_err"), yerr=r.get("R_mf_err"),
                    fmt="none", ecolor=style["color"], alpha=0.4, lw=0.8)
        ax.scatter(r["R_rf"], r["R_mf"], label=f"{name} ({len(r)})", **style)
    top = float(np.nanmax(np.r_[regions["R_rf"], regions["R_mf"], 1.0])) * 1.1
    ax.plot([0, top], [0, top], "k--", lw=1, label="R_mf = R_rf")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("reference-band half-light radius R_rf (px)")
    ax.set_ylabel("medium-band excess half-light radius R_mf (px)")
    ax.legend(fontsize="small", frameon=False, loc="upper left")
    ax.set_title(_title(f"emission regions: medium against reference size, N = "
                        f"{len(regions)}", run_id), fontsize="medium")
    return fig


def save_structure_figures(store: str, results: str, run: str, folder: str, *,
                           what: str = "structures", n: int = 4) -> list[str]:
    """Write the pictures of a published run's structures or emission regions (PNG) for
    the ``n`` galaxies with the most structures (highest outflow score)."""
    import galclust
    from galclust.pixels.survey import decode_labels
    from galclust.plots.catalog import save_figure

    res = galclust.open_results(results, run=run)
    cube = galclust.open_cube(store)
    wl = cube["wavelength"].values
    out: list[str] = []

    def stamp(row: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        ys = slice(int(row.y0), int(row.y0) + int(row.ny))
        xs = slice(int(row.x0), int(row.x0) + int(row.nx))
        return (decode_labels(row.labels, int(row.ny), int(row.nx)),
                np.asarray(cube["sci"][:, ys, xs].values), (int(row.y0), int(row.x0)))

    if what == "structures" and {"structures/galaxies", "structures/table"} <= set(res.products):
        gal = res.table("structures/galaxies").sort_values(["n_structures", "id"],
                                                           ascending=[False, True])
        table = res.table("structures/table")
        stamps = res.table("structures/stamps").set_index("id")
        for gid in gal[gal["n_structures"] > 0]["id"].head(n):
            labels, sci, origin = stamp(stamps.loc[[gid]].reset_index().iloc[0])
            t = table[table["id"] == gid]
            for kind, fig in (("structures", plot_structures(
                    sci, labels, t, wavelength=wl, origin=origin, galaxy=int(gid), run_id=run)),
                    ("dendrogram", plot_dendrogram(t, galaxy=int(gid), run_id=run))):
                out.append(save_figure(fig, os.path.join(folder, picture_stem(
                    f"galaxy-{gid}-{kind}", run_id=run) + ".png")))
    if what == "emission" and "emission/regions" in res.products:
        from galclust.structures.emission import emission_regions

        regions = res.table("emission/regions")
        out.append(save_figure(plot_region_sizes(regions, run_id=run), os.path.join(
            folder, picture_stem("emission-sizes", run_id=run) + ".png")))
        gal = res.table("emission/galaxies")
        gal = gal[gal["n_regions"] > 0].sort_values(["best_score", "id"],
                                                    ascending=[False, True])
        stamps = res.table("emission/stamps").set_index("id")
        bands = [str(b) for b in cube["band"].values]
        for g in gal.head(n).itertuples(index=False):
            labels, sci, origin = stamp(stamps.loc[[g.id]].reset_index().iloc[0])
            ys = slice(origin[0], origin[0] + labels.shape[0])
            xs = slice(origin[1], origin[1] + labels.shape[1])
            err = np.asarray(cube["err"][:, ys, xs].values)
            em = emission_regions(sci, err, wl, bands.index(g.band), bands=bands)
            fig = plot_excess(em.excess, em.excess_err, labels, band=g.band, line=g.line or None,
                              origin=origin, galaxy=int(g.id), run_id=run)
            out.append(save_figure(fig, os.path.join(folder, picture_stem(
                f"galaxy-{g.id}-excess-{g.band}", run_id=run) + ".png")))
    return out
