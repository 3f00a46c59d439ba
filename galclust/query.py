"""Query a published run: by galaxy id, by sky cone, by property; as tables, JSON, PNG.

A :class:`Query` resolves the results store's pointer once, when built: all its
answers come from that run, even while a nightly run writes the next one. Tables
are the catalog (from the run's cube store) joined with the run's ``pixels/galaxies``
and ``catalog_spurious`` columns (``flag``, ``reason`` named ``spurious``,
``spurious_reason``) and each classification's ``<name>_class`` and ``<name>_p``;
``<NA>`` where the run has no row for a source. The ``galclust query`` command is
:mod:`galclust.query_cli`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from galclust.errors import InputError, check_choice
from galclust.pixels.flags import PixelFlag
from galclust.pixels.survey import COMPOSITES_SCHEMA, decode_labels, empty_frame
from galclust.products import (
    COMPOSITES,
    EMISSION_PRODUCTS,
    FRACTIONS,
    GALAXIES,
    MORPHOLOGY,
    MORPHOLOGY_COLUMNS,
    SPURIOUS,
    STAMPS,
    STRUCTURES_PRODUCTS,
    UNMIXED,
)
from galclust.sky import separation_arcsec
from galclust.store.cube import open_catalog, open_cube
from galclust.store.results import Results, open_results

__all__ = ["CUTOUT_SIZE", "GalaxyRecord", "Query", "to_json"]

STRUCTURES_GALAXIES = STRUCTURES_PRODUCTS["galaxies"]
EMISSION_GALAXIES = EMISSION_PRODUCTS["galaxies"]

#: Minimum side (px) of a galaxy's cutout; it is widened to hold the label stamp.
CUTOUT_SIZE = 51
def _clean(v: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped; NaN, inf and missing -> None."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_clean(x) for x in v]
    v = v.item() if isinstance(v, np.generic) else v
    missing = v is None or v is pd.NA or v is pd.NaT
    return None if missing or (isinstance(v, float) and not math.isfinite(v)) else v


def to_json(obj: Any, *, indent: int | None = 1) -> str:
    """Strict JSON (NaN, inf, missing -> null) of a table, row, :class:`GalaxyRecord` or dict."""
    if isinstance(obj, GalaxyRecord | pd.DataFrame | pd.Series):
        obj = obj.to_dict(**({"orient": "records"} if isinstance(obj, pd.DataFrame) else {}))
    return json.dumps(_clean(obj), indent=indent, allow_nan=False)


def _nullable(df: pd.DataFrame) -> pd.DataFrame:
    """Integer and bool columns as nullable dtypes, so a left join keeps them exact."""
    is_bool, is_int = pd.api.types.is_bool_dtype, pd.api.types.is_integer_dtype
    return df.astype({c: "boolean" if is_bool(t) else "Int64" for c, t in df.dtypes.items()
                      if c != "id" and (is_bool(t) or is_int(t))})


def _range(argument: str, value: Any) -> tuple[float, float]:
    """``v`` -> ``(v, v)``; ``(lo, hi)`` checked (a ``None`` bound is open)."""
    try:
        lo, hi = (value, value) if np.isscalar(value) else value
        lo, hi = -math.inf if lo is None else float(lo), math.inf if hi is None else float(hi)
    except (TypeError, ValueError):
        raise InputError(f"{argument}={value!r}: give a number or a (min, max) pair.") from None
    if lo > hi:
        raise InputError(f"{argument}={value!r}: min {lo:g} exceeds max {hi:g}.")
    return lo, hi


@dataclass(frozen=True)
class GalaxyRecord:
    """Everything a published run and its cube hold about one source.

    Attributes
    ----------
    id : int
    run_id : str
        The run the answer comes from.
    catalog, pixels, spurious : pandas.Series (the last two None if absent)
        Its rows of the catalog, ``pixels/galaxies`` and ``catalog_spurious``.
    composites : pandas.DataFrame
        Its composite SEDs by cluster and wavelength (empty if none).
    labels : xarray.DataArray or None
        Its (y, x) label stamp (−1 = not clustered), coordinates in cube pixels.
    cutout : xarray.DataArray
        ``sci`` (band, y, x): a :data:`CUTOUT_SIZE` box widened to hold the label stamp.
    fractions : xarray.DataArray or None
        With an unmixing run (``pixels --unmix``): the (component, y, x) fraction
        maps on the label stamp's grid (NaN off the footprint), coordinate
        ``flux`` (component): each component's band-summed flux.
    components : pandas.DataFrame or None
        The component SEDs: ``component, band, wavelength, sed, sed_err``.
    """

    id: int
    run_id: str
    catalog: pd.Series
    pixels: pd.Series | None
    composites: pd.DataFrame
    labels: xr.DataArray | None
    cutout: xr.DataArray
    spurious: pd.Series | None
    fractions: xr.DataArray | None = None
    components: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (see :func:`to_json`); the label stamp as nested lists."""
        lab, c = self.labels, self.cutout
        return _clean({
            "id": self.id, "run": self.run_id, "catalog": self.catalog.to_dict(),
            "pixels": None if self.pixels is None else self.pixels.to_dict(),
            "spurious": None if self.spurious is None else self.spurious.to_dict(),
            "composites": self.composites.to_dict("records"),
            "labels": None if lab is None else {"y0": int(lab["y"][0]), "x0": int(lab["x"][0]),
                                                "values": lab.values.tolist()},
            "cutout": {"y0": int(c["y"][0]), "x0": int(c["x"][0]), "ny": c.sizes["y"],
                       "nx": c.sizes["x"], "bands": [str(b) for b in c["band"].values]},
            "components": None if self.components is None else
            self.components.to_dict("records"),
            "fractions": None if self.fractions is None else {
                "y0": int(self.fractions["y"][0]), "x0": int(self.fractions["x"][0]),
                "values": np.where(np.isfinite(self.fractions.values), self.fractions.values,
                                   None).tolist()},
        })

    def fraction_figure(self) -> Any:
        """Fraction map of every unmixed component and their SEDs; titled by galaxy and run.

        Raises
        ------
        InputError
            If the run did not unmix (``galclust pixels --unmix on``).
        """
        from galclust.query_fractions import fraction_figure

        return fraction_figure(self)

    def figure(self) -> Any:
        """Colour image, cluster contours, normalised SEDs; titled by galaxy, method, run."""
        from galclust.plots.naming import picture_title, pixel_options
        from galclust.plots.pixels import plot_result

        c, z, pix, sp = self.cutout, self.catalog.get("z", np.nan), self.pixels, self.spurious
        lab = (np.full(c.shape[1:], -1) if self.labels is None else
               self.labels.reindex(y=c["y"], x=c["x"], fill_value=-1).values)  # on the cutout
        notes = [f"flags: {pix['flag_names']}"] if pix is not None and pix["flag_names"] else []
        if sp is not None and pd.isna(sp["flag"]):  # too few labels: the model cannot say
            notes.append("p_spurious unknown")
        elif sp is not None:
            notes.append(f"p_spurious = {sp['p_spurious']:.2f}" + (
                f" (flagged: {sp['reason'] or 'spurious'})" if sp["flag"] else ""))
        title = picture_title(f"galaxy {self.id}" + (f", z = {z:.2f}" if np.isfinite(z) else ""),
                              options=pixel_options(pix), run_id=self.run_id, notes=notes)
        fig = plot_result(c.values, SimpleNamespace(labels=lab, composites=self.composites),
                          wavelength=c["wavelength"].values, bands=c["band"].values.astype(str),
                          pixel_scale=c.attrs.get("pixel_scale"), title=title)
        fig.axes[0].plot(self.catalog["x"] - int(c["x"][0]), self.catalog["y"] - int(c["y"][0]),
                         "+", color="magenta", ms=14, mew=1.5)
        fig.axes[0].set_title("colour image (+ catalog position)", fontsize="medium")
        return fig


