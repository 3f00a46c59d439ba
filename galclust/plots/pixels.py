"""Pictures of pixel clusters: cluster contours over a colour image, composite SEDs.

Functions take arrays / Datasets / DataFrames and return a
:class:`matplotlib.figure.Figure` built without pyplot (no global state,
any backend; save with ``fig.savefig``). Cluster ``c`` has the same colour in
every picture (:func:`cluster_colours`): its contour on the image and its SED.

The image is what a paper shows: an asinh colour composite with the bands
used for R, G and B written in its top-left corner, a scale bar in arcsec
(given the pixel scale), each cluster's boundary as a contour along pixel
edges and, when the footprint is known, the selected pixels no cluster took
(DBSCAN/HDBSCAN noise) hatched grey, apart from the sky.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from galclust.errors import InputError
from galclust.plots._style import (
    NOISE_COLOUR,
    NOISE_HATCH,
    NOISE_LABEL,
    cluster_colours,
    halo,
    wrap_title,
)
from galclust.plots.seds import plot_composites

__all__ = ["cluster_colours", "colour_image", "draw_clusters", "draw_colour_image",
           "plot_composites", "plot_labels", "plot_result", "rgb_bands", "scale_bar_length"]

#: Colours of the R, G, B band names in the image's corner.
_KEY_COLOURS = ("#ff6b6b", "#6bff6b", "#7fb2ff")
_NICE_ARCSEC = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def rgb_bands(n_bands: int, wavelength: Sequence[float] | None = None) -> tuple[int, int, int]:
    """Indices of the bands shown as red, green, blue: reddest, middle, bluest.

    Raises
    ------
    InputError
        If ``wavelength`` does not have ``n_bands`` entries.
    """
    if wavelength is not None and len(wavelength) != n_bands:
        raise InputError(f"wavelength has {len(wavelength)} entries for {n_bands} bands.")
    order = np.argsort(wavelength) if wavelength is not None else np.arange(n_bands)
    return int(order[-1]), int(order[len(order) // 2]), int(order[0])


def colour_image(sci: np.ndarray, *, wavelength: Sequence[float] | None = None,
                 stretch: float = 5.0) -> np.ndarray:
    """An asinh-stretched RGB image (red = reddest band, blue = bluest; :func:`rgb_bands`).

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
    rgb = np.zeros((*sci.shape[1:], 3))
    for i, b in enumerate(rgb_bands(sci.shape[0], wavelength)):
        img = np.nan_to_num(sci[b])
        noise = 1.4826 * np.median(np.abs(img - np.median(img))) or 1.0
        scaled = np.arcsinh(img / (stretch * noise))
        top = np.percentile(scaled, 99.5) or 1.0
        rgb[..., i] = np.clip(scaled / top, 0, 1)
    return rgb


def scale_bar_length(width_arcsec: float, fraction: float = 0.3) -> float:
    """The longest round length (arcsec) at most ``fraction`` of the image width."""
    fits = [v for v in _NICE_ARCSEC if v <= fraction * width_arcsec]
    return fits[-1] if fits else float(f"{fraction * width_arcsec:.1g}")


def _band_names(bands: Sequence[str] | None, wavelength: Sequence[float] | None,
                n: int) -> list[str]:
    if bands is not None:
        if len(bands) != n:
            raise InputError(f"bands names {len(bands)} bands but sci has {n}.")
        return [str(b) for b in bands]
    if wavelength is not None:
        from galclust.pixels.composites import default_band_names

        return default_band_names(np.asarray(wavelength, dtype=float))
    return [f"band {i}" for i in range(n)]


def _scale_bar(ax: Any, shape: tuple[int, int], pixel_scale: float) -> None:
    ny, nx = shape
    length = scale_bar_length(nx * pixel_scale)
    px = length / pixel_scale
    x1, y = nx - 0.5 - 0.06 * nx, -0.5 + 0.07 * ny
    ax.plot([x1 - px, x1], [y, y], color="white", lw=2.2, solid_capstyle="butt",
            path_effects=halo(4.0), gid="scale bar")
    ax.text(x1 - px / 2, y + 0.025 * ny, f"{length:g}″", color="white", ha="center",
            va="bottom", fontsize=9, path_effects=halo(2.5), gid="scale bar")


