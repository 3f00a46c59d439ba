"""Composite SEDs of pixel clusters, drawn as normalised shapes with their spread.

Each cluster's composite (summed) SED is divided by its flux in a reference
band (default; ``f_ν / f_ν(F444W)``) or by its L2 norm, so clusters of very
different brightness compare by shape. The shaded band is the 16–84 % range of
the cluster's per-pixel SED shapes, weighted by flux (columns ``p16``,
``p84``, see :func:`galclust.pixels.composites.shape_percentiles`), scaled like
the composite; the error bars are the error of the composite itself,
usually far smaller (the legend says how small). Wavelength is on a log axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from galclust.errors import InputError, check_choice
from galclust.plots._style import cluster_colours, wrap_title

__all__ = ["NORMALIZATIONS", "pixel_spread", "plot_composites", "reference_band"]

#: ``normalize=`` choices of :func:`plot_composites` (None: absolute fluxes).
NORMALIZATIONS = ("reference", "l2")
_TICKS = (0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0)
_FNU = r"$f_\nu$"


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


def _band_column(df: pd.DataFrame) -> np.ndarray:
    if "band" in df:
        return df["band"].astype(str).to_numpy()
    from galclust.pixels.composites import default_band_names

    return np.asarray(default_band_names(df["wavelength"].to_numpy(float)), dtype=object)


def reference_band(composites: Any) -> str | None:
    """The default reference band: the reddest whose flux is finite and > 0 in every cluster.

    Returns
    -------
    str or None
        None if no band qualifies (or there is no cluster).
    """
    df = _as_frame(composites)
    if df.empty:
        return None
    ok = (df["flux"].to_numpy(float) > 0) & np.isfinite(df["flux"].to_numpy(float))
    good = pd.DataFrame({"band": _band_column(df), "wl": df["wavelength"].to_numpy(float),
                         "ok": ok}).groupby("band").agg(ok=("ok", "all"), wl=("wl", "first"))
    good = good[good["ok"]]
    return None if good.empty else str(good["wl"].idxmax())


def pixel_spread(sci: np.ndarray, labels: np.ndarray, composites: Any, *,
                 wavelength: Any) -> pd.DataFrame:
    """Within-cluster spread of per-pixel unit SEDs, for composites tables that lack it.

    Parameters
    ----------
    sci : ndarray, (band, y, x)
    labels : ndarray of int, (y, x)
        −1 where not clustered.
    composites : xarray.Dataset or pandas.DataFrame
        Its finite ``flux`` values say which bands were used.
    wavelength : array-like, (band,)
        Pivots of ``sci``'s bands (matched to the composites' wavelengths).

    Returns
    -------
    pandas.DataFrame
        ``cluster, wavelength, p16, p84`` (the ``spread`` of :func:`plot_composites`).
    """
    from galclust.pixels.composites import shape_percentiles

    df, lab = _as_frame(composites), np.asarray(labels)
    sci, wl = np.asarray(sci, dtype=float), np.asarray(wavelength, dtype=float).reshape(-1)
    if sci.ndim != 3 or lab.shape != sci.shape[1:] or wl.size != sci.shape[0]:
        raise InputError(f"sci {sci.shape}, labels {lab.shape} and wavelength {wl.shape} must "
                         "be (band, y, x), (y, x) and (band,).")
    used_wl = df.loc[np.isfinite(df["flux"].to_numpy(float)), "wavelength"].to_numpy(float)
    used = np.isclose(wl[:, None], used_wl[None, :], rtol=1e-9).any(axis=1)
    pick = lab >= 0
    k = int(lab.max(initial=-1)) + 1
    p = shape_percentiles(sci[:, pick].T, lab[pick], n_clusters=k, used_bands=used)
    return pd.DataFrame({"cluster": np.repeat(np.arange(k), wl.size), "wavelength":
                         np.tile(wl, k), "p16": p[0].ravel(), "p84": p[1].ravel()})


def _with_spread(df: pd.DataFrame, spread: pd.DataFrame | None) -> pd.DataFrame:
    if spread is None:
        return df
    missing = {"cluster", "wavelength", "p16", "p84"} - set(getattr(spread, "columns", []))
    if missing:
        raise InputError(f"spread lacks columns {sorted(missing)}; give cluster, wavelength, "
                         "p16, p84 (e.g. galclust.plots.seds.pixel_spread).")
    key = ["cluster", "_wl"]
    right = spread.assign(_wl=np.round(spread["wavelength"].to_numpy(float), 6))
    left = df.drop(columns=["p16", "p84"], errors="ignore").assign(
        _wl=np.round(df["wavelength"].to_numpy(float), 6))
    return left.merge(right[[*key, "p16", "p84"]], on=key, how="left").drop(columns="_wl")


def _shape(rows: pd.DataFrame, mode: str | None, ref: str | None,
           per_pixel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``y, yerr, lo, hi`` of one cluster (``lo, hi``: the shaded spread, or None)."""
    f, e = rows["flux"].to_numpy(float), rows["err"].to_numpy(float)
    if mode is None:
        n = rows["n_pixels"].to_numpy(float) if per_pixel and "n_pixels" in rows else 1.0
        return f / n, e / n, None, None
    norm = float(np.sqrt(np.nansum(f * f)))
    unit = f / norm if norm > 0 else np.full_like(f, np.nan)
    if mode == "l2":
        y, yerr, scale = unit, e / norm if norm > 0 else e * np.nan, 1.0
    else:
        hit = np.flatnonzero(_band_column(rows) == ref)
        i = int(hit[0]) if hit.size else 0
        # a cluster without positive flux in the reference band cannot be scaled: NaN
        fr = f[i] if hit.size and f[i] > 0 else np.nan
        y = f / fr
        yerr = np.sqrt(e * e + (y * e[i]) ** 2) / fr
        yerr[i] = 0.0  # 1 by construction
        scale = 1.0 / unit[i] if unit[i] > 0 else np.nan  # p16/p84 are on the F/||F|| scale
    if {"p16", "p84"} <= set(rows.columns) and np.isfinite(rows["p16"].to_numpy(float)).any():
        return y, yerr, rows["p16"].to_numpy(float) * scale, rows["p84"].to_numpy(float) * scale
    return y, yerr, None, None


