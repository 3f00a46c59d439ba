"""Results store: runs written under their own prefix, published by a pointer.

Layout::

    field-results/
      latest.json                       {"run": "<run id>", ...}; written last
      runs/<run id>/run.json            the run's products, parameters, provenance
      runs/<run id>/<product>.parquet/  tables (one file per Dask partition)
      runs/<run id>/<product>.zarr      arrays

A run becomes visible only when :meth:`RunWriter.publish` writes
``latest.json`` (a single small object: atomic on object stores, ``os.replace``
on disk), so readers never see a half-written run and an interrupted run
leaves the previous one in place. A run may reuse products of an earlier run
(unchanged inputs and parameters): its ``run.json`` then points at them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import xarray as xr

import galclust
from galclust.errors import StoreError
from galclust.store.urls import (
    check_writable,
    exists,
    get_fs,
    is_url,
    join,
    read_bytes,
    storage_options,
    write_bytes,
)

__all__ = ["Results", "RunWriter", "default_results_url", "open_results"]

POINTER = "latest.json"


def default_results_url(store: str) -> str:
    """The results store beside a cube store: ``field.zarr`` -> ``field-results``."""
    store = str(store).rstrip("/")
    base = store[:-5] if store.endswith(".zarr") else store
    return base + "-results"


def _new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _read_json(url: str, what: str) -> dict[str, Any]:
    return json.loads(read_bytes(url, what=what).decode())


def _latest_id(url: str) -> str | None:
    pointer = join(url, POINTER)
    if not exists(pointer):
        return None
    return _read_json(pointer, "results pointer")["run"]


@dataclass
class RunWriter:
    """Writes one run of a results store; nothing is visible until :meth:`publish`.

    Create with :meth:`begin`. Products are named paths inside the run
    (``"pixels/galaxies"``); tables go to parquet, datasets to zarr.

    Attributes
    ----------
    url : str
        The results store.
    run_id : str
        This run's id (its prefix is ``runs/<run_id>``).
    params : dict
        The run's parameters, stored in ``run.json``.
    products : dict
        Product name -> ``{"kind": "table"|"dataset", "path": relative path}``.
    """

    url: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None

    @classmethod
    def begin(cls, url: str, *, params: Mapping[str, Any] | None = None,
              run_id: str | None = None, inherit: bool = True) -> RunWriter:
        """Start a run.

        Parameters
        ----------
        url : str
            Results store (local folder or ``s3://``); its bucket must exist.
        params : mapping, optional
            Parameters recorded with the run.
        run_id : str, optional
            Default: a UTC timestamp and a random suffix.
        inherit : bool
            Start from the latest published run's products, so a run that
            recomputes one stage still publishes the others.

        Raises
        ------
        StoreError
            If the store cannot be written.
        """
        url = str(url).rstrip("/")
        check_writable(url)
        writer = cls(url=url, run_id=run_id or _new_run_id(), params=dict(params or {}))
        latest = _latest_id(url)
        if latest is not None:
            writer.previous = _read_json(join(url, "runs", latest, "run.json"), "run manifest")
            if inherit:
                writer.products = dict(writer.previous.get("products", {}))
        return writer

    def _path(self, name: str, suffix: str) -> str:
        return f"runs/{self.run_id}/{name}{suffix}"

    def url_of(self, name: str) -> str:
        """Absolute URL of a product of this run (written or inherited)."""
        return join(self.url, self.products[name]["path"])

    def write_table(self, name: str, df: Any, *, compute: bool = True) -> Any:
        """Write a pandas or Dask DataFrame as a parquet dataset.

        A Dask DataFrame is written partition by partition inside its tasks
        (memory bounded by a partition). With ``compute=False`` the Dask
        write is returned as a delayed object, to compute several products
        together (sharing their upstream tasks).
        """
        rel = self._path(name, ".parquet")
        url = join(self.url, rel)
        self.products[name] = {"kind": "table", "path": rel}
        if isinstance(df, pd.DataFrame):
            fs, path = get_fs(url)
            fs.makedirs(path, exist_ok=True)
            with fs.open(f"{path}/part.0.parquet", "wb") as fh:
                df.to_parquet(fh, index=False)
            return None
        return df.to_parquet(url, write_index=False, storage_options=storage_options(url),
                             compute=compute)

    def write_dataset(self, name: str, ds: xr.Dataset, *, compute: bool = True) -> Any:
        """Write an xarray Dataset to zarr (dask-backed variables written by their tasks)."""
        rel = self._path(name, ".zarr")
        url = join(self.url, rel)
        self.products[name] = {"kind": "dataset", "path": rel}
        from galclust.store.cube import _quiet_zarr, _zarr_store

        with _quiet_zarr():
            return ds.to_zarr(_zarr_store(url), mode="w", compute=compute, consolidated=True,
                              zarr_format=3)

    def reuse(self, name: str) -> None:
        """Keep the previous run's product ``name`` (already inherited by default)."""
        if self.previous is None or name not in self.previous.get("products", {}):
            raise StoreError(f"{self.url}: no previous run holds product {name!r} to reuse.")
        self.products[name] = self.previous["products"][name]

    def publish(self) -> str:
        """Write ``run.json``, then the pointer (last). Returns the run id."""
        doc = {
            "run": self.run_id,
            "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": self.params,
            "products": self.products,
            "provenance": {"galclust_version": galclust.__version__, **self.provenance},
            "previous": (self.previous or {}).get("run"),
        }
        write_bytes(join(self.url, "runs", self.run_id, "run.json"),
                    json.dumps(doc, indent=1, default=str).encode())
        write_bytes(join(self.url, POINTER),
                    json.dumps({"run": self.run_id, "published": doc["published"]}).encode())
        return self.run_id


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
    def products(self) -> list[str]:
        return sorted(self.manifest.get("products", {}))

    @property
    def kinds(self) -> dict[str, str]:
        """Product name -> ``"table"`` or ``"dataset"``."""
        return {k: v["kind"] for k, v in sorted(self.manifest.get("products", {}).items())}

    def _product(self, name: str, kind: str) -> str:
        prods = self.manifest.get("products", {})
        if name not in prods:
            raise KeyError(f"run {self.run_id} of {self.url} has no product {name!r}; "
                           f"it has: {', '.join(sorted(prods)) or 'none'}.")
        if prods[name]["kind"] != kind:
            raise KeyError(f"product {name!r} is a {prods[name]['kind']}, not a {kind}.")
        return join(self.url, prods[name]["path"])

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

    def __repr__(self) -> str:
        return f"<Results {self.url} run={self.run_id} products={self.products}>"


def run_ids(url: str) -> list[str]:
    """Ids of every run prefix in the store, published or not, oldest first."""
    fs, path = get_fs(str(url).rstrip("/"))
    runs_dir = f"{path}/runs"
    if not fs.exists(runs_dir):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(runs_dir, detail=False))