def draw_colour_image(ax: Any, sci: np.ndarray, *, wavelength: Sequence[float] | None = None,
                      bands: Sequence[str] | None = None, pixel_scale: float | None = None,
                      key: bool = True) -> None:
    """Draw the colour image into ``ax``: band key (top left), scale bar (bottom right).

    Parameters
    ----------
    ax : matplotlib Axes
    sci : ndarray, (band, y, x)
    wavelength : sequence of float, optional
    bands : sequence of str, optional
        Band names (default: from the wavelengths).
    pixel_scale : float, optional
        Arcsec per pixel; without it no scale bar is drawn.
    key : bool
        Write the R, G, B band names.
    """
    sci = np.asarray(sci)
    ax.imshow(colour_image(sci, wavelength=wavelength), origin="lower", interpolation="nearest")
    if key:
        names = _band_names(bands, wavelength, sci.shape[0])
        for i, b in enumerate(rgb_bands(sci.shape[0], wavelength)):
            ax.text(0.03, 0.97 - 0.075 * i, names[b], transform=ax.transAxes, ha="left",
                    va="top", color=_KEY_COLOURS[i], fontsize=9, fontweight="bold",
                    path_effects=halo(2.5), gid="band key")
    if pixel_scale is not None and np.isfinite(pixel_scale) and pixel_scale > 0:
        _scale_bar(ax, sci.shape[1:], float(pixel_scale))
    ax.set_xticks([])
    ax.set_yticks([])


