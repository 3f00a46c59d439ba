"""Pictures of the catalog embedding (matplotlib, Agg; functions return Figures).

- :func:`plot_embedding` — the 2-D map coloured by mixture component, flagged
  sources outlined, labelled spurious sources marked with one marker per
  reason.
- :func:`plot_imaged_embedding` — the "imaged" map: each source's cutout
  thumbnail drawn at its position, subsampled to a grid so that thumbnails do
  not overlap (like the t-SNE image grids of the literature).
- :func:`save_figure` — write a figure (PNG/PDF/SVG) to a path or URL.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from galclust.errors import InputError  # noqa: E402
from galclust.plots._style import wrap_title  # noqa: E402

__all__ = ["REASON_MARKERS", "grid_sample", "plot_embedding", "plot_imaged_embedding",
           "save_figure", "thumbnail_rgb"]

#: Marker per inspection reason; any other reason gets "X".
REASON_MARKERS = {"diffraction spike": "*", "edge data": "s", "close to another source": "^",
                  "": "X"}


def _xy(table: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    miss = [c for c in (x, y) if c not in table.columns]
    if miss:
        raise InputError(f"table has no column {miss} (it has {list(table.columns)[:12]} ...); "
                         "pass x=/y= or use the output of flag_spurious / run_catalog.")
    return table[x].to_numpy(np.float64), table[y].to_numpy(np.float64)


def _suffix(run_id: str | None, options: dict[str, Any] | None) -> str:
    """`` — umap, combined — run <id>`` for a default title (empty without either)."""
    from galclust.plots.naming import picture_title

    text = picture_title("", options=options, run_id=run_id)
    return f" — {text}" if text else ""


def plot_embedding(table: pd.DataFrame, labels: pd.DataFrame | None = None, *,
                   x: str = "map_x", y: str = "map_y", ax: Any = None,
                   title: str | None = None, run_id: str | None = None,
                   options: dict[str, Any] | None = None) -> Figure:
    """The embedding coloured by mixture component, labelled spurious sources marked.

    Parameters
    ----------
    table : DataFrame
        Per-source table (``id``, ``component``, ``flag`` and the ``x``/``y``
        columns).
    labels : DataFrame, optional
        ``id``, ``reliable``, ``reason``: sources with ``reliable == 0`` are
        drawn with the marker of their reason (:data:`REASON_MARKERS`).
    x, y : str
        Columns of the map.
    ax : matplotlib Axes, optional
    title : str, optional
        Default: the numbers of sources and components, then ``options`` and ``run_id``.
    run_id : str, optional
        The run that made the map (in the default title).
    options : dict, optional
        The options that made it, e.g. ``{"embedding": "umap", "model": "combined"}``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    xs, ys = _xy(table, x, y)
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 6))
    ax = ax if ax is not None else fig.add_subplot(111)
    comp = table["component"].to_numpy() if "component" in table else np.zeros(len(table), int)
    cmap = plt.get_cmap("tab20")
    ax.scatter(xs, ys, c=cmap(np.mod(comp, 20)), s=6, linewidths=0, alpha=0.8,
               rasterized=len(xs) > 5000)
    if "flag" in table:
        fl = table["flag"].to_numpy(bool, na_value=False)  # unknown: not flagged
        ax.scatter(xs[fl], ys[fl], s=22, facecolors="none", edgecolors="k", linewidths=0.5,
                   label=f"flagged ({int(fl.sum())})")
    if labels is not None and len(labels):
        pos = pd.Index(table["id"].to_numpy()).get_indexer(labels["id"].to_numpy())
        spur = (labels["reliable"].to_numpy() == 0) & (pos >= 0)
        reasons = labels["reason"].fillna("").astype(str).to_numpy() if "reason" in labels \
            else np.full(len(labels), "")
        for r in sorted(set(reasons[spur])):
            sel = pos[spur & (reasons == r)]
            ax.scatter(xs[sel], ys[sel], marker=REASON_MARKERS.get(r, "X"), s=60,
                       facecolors="red", edgecolors="k", linewidths=0.5,
                       label=f"labelled: {r or 'spurious'} ({len(sel)})")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or wrap_title(f"{len(xs)} sources, {len(np.unique(comp))} components"
                                     + _suffix(run_id, options), 70), fontsize="medium")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=7, framealpha=0.8)
    return fig


