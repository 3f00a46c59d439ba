"""Reading a results store: the pointer, published runs, their products.

``latest.json`` names the latest published run; a pointer that is not JSON is
named with the fix, one that names a deleted run is passed over with a warning
(the newest published run is read instead, and the next run repairs it). A run
with ``status: "failed"`` is kept for inspection and opens only by its id.
Product paths from ``run.json`` are checked to lie inside the store.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd
import xarray as xr

from galclust.errors import GalclustWarning, StoreError
from galclust.products import STAMPS
from galclust.store.safety import (
    check_file_name,
    check_product_path,
    check_run_id,
    run_path,
)
from galclust.store.urls import (
    check_writable,
    exists,
    get_fs,
    is_url,
    join,
    read_bytes,
    storage_options,
)

__all__ = ["POINTER", "Results", "list_runs", "open_results", "read_product", "run_ids"]

#: The pointer object, written last by a publish.
POINTER = "latest.json"


def _read_json(url: str, what: str) -> dict[str, Any]:
    raw = read_bytes(url, what=what)
    try:
        doc = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        raise StoreError(f"{url}: the {what} is not valid JSON (truncated or edited by "
                         "hand?); restore it, or delete it so that galclust rewrites it "
                         "with the next run.") from None
    if not isinstance(doc, dict):
        raise StoreError(f"{url}: the {what} is not a JSON object; restore or delete it.")
    return doc


def _run_doc(url: str, run_id: str) -> str:
    return join(url, run_path(run_id, "run.json"))


def _latest_id(url: str) -> str | None:
    """The run the pointer names, or None if there is no pointer.

    Raises
    ------
    StoreError
        If the pointer is not valid JSON or names no valid run id.
    """
    pointer = join(url, POINTER)
    if not exists(pointer):
        return None
    doc = _read_json(pointer, "results pointer")
    run = doc.get("run")
    try:
        return check_run_id(run)
    except ValueError:
        raise StoreError(f"{pointer}: the results pointer names {run!r}, not a run id; "
                         "restore it, or delete it so that the next run rewrites it.") from None


def _published(url: str, run_id: str) -> dict[str, Any] | None:
    """The ``run.json`` of a published run, or None (missing run, or a failed one)."""
    doc_url = _run_doc(url, run_id)
    if not exists(doc_url):
        return None
    doc = _read_json(doc_url, "run manifest")
    return None if doc.get("status", "published") != "published" else doc


def _latest(url: str) -> dict[str, Any] | None:
    """The latest published run's ``run.json``; a dangling pointer is ignored with a warning."""
    latest = _latest_id(url)
    if latest is None:
        return None
    doc = _published(url, latest)
    if doc is None:
        known = list_runs(url)
        fallback = known[-1] if known else None
        warnings.warn(
            f"{join(url, POINTER)} names run {latest}, which no longer exists; "
            + (f"using the newest published run, {fallback}, instead" if fallback else
               "no published run remains") + ". The next published run repairs the pointer.",
            GalclustWarning, stacklevel=3)
        doc = _published(url, fallback) if fallback else None
    return doc


