"""Names of the normalisations, metrics and methods, and the checks run before compute.

Every public entry point (:class:`~galclust.pixels.estimator.PixelClusterer`,
:func:`~galclust.pixels.core.cluster_galaxy`, the survey mapping) validates its
options here, so a misspelt name or an impossible combination fails at once
with a message that names the argument, the valid values and the closest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from galclust.errors import InputError, check_choice

__all__ = [
    "LINKAGES",
    "METHODS",
    "METRICS",
    "NORMALIZATIONS",
    "PAIRWISE_METHODS",
    "SCALE_NORMALIZATIONS",
    "KRule",
    "check_arrays",
    "check_cone",
    "check_options",
    "check_selection_numbers",
    "parse_n_clusters",
]

#: Defaults of every pixel-clustering entry point (cluster_galaxy, PixelClusterer,
#: the survey mapping and the run's PixelOptions), declared once.
DEFAULT_METHOD = "kmeans"
DEFAULT_NORMALIZE = "l2"
DEFAULT_METRIC = "euclidean"
DEFAULT_SNR_THRESHOLD = 3.0
DEFAULT_MIN_PIXELS = 10

#: Ways to remove brightness from pixel SEDs (see :mod:`galclust.pixels.normalize`).
NORMALIZATIONS: tuple[str, ...] = ("none", "l2", "median_sed", "colour", "sum")
#: Normalisations that only rescale each pixel (the ``chi2`` metric needs one).
SCALE_NORMALIZATIONS: tuple[str, ...] = ("none", "l2", "sum")
#: Distances between pixel SEDs (see :mod:`galclust.pixels.distance`).
METRICS: tuple[str, ...] = ("euclidean", "xcorr", "wavelength", "chi2")
#: Clustering methods (see :mod:`galclust.pixels.estimator`).
METHODS: tuple[str, ...] = ("kmeans", "gmm", "agglomerative", "dbscan", "hdbscan", "spectral")
#: Linkages of ``method="agglomerative"``; ``"ward"`` works on features, the
#: others on a precomputed distance matrix.
LINKAGES: tuple[str, ...] = ("ward", "complete", "average", "single")
#: Methods that find the number of clusters themselves.
DENSITY_METHODS: tuple[str, ...] = ("dbscan", "hdbscan")
#: (method, linkage) pairs that need the full pairwise distance matrix.
PAIRWISE_METHODS: tuple[str, ...] = ("spectral", "agglomerative-complete",
                                     "agglomerative-average", "agglomerative-single")


@dataclass(frozen=True)
class KRule:
    """A parsed ``n_clusters`` option.

    Attributes
    ----------
    kind : {"auto", "fixed", "snr"}
        ``"auto"``: BIC (gmm) / silhouette (others) with a single-population
        test for k = 1; ``"fixed"``: exactly ``k``; ``"snr"``: the largest k
        whose every cluster reaches S/N ``snr``.
    k : int or None
        The fixed k.
    snr : float or None
        The S/N target.
    """

    kind: str
    k: int | None = None
    snr: float | None = None


def parse_n_clusters(value: Any) -> KRule:
    """Parse ``n_clusters``: ``"auto"``, a positive int, or ``"snr:<target>"``.

    Raises
    ------
    InputError
        For anything else.
    """
    if isinstance(value, bool):
        raise InputError(f"n_clusters={value!r} must be 'auto', a positive int or 'snr:<target>'.")
    if isinstance(value, int | np.integer):
        if value < 1:
            raise InputError(f"n_clusters={value} must be >= 1 (or 'auto' / 'snr:<target>').")
        return KRule("fixed", k=int(value))
    if isinstance(value, str):
        if value == "auto":
            return KRule("auto")
        if value.startswith("snr:"):
            try:
                target = float(value[4:])
            except ValueError:
                target = math.nan
            if not (math.isfinite(target) and target > 0):
                raise InputError(f"n_clusters={value!r}: the S/N target after 'snr:' must be a "
                                 "positive number, e.g. 'snr:20'.")
            return KRule("snr", snr=target)
    raise InputError(f"n_clusters={value!r} must be 'auto', a positive int or 'snr:<target>' "
                     "(e.g. 'snr:20').")


def check_options(*, method: str, normalize: str, metric: str, linkage: str = "ward",
                  n_clusters: Any = "auto", k_range: Any = (1, 6)) -> KRule:
    """Validate a combination of clustering options; return the parsed ``n_clusters``.

    Raises
    ------
    InputError
        Unknown names (with the valid ones and the closest), ``metric="chi2"``
        with a normalisation that is not a per-pixel scaling, a fixed or S/N
        ``n_clusters`` for a density-based method, or a bad ``k_range``.
    """
    check_choice("method", method, METHODS)
    check_choice("normalize", normalize, NORMALIZATIONS)
    check_choice("metric", metric, METRICS)
    check_choice("linkage", linkage, LINKAGES)
    if metric == "chi2" and normalize not in SCALE_NORMALIZATIONS:
        raise InputError(
            f"metric='chi2' compares fluxes with their errors, so normalize must rescale "
            f"pixels only ({', '.join(map(repr, SCALE_NORMALIZATIONS))}), not {normalize!r}."
        )
    rule = parse_n_clusters(n_clusters)
    if method in DENSITY_METHODS and rule.kind != "auto":
        raise InputError(f"method={method!r} finds the number of clusters itself; use "
                         f"n_clusters='auto', not {n_clusters!r}.")
    try:
        kmin, kmax = (int(k) for k in k_range)
    except (TypeError, ValueError):
        raise InputError(f"k_range={k_range!r} must be a pair (kmin, kmax) of ints.") from None
    if not 1 <= kmin <= kmax:
        raise InputError(f"k_range={k_range!r} must satisfy 1 <= kmin <= kmax.")
    return rule


def check_selection_numbers(*, snr_threshold: Any = 3.0, min_pixels: Any = 10) -> None:
    """Raise :class:`InputError` unless ``snr_threshold`` is finite and >= 0 and
    ``min_pixels`` a whole number >= 1 (a NaN threshold would select nothing)."""
    try:
        snr = float(snr_threshold)
    except (TypeError, ValueError):
        snr = math.nan
    if not (math.isfinite(snr) and snr >= 0):
        raise InputError(f"snr_threshold={snr_threshold!r} must be a finite number >= 0 (the "
                         "minimum median S/N of a pixel across bands; default 3).")
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, int | np.integer) \
            or min_pixels < 1:
        raise InputError(f"min_pixels={min_pixels!r} must be a whole number >= 1 (default 10).")


def check_cone(cone: Any) -> tuple[float, float, float]:
    """Check a cone ``(ra, dec, radius)``: degrees, degrees, arcsec; return it as floats.

    Raises
    ------
    InputError
        Unless RA is finite, -90 <= Dec <= 90 and 0 < radius < inf.
    """
    try:
        ra, dec, radius = (float(v) for v in cone)
    except (TypeError, ValueError):
        raise InputError(f"cone={cone!r} must be (ra, dec, radius): degrees, degrees, "
                         "arcsec.") from None
    if not (math.isfinite(ra) and -90.0 <= dec <= 90.0 and 0 < radius < math.inf):
        raise InputError(f"cone RA {ra:g}, Dec {dec:g}, radius {radius:g}: give RA in degrees, "
                         "Dec in degrees between -90 and +90 and a positive radius in arcsec.")
    return ra, dec, radius


def check_arrays(sci: Any, err: Any, mask: Any, wavelength: Any) -> tuple[np.ndarray, ...]:
    """Check the shapes of one galaxy's arrays and return them as numpy arrays.

    Parameters
    ----------
    sci, err : array_like, (band, y, x)
    mask : array_like of bool, (y, x)
    wavelength : array_like, (band,)
        Positive, finite pivot wavelengths in micron.

    Returns
    -------
    sci, err : float64 ndarray
    mask : bool ndarray
    wavelength : float64 ndarray

    Raises
    ------
    InputError
        If the arrays disagree in shape, or wavelengths are not positive.
    """
    sci = np.asarray(sci, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    mask = np.asarray(mask)
    wavelength = np.asarray(wavelength, dtype=np.float64)
    if sci.ndim != 3:
        raise InputError(f"sci must be a (band, y, x) array; got shape {sci.shape}.")
    if err.shape != sci.shape:
        raise InputError(f"err has shape {err.shape} but sci has {sci.shape}; they must match.")
    if mask.shape != sci.shape[1:]:
        raise InputError(f"mask has shape {mask.shape} but sci's (y, x) shape is "
                         f"{sci.shape[1:]}; pass the footprint of the same stamp.")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise InputError("mask must be boolean (True inside the galaxy's footprint).")
        mask = mask.astype(bool)
    if wavelength.shape != (sci.shape[0],):
        raise InputError(f"wavelength has shape {wavelength.shape} but sci has "
                         f"{sci.shape[0]} bands; give one pivot wavelength per band.")
    if not (np.isfinite(wavelength).all() and (wavelength > 0).all()):
        raise InputError("wavelength must hold positive, finite pivot wavelengths (micron).")
    return sci, err, mask, wavelength
