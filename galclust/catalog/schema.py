"""The per-source spurious table: its columns and dtypes, declared once.

Every producer (``flag_spurious``, ``run_catalog``) builds its rows with
:func:`spurious_schema` and :func:`to_frame`, and Dask ``meta=`` objects come
from :func:`empty_frame`, so the table written to the results store always has
the same columns in the same order with the same dtypes.

``flag`` is a nullable boolean (pandas ``"boolean"``, parquet ``bool`` with
nulls): null wherever ``p_spurious`` is NaN, i.e. where the model could not
say (too few labels), so that neither ``flag == True`` nor ``flag == False``
matches a source nobody knows about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from galclust.catalog.features import CATALOG_FEATURES, STAMP_FEATURES
from galclust.products import EMBEDDING, SPURIOUS

__all__ = ["CORE_COLUMNS", "DATASET_NAME", "FEATURE_COLUMNS", "TABLE_NAME", "embedding_dataset",
           "empty_frame", "spurious_schema", "to_frame"]

#: Name of the table in the results store.
TABLE_NAME = SPURIOUS

#: Name of the embedding dataset in the results store.
DATASET_NAME = EMBEDDING

#: Always present, in this order (``flag``: null where ``p_spurious`` is NaN).
CORE_COLUMNS: dict[str, str] = {
    "id": "int64",
    "component": "int32",
    "p_spurious": "float64",
    "flag": "boolean",
    "reason": "object",
    "map_x": "float64",
    "map_y": "float64",
}

#: Optional per-source position columns (from the catalog).
POSITION_COLUMNS: dict[str, str] = {"ra": "float64", "dec": "float64", "x": "float64",
                                    "y": "float64"}

#: Interpretable features (those measured are present).
FEATURE_COLUMNS: dict[str, str] = {"coverage": "float32",
                                   **{f: "float32" for f in STAMP_FEATURES},
                                   **{f: "float64" for f in CATALOG_FEATURES}}


def spurious_schema(n_components: int, *, features: Sequence[str] = (),
                    positions: bool = False) -> dict[str, str]:
    """Column -> dtype of the per-source spurious table.

    Parameters
    ----------
    n_components : int
        Number of linear embedding coordinates (``pc_0`` ... ``pc_{k-1}``).
    features : sequence of str
        Which of :data:`FEATURE_COLUMNS` are present.
    positions : bool
        Whether ``ra, dec, x, y`` (from the catalog) are present.

    Returns
    -------
    dict
        Ordered: :data:`CORE_COLUMNS`, positions, ``pc_*``, features.
    """
    unknown = [f for f in features if f not in FEATURE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown feature columns {unknown}; known: {list(FEATURE_COLUMNS)}")
    out = dict(CORE_COLUMNS)
    if positions:
        out.update(POSITION_COLUMNS)
    out.update({f"pc_{i}": "float64" for i in range(int(n_components))})
    out.update({f: FEATURE_COLUMNS[f] for f in FEATURE_COLUMNS if f in features})
    return out


def to_frame(columns: Mapping[str, np.ndarray], schema: Mapping[str, str]) -> pd.DataFrame:
    """Build the table from arrays, in schema order and dtypes.

    Parameters
    ----------
    columns : mapping of str -> array
        Every schema column (``pc_*`` may come as one 2-D array under ``"pc"``).
    schema : mapping of str -> dtype

    Returns
    -------
    DataFrame
        ``flag`` is null wherever ``p_spurious`` is NaN (unknown).
    """
    cols = dict(columns)
    pcs = cols.pop("pc", None)
    if pcs is not None:
        pcs = np.asarray(pcs)
        for i in range(pcs.shape[1]):
            cols[f"pc_{i}"] = pcs[:, i]
    missing = [c for c in schema if c not in cols]
    if missing:
        raise ValueError(f"columns {missing} missing for the spurious table")
    df = pd.DataFrame({c: pd.Series(np.asarray(cols[c]), dtype=d) for c, d in schema.items()})
    if "flag" in df and "p_spurious" in df:
        df["flag"] = df["flag"].astype("boolean").mask(df["p_spurious"].isna())
    return df


def empty_frame(schema: Mapping[str, str]) -> pd.DataFrame:
    """A zero-row DataFrame with the schema's columns and dtypes (a Dask ``meta``)."""
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in schema.items()})


def embedding_dataset(table: pd.DataFrame) -> xr.Dataset:
    """The embedding of a spurious table as an xarray Dataset (for ``write_dataset``).

    Parameters
    ----------
    table : DataFrame
        A table built with :func:`spurious_schema`.

    Returns
    -------
    xarray.Dataset
        ``linear`` (source, pc) float64, ``map`` (source, axis) float64,
        ``component`` and ``p_spurious`` (source,), with the ``id`` coordinate.
    """
    pcs = sorted((c for c in table.columns if c.startswith("pc_")), key=lambda c: int(c[3:]))
    ids = table["id"].to_numpy(np.int64)
    return xr.Dataset(
        {"linear": (("source", "pc"), table[pcs].to_numpy(np.float64)),
         "map": (("source", "axis"), table[["map_x", "map_y"]].to_numpy(np.float64)),
         "component": ("source", table["component"].to_numpy(np.int32)),
         "p_spurious": ("source", table["p_spurious"].to_numpy(np.float64))},
        coords={"id": ("source", ids), "pc": np.arange(len(pcs)),
                "axis": np.array(["x", "y"], dtype=object)},
        attrs={"description": "catalog cutout embedding: linear (PCA) components and the "
                              "2-D map; see the catalog_spurious table"})
