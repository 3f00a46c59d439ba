"""Results store: runs written under their own prefix, published by a pointer.

Layout::

    field-results/
      latest.json                       {"run": "<run id>", ...}; written last
      runs/<run id>/run.json            the run's products, parameters, provenance
      runs/<run id>/<product>.parquet/  tables (one file per Dask partition)
      runs/<run id>/<product>.zarr      arrays
      runs/<run id>/<product>.files/    a few named files (a trained model and its card)

A run becomes visible only when :meth:`RunWriter.publish` writes
``latest.json`` (a single small object: atomic on object stores, ``os.replace``
on disk), so readers never see a half-written run and an interrupted run
leaves the previous one in place. A run may reuse products of an earlier run
(unchanged inputs and parameters): they are hard-linked (on disk) or copied
(object stores) into the run when it is published, so every run stays
readable on its own when older runs are deleted. A run that selected nothing
or in which every galaxy failed is kept with ``status: "failed"`` for
inspection (:meth:`RunWriter.fail`) and never becomes ``latest``.

Run ids and product names are checked (:mod:`galclust.store.safety`) where
they are given and where paths are built, so nothing is read or written
outside the store; the store itself is claimed before its first write: a
location that exists and is not a galclust results store is refused.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import xarray as xr

import galclust
from galclust.errors import StoreError
from galclust.store.published import (
    POINTER,
    Results,
    _latest,
    list_runs,
    open_results,
    read_product,
    run_ids,
)
from galclust.store.safety import (
    RESULTS_MARKER,
    check_file_name,
    check_product_name,
    check_product_path,
    check_run_id,
    claim_store,
    run_path,
)
from galclust.store.urls import (
    check_writable,
    get_fs,
    is_url,
    join,
    read_bytes,
    storage_options,
    write_bytes,
)

__all__ = ["Results", "RunWriter", "default_results_url", "list_runs", "open_results",
           "read_product", "run_ids"]

log = logging.getLogger(__name__)

#: The path suffix of each kind of product.
_SUFFIX = {"table": ".parquet", "dataset": ".zarr", "files": ".files"}



def default_results_url(store: str) -> str:
    """The results store beside a cube store: ``field.zarr`` -> ``field-results``."""
    store = str(store).rstrip("/")
    base = store[:-5] if store.endswith(".zarr") else store
    return base + "-results"


def _new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _copy_tree(src: str, dst: str) -> None:
    """Put a copy of the product at ``src`` at ``dst``: hard links on disk, copies elsewhere."""
    fs, spath = get_fs(src)
    _, dpath = get_fs(dst)
    if is_url(src):
        fs.copy(spath, dpath, recursive=True)
        return
    if os.path.isfile(spath):
        pairs = [(spath, dpath)]
    else:
        pairs = [(os.path.join(root, f), os.path.join(dpath, os.path.relpath(root, spath), f))
                 for root, _, files in os.walk(spath) for f in files]
    for a, b in pairs:
        os.makedirs(os.path.dirname(b), exist_ok=True)
        try:
            os.link(a, b)
        except OSError:  # another filesystem, or no hard links: copy the bytes
            import shutil

            shutil.copy2(a, b)


@dataclass(frozen=True)
class TableReader:
    """Rows of one parquet table product by id, read inside a task (picklable)."""

    url: str

    def __call__(self, ids: Any, columns: list[str] | None = None) -> pd.DataFrame:
        fs, path = get_fs(self.url)
        ids = [int(i) for i in ids]
        return pd.read_parquet(path, filesystem=fs, columns=columns,
                               filters=[("id", "in", ids)] if ids else None)


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
        run_id = _new_run_id() if run_id is None else check_run_id(run_id, argument="run_id")
        state = claim_store(url, "results", argument="results store")
        check_writable(url)
        if state == "new":
            write_bytes(join(url, RESULTS_MARKER), json.dumps(
                {"galclust_store": "results", "galclust_version": galclust.__version__}).encode())
        writer = cls(url=url, run_id=run_id, params=dict(params or {}))
        writer.previous = _latest(url)
        if writer.previous is not None and inherit:
            writer.products = dict(writer.previous.get("products", {}))
        return writer

    def _path(self, name: str, suffix: str) -> str:
        check_product_name(name)
        return run_path(self.run_id, name + suffix)

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

    def seg_target(self, name: str, shape: tuple[int, int], tile: int) -> Any:
        """Create an empty (y, x) ``seg`` dataset as product ``name``, to be written tile
        by tile (:class:`~galclust.store.segmaps.ZarrSegTarget`)."""
        from galclust.store.segmaps import create_seg_dataset

        rel = self._path(name, ".zarr")
        self.products[name] = {"kind": "dataset", "path": rel}
        return create_seg_dataset(join(self.url, rel), shape, tile)

    def dataset(self, name: str) -> xr.Dataset:
        """Open a dataset product of this run (written or inherited), lazily."""
        if self.products.get(name, {}).get("kind") != "dataset":
            raise KeyError(f"run {self.run_id} of {self.url} has no dataset {name!r}.")
        from galclust.store.cube import _quiet_zarr, _zarr_store

        rel = check_product_path(self.products[name]["path"], where=self.url)
        with _quiet_zarr():
            return xr.open_zarr(_zarr_store(join(self.url, rel)), consolidated=True,
                                zarr_format=3)

    def reader(self, name: str) -> TableReader:
        """A picklable reader of rows of table ``name`` by id (for tasks)."""
        if self.products.get(name, {}).get("kind") != "table":
            raise KeyError(f"run {self.run_id} of {self.url} has no table {name!r}.")
        return TableReader(join(self.url, check_product_path(self.products[name]["path"],
                                                             where=self.url)))

    def write_files(self, name: str, files: Mapping[str, bytes]) -> None:
        """Write a few named files as one product (a trained model and its JSON card)."""
        rel = self._path(name, ".files")
        for fname in files:
            check_file_name(fname)
        self.products[name] = {"kind": "files", "path": rel, "files": sorted(files)}
        for fname, data in files.items():
            write_bytes(join(self.url, rel, fname), data)

    def file(self, name: str, filename: str) -> bytes:
        """One file of a ``files`` product of this run (written or adopted here)."""
        prod = self.products.get(name, {})
        if prod.get("kind") != "files" or check_file_name(filename) not in prod.get("files", []):
            raise KeyError(f"run {self.run_id} of {self.url} has no file {filename!r} in "
                           f"product {name!r}.")
        rel = check_product_path(prod["path"], where=f"{self.url} run {self.run_id}")
        return read_bytes(join(self.url, rel, filename), what=f"{name} {filename}")

    def table(self, name: str, *, columns: list[str] | None = None) -> pd.DataFrame:
        """Read back a table product of this run (written or inherited)."""
        if self.products.get(name, {}).get("kind") != "table":
            raise KeyError(f"run {self.run_id} of {self.url} has no table {name!r}.")
        fs, path = get_fs(join(self.url, check_product_path(self.products[name]["path"],
                                                            where=self.url)))
        return pd.read_parquet(path, filesystem=fs, columns=columns)

    def append_rows(self, name: str, df: pd.DataFrame, *, part: str) -> None:
        """Add ``df`` as one more parquet file (``part.<part>.parquet``) of table ``name``."""
        check_product_name(part.replace("-", "_"), argument="part")
        fs, path = get_fs(self.url_of(name))
        with fs.open(f"{path}/part.{part}.parquet", "wb") as fh:
            df.to_parquet(fh, index=False)

    def reuse(self, name: str) -> None:
        """Keep the previous run's product ``name`` (already inherited by default)."""
        if self.previous is None or name not in self.previous.get("products", {}):
            raise StoreError(f"{self.url}: no previous run holds product {name!r} to reuse.")
        self.products[name] = self.previous["products"][name]

    def adopt(self, products: Mapping[str, dict[str, Any]]) -> None:
        """Take products of an earlier run into this one now (hard links on disk,
        copies on object stores), so this run no longer depends on that run."""
        self.products.update(products)
        self._carry(list(products))

    def _carry(self, names: list[str] | None = None) -> None:
        """Copy (hard-link on disk) every product held by another run into this run."""
        own = run_path(self.run_id, "run.json")[:-len("run.json")]
        for name, prod in sorted(self.products.items()):
            if names is not None and name not in names:
                continue
            rel = check_product_path(prod["path"], where=f"{self.url} run {self.run_id}")
            if rel.startswith(own):
                continue
            new = self._path(name, _SUFFIX[prod["kind"]])
            _copy_tree(join(self.url, rel), join(self.url, new))
            self.products[name] = {**prod, "path": new, "carried_from": rel.split("/")[1]}

    def _doc(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "status": status,
            "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": self.params,
            "products": self.products,
            "provenance": {"galclust_version": galclust.__version__, **self.provenance},
            "previous": (self.previous or {}).get("run"),
            **extra,
        }

    def publish(self) -> str:
        """Carry reused products into the run, write ``run.json``, then the pointer (last).

        Returns
        -------
        str
            The run id.
        """
        self._carry()
        doc = self._doc("published")
        write_bytes(join(self.url, run_path(self.run_id, "run.json")),
                    json.dumps(doc, indent=1, default=str).encode())
        write_bytes(join(self.url, POINTER),
                    json.dumps({"run": self.run_id, "published": doc["published"]}).encode())
        return self.run_id

    def fail(self, reason: str) -> str:
        """Keep the run for inspection, marked failed; the pointer is not moved.

        ``open_results(url, run=<id>)`` still reads it; ``run="latest"`` and
        the next runs never do.
        """
        doc = self._doc("failed", reason=reason)
        write_bytes(join(self.url, run_path(self.run_id, "run.json")),
                    json.dumps(doc, indent=1, default=str).encode())
        log.info("run %s of %s failed and was not published: %s", self.run_id, self.url,
                    reason)
        return self.run_id
