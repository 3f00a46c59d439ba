"""Pictures of pixel clusters: label maps beside a colour image, composite SEDs.

Functions take arrays / Datasets / DataFrames and return a
:class:`matplotlib.figure.Figure` built without pyplot (no global state,
any backend; save with ``fig.savefig``). Cluster ``c`` has the same colour in
every picture (:func:`cluster_colours`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from galclust.errors import InputError

__all__ = ["cluster_colours", "colour_image", "plot_composites", "plot_labels", "plot_result"]

_NONE_COLOUR = (0.85, 0.85, 0.85, 1.0)


def cluster_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct RGBA colours (tab10, then tab20) for clusters 0..n−1."""
    from matplotlib import colormaps

    base = colormaps["tab10"].colors if n <= 10 else colormaps["tab20"].colors
    return [(*base[i % len(base)][:3], 1.0) for i in range(n)]


def colour_image(sci: np.ndarray, *, wavelength: Sequence[float] | None = None,
                 stretch: float = 5.0) -> np.ndarray:
    """An asinh-stretched RGB image (red = reddest band, blue = bluest).

    Parameters
    ----------
    sci : ndarray, (band, y, x)
    wavelength : sequence of float, optional
        Band pivots (default: bands in order, bluest first).
    stretch : float
        Asinh softening in units of each band's robust noise.

    Returns
    -------
    ndarray, (y, x, 3) in [0, 1]
    """
    sci = np.asarray(sci, dtype=float)
    if sci.ndim != 3:
        raise InputError(f"sci must be (band, y, x); got shape {sci.shape}.")
    order = np.argsort(wavelength) if wavelength is not None else np.arange(sci.shape[0])
    picks = [order[-1], order[len(order) // 2], order[0]]
    rgb = np.zeros((*sci.shape[1:], 3))
    for i, b in enumerate(picks):
        img = np.nan_to_num(sci[b])
        noise = 1.4826 * np.median(np.abs(img - np.median(img))) or 1.0
        scaled = np.arcsinh(img / (stretch * noise))
        top = np.percentile(scaled, 99.5) or 1.0
        rgb[..., i] = np.clip(scaled / top, 0, 1)
    return rgb


def _label_cmap(n: int) -> tuple[ListedColormap, BoundaryNorm]:
    cmap = ListedColormap([_NONE_COLOUR, *cluster_colours(max(n, 1))])
    norm = BoundaryNorm(np.arange(-1.5, max(n, 1) + 0.5), cmap.N)
    return cmap, norm


def plot_labels(sci: np.ndarray, labels: np.ndarray, *, wavelength: Sequence[float] | None = None,
                title: str | None = None, figsize: tuple[float, float] = (8.0, 3.8)) -> Figure:
    """The galaxy's colour image beside its cluster label map (discrete colours).

    Parameters
    ----------
    sci : ndarray, (band, y, x)
    labels : ndarray of int, (y, x)
        −1 where not clustered (grey).
    wavelength : sequence of float, optional
    title : str, optional
    figsize : (float, float)

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = np.asarray(labels)
    if labels.shape != np.shape(sci)[1:]:
        raise InputError(f"labels {labels.shape} and sci {np.shape(sci)} must share (y, x).")
    n = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    fig = Figure(figsize=figsize, layout="constrained")
    ax_img, ax_lab = fig.subplots(1, 2)
    ax_img.imshow(colour_image(sci, wavelength=wavelength), origin="lower")
    ax_img.set_title("colour image")
    cmap, norm = _label_cmap(n)
    im = ax_lab.imshow(labels, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
    ax_lab.set_title(f"{n} cluster{'s' if n != 1 else ''}")
    bar = fig.colorbar(im, ax=ax_lab, ticks=np.arange(-1, max(n, 1)))
    bar.ax.set_yticklabels(["none", *[str(i) for i in range(max(n, 1))]])
    for ax in (ax_img, ax_lab):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


def _as_frame(composites: Any) -> pd.DataFrame:
    if isinstance(composites, xr.Dataset):
        from galclust.pixels.composites import composites_to_frame

        return composites_to_frame(composites)
    if isinstance(composites, pd.DataFrame):
        missing = {"cluster", "wavelength", "flux", "err"} - set(composites.columns)
        if missing:
            raise InputError(f"composites table lacks columns {sorted(missing)}.")
        return composites
    raise InputError("composites must be an xarray.Dataset (PixelResult.composites) or a "
                     f"composites table; got {type(composites).__name__}.")


def plot_composites(composites: Any, *, per_pixel: bool = True, ax: Any = None,
                    figsize: tuple[float, float] = (5.5, 3.8), title: str | None = None) -> Figure:
    """Composite SED of each cluster with error bars against wavelength.

    Parameters
    ----------
    composites : xarray.Dataset or pandas.DataFrame
        ``PixelResult.composites`` or rows of one galaxy's composites table.
    per_pixel : bool
        Divide flux and error by the cluster's pixel count (comparable shapes).
    ax : matplotlib Axes, optional
        Draw into it (its figure is returned); default a new figure.
    figsize : (float, float)
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    df = _as_frame(composites)
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    clusters = sorted(int(c) for c in df["cluster"].unique())
    colours = cluster_colours(max(clusters, default=-1) + 1)
    for c in clusters:
        rows = df[df["cluster"] == c].sort_values("wavelength")
        scale = rows["n_pixels"].to_numpy(float) if per_pixel and "n_pixels" in rows else 1.0
        n_pix = int(rows["n_pixels"].iloc[0]) if "n_pixels" in rows else None
        ax.errorbar(rows["wavelength"].to_numpy(float), rows["flux"].to_numpy(float) / scale,
                    yerr=rows["err"].to_numpy(float) / scale,
                    marker="o", capsize=3, color=colours[c],
                    label=f"cluster {c}" + (f" ({n_pix} px)" if n_pix is not None else ""))
    ax.set_xlabel("wavelength [µm]")
    ax.set_ylabel("flux per pixel" if per_pixel else "summed flux")
    if clusters:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def plot_result(sci: np.ndarray, result: Any, *, wavelength: Sequence[float] | None = None,
                title: str | None = None) -> Figure:
    """Colour image, label map and composite SEDs of a ``PixelResult`` in one figure."""
    fig = Figure(figsize=(12.0, 3.8), layout="constrained")
    ax_img, ax_lab, ax_sed = fig.subplots(1, 3)
    labels = np.asarray(result.labels)
    n = int(result.n_clusters)
    ax_img.imshow(colour_image(sci, wavelength=wavelength), origin="lower")
    cmap, norm = _label_cmap(n)
    ax_lab.imshow(labels, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
    ax_lab.set_title(f"{n} cluster{'s' if n != 1 else ''}")
    for ax in (ax_img, ax_lab):
        ax.set_xticks([])
        ax.set_yticks([])
    plot_composites(result.composites, ax=ax_sed)
    if title:
        fig.suptitle(title)
    return fig
