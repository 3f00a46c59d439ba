"""Pictures of a galaxy's spectral unmixing: one fraction map per component and their SEDs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from galclust.errors import InputError
from galclust.plots._style import cluster_colours, wrap_title

__all__ = ["plot_fractions"]


def plot_fractions(fractions: np.ndarray, seds: np.ndarray, *, wavelength: Sequence[float],
                   sed_err: np.ndarray | None = None, bands: Sequence[str] | None = None,
                   origin: tuple[int, int] = (0, 0), title: str | None = None) -> Figure:
    """Fraction map of every component and the component SEDs.

    Parameters
    ----------
    fractions : ndarray, (component, y, x)
        Share of each pixel's band-summed light from each component (NaN off
        the footprint).
    seds, sed_err : ndarray, (component, band)
        Component SEDs normalised to sum 1, and their errors.
    wavelength : sequence of float
        Band pivots, micron.
    bands : sequence of str, optional
        Band names for the SED panel's top axis.
    origin : (int, int)
        Cube (y, x) of the stamp's first pixel (axis labels are cube pixels).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One image panel per component (colour scale 0-1) and an SED panel.
    """
    fractions = np.asarray(fractions, dtype=float)
    seds = np.asarray(seds, dtype=float)
    if fractions.ndim != 3 or seds.ndim != 2 or len(seds) != len(fractions):
        raise InputError(f"fractions must be (component, y, x) and seds (component, band) with "
                         f"one row per component; got {fractions.shape} and {seds.shape}.")
    k = len(fractions)
    lam = np.asarray(wavelength, dtype=float)
    colours = cluster_colours(k)
    fig = Figure(figsize=(3.2 * k + 4.6, 3.9), layout="constrained")
    axes = fig.subplots(1, k + 1, width_ratios=[1] * k + [1.45])
    y0, x0 = origin
    ny, nx = fractions.shape[1:]
    extent = (x0 - 0.5, x0 + nx - 0.5, y0 - 0.5, y0 + ny - 0.5)
    im = None
    for c in range(k):
        ax = axes[c]
        im = ax.imshow(fractions[c], vmin=0, vmax=1, cmap="magma", origin="lower",
                       extent=extent, interpolation="nearest")
        ax.set_title(f"component {c}: fraction", fontsize="medium", color=colours[c])
        ax.set_xlabel("x (cube pixel)")
        ax.set_ylabel("y (cube pixel)" if c == 0 else "")
    fig.colorbar(im, ax=list(axes[:k]), shrink=0.85, label="share of the pixel's light")
    ax = axes[-1]
    err = np.zeros_like(seds) if sed_err is None else np.asarray(sed_err, dtype=float)
    for c in range(k):
        ax.errorbar(lam, seds[c], yerr=err[c], color=colours[c], marker="o", ms=4, capsize=2,
                    label=f"component {c}")
    ax.set_xlabel("wavelength (µm)")
    ax.set_ylabel("SED, normalised to sum 1 over bands")
    ax.legend(fontsize="small")
    if bands is not None:
        top = ax.secondary_xaxis("top")
        top.set_xticks(lam, [str(b) for b in bands], rotation=90, fontsize="x-small")
        top.minorticks_off()
    ax.set_title("component SEDs (±1σ)", fontsize="medium")
    if title:
        fig.suptitle(wrap_title(title, 110), fontsize="medium")
    return fig