def _noise_patch(noise: np.ndarray) -> Any:
    """One hatched patch covering the ``noise`` pixels (None if there are none)."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    ys, xs = np.nonzero(noise)
    if not xs.size:
        return None
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    verts = (np.column_stack([xs, ys])[:, None, :] + corners[None]).reshape(-1, 2)
    codes = np.tile([Path.MOVETO, *[Path.LINETO] * 3, Path.CLOSEPOLY], xs.size)
    patch = PathPatch(Path(verts, codes), facecolor="none", linewidth=0, hatch=NOISE_HATCH,
                      label=NOISE_LABEL, gid="noise")
    if hasattr(patch, "set_hatchcolor"):  # matplotlib >= 3.10; before, hatches take the edge
        patch.set_edgecolor("none")
        patch.set_hatchcolor(NOISE_COLOUR)
    else:
        patch.set_edgecolor(NOISE_COLOUR)
    return patch


def _contours(ax: Any, labels: np.ndarray, colours: list[Any]) -> list[Any]:
    """One contour set per cluster, along pixel edges (the mask upsampled, then contoured)."""
    ny, nx = labels.shape
    up = max(1, min(6, 1600 // max(ny + 2, nx + 2)))
    big = np.repeat(np.repeat(np.pad(labels, 1, constant_values=-1), up, 0), up, 1)
    xs = (np.arange((nx + 2) * up) + 0.5) / up - 1.5
    ys = (np.arange((ny + 2) * up) + 0.5) / up - 1.5
    sets = []
    for c, colour in enumerate(colours):
        mask = big == c
        if mask.any():
            cs = ax.contour(xs, ys, mask.astype(np.float32), levels=[0.5], colors=[colour],
                            linewidths=1.6)
            cs.set_path_effects(halo(3.2))
            cs.set_gid(f"cluster {c}")
            sets.append(cs)
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    return sets


def draw_clusters(ax: Any, labels: np.ndarray, *, footprint: np.ndarray | None = None,
                  legend: bool = True) -> list[Any]:
    """Draw cluster boundaries (and the noise pixels) over an image already in ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
    labels : ndarray of int, (y, x)
        Cluster of each pixel, −1 where none.
    footprint : ndarray of bool, (y, x), optional
        The pixels that were clustered: those with label −1 in it are noise,
        hatched with their own legend entry. Without it, −1 is all sky.
    legend : bool
        Add a legend below the axes.

    Returns
    -------
    list
        The contour sets, one per cluster that has pixels.
    """
    from matplotlib.lines import Line2D

    labels = np.asarray(labels)
    n = int(labels.max(initial=-1)) + 1
    colours = cluster_colours(max(n, 1))[:n]
    sets = _contours(ax, labels, colours)
    handles: list[Any] = [Line2D([], [], color=colours[c], lw=2, path_effects=halo(3.2),
                                 label=f"cluster {c} ({int((labels == c).sum())} px)")
                          for c in range(n) if (labels == c).any()]
    if footprint is not None:
        patch = _noise_patch(np.asarray(footprint, bool) & (labels < 0))
        if patch is not None:
            ax.add_patch(patch)
            handles.append(patch)
    if legend and handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01),
                  ncols=min(len(handles), 2), fontsize="small", frameon=False,
                  handlelength=1.6, columnspacing=1.2)
    return sets


def _check(sci: np.ndarray, labels: np.ndarray, footprint: np.ndarray | None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != np.shape(sci)[1:]:
        raise InputError(f"labels {labels.shape} and sci {np.shape(sci)} must share (y, x).")
    if footprint is not None and np.shape(footprint) != labels.shape:
        raise InputError(f"footprint {np.shape(footprint)} and labels {labels.shape} must "
                         "have the same (y, x) shape.")
    return labels


def _n_title(labels: np.ndarray, footprint: np.ndarray | None) -> str:
    n = int(labels.max(initial=-1)) + 1
    text = f"{n} cluster{'s' if n != 1 else ''}"
    if footprint is not None:
        text += f", {int((np.asarray(footprint, bool) & (labels < 0)).sum())} noise px"
    return text


def plot_labels(sci: np.ndarray, labels: np.ndarray, *, wavelength: Sequence[float] | None = None,
                title: str | None = None, figsize: tuple[float, float] = (4.8, 5.6),
                footprint: np.ndarray | None = None, bands: Sequence[str] | None = None,
                pixel_scale: float | None = None) -> Figure:
    """The galaxy's colour image with its cluster boundaries drawn over it.

    Parameters
    ----------
    sci : ndarray, (band, y, x)
    labels : ndarray of int, (y, x)
        −1 where not clustered.
    wavelength : sequence of float, optional
    title : str, optional
    figsize : (float, float)
    footprint : ndarray of bool, (y, x), optional
        Pixels that were clustered; −1 inside it is noise (hatched).
    bands : sequence of str, optional
        Band names for the R, G, B key (default: from the wavelengths).
    pixel_scale : float, optional
        Arcsec per pixel, for the scale bar (e.g. the cube's ``pixel_scale``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = _check(sci, labels, footprint)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    draw_colour_image(ax, sci, wavelength=wavelength, bands=bands, pixel_scale=pixel_scale)
    draw_clusters(ax, labels, footprint=footprint)
    ax.set_title(_n_title(labels, footprint), fontsize="medium")
    if title:
        fig.suptitle(wrap_title(title, 48), fontsize="medium")
    return fig


def plot_result(sci: np.ndarray, result: Any, *, wavelength: Sequence[float] | None = None,
                title: str | None = None, footprint: np.ndarray | None = None,
                bands: Sequence[str] | None = None, pixel_scale: float | None = None,
                reference: str | None = None) -> Figure:
    """Colour image, the clusters drawn over it and the normalised composite SEDs.

    Parameters
    ----------
    sci : ndarray, (band, y, x)
    result : PixelResult or similar
        ``labels``, ``composites`` and (optionally) ``selection``.
    wavelength : sequence of float, optional
    title : str, optional
    footprint : ndarray of bool, (y, x), optional
        Default ``result.selection`` if present (noise hatched), else none.
    bands : sequence of str, optional
        Default: the composites' band names when they match ``sci``.
    pixel_scale : float, optional
        Arcsec per pixel (scale bar).
    reference : str, optional
        Reference band of the SED shapes (see :func:`plot_composites`).

    Returns
    -------
    matplotlib.figure.Figure
        Axes: colour image, image with cluster contours, SEDs.
    """
    from galclust.plots.seds import pixel_spread

    footprint = getattr(result, "selection", None) if footprint is None else footprint
    labels = _check(sci, result.labels, footprint)
    comps = result.composites
    if bands is None and "band" in getattr(comps, "coords", {}) and \
            comps.sizes["band"] == np.shape(sci)[0]:
        bands = [str(b) for b in comps["band"].values]
    spread = None
    has_spread = "p16" in getattr(comps, "columns", getattr(comps, "data_vars", ()))
    if not has_spread and wavelength is not None and len(comps):
        spread = pixel_spread(sci, labels, comps, wavelength=wavelength)
    fig = Figure(figsize=(13.0, 4.9), layout="constrained")
    ax_img, ax_lab, ax_sed = fig.subplots(1, 3, width_ratios=[1, 1, 1.35])
    draw_colour_image(ax_img, sci, wavelength=wavelength, bands=bands, pixel_scale=pixel_scale)
    ax_img.set_title("colour image", fontsize="medium")
    draw_colour_image(ax_lab, sci, wavelength=wavelength, key=False)
    draw_clusters(ax_lab, labels, footprint=footprint)
    ax_lab.set_title(_n_title(labels, footprint), fontsize="medium")
    plot_composites(comps, ax=ax_sed, reference=reference, spread=spread)
    if title:
        fig.suptitle(wrap_title(title, 110), fontsize="medium")
    return fig
