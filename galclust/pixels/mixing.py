"""What :func:`~galclust.pixels.core.cluster_galaxy` does around the clustering itself.

Three steps, each on one galaxy's stamp (pure numpy):

- :func:`rescale_from_sky` — before any χ² test, every band's errors are
  rescaled by the robust scatter of ``sci / err`` on the empty sky around the
  galaxy (:func:`~galclust.pixels.skynoise.sky_error_scale`): drizzled error
  maps are too small where the noise is correlated.
- :func:`faint_bins` — footprint pixels below the S/N cut are grouped into
  Voronoi bins of a target S/N (:func:`~galclust.pixels.binning.voronoi_bins`)
  so faint outskirts are clustered as bins instead of dropped.
- :func:`unmix_footprint` — the spectral unmixing of every covered footprint
  pixel (:func:`~galclust.pixels.unmix.unmix`, its k tested again on the
  smoothed stamp by :func:`~galclust.pixels.smoothk.smoothed_k`, its SEDs and
  fractions re-fitted on the smoothed stamp by :func:`~galclust.pixels.pooling.pool_unmixing`):
  fraction maps and component SEDs with errors, and hard labels on the
  pixels that pass the S/N cut: each pixel's dominant component under the
  minimum-volume SEDs, the partition of the pixels by colour (the fraction
  maps use SEDs placed by the light's profiles,
  :mod:`~galclust.pixels.profilefit`, and their argmax can differ from the
  label where components overlap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from galclust.pixels.binning import bin_seds, binned_signal_noise, voronoi_bins
from galclust.pixels.distance import pairwise_distances
from galclust.pixels.nclusters import silhouette_from_distances
from galclust.pixels.normalize import unit_seds
from galclust.pixels.pooling import pool_unmixing
from galclust.pixels.skynoise import CORRELATION_AREA, correlation_alpha, sky_error_scale
from galclust.pixels.smoothk import K_SIGMAS, smoothed_k
from galclust.pixels.unmix import unmix

__all__ = ["FAINT_FRACTION", "UNMIX_RULES", "FaintBins", "Unmixed", "dominant_labels",
           "faint_bins", "is_faint", "labels_silhouette", "rescale_from_sky", "unmix_footprint"]

#: How ``cluster_galaxy(unmix=...)`` chooses k (see :func:`galclust.pixels.unmix.unmix`):
#: ``"pixel"`` is the null rule without the smoothed-stamp test (:mod:`~galclust.pixels.smoothk`).
UNMIX_RULES: tuple[str, ...] = ("null", "pixel", "aic", "bic", "hysime")
#: A galaxy whose S/N cut keeps less than this fraction of its covered
#: footprint, or fewer than ``2 * min_pixels`` of a larger one, is flagged
#: ``FAINT`` (counting clustered faint bins). Synthetic galaxies with
#: segments to the 1-sigma isophote keep 34-36 %; the faint NIRCam galaxy of
#: issue #11 kept 191 of 611 (31 %) and came out k = 1.
FAINT_FRACTION = 0.25


def is_faint(n_kept: int, n_covered: int, min_pixels: int) -> bool:
    """Whether the S/N cut left a galaxy too few pixels (see :data:`FAINT_FRACTION`)."""
    few = n_kept < 2 * min_pixels <= n_covered
    return bool(n_covered and (n_kept < FAINT_FRACTION * n_covered or few))


def rescale_from_sky(sci: np.ndarray, err: np.ndarray, sky: np.ndarray | None,
                     bands: Sequence[str], *, correlation: bool = True
                     ) -> tuple[np.ndarray, dict[str, float], bool, float]:
    """Errors rescaled per band from the empty sky of the stamp.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    sky : ndarray of bool, (y, x), or None
        Empty-sky pixels (outside every segment). None: errors kept.
    bands : sequence of str
    correlation : bool
        Also measure the noise correlation (only the unmixing's k test uses
        it; it costs about as much as the clustering of a small galaxy).

    Returns
    -------
    err : ndarray, (band, y, x)
    scale : dict of str to float
        The factor applied to each band (1.0 where the sky was too small).
    reliable : bool
        False when some band had too little sky to measure (its factor is 1),
        or, with ``correlation``, no band had enough to measure the noise
        correlation (then taken as 1: white noise).
    correlation : float
        How many pixels' worth of noise are correlated: ``(1 + alpha
        log10 25)**2`` for the median over bands of the correlated-noise
        coefficient (:func:`~galclust.pixels.skynoise.correlation_alpha`);
        1 for independent pixels or too little sky. Sums over correlated
        pixels scatter ``sqrt(correlation)`` times more than their errors say.
    """
    if sky is None:
        return err, {}, True, 1.0
    sky = np.asarray(sky, dtype=bool)
    res = sky_error_scale(sci, err, sky)
    scale = np.asarray(res.scale, dtype=float)
    out = err * scale[:, None, None].astype(err.dtype)
    scale_of = {b: float(f) for b, f in zip(bands, scale, strict=True)}
    if not correlation:
        return out, scale_of, bool(np.all(res.reliable)), 1.0
    corr = correlation_alpha(sci, out, sky)
    alpha = np.asarray(corr.alpha, dtype=float)[np.asarray(corr.reliable, dtype=bool)]
    factor = (1.0 + float(np.median(alpha)) * np.log10(CORRELATION_AREA)) ** 2 \
        if alpha.size else 1.0
    # the unmixing's k test takes unmeasured noise as white: say so (drizzled noise
    # then splits single components)
    return out, scale_of, bool(np.all(res.reliable) and alpha.size), max(factor, 1.0)


@dataclass(frozen=True)
class FaintBins:
    """Voronoi bins of the footprint pixels below the S/N cut.

    Attributes
    ----------
    labels : ndarray of int, (y, x)
        Bin of each faint pixel, −1 elsewhere.
    flux, err : ndarray, (bin, band)
        Summed flux and its error.
    keep : ndarray of bool, (bin,)
        Bins that reach the S/N cut (the others stay unclustered).
    """

    labels: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    keep: np.ndarray


def faint_bins(sci: np.ndarray, err: np.ndarray, faint: np.ndarray, used: np.ndarray,
               target_snr: float, snr_threshold: float) -> FaintBins | None:
    """Voronoi-bin the faint footprint pixels to ``target_snr``.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    faint : ndarray of bool, (y, x)
        Covered footprint pixels below the S/N cut.
    used : ndarray of bool, (band,)
    target_snr : float
        Target S/N of a bin (the signal is the inverse-variance-weighted
        band mean, :func:`~galclust.pixels.binning.binned_signal_noise`).
    snr_threshold : float
        A bin is clustered when the median S/N of its summed SED over the used
        bands reaches this.

    Returns
    -------
    FaintBins or None
        None when there is no faint pixel.
    """
    if not faint.any():
        return None
    signal, noise = binned_signal_noise(sci, err, used_bands=used)
    labels = voronoi_bins(np.nan_to_num(signal), np.where(np.isfinite(noise), noise, 1e30),
                          faint, float(target_snr))
    if labels.max() < 0:
        return None
    flux, ferr, _, _ = bin_seds(sci, err, labels)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.median(flux[:, used] / ferr[:, used], axis=1)
    keep = np.isfinite(snr) & (snr >= snr_threshold) & np.all(np.isfinite(flux[:, used]), axis=1)
    return FaintBins(labels=labels, flux=flux, err=ferr, keep=keep)


@dataclass(frozen=True)
class Unmixed:
    """The unmixing of one galaxy's footprint.

    Attributes
    ----------
    fractions : ndarray of float32, (component, y, x)
        Share of each pixel's band-summed light from each component (NaN off
        the covered footprint).
    components : xarray.Dataset
        ``sed``, ``sed_err`` (component, band: normalised to sum 1 over the
        used bands, NaN in the others), ``flux`` (component: band-summed flux).
    labels : ndarray of int, (pixel,)
        Dominant component of each input pixel.
    n_components : int
    criterion : str
    k_scores : dict of int to float
    """

    fractions: np.ndarray
    components: xr.Dataset
    labels: np.ndarray
    n_components: int
    criterion: str
    k_scores: dict[int, float]


def unmix_footprint(sci: np.ndarray, err: np.ndarray, pixels: np.ndarray, used: np.ndarray,
                    bands: Sequence[str], wavelength: np.ndarray, *, n_components: Any,
                    k_range: tuple[int, int], random_state: int, rule: str = "null",
                    correlation: float = 1.0, pooled: bool = True,
                    profiles: bool = True, k_sigmas: tuple[float, ...] = K_SIGMAS) -> Unmixed:
    """Unmix the SEDs of the ``pixels`` of a stamp (:func:`~galclust.pixels.unmix.unmix`).

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    pixels : ndarray of bool, (y, x)
        The pixels to unmix (the covered footprint).
    used : ndarray of bool, (band,)
    bands : sequence of str
    wavelength : ndarray, (band,)
    n_components : "auto", "hysime" or int
    k_range : (int, int)
    random_state : int
    rule : {"null", "pixel", "aic", "bic", "hysime"}
        How k is chosen when ``n_components="auto"``: ``"pixel"`` is the null
        rule pixel by pixel alone (``k_sigmas`` unused; 2-2.7 times
        faster).
    correlation : float
        Noise correlation area (:func:`rescale_from_sky`), for the null rule.
    pooled : bool
        Re-fit the SEDs and fractions of the chosen k on the spatially
        smoothed stamp (:func:`~galclust.pixels.pooling.pool_unmixing`); False
        keeps the pixel-by-pixel fit.
    profiles : bool
        With ``pooled``, place the component SEDs by a multi-band profile
        decomposition (:func:`~galclust.pixels.profilefit.profile_seds`).
    k_sigmas : tuple of float
        With ``n_components="auto"`` and the null rule, test k again on the
        stamp smoothed by each of these Gaussian sigmas (px) in turn
        (:func:`~galclust.pixels.smoothk.smoothed_k`); ``()``: the
        pixel-by-pixel test alone.

    Returns
    -------
    Unmixed
    """
    flux = sci[used][:, pixels].T.astype(np.float64)
    e = err[used][:, pixels].T.astype(np.float64)
    if n_components == "auto" and rule == "hysime":
        n_components = "hysime"
    res = unmix(flux, e, n_components=n_components, k_range=k_range,
                penalty=rule if rule not in ("hysime", "pixel") else "null",
                correlation=correlation,
                random_state=random_state)
    if n_components == "auto" and rule == "null" and k_sigmas and res.criterion == "null":
        k, seds, _ = smoothed_k(sci[used], err[used], pixels, res.n_components, res.seds,
                                k_max=k_range[1], correlation=correlation, sigmas=k_sigmas,
                                random_state=random_state)
        if k > res.n_components:
            scores = dict(res.k_scores)
            res = unmix(flux, e, n_components=k, init=seds, random_state=random_state)
            res.criterion, res.k_scores = "null-smoothed", {**scores, **res.k_scores}
    if pooled:
        res = pool_unmixing(sci[used], err[used], pixels, res, correlation=correlation,
                            profiles=profiles, random_state=random_state)
    k = res.n_components
    frac = np.full((k,) + pixels.shape, np.nan, dtype=np.float32)
    frac[:, pixels] = res.fractions.T
    nb = len(bands)
    sed = np.full((k, nb), np.nan)
    sed_err = np.full((k, nb), np.nan)
    sed[:, used] = res.seds
    sed_err[:, used] = res.sed_err
    comps = xr.Dataset(
        {"sed": (("component", "band"), sed), "sed_err": (("component", "band"), sed_err),
         "flux": (("component",), res.abundances.sum(axis=0))},
        coords={"component": np.arange(k), "band": list(bands),
                "wavelength": ("band", np.asarray(wavelength, dtype=float))})
    return Unmixed(fractions=frac, components=comps, labels=res.labels, n_components=k,
                   criterion=res.criterion, k_scores=dict(res.k_scores))


def dominant_labels(mixed: Unmixed, pixels: np.ndarray, selected: np.ndarray,
                    bins: FaintBins | None = None) -> np.ndarray | None:
    """Each clustered pixel's (and faint bin's) dominant component.

    Parameters
    ----------
    mixed : Unmixed
        The unmixing of ``pixels``.
    pixels : ndarray of bool, (y, x)
        The unmixed pixels (``mixed.labels`` in their C order).
    selected : ndarray of bool, (y, x)
        The pixels that passed the S/N cut (within ``pixels``), in the order of
        the rows labelled.
    bins : FaintBins, optional
        Clustered faint bins (their rows follow the pixels'): the label most
        of the bin's pixels have.

    Returns
    -------
    ndarray of int or None
        One label per row; None when some component dominates no row (the
        caller keeps its own labels).
    """
    k = mixed.n_components
    of_pixel = np.full(pixels.shape, -1, dtype=np.int64)
    of_pixel[pixels] = mixed.labels
    rows = [of_pixel[selected]]
    if bins is not None:  # a bin takes the label most of its unmixed pixels have
        for b in np.flatnonzero(bins.keep):
            inside = of_pixel[bins.labels == b]
            inside = inside[inside >= 0]
            rows.append(np.array([np.bincount(inside, minlength=k).argmax()
                                  if inside.size else -1]))
    labels = np.concatenate(rows)
    if (labels < 0).any():
        return None
    return labels if np.bincount(labels, minlength=k).min() > 0 else None


#: Most rows whose silhouette :func:`labels_silhouette` scores (a fixed random subsample).
SILHOUETTE_ROWS = 2000


def labels_silhouette(flux: np.ndarray, labels: np.ndarray, random_state: int = 0) -> float:
    """Mean silhouette of ``labels`` on the L2-normalised SEDs (rows of ``flux``)."""
    if np.unique(labels).size < 2:
        return float("nan")
    x, _ = unit_seds(flux)
    pick = np.arange(len(x)) if len(x) <= SILHOUETTE_ROWS else np.sort(
        np.random.default_rng(random_state).choice(len(x), SILHOUETTE_ROWS, replace=False))
    return silhouette_from_distances(pairwise_distances(x[pick]), labels[pick])
