"""galclust: survey-scale pixel-SED clustering and spurious-source flagging.

The public API (stable; see the README):

- :func:`ingest`, :func:`open_cube` — FITS mosaics to a zarr cube store.
- :func:`cluster_galaxy` — pixel-SED clustering of one galaxy's arrays;
  :func:`unmix` — spectral unmixing of pixel SEDs (fractions, component SEDs).
- :func:`flag_spurious` — spurious-source flags from multi-band cutouts.
- :func:`open_results` — a published run of a results store.
- :class:`SourceClassifier` — any labelled property of sources, learnt from
  their cutouts (a residual CNN or gradient boosting on cutout features).
- :func:`detect`, :func:`morphology`, :func:`estimate_noise` — sources,
  colour-aware deblending and statmorph-definition morphology from arrays.
- :func:`find_structures`, :func:`emission_regions` — density structures
  (AstroLink) and extended emission-line regions (DBSCAN on a medium band).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from galclust.errors import (
    GalclustError,
    GalclustWarning,
    InputError,
    LabelConflictWarning,
    ManifestError,
    MissingInputError,
    StoreError,
)

__version__ = "0.1.0"

# Public functions live in submodules that import heavy dependencies (zarr,
# dask, scikit-learn); load them on first use so ``import galclust`` is fast.
_LAZY = {
    "ingest": "galclust.store.ingest",
    "open_cube": "galclust.store.cube",
    "cluster_galaxy": "galclust.pixels.core",
    "unmix": "galclust.pixels.unmix",
    "flag_spurious": "galclust.catalog.survey",
    "open_results": "galclust.store.results",
    "query": "galclust.query",
    "SourceClassifier": "galclust.classify.estimator",
    "detect": "galclust.sources.detection",
    "morphology": "galclust.sources.nonparametric",
    "estimate_noise": "galclust.sources.noise",
    "find_structures": "galclust.structures.density",
    "emission_regions": "galclust.structures.emission",
}

__all__ = [
    "GalclustError",
    "GalclustWarning",
    "InputError",
    "LabelConflictWarning",
    "ManifestError",
    "MissingInputError",
    "StoreError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if name == "query" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'galclust' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