class Query:
    """Answers questions from one published run of a results store.

    Parameters
    ----------
    results_url : str
        The results store (local folder or ``s3://``).
    run : str
        ``"latest"`` (the pointer, resolved now and only now) or a run id.
    store : str, optional
        The cube store (default: the one the run was computed from).
    """

    def __init__(self, results_url: str, run: str = "latest", *, store: str | None = None):
        self.results: Results = open_results(results_url, run)
        self.run_id: str = self.results.run_id
        self._store = store

    @property
    def store(self) -> str:
        """The cube store URL."""
        if not (store := self._store or self.results.params.get("store")):
            raise InputError(f"run {self.run_id} of {self.results.url} does not name its cube "
                             "store (params 'store'); pass store= (CLI: --store URL).")
        return str(store)

    @functools.cached_property
    def catalog(self) -> pd.DataFrame:
        """The catalog ingested with the cube, sorted by id."""
        return open_catalog(self.store).sort_values("id", ignore_index=True)

    @functools.cached_property
    def cube(self) -> xr.Dataset:
        """The cube, opened lazily."""
        return open_cube(self.store)

    def __repr__(self) -> str:
        return f"<Query {self.results.url} run={self.run_id} products={self.results.products}>"

    def _table(self, name: str, ids: Sequence[int] | None = None, *, need: str | None = None,
               columns: list[str] | None = None, filters: list[Any] | None = None
               ) -> pd.DataFrame | None:
        """A product's rows (of ``ids``, matching pyarrow ``filters``); None if the run lacks
        it, or an error naming the criterion ``need`` that requires it."""
        if name not in self.results.products:
            if need is None:
                return None
            raise InputError(f"{need}: run {self.run_id} of {self.results.url} has no {name!r} "
                             f"table, only {', '.join(self.results.products)}.")
        filters = list(filters or []) + ([("id", "in", [int(i) for i in ids])]
                                         if ids is not None else [])
        return self.results.table(name, columns=columns, filters=filters or None)

    def galaxy(self, id: int) -> GalaxyRecord:
        """Everything about source ``id``: catalog, pixel clusters, spurious row, cutout.

        Raises
        ------
        InputError
            If ``id`` is not in the catalog (the message lists the nearest ids).
        """
        if isinstance(id, bool) or not isinstance(id, int | np.integer):
            raise InputError(f"id={id!r}: give an integer catalog id.")
        id, ids = int(id), self.catalog["id"].to_numpy()
        hit = np.flatnonzero(ids == id)
        if not hit.size:
            near = np.sort(ids[np.argsort(np.abs(ids - id), kind="stable")[:5]]).tolist()
            raise InputError(
                f"galaxy id {id} is not in the catalog of {self.store} (results {self.results.url}"
                f", run {self.run_id}); its {len(ids)} ids run from {ids.min()} to {ids.max()}, "
                f"nearest: {', '.join(map(str, near))}. List ids with `galclust query --results "
                f"{self.results.url}` (Query.select()).")
        row = self.catalog.iloc[hit[0]]
        pix, spur = (None if t is None or t.empty else t.iloc[0]
                     for t in (self._table(GALAXIES, [id]), self._table(SPURIOUS, [id])))
        comp, stamp = self._table(COMPOSITES, [id]), self._table(STAMPS, [id])
        labels = None
        if stamp is not None and len(stamp):
            s = stamp.iloc[0]
            labels = xr.DataArray(
                decode_labels(s["labels"], s["ny"], s["nx"]), dims=("y", "x"), name="labels",
                coords={"y": np.arange(s["y0"], s["y0"] + s["ny"]),
                        "x": np.arange(s["x0"], s["x0"] + s["nx"])}, attrs={"id": id})
        fractions, components = self._fractions(id)
        return GalaxyRecord(
            id=id, run_id=self.run_id, catalog=row,
            pixels=pix, spurious=spur, labels=labels, cutout=self._cutout(row, labels),
            composites=empty_frame(COMPOSITES_SCHEMA) if comp is None else
            comp.sort_values(["cluster", "wavelength"], ignore_index=True),
            fractions=fractions, components=components)

    def _fractions(self, id: int) -> tuple[xr.DataArray | None, pd.DataFrame | None]:
        """The galaxy's fraction maps and component SEDs (None when the run did not unmix)."""
        from galclust.query_fractions import read_fractions

        return read_fractions(self._table(FRACTIONS, [id]), self._table(UNMIXED, [id]), id)

    def _cutout(self, row: pd.Series, labels: xr.DataArray | None) -> xr.DataArray:
        box = {}
        for d in "yx":
            c, h = float(row[d]), CUTOUT_SIZE // 2
            ends = [round(c) - h, round(c) + h + 1] if math.isfinite(c) else []
            ends += [] if labels is None else [int(labels[d][0]), int(labels[d][-1]) + 1]
            lo = max(min(ends, default=0), 0)
            box[d] = slice(lo, max(min(max(ends, default=0), self.cube.sizes[d]), lo))
        sci = self.cube["sci"].isel(box).load()  # pixel_scale (arcsec/px): the scale bar
        return sci.assign_attrs(pixel_scale=self.cube.attrs.get("pixel_scale"))

    def sources(self, ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Catalog rows (of ``ids``, else all; sorted by id) joined with the run's columns."""
        cat = self.catalog
        return self._join(cat if ids is None else cat[cat["id"].isin(np.asarray(ids))])

    def _join(self, cat: pd.DataFrame) -> pd.DataFrame:
        out = cat.reset_index(drop=True)
        ids = None if len(cat) == len(self.catalog) else cat["id"].tolist()  # all: no filter
        for name, rename in ((GALAXIES, {}),
                             (SPURIOUS, {"flag": "spurious", "reason": "spurious_reason"})):
            df = self._table(name, ids)
            if df is not None:
                df = df.rename(columns=rename).drop(columns=["tile"], errors="ignore")
                df = df.drop(columns=[c for c in df.columns if c != "id" and c in out])
                out = out.merge(_nullable(df), on="id", how="left")
        morph = self._table(MORPHOLOGY, ids)
        if morph is not None:
            morph = morph.rename(columns={"flag": "morph_flag", "band": "morph_band",
                                          "flag_reason": "morph_reason"})
            keep = ["id", *[c for c in (*MORPHOLOGY_COLUMNS, "morph_flag", "morph_band")
                            if c in morph and c not in out]]
            out = out.merge(_nullable(morph[keep]), on="id", how="left")
        for name, cols in ((STRUCTURES_GALAXIES, {"n_structures": "n_structures"}),
                           (EMISSION_GALAXIES, {"n_regions": "emission_regions",
                                                "n_candidates": "outflow_candidates",
                                                "band": "emission_band"})):
            df = self._table(name, ids)
            if df is not None and len(df):
                df = df[df["flag"] == 0][["id", *cols]].rename(columns=cols)
                out = out.merge(_nullable(df), on="id", how="left")
        for name in self._classifications():
            df = self._table(f"classify/{name}", ids, columns=["id", "class", "probability"])
            out = out.merge(_nullable(df.rename(columns={"class": f"{name}_class",
                                                         "probability": f"{name}_p"})),
                            on="id", how="left")
        return out

    def _classifications(self) -> list[str]:
        """Names of the run's classifications (``classify/<name>`` tables)."""
        kinds = self.results.kinds
        return [p.split("/")[1] for p in kinds if p.count("/") == 1 and
                p.startswith("classify/") and kinds[p] == "table"]

    def _class_ids(self, name: str, value: str | None) -> pd.DataFrame:
        """Sources of classification ``name`` predicted ``value`` (default: the positive
        class of a binary one)."""
        from galclust.classify.labels import label_text, positive_class

        known = self._classifications()
        if name not in known:
            raise InputError(f"--class {name}: run {self.run_id} has no classification "
                             f"{name!r}; it has {', '.join(known) or 'none'} (galclust "
                             "classify makes one).")
        table = self._table(f"classify/{name}")
        classes = [c[2:] for c in table.columns if str(c).startswith("p_")]
        if value is None:
            value = positive_class(classes)
            if value is None:
                raise InputError(f"--class {name}: say which class, {name}=VALUE; its "
                                 f"classes are {classes}.")
        value = label_text(value)
        if value not in classes:
            raise InputError(f"--class {name}={value}: not one of its classes {classes}.")
        table = table[["id", "class"]]
        return table[table["class"] == value]

    def _emission_ids(self, value: str) -> pd.DataFrame:
        check_choice("emission", value, ("yes", "no", "candidate"))
        gal = self._table(EMISSION_GALAXIES, need="--emission",
                          columns=["id", "flag", "n_regions", "n_candidates"])
        gal = gal[gal["flag"] == 0]
        keep = {"yes": gal["n_regions"] > 0, "no": gal["n_regions"] == 0,
                "candidate": gal["n_candidates"] > 0}[value]
        return gal[keep]

    @functools.cached_property
    def sky(self) -> dict[str, Any]:
        """The cube's ``wcs``, ``centre`` (deg), circumscribed ``radius`` (arcsec) and
        ``extent`` (deg: ``ra_min, ra_max, dec_min, dec_max``; RA may wrap through 0)."""
        from astropy.wcs import WCS

        wcs = WCS(dict(self.cube.attrs["wcs"])).celestial
        ny, nx = self.cube.sizes["y"], self.cube.sizes["x"]
        gx, gy = np.meshgrid([-0.5, (nx - 1) / 2, nx - 0.5], [-0.5, (ny - 1) / 2, ny - 0.5])
        ra, dec = wcs.pixel_to_world_values(gx.ravel(), gy.ravel())  # [4]: centre
        dra = (ra - ra[4] + 180.0) % 360.0 - 180.0
        return {"wcs": wcs, "centre": (float(ra[4]), float(dec[4])),
                "radius": float(separation_arcsec(ra[4], dec[4], ra, dec).max()),
                "extent": {"ra_min": float((ra[4] + dra.min()) % 360),
                           "ra_max": float((ra[4] + dra.max()) % 360),
                           "dec_min": float(dec.min()), "dec_max": float(dec.max())}}

    def _outside_arcsec(self, ra: float, dec: float) -> float:
        """How far (arcsec) a sky position lies outside the cube's pixel area (0 inside)."""
        sky, ny, nx = self.sky, self.cube.sizes["y"], self.cube.sizes["x"]
        d = float(separation_arcsec(*sky["centre"], ra, dec))
        if d > sky["radius"]:  # beyond the circumscribed circle: this lower bound will do
            return d - sky["radius"]
        x, y = sky["wcs"].world_to_pixel_values(ra, dec)
        dx, dy = max(-0.5 - x, 0.0, x - nx + 0.5), max(-0.5 - y, 0.0, y - ny + 0.5)
        return float(math.hypot(dx, dy) * self.cube.attrs.get("pixel_scale", 1.0))

    def cone(self, ra: float, dec: float, radius_arcsec: float) -> pd.DataFrame:
        """Sources within ``radius_arcsec`` of (``ra``, ``dec``) (degrees), nearest first.

        The joined source table plus ``sep_arcsec``, sorted by it (then id);
        empty if the cone is inside the survey but holds no source.

        Raises
        ------
        InputError
            A bad centre or radius, or a cone wholly outside the survey (the
            message gives the survey's RA/Dec extent).
        """
        ra, dec, radius = float(ra), float(dec), float(radius_arcsec)
        if not (math.isfinite(ra) and -90.0 <= dec <= 90.0 and 0 < radius < math.inf):
            raise InputError(f"cone RA {ra}, Dec {dec}, radius {radius_arcsec!r}: give degrees "
                             "(-90 <= Dec <= 90) and a positive radius in arcsec.")
        cat = self.catalog
        sep = separation_arcsec(ra, dec, cat["ra"], cat["dec"])
        inside = sep <= radius
        if not inside.any() and self._outside_arcsec(ra, dec) > radius:
            e = self.sky["extent"]
            raise InputError(
                f"cone (RA {ra:.6f}, Dec {dec:+.6f}, radius {radius:g} arcsec) lies wholly outside "
                f"survey {self.cube.attrs.get('survey', '?')!r} ({self.store}), which covers RA "
                f"{e['ra_min']:.5f} to {e['ra_max']:.5f} deg and Dec {e['dec_min']:+.5f} to "
                f"{e['dec_max']:+.5f} deg; check the coordinates (degrees, not hours).")
        hit = cat[inside].copy()
        hit.insert(int(hit.columns.get_loc("dec")) + 1, "sep_arcsec", sep[inside])
        return self._join(hit.sort_values(["sep_arcsec", "id"], ignore_index=True))

    def select(self, *, n_clusters: int | tuple[int, int] | None = None,
               spurious: bool | None = None, z: tuple[float, float] | None = None,
               flags: bool | str | Sequence[str] | None = None,
               classified: tuple[str, str | None] | None = None,
               morphology: Mapping[str, Any] | None = None,
               structures: int | tuple[int | None, int | None] | None = None,
               emission: str | None = None) -> pd.DataFrame:
        """Sources matching every given criterion (all sources if none), sorted by id.

        Parameters
        ----------
        n_clusters : int or (min, max), optional
            Pixel clusters found (inclusive; a ``None`` bound is open).
        spurious : bool, optional
            Flagged spurious (True) or not (False) in ``catalog_spurious``; a
            source whose flag is unknown (null: too few labels) matches neither.
        z : (min, max), optional
            Catalog redshift range (inclusive); sources without z never match.
        flags : bool, str or sequence of str, optional
            Pixel-clustering flags: True any, False none, or the
            :class:`~galclust.pixels.flags.PixelFlag` names that must all be set.
        classified : (name, class), optional
            Predicted ``class`` in classification ``name`` (``classify/<name>``);
            class None: the positive class of a binary classification.
        morphology : mapping, optional
            Column of ``morphology/galaxies`` (:data:`MORPHOLOGY_COLUMNS`) -> a
            value or (min, max) range, e.g. ``{"gini": (0.5, None)}``; flagged
            rows (NaN) never match.
        structures : int or (min, max), optional
            Density structures found in the galaxy (``structures/galaxies``).
        emission : {"yes", "no", "candidate"}, optional
            Galaxies with at least one extended emission-line region, measured
            with none, or with an outflow candidate (``emission/galaxies``).

        Raises
        ------
        InputError
            A malformed criterion, or one on a table the run lacks.
        """
        picks: list[Any] = []
        if n_clusters is not None:
            lo, hi = _range("n_clusters", n_clusters)
            f = [("n_clusters", op, v) for op, v in ((">=", lo), ("<=", hi)) if math.isfinite(v)]
            picks.append(self._table(GALAXIES, need="n_clusters", columns=["id"], filters=f))
        if isinstance(flags, bool):
            picks.append(self._table(GALAXIES, need="flags", columns=["id"],
                                     filters=[("flags", "!=" if flags else "==", 0)]))
        elif flags is not None:
            mask = 0
            for name in [flags] if isinstance(flags, str) else flags:
                mask |= PixelFlag[check_choice("flags", str(name).upper(), PixelFlag.__members__)]
            gal = self._table(GALAXIES, need="flags", columns=["id", "flags"])
            picks.append(gal[(gal["flags"].to_numpy() & mask) == mask])
        if spurious is not None:
            picks.append(self._table(SPURIOUS, need="spurious", columns=["id"],
                                     filters=[("flag", "==", bool(spurious))]))
        if z is not None:
            picks.append(self.catalog[self.catalog["z"].between(*_range("z", z))])
        if classified is not None:
            picks.append(self._class_ids(*classified))
        if structures is not None:
            lo, hi = _range("structures", structures)
            f = [("n_structures", op, v) for op, v in ((">=", lo), ("<=", hi))
                 if math.isfinite(v)]
            picks.append(self._table(STRUCTURES_GALAXIES, need="--structures", columns=["id"],
                                     filters=f + [("flag", "==", 0)]))
        if emission is not None:
            picks.append(self._emission_ids(emission))
        for column, value in (morphology or {}).items():
            check_choice("morphology", column, MORPHOLOGY_COLUMNS)
            lo, hi = _range(column, value)
            f = [(column, op, v) for op, v in ((">=", lo), ("<=", hi)) if math.isfinite(v)]
            picks.append(self._table(MORPHOLOGY, need=f"--{column.replace('_', '-')}",
                                     columns=["id"], filters=f))
        ids = [df["id"].to_numpy(np.int64) for df in picks]
        return self.sources(functools.reduce(np.intersect1d, ids) if ids else None)