@dataclass
class Results:
    """A published run of a results store, read lazily.

    Attributes
    ----------
    url : str
        The results store.
    run_id : str
        The run.
    manifest : dict
        The run's ``run.json``: products, params, provenance.
    """

    url: str
    run_id: str
    manifest: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        return self.manifest.get("params", {})

    @property
    def status(self) -> str:
        """``"published"``, or ``"failed"`` for a run kept for inspection only."""
        return str(self.manifest.get("status", "published"))

    @property
    def products(self) -> list[str]:
        return sorted(self.manifest.get("products", {}))

    @property
    def kinds(self) -> dict[str, str]:
        """Product name -> ``"table"``, ``"dataset"`` or ``"files"``."""
        return {k: v["kind"] for k, v in sorted(self.manifest.get("products", {}).items())}

    def _product(self, name: str, kind: str) -> str:
        prods = self.manifest.get("products", {})
        if name not in prods:
            raise KeyError(f"run {self.run_id} of {self.url} has no product {name!r}; "
                           f"it has: {', '.join(sorted(prods)) or 'none'}.")
        if prods[name]["kind"] != kind:
            raise KeyError(f"product {name!r} is a {prods[name]['kind']}, not a {kind}.")
        rel = check_product_path(prods[name]["path"], where=_run_doc(self.url, self.run_id))
        return join(self.url, rel)

    def table(self, name: str, *, columns: list[str] | None = None,
              filters: list[Any] | None = None) -> pd.DataFrame:
        """Read a table product (optionally some columns / pyarrow row filters)."""
        url = self._product(name, "table")
        fs, path = get_fs(url)
        return pd.read_parquet(path, filesystem=fs, columns=columns, filters=filters)

    def dask_table(self, name: str) -> Any:
        """A table product as a lazy Dask DataFrame."""
        import dask.dataframe as dd

        url = self._product(name, "table")
        return dd.read_parquet(url, storage_options=storage_options(url))

    def dataset(self, name: str) -> xr.Dataset:
        """Open a dataset product lazily."""
        from galclust.store.cube import _quiet_zarr, _zarr_store

        url = self._product(name, "dataset")
        with _quiet_zarr():
            return xr.open_zarr(_zarr_store(url), consolidated=True, zarr_format=3)

    def file(self, name: str, filename: str) -> bytes:
        """One file of a ``files`` product (e.g. a trained model's ``model.pkl``)."""
        url = self._product(name, "files")
        known = self.manifest["products"][name].get("files", [])
        if check_file_name(filename) not in known:
            raise KeyError(f"product {name!r} has no file {filename!r}; it has {known}.")
        return read_bytes(join(url, filename), what=f"{name} {filename}")

    def __repr__(self) -> str:
        return f"<Results {self.url} run={self.run_id} products={self.products}>"

    def label_stamps(self, ids: Any = None) -> dict[int, xr.DataArray]:
        """The run's per-galaxy label maps (``pixels/stamps``), decoded.

        Parameters
        ----------
        ids : sequence of int, optional
            Galaxy ids (default: every galaxy with a stamp); ids without a
            stamp are left out.

        Returns
        -------
        dict of int -> xarray.DataArray
            In id order: each galaxy's ``(y, x)`` int16 label map (-1 = not
            clustered), its coordinates ``y`` and ``x`` in cube pixels (the
            stamp's offset ``y0``, ``x0`` included), ``attrs["id"]`` its id.

        Raises
        ------
        KeyError
            If the run has no ``pixels/stamps`` table.
        """
        import numpy as np

        from galclust.pixels.survey import decode_labels

        filters = None if ids is None else [("id", "in", [int(i) for i in ids])]
        rows = self.table(STAMPS, filters=filters).sort_values("id")
        out: dict[int, xr.DataArray] = {}
        for r in rows.itertuples(index=False):
            gid, y0, x0, ny, nx = int(r.id), int(r.y0), int(r.x0), int(r.ny), int(r.nx)
            out[gid] = xr.DataArray(decode_labels(r.labels, ny, nx), dims=("y", "x"),
                                    name="labels", attrs={"id": gid},
                                    coords={"y": np.arange(y0, y0 + ny),
                                            "x": np.arange(x0, x0 + nx)})
        return out


def read_product(url: str, product: dict[str, Any], *, ids: list[int] | None = None
                 ) -> pd.DataFrame:
    """Rows of a table product (its ``run.json`` entry), optionally only ``ids``."""
    fs, path = get_fs(join(url, check_product_path(product["path"], where=url)))
    return pd.read_parquet(path, filesystem=fs, filters=[("id", "in", ids)] if ids else None)


def run_ids(url: str) -> list[str]:
    """Ids of every run prefix in the store, published or not, oldest first.

    Entries under ``runs/`` that are not valid run ids are not galclust's and
    are passed over.
    """
    fs, path = get_fs(str(url).rstrip("/"))
    runs_dir = f"{path}/runs"
    if not fs.exists(runs_dir):
        return []
    names = (p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(runs_dir, detail=False))
    return sorted(n for n in names if _valid_run_id(n))


def _valid_run_id(name: str) -> bool:
    try:
        check_run_id(name)
    except ValueError:
        return False
    return True


def list_runs(url: str) -> list[str]:
    """Ids of the runs that were published (not failed, not unfinished), oldest first."""
    url = str(url).rstrip("/")
    return [i for i in run_ids(url) if _published(url, i) is not None]


def open_results(url: str, run: str = "latest") -> Results:
    """Open a published run of a results store.

    Parameters
    ----------
    url : str
        Results store (local folder or ``s3://``).
    run : str
        ``"latest"`` (what the pointer names) or a run id. A pointer that
        names a deleted run is passed over with a warning, for the newest
        published run. A failed run (kept for inspection) opens by its id.

    Raises
    ------
    InputError
        If ``run`` is not a run id (e.g. a path).
    StoreError
        If there is no results store at ``url``, nothing was published
        there, or the run does not exist.
    """
    url = str(url).rstrip("/")
    if run != "latest":
        check_run_id(run)
    if not exists(url):
        if is_url(url):
            check_writable(url)  # a missing bucket or refused credentials: say that instead
        raise StoreError(f"{url}: no results store exists here; check the URL (galclust "
                         "writes a results store beside the cube store: field.zarr -> "
                         "field-results).")
    if run == "latest":
        doc = _latest(url)
        if doc is None:
            raise StoreError(f"{url}: no run has been published to this results store yet.")
        return Results(url=url, run_id=doc["run"], manifest=doc)
    doc_url = _run_doc(url, run)
    if not exists(doc_url):
        known = list_runs(url)
        raise StoreError(f"{url}: no published run {run!r}; published runs: "
                         f"{', '.join(known[-10:]) or 'none'}.")
    return Results(url=url, run_id=run, manifest=_read_json(doc_url, "run manifest"))
