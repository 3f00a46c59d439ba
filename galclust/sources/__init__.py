"""Sources and their shapes: noise from the image, detection, colour-aware
deblending and morphology.

Pure numpy/scipy/scikit-image on arrays (no dask, zarr, fsspec or prefect),
except :mod:`galclust.sources.survey`, which maps the functions over a cube's
tiles with Dask.

- :func:`estimate_noise` — per-pixel errors from the image itself (sigma-clipped
  background RMS in tiles, corrected for correlated noise with empty apertures).
- :func:`detect` — segmentation map and source table from a multi-band image.
- :func:`morphology` — Gini, M20, concentration, asymmetry, smoothness and
  Petrosian radii with statmorph's definitions, one row per segment.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "estimate_noise": "galclust.sources.noise",
    "detect": "galclust.sources.detection",
    "morphology": "galclust.sources.nonparametric",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'galclust.sources' has no attribute {name!r}")