def grid_sample(xs: np.ndarray, ys: np.ndarray, grid: int,
                clip: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pick at most one source per cell of a ``grid x grid`` lattice over the map.

    The source nearest to each occupied cell's centre is kept.

    Parameters
    ----------
    xs, ys : ndarray
        Map coordinates (NaN: not placed).
    grid : int
        Cells per side.
    clip : float
        Percent of the sources to leave outside the lattice on each side of
        each axis (0: the lattice spans every source). A few far outliers (the
        brightest stars on a PCA map) otherwise squeeze everyone else into a
        handful of cells; with ``clip`` they are drawn in the edge cells.

    Returns
    -------
    index : ndarray of int
        Rows of the chosen sources.
    cell : ndarray, shape (len(index), 2)
        Their cell ``(row, column)``.
    """
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if grid < 1:
        raise InputError(f"grid={grid!r} must be >= 1.")
    if not 0 <= clip < 50:
        raise InputError(f"clip={clip!r} must be a percentage in [0, 50).")
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        return np.zeros(0, int), np.zeros((0, 2), int)
    x0, x1 = np.percentile(xs[ok], [clip, 100 - clip])
    y0, y1 = np.percentile(ys[ok], [clip, 100 - clip])
    wx, wy = (x1 - x0) / grid or 1.0, (y1 - y0) / grid or 1.0
    cx = np.clip(np.floor((np.where(ok, xs, x0) - x0) / wx), 0, grid - 1).astype(int)
    cy = np.clip(np.floor((np.where(ok, ys, y0) - y0) / wy), 0, grid - 1).astype(int)
    # distance to the cell centre, outliers measured from inside the lattice
    dist = np.hypot(np.clip((xs - x0) / wx, 0, grid) - cx - 0.5,
                    np.clip((ys - y0) / wy, 0, grid) - cy - 0.5)
    rows = np.flatnonzero(ok)
    order = rows[np.lexsort((dist[rows], cx[rows], cy[rows]))]
    key = cy[order] * grid + cx[order]
    first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, bool)
    chosen = order[first]
    return chosen, np.column_stack([cy[chosen], cx[chosen]])


def thumbnail_rgb(stamps: np.ndarray, *, bands: tuple[int, int, int] | None = None,
                  softening: float = 3.0) -> np.ndarray:
    """RGB thumbnails (n, y, x, 3) in [0, 1] from (n, band, y, x) stamps.

    Red is the reddest band of ``bands`` (default: last, middle, first); each
    band is asinh-stretched in units of its robust noise (median border MAD of
    all the stamps) and all thumbnails share one stretch.
    """
    from galclust.catalog.scaling import asinh_scale, band_noise, border_noise

    stamps = np.asarray(stamps, dtype=np.float32)
    if stamps.ndim != 4:
        raise InputError(f"cutouts must be (source, band, y, x); got {stamps.shape}.")
    nb = stamps.shape[1]
    if bands is None:
        bands = (nb - 1, nb // 2, 0)
    if any(not 0 <= b < nb for b in bands):
        raise InputError(f"bands={bands} out of range for {nb} bands.")
    noise = band_noise(border_noise(stamps))
    scaled = asinh_scale(stamps, noise, softening=softening)[:, list(bands)]
    top = float(np.percentile(scaled, 99.5)) if scaled.size else 1.0
    rgb = np.clip(scaled / (top if top > 0 else 1.0), 0.0, 1.0)
    return np.moveaxis(rgb, 1, -1)


def plot_imaged_embedding(table: pd.DataFrame, cutouts: Any, ids: Any, *, grid: int = 30,
                          x: str = "map_x", y: str = "map_y",
                          bands: tuple[int, int, int] | None = None, mark_flagged: bool = True,
                          clip: float = 1.0, figsize: float = 9.0, run_id: str | None = None,
                          options: dict[str, Any] | None = None) -> Figure:
    """The embedding drawn with each (grid-subsampled) source's cutout at its place.

    Parameters
    ----------
    table : DataFrame
        Per-source table with ``id`` and the map columns.
    cutouts : array (source, band, y, x)
        numpy or Dask (only the chosen thumbnails are read).
    ids : array-like (source,)
        Ids of ``cutouts``' rows.
    grid : int
        The map is divided into ``grid x grid`` cells; one thumbnail per
        occupied cell, so thumbnails never overlap.
    x, y : str
        Map columns.
    bands : (int, int, int), optional
        Band indices for R, G, B.
    mark_flagged : bool
        Draw a red frame around flagged sources' thumbnails.
    clip : float
        Percent of sources per side and axis drawn in the edge cells rather
        than stretching the lattice to reach them (see :func:`grid_sample`).
    figsize : float
        Figure side in inches.
    run_id : str, optional
        The run that made the map (in the title).
    options : dict, optional
        The options that made it, e.g. ``{"embedding": "umap", "model": "combined"}``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    xs, ys = _xy(table, x, y)
    ids = np.asarray(ids).reshape(-1)
    if getattr(cutouts, "shape", (None,))[0] != len(ids):
        raise InputError(f"cutouts has {getattr(cutouts, 'shape', None)} rows but ids has "
                         f"{len(ids)}.")
    rows = pd.Index(ids).get_indexer(table["id"].to_numpy())
    have = rows >= 0
    chosen, cells = grid_sample(np.where(have, xs, np.nan), np.where(have, ys, np.nan), grid,
                                clip=clip)
    fig = plt.figure(figsize=(figsize, figsize))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.93))
    ax.set_facecolor("black")
    if len(chosen):
        take = rows[chosen]
        order = np.argsort(take)
        stamps = np.asarray(cutouts[np.sort(take)])
        rgb = thumbnail_rgb(stamps, bands=bands)  # rows in sorted-take order
        thumbs = np.empty_like(rgb)
        thumbs[order] = rgb
        flags = table["flag"].to_numpy(bool, na_value=False)[chosen] if "flag" in table else \
            np.zeros(len(chosen), bool)
        for (r, c), im, fl in zip(cells, thumbs, flags, strict=True):
            ax.imshow(im, extent=(c, c + 1, r, r + 1), origin="lower", interpolation="nearest")
            if mark_flagged and fl:
                ax.add_patch(plt.Rectangle((c + 0.02, r + 0.02), 0.96, 0.96, fill=False,
                                           edgecolor="red", linewidth=1.0))
    ax.set_xlim(0, grid)
    ax.set_ylim(0, grid)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(wrap_title(f"{len(chosen)} of {len(xs)} sources on a {grid}x{grid} grid "
                            f"({x}, {y}); red: flagged" + _suffix(run_id, options), 90),
                 fontsize="medium")
    return fig


def save_figure(fig: Figure, path: str, *, dpi: int = 150) -> str:
    """Save ``fig`` to a local path or URL (format from the suffix) and close it.

    Returns
    -------
    str
        ``path``.
    """
    from galclust.store.urls import write_bytes

    fmt = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else "png"
    if fmt not in ("png", "pdf", "svg", "jpg", "jpeg"):
        raise InputError(f"{path}: use a .png, .pdf, .svg or .jpg file name.")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_bytes(str(path), buf.getvalue())
    return str(path)
