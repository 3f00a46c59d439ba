"""Structures inside images: density structures (AstroLink or HDBSCAN on point clouds
sampled in proportion to luminosity) and extended emission-line regions (DBSCAN on a
medium band's excess over the continuum).

Pure numpy/scipy/scikit-learn on arrays, except :mod:`galclust.structures.survey`,
which maps them over a cube with Dask.

- :func:`find_structures` — hierarchical density structures of a (band, y, x) image.
- :func:`emission_regions` — extended emission-line regions in a medium band.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "find_structures": "galclust.structures.density",
    "emission_regions": "galclust.structures.emission",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'galclust.structures' has no attribute {name!r}")
