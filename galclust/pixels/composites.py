"""Composite SEDs: one summed SED per pixel cluster, with propagated errors.

For cluster ``c`` and band ``k``: ``flux[c, k] = Σ_i f_ik`` and
``err[c, k] = sqrt(Σ_i σ_ik²)`` over the cluster's pixels (independent pixel
errors); ``shape[c]`` is the mean of the pixels' unit (L2-normalised) SEDs,
renormalised to unit length, so it compares shapes irrespective of the
normalisation used for clustering; ``snr[c]`` is the median over used bands
of ``flux / err``. Bands that were not used hold NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from galclust.pixels.normalize import unit_seds

__all__ = ["composite_seds", "composites_to_frame", "default_band_names"]


def default_band_names(wavelength: np.ndarray) -> list[str]:
    """Names for unnamed bands: their pivot wavelength, e.g. ``"1.501um"``."""
    return [f"{w:.4g}um" for w in np.asarray(wavelength, dtype=float)]


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
        ``flux``, ``err``, ``shape`` (cluster, band), ``n_pixels``, ``snr``
        (cluster); coordinates ``cluster``, ``band``, ``wavelength``.
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
    nan_cols = np.where(used, 1.0, np.nan)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(noise > 0, total / noise, np.nan)[:, used]
        snr = (np.nanmedian(ratio, axis=1) if ratio.size and np.isfinite(ratio).any()
               else np.full(k, np.nan))
    return xr.Dataset(
        {
            "flux": (("cluster", "band"), total * nan_cols),
            "err": (("cluster", "band"), noise * nan_cols),
            "shape": (("cluster", "band"), shape * nan_cols),
            "n_pixels": ("cluster", n_pix),
            "snr": ("cluster", np.asarray(snr, dtype=np.float64).reshape(k)),
        },
        coords={"cluster": np.arange(k), "band": np.asarray(bands, dtype=object),
                "wavelength": ("band", np.asarray(wavelength, dtype=np.float64))},
        attrs={"description": "summed flux and sqrt(sum err^2) of each pixel cluster"},
    )


def composites_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Long table of a composites Dataset: ``cluster, band, wavelength, flux, err, n_pixels, shape``."""
    k, n_band = ds.sizes["cluster"], ds.sizes["band"]
    return pd.DataFrame({
        "cluster": np.repeat(ds["cluster"].values, n_band).astype(np.int32),
        "band": np.tile(ds["band"].values.astype(str), k),
        "wavelength": np.tile(ds["wavelength"].values, k),
        "flux": ds["flux"].values.ravel(),
        "err": ds["err"].values.ravel(),
        "n_pixels": np.repeat(ds["n_pixels"].values, n_band).astype(np.int64),
        "shape": ds["shape"].values.ravel(),
    })
