"""Per-galaxy pixel-SED clustering: pure numpy/scikit-learn on arrays.

The survey mapping (Dask) lives in :mod:`galclust.pixels.survey`, which is
not imported here so that the science code never imports dask.
"""

from __future__ import annotations

from galclust.pixels.binning import bin_seds, binned_signal_noise, voronoi_bins
from galclust.pixels.composites import composite_seds, composites_to_frame
from galclust.pixels.core import PixelResult, cluster_galaxy
from galclust.pixels.distance import (
    chi2_distance,
    embed,
    nearest,
    pairwise_distances,
    shape_distance,
    trapezoid_weights,
)
from galclust.pixels.estimator import PixelClusterer
from galclust.pixels.flags import FLAG_DESCRIPTIONS, PixelFlag, flag_names
from galclust.pixels.normalize import normalize_seds
from galclust.pixels.options import LINKAGES, METHODS, METRICS, NORMALIZATIONS
from galclust.pixels.selection import (
    Selection,
    footprint_from_segmentation,
    segment_bboxes,
    select_galaxy,
    select_pixels,
)
from galclust.pixels.skynoise import correlation_alpha, rescale_errors, sky_error_scale
from galclust.pixels.unmix import Unmixing, hysime, unmix, weighted_nmf

__all__ = [
    "FLAG_DESCRIPTIONS",
    "LINKAGES",
    "METHODS",
    "METRICS",
    "NORMALIZATIONS",
    "PixelClusterer",
    "PixelFlag",
    "PixelResult",
    "Selection",
    "Unmixing",
    "bin_seds",
    "binned_signal_noise",
    "correlation_alpha",
    "hysime",
    "rescale_errors",
    "sky_error_scale",
    "unmix",
    "voronoi_bins",
    "weighted_nmf",
    "chi2_distance",
    "cluster_galaxy",
    "composite_seds",
    "composites_to_frame",
    "embed",
    "flag_names",
    "footprint_from_segmentation",
    "nearest",
    "normalize_seds",
    "pairwise_distances",
    "segment_bboxes",
    "select_galaxy",
    "select_pixels",
    "shape_distance",
    "trapezoid_weights",
]
