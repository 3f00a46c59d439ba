"""Per-galaxy pieces of the survey's pixel tables (pure numpy/pandas, no dask).

:func:`rescaled_stamp` rescales a stamp's errors from the sky within
:data:`SKY_MARGIN` pixels of it; :func:`fraction_rows` and
:func:`component_rows` turn an unmixing result into rows of the
``fractions`` and ``components`` tables; :func:`decode_fractions` reads a
stored fraction map back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from galclust.pixels.mixing import rescale_from_sky
from galclust.products import COMPONENTS_SCHEMA

__all__ = ["SKY_MARGIN", "component_rows", "decode_fractions", "fraction_rows",
           "rescaled_stamp"]

#: Pixels of sky around a galaxy's stamp from which its errors are rescaled.
SKY_MARGIN = 16


def rescaled_stamp(sci: np.ndarray, err: np.ndarray, sky: np.ndarray | None,
                   box: tuple[int, int, int, int], bands: Sequence[str] | None, *,
                   correlation: bool = True
                   ) -> tuple[np.ndarray, dict[str, float], bool, float]:
    """The stamp's errors rescaled from the sky within ``SKY_MARGIN`` of it, and the
    noise correlation area measured there."""
    y0, y1, x0, x1 = box
    stamp = err[:, y0:y1, x0:x1]
    if sky is None:
        return stamp, {}, True, 1.0
    wy0, wx0 = max(y0 - SKY_MARGIN, 0), max(x0 - SKY_MARGIN, 0)
    wy1, wx1 = min(y1 + SKY_MARGIN, err.shape[1]), min(x1 + SKY_MARGIN, err.shape[2])
    names = list(bands) if bands is not None else [str(b) for b in range(err.shape[0])]
    _, scale, ok, corr = rescale_from_sky(sci[:, wy0:wy1, wx0:wx1],
                                          err[:, wy0:wy1, wx0:wx1], sky[wy0:wy1, wx0:wx1], names,
                                          correlation=correlation)
    factors = np.array([scale[b] for b in names], dtype=stamp.dtype)
    return stamp * factors[:, None, None], scale, ok, corr


def fraction_rows(box: Mapping[str, int], res: Any) -> list[dict[str, Any]]:
    flux = res.components["flux"].to_numpy()
    return [{**box, "component": c, "flux": float(flux[c]),
             "fractions": res.fractions[c].astype("<f2").tobytes()}
            for c in range(res.fractions.shape[0])]


def component_rows(gid: int, comps: xr.Dataset) -> pd.DataFrame:
    df = comps[["sed", "sed_err"]].to_dataframe().reset_index()
    df.insert(0, "id", gid)
    return df[list(COMPONENTS_SCHEMA)]


def decode_fractions(fractions: bytes, ny: int, nx: int) -> np.ndarray:
    """The (ny, nx) float32 fraction map stored in a ``fractions`` row."""
    return np.frombuffer(fractions, dtype="<f2").reshape(int(ny), int(nx)).astype(np.float32)