def _ylabel(mode: str | None, ref: str | None, per_pixel: bool, unit: str | None) -> str:
    if mode == "reference":
        return f"{_FNU} / {_FNU}({ref})"
    if mode == "l2":
        return rf"{_FNU} / $\Vert f_\nu \Vert_2$  (L2-normalised shape)"
    return ("flux per pixel" if per_pixel else "summed flux") + (f" [{unit}]" if unit else "")


def _wavelength_axis(ax: Any, wl: np.ndarray, log: bool) -> None:
    ax.set_xlabel("wavelength [µm]")
    wl = wl[np.isfinite(wl) & (wl > 0)]
    if not log or not wl.size:
        return
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    lo, hi = wl.min() / 1.12, wl.max() * 1.12
    ax.set_xlim(lo, hi)
    ticks = [t for t in _TICKS if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _legend_title(errs: list[np.ndarray], ys: list[np.ndarray], shaded: bool) -> str:
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.concatenate([np.abs(e / y) for e, y in zip(errs, ys, strict=True)] or [[]])
    rel = rel[np.isfinite(rel) & (rel > 0)]
    lines = ["shaded: 16–84 % of pixel shapes (flux-weighted)"] if shaded else []
    if rel.size:
        lines.append(f"bars: composite error (median {100 * np.median(rel):.2g} %)")
    return "\n".join(lines)


def _mode(df: pd.DataFrame, normalize: str | None,
          reference: str | None) -> tuple[str | None, str | None]:
    """The normalisation and reference band to use (checked; default reference chosen)."""
    mode = None if normalize in (None, "none") else check_choice(
        "normalize", normalize, NORMALIZATIONS)
    if mode != "reference":
        return mode, None
    if reference is not None and reference not in set(_band_column(df)):
        raise InputError(f"reference={reference!r} is not a band of the composites; they have "
                         f"{sorted(set(_band_column(df)))}.")
    ref = reference_band(df) if reference is None else reference
    return ("reference" if ref is not None or df.empty else "l2"), ref


def _draw_cluster(ax: Any, rows: pd.DataFrame, c: int, colour: Any,
                  shape: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, bool]:
    """The spread (shaded) and the SED with error bars of cluster ``c``; ``y, yerr, shaded``."""
    x = rows["wavelength"].to_numpy(float)
    y, yerr, lo, hi = shape
    if lo is not None:
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(x, np.where(ok, lo, 0), np.where(ok, hi, 0), where=ok, color=colour,
                        alpha=0.2, linewidth=0, gid=f"spread {c}")
    n_pix = int(rows["n_pixels"].iloc[0]) if "n_pixels" in rows else None
    ax.errorbar(x, y, yerr=yerr, marker="o", ms=4, capsize=2.5, lw=1.3, color=colour,
                label=f"cluster {c}" + (f" ({n_pix} px)" if n_pix is not None else ""))
    return y, yerr, lo is not None


def plot_composites(composites: Any, *, per_pixel: bool = True, ax: Any = None,
                    figsize: tuple[float, float] = (5.5, 3.8), title: str | None = None,
                    normalize: str | None = "reference", reference: str | None = None,
                    spread: pd.DataFrame | None = None, unit: str | None = None,
                    log_wavelength: bool = True) -> Figure:
    """Each cluster's composite SED shape, its within-cluster spread and error bars.

    Parameters
    ----------
    composites : xarray.Dataset or pandas.DataFrame
        ``PixelResult.composites`` or rows of one galaxy's composites table
        (``cluster, band, wavelength, flux, err`` and optionally ``n_pixels``,
        ``shape``, ``p16``, ``p84``).
    per_pixel : bool
        With ``normalize=None``: divide flux and error by the pixel count.
    ax : matplotlib Axes, optional
        Draw into it (its figure is returned); default a new figure.
    figsize : (float, float)
    title : str, optional
    normalize : {"reference", "l2"} or None
        Divide each composite by its flux in ``reference``, or by its L2 norm;
        None draws the fluxes themselves. The y label says which.
    reference : str, optional
        Band name for ``"reference"`` (default :func:`reference_band`; if no
        band is positive in every cluster, the L2 norm is used).
    spread : pandas.DataFrame, optional
        ``cluster, wavelength, p16, p84``: percentiles of each cluster's
        per-pixel unit SEDs on the scale of its ``F / ||F||``
        (:func:`pixel_spread`); default the ``p16``/``p84`` columns of
        ``composites`` if present. Drawn shaded, normalised modes only.
    unit : str, optional
        Flux unit for the y label of ``normalize=None`` (e.g. ``"nJy"``).
    log_wavelength : bool
        Log wavelength axis (customary for SEDs).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        A malformed table, an unknown ``normalize`` or a ``reference`` band
        that the composites do not have.
    """
    df = _with_spread(_as_frame(composites), spread)
    mode, ref = _mode(df, normalize, reference)
    fig = ax.figure if ax is not None else Figure(figsize=figsize, layout="constrained")
    ax = ax if ax is not None else fig.subplots()
    clusters = sorted(int(c) for c in df["cluster"].unique())
    colours = cluster_colours(max(clusters, default=-1) + 1)
    errs, ys, shaded = [], [], False
    for c in clusters:
        rows = df[df["cluster"] == c].sort_values("wavelength")
        y, yerr, band = _draw_cluster(ax, rows, c, colours[c], _shape(rows, mode, ref, per_pixel))
        errs.append(yerr)
        ys.append(y)
        shaded |= band
    if mode == "reference" and clusters:
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":", zorder=0)
    _wavelength_axis(ax, df["wavelength"].to_numpy(float), log_wavelength)
    ax.set_ylabel(_ylabel(mode, ref, per_pixel, unit))
    if clusters:
        ax.legend(fontsize="small", title=_legend_title(errs, ys, shaded) or None,
                  title_fontsize="x-small", alignment="left")
    if title:
        ax.set_title(wrap_title(title, 55), fontsize="medium")
    return fig
