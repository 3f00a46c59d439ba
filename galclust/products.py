"""Every product a run publishes: its name, and the schema of its table, in one place.

Product names are paths inside a run (``pixels/galaxies``); tables are parquet,
datasets zarr (:mod:`galclust.store.results`). Schemas map column -> dtype and
build every empty table, Dask ``meta`` and parquet file, so the pixel tables
written by any tile, by a carried-over run or by an empty selection agree. The
spurious table's columns depend on the embedding's size and the features: see
:func:`galclust.catalog.schema.spurious_schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = [
    "CATALOG_PRODUCTS",
    "COMPONENTS",
    "COMPOSITES",
    "COMPOSITES_SCHEMA",
    "DETECT_PRODUCTS",
    "DETECT_SEG",
    "DETECT_SOURCES",
    "EMISSION_PRODUCTS",
    "EMBEDDING",
    "FOOTPRINTS",
    "GALAXIES",
    "COMPONENTS_SCHEMA",
    "UNMIXED",
    "FRACTIONS",
    "FRACTIONS_SCHEMA",
    "GALAXIES_SCHEMA",
    "MORPHOLOGY",
    "MORPHOLOGY_COLUMNS",
    "MORPHOLOGY_PRODUCTS",
    "PIXEL_PRODUCTS",
    "PIXEL_TABLES",
    "SCHEMAS",
    "SPURIOUS",
    "STAMPS",
    "STAMPS_SCHEMA",
    "STRUCTURES_PRODUCTS",
    "empty_frame",
]

#: Pixel clustering: one row per galaxy; per galaxy, cluster and band; label stamps.
GALAXIES, COMPOSITES, STAMPS = "pixels/galaxies", "pixels/composites", "pixels/stamps"
#: Spectral unmixing (``unmix``): fraction maps per galaxy and component; component SEDs.
FRACTIONS, UNMIXED = "pixels/fractions", "pixels/components"
#: Segment boxes joined with catalog positions (what the incremental pixel stage compares).
FOOTPRINTS = "pixels/footprints"
PIXEL_TABLES = (GALAXIES, COMPOSITES, STAMPS, FRACTIONS, UNMIXED)
PIXEL_PRODUCTS = (*PIXEL_TABLES, FOOTPRINTS)
#: Catalog stage: per-source spurious table, per-component summary, the embedding (zarr).
SPURIOUS, COMPONENTS, EMBEDDING = "catalog_spurious", "catalog_components", "catalog_embedding"
CATALOG_PRODUCTS = (SPURIOUS, COMPONENTS, EMBEDDING)

#: Detection: the source table and the (y, x) map (zarr) of the detect stage.
DETECT_SOURCES, DETECT_SEG = "detect/sources", "detect/seg"
DETECT_PRODUCTS = (DETECT_SOURCES, DETECT_SEG)
#: Morphology, one table per level: catalog segments, detections, SED clusters.
MORPHOLOGY_PRODUCTS = {"galaxies": "morphology/galaxies",
                       "detections": "morphology/detections",
                       "clusters": "morphology/clusters"}
MORPHOLOGY = MORPHOLOGY_PRODUCTS["galaxies"]
#: The measurements of a morphology table (statmorph's definitions), queryable by range.
MORPHOLOGY_COLUMNS = ("gini", "m20", "concentration", "asymmetry", "smoothness", "r20", "r80",
                      "r_petro", "axis_ratio", "position_angle")

#: Density structures: one row per structure, per galaxy, and label stamps; or, for a
#: deep field processed by tiles, the (y, x) label map (zarr).
STRUCTURES_PRODUCTS = {"structures": "structures/table", "galaxies": "structures/galaxies",
                       "stamps": "structures/stamps", "labels": "structures/labels"}
#: Emission-line regions: one row per region, per galaxy (band, line, counts), stamps.
EMISSION_PRODUCTS = {"regions": "emission/regions", "galaxies": "emission/galaxies",
                     "stamps": "emission/stamps"}

_STR = pd.StringDtype("pyarrow")
#: One row per galaxy.
GALAXIES_SCHEMA: dict[str, Any] = {
    "id": "int64", "ra": "float64", "dec": "float64", "x": "float64", "y": "float64",
    "z": "float64", "tile": "int64", "n_pixels": "int64", "n_clusters": "int64",
    "method": _STR, "normalize": _STR, "metric": _STR, "criterion": _STR, "score": "float64",
    "chi2_single": "float64", "flags": "int64", "flag_names": _STR, "used_bands": _STR,
    "dropped_bands": _STR, "err_scale": _STR, "n_bins": "int64", "error": _STR,
}
#: One row per galaxy, cluster and band.
COMPOSITES_SCHEMA: dict[str, Any] = {
    "id": "int64", "cluster": "int32", "band": _STR, "wavelength": "float64",
    "flux": "float64", "err": "float64", "n_pixels": "int64", "shape": "float64",
}
#: One row per galaxy: its label stamp, int16 little-endian, row-major (ny, nx), −1 = none.
STAMPS_SCHEMA: dict[str, Any] = {
    "id": "int64", "y0": "int64", "x0": "int64", "ny": "int32", "nx": "int32",
    "labels": pd.ArrowDtype(pa.binary()),
}
#: One row per galaxy and unmixed component: its fraction map, float16 little-endian,
#: row-major (ny, nx) on the label stamp's grid, NaN off the covered footprint.
FRACTIONS_SCHEMA: dict[str, Any] = {
    "id": "int64", "component": "int32", "y0": "int64", "x0": "int64", "ny": "int32",
    "nx": "int32", "flux": "float64", "fractions": pd.ArrowDtype(pa.binary()),
}
#: One row per galaxy, unmixed component and band: the component's SED (sums to 1).
COMPONENTS_SCHEMA: dict[str, Any] = {
    "id": "int64", "component": "int32", "band": _STR, "wavelength": "float64",
    "sed": "float64", "sed_err": "float64",
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "galaxies": GALAXIES_SCHEMA, "composites": COMPOSITES_SCHEMA, "stamps": STAMPS_SCHEMA,
    "fractions": FRACTIONS_SCHEMA, "components": COMPONENTS_SCHEMA,
}


def empty_frame(schema: Mapping[str, Any]) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of ``schema`` (a Dask ``meta``)."""
    return pd.DataFrame({k: pd.Series(dtype=v) for k, v in schema.items()})