def list_runs(url: str) -> list[str]:
    """Ids of the runs that were published (have a ``run.json``), oldest first."""
    url = str(url).rstrip("/")
    return [i for i in run_ids(url) if exists(join(url, "runs", i, "run.json"))]


def open_results(url: str, run: str = "latest") -> Results:
    """Open a published run of a results store.

    Parameters
    ----------
    url : str
        Results store (local folder or ``s3://``).
    run : str
        ``"latest"`` (what the pointer names) or a run id.

    Raises
    ------
    StoreError
        If nothing was published there, or the run does not exist.
    """
    url = str(url).rstrip("/")
    run_id = _latest_id(url) if run == "latest" else run
    if run_id is None:
        if not is_url(url) and not exists(url):
            raise StoreError(f"{url}: no results store here.")
        raise StoreError(f"{url}: no run has been published yet; run `galclust nightly` "
                         "(or `galclust pixels` / `galclust flag`) first.")
    doc_url = join(url, "runs", run_id, "run.json")
    if not exists(doc_url):
        known = list_runs(url)
        raise StoreError(f"{url}: no published run {run_id!r}; published runs: "
                         f"{', '.join(known[-10:]) or 'none'}.")
    return Results(url=url, run_id=run_id, manifest=_read_json(doc_url, "run manifest"))
