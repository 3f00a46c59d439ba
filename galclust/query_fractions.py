"""The spectral-unmixing part of a galaxy query: fraction maps and their picture."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from galclust.errors import InputError
from galclust.pixels.survey import decode_fractions

__all__ = ["fraction_figure", "read_fractions"]


def read_fractions(rows: pd.DataFrame | None, comps: pd.DataFrame | None, id: int
                   ) -> tuple[xr.DataArray | None, pd.DataFrame | None]:
    """Fraction maps (component, y, x) and component SEDs from a run's ``pixels/fractions``
    and ``pixels/components`` rows of one galaxy (None, None when there are none)."""
    if rows is None or rows.empty or comps is None:
        return None, None
    rows = rows.sort_values("component")
    s = rows.iloc[0]
    maps = np.stack([decode_fractions(r.fractions, r.ny, r.nx) for r in rows.itertuples()])
    da = xr.DataArray(maps, dims=("component", "y", "x"), name="fractions", coords={
        "component": rows["component"].to_numpy(), "flux": ("component", rows["flux"]),
        "y": np.arange(s["y0"], s["y0"] + s["ny"]), "x": np.arange(s["x0"], s["x0"] + s["nx"])},
        attrs={"id": id})
    keep = ["component", "band", "wavelength", "sed", "sed_err"]
    return da, comps.sort_values(["component", "wavelength"], ignore_index=True)[keep]


def fraction_figure(record: Any) -> Any:
    """Fraction maps and SEDs of a :class:`~galclust.query.GalaxyRecord`, titled by galaxy and run.

    Raises
    ------
    InputError
        If the run did not unmix (``galclust pixels --unmix on``).
    """
    from galclust.plots.fractions import plot_fractions
    from galclust.plots.naming import picture_title, pixel_options

    if record.fractions is None or record.components is None:
        raise InputError(f"galaxy {record.id}: run {record.run_id} has no fraction maps; "
                         "unmix with `galclust pixels --unmix on` (or nightly).")
    comps = record.components.sort_values(["component", "wavelength"])
    seds = comps.pivot(index="component", columns="wavelength", values="sed")
    errs = comps.pivot(index="component", columns="wavelength", values="sed_err")
    bands = comps.drop_duplicates("wavelength").sort_values("wavelength")["band"]
    title = picture_title(f"galaxy {record.id}: spectral unmixing",
                          options=pixel_options(record.pixels), run_id=record.run_id)
    return plot_fractions(record.fractions.values, seds.to_numpy(), sed_err=errs.to_numpy(),
                          wavelength=seds.columns.to_numpy(), bands=list(bands),
                          origin=(int(record.fractions["y"][0]), int(record.fractions["x"][0])),
                          title=title)
