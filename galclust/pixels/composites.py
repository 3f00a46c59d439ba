"""Composite SEDs: one summed SED per pixel cluster, with propagated errors.

For cluster ``c`` and band ``k``: ``flux[c, k] = Σ_i f_ik`` and
``err[c, k] = sqrt(Σ_i σ_ik²)`` over the cluster's pixels (independent pixel
errors); ``shape[c]`` is the mean of the pixels' unit (L2-normalised) SEDs,
renormalised to unit length, so it compares shapes irrespective of the
normalisation used for clustering; ``p16[c]`` and ``p84[c]`` are the spread of
shapes within the cluster, the flux-weighted 16th and 84th percentiles of its
pixels' unit SEDs on the scale of the composite's own unit SED ``flux[c] /
||flux[c]||`` (see :func:`shape_percentiles`); ``snr[c]`` is the median over
used bands of ``flux / err``. Bands that were not used hold NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from galclust.errors import InputError
from galclust.pixels.normalize import unit_seds

__all__ = ["composite_seds", "composites_to_frame", "default_band_names", "shape_percentiles"]


def default_band_names(wavelength: np.ndarray) -> list[str]:
    """Names for unnamed bands: their pivot wavelength, e.g. ``"1.501um"``."""
    return [f"{w:.4g}um" for w in np.asarray(wavelength, dtype=float)]


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray,
                          q: Sequence[float]) -> np.ndarray:
    """Percentiles ``q`` of each column of ``values`` (n, b), rows weighted: (len(q), b)."""
    if not weights.sum() > 0:
        weights = np.ones_like(weights)
    order = np.argsort(values, axis=0)
    v, w = np.take_along_axis(values, order, axis=0), weights[order]
    cdf = (np.cumsum(w, axis=0) - w / 2) / w.sum(axis=0)
    return np.array([[np.interp(p / 100.0, cdf[:, j], v[:, j]) for j in range(v.shape[1])]
                     for p in q])


def shape_percentiles(flux: np.ndarray, labels: np.ndarray, *, n_clusters: int,
                      used_bands: np.ndarray | None = None,
                      q: Sequence[float] = (16.0, 84.0)) -> np.ndarray:
    """Spread of each cluster's pixel SED shapes: percentiles of their unit SEDs.

    For the pixels ``i`` of a cluster, with unit SEDs ``u_i = f_i / ||f_i||``
    (over the used bands), the percentiles of ``u_ik`` in each band ``k`` are
    weighted by ``||f_i||`` (the share of the light, so that the composite
    ``F = Σ_i ||f_i|| u_i`` is their weighted mean) and multiplied by
    ``Σ_i ||f_i|| / ||F||``: on that scale the weighted mean of the pixel shapes
    is the composite's unit SED ``F / ||F||``, and the spread can be drawn
    around the composite (divided by ``F_ref / ||F||`` for ``F / F_ref``).

    Parameters
    ----------
    flux : ndarray, (n_pixels, n_bands)
        Pixel fluxes (non-finite values count as 0, as in :func:`composite_seds`).
    labels : ndarray of int, (n_pixels,)
        Cluster of each pixel, −1 for pixels in no cluster.
    n_clusters : int
    used_bands : ndarray of bool, (n_bands,), optional
        Bands the unit SEDs are taken over (others are NaN); default all.
    q : sequence of float
        Percentiles in [0, 100].

    Returns
    -------
    ndarray, (len(q), n_clusters, n_bands)
        NaN for unused bands and for clusters without pixels.

    Raises
    ------
    InputError
        If ``flux`` is not 2-D or ``labels`` does not have one entry per pixel.
    """
    flux, labels = np.asarray(flux, dtype=np.float64), np.asarray(labels).reshape(-1)
    if flux.ndim != 2 or labels.size != flux.shape[0]:
        raise InputError(f"flux must be (n_pixels, n_bands) with one label per pixel; got "
                         f"flux {flux.shape} and labels {labels.shape}.")
    n_band, k = flux.shape[1], int(n_clusters)
    used = np.ones(n_band, bool) if used_bands is None else np.asarray(used_bands, bool)
    f = np.where(used[None, :] & np.isfinite(flux), flux, 0.0)
    unit, norm = unit_seds(f)
    out = np.full((len(q), k, n_band), np.nan)
    for c in range(k):
        pick = labels == c
        total = float(np.linalg.norm(f[pick].sum(axis=0)))
        if pick.any() and total > 0:
            out[:, c] = _weighted_percentiles(unit[pick], norm[pick], q) * (
                norm[pick].sum() / total)
    out[:, :, ~used] = np.nan
    return out


def composite_seds(flux: np.ndarray, err: np.ndarray, labels: np.ndarray, *, n_clusters: int,
                   wavelength: np.ndarray, bands: Sequence[str] | None = None,
                   used_bands: np.ndarray | None = None) -> xr.Dataset:
    """Summed SED and propagated error of each cluster.

    Parameters
    ----------
    flux, err : ndarray, (n_pixels, n_bands)
        Pixel fluxes and 1-sigma errors (all bands of the stamp).
    labels : ndarray of int, (n_pixels,)
        Cluster of each pixel, −1 for pixels in no cluster.
    n_clusters : int
    wavelength : ndarray, (n_bands,)
    bands : sequence of str, optional
        Band names (default: from the wavelengths).
    used_bands : ndarray of bool, (n_bands,), optional
        Bands that were used (others are NaN); default all.

    Returns
    -------
    xarray.Dataset
        ``flux``, ``err``, ``shape``, ``p16``, ``p84`` (cluster, band),
        ``n_pixels``, ``snr`` (cluster); coordinates ``cluster``, ``band``,
        ``wavelength``.
    """
    flux = np.asarray(flux, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    labels = np.asarray(labels)
    n_band = flux.shape[1]
    used = np.ones(n_band, bool) if used_bands is None else np.asarray(used_bands, bool)
    bands = list(bands) if bands is not None else default_band_names(wavelength)
    k = int(n_clusters)
    keep = (labels >= 0) & (labels < k)
    onehot = np.zeros((k, labels.size))
    onehot[labels[keep], np.flatnonzero(keep)] = 1.0
    f = np.where(used[None, :], flux, 0.0)
    e = np.where(used[None, :], err, 0.0)
    f = np.where(np.isfinite(f), f, 0.0)
    e = np.where(np.isfinite(e), e, 0.0)
    total = onehot @ f
    noise = np.sqrt(onehot @ (e * e))
    unit, _ = unit_seds(f)
    shape, _ = unit_seds(onehot @ unit)
    n_pix = onehot.sum(axis=1).astype(np.int64)
    spread = shape_percentiles(f, np.where(keep, labels, -1), n_clusters=k, used_bands=used)
    nan_cols = np.where(used, 1.0, np.nan)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(noise > 0, total / noise, np.nan)[:, used]
        snr = np.full(k, np.nan)
        has = np.isfinite(ratio).any(axis=1) if ratio.size else np.zeros(k, bool)
        snr[has] = np.nanmedian(ratio[has], axis=1)  # a cluster without pixels: NaN
    return xr.Dataset(
        {
            "flux": (("cluster", "band"), total * nan_cols),
            "err": (("cluster", "band"), noise * nan_cols),
            "shape": (("cluster", "band"), shape * nan_cols),
            "p16": (("cluster", "band"), spread[0]),
            "p84": (("cluster", "band"), spread[1]),
            "n_pixels": ("cluster", n_pix),
            "snr": ("cluster", np.asarray(snr, dtype=np.float64).reshape(k)),
        },
        coords={"cluster": np.arange(k), "band": np.asarray(bands, dtype=object),
                "wavelength": ("band", np.asarray(wavelength, dtype=np.float64))},
        attrs={"description": "summed flux and sqrt(sum err^2) of each pixel cluster"},
    )


def composites_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Long table of a composites Dataset.

    Columns ``cluster, band, wavelength, flux, err, n_pixels, shape``, then
    ``p16, p84`` when the Dataset holds them.
    """
    k, n_band = ds.sizes["cluster"], ds.sizes["band"]
    spread = {v: ds[v].values.ravel() for v in ("p16", "p84") if v in ds}
    return pd.DataFrame({
        "cluster": np.repeat(ds["cluster"].values, n_band).astype(np.int32),
        "band": np.tile(ds["band"].values.astype(str), k),
        "wavelength": np.tile(ds["wavelength"].values, k),
        "flux": ds["flux"].values.ravel(),
        "err": ds["err"].values.ravel(),
        "n_pixels": np.repeat(ds["n_pixels"].values, n_band).astype(np.int64),
        "shape": ds["shape"].values.ravel(),
        **spread,
    })
