"""The nightly pipeline's stages, and what each must redo.

Every stage of a run (pixel clustering, catalog flags) records a *checkpoint*
once its products are completely written: ``runs/<run>/stages/<stage>.json``
holding a key (a hash of the stage's input checksums and parameters) and its
products. A later run reuses any checkpoint with the same key, from the last
published run (nothing changed) or from an interrupted one (the rerun picks up
what is missing). Pixel clustering also reuses galaxy by galaxy: when only the
segmentation map or the catalog changed, galaxies whose footprint, position
and redshift are unchanged keep their previous rows, and only new or changed
galaxies are clustered.

Flows (``flows/nightly.py``) call these functions; they hold no logic of
their own.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import xxhash

from galclust.errors import RunFailedError
from galclust.products import CATALOG_PRODUCTS, FOOTPRINTS, GALAXIES, PIXEL_TABLES
from galclust.store.fits import CHECKSUM
from galclust.store.results import RunWriter, read_product, run_ids
from galclust.store.safety import run_path
from galclust.store.urls import exists, join, read_bytes, write_bytes

__all__ = [
    "StagePlan",
    "finish_run",
    "pixel_failure",
    "preflight",
    "find_checkpoint",
    "plan_catalog",
    "plan_pixels",
    "run_catalog_stage",
    "run_pixels_stage",
    "start_stage",
    "write_checkpoint",
]

log = logging.getLogger(__name__)



def _key(*parts: Any) -> str:
    return xxhash.xxh3_128(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _inputs(cube: xr.Dataset, kinds: tuple[str, ...]) -> dict[str, str]:
    """Checksums of the cube's inputs whose key ends with one of ``kinds``."""
    inputs = cube.attrs["provenance"]["inputs"]
    return {k: v[CHECKSUM] for k, v in sorted(inputs.items())
            if k in kinds or k.rsplit(".", 1)[-1] in kinds}


@dataclass
class StagePlan:
    """What one stage of a run must do.

    Attributes
    ----------
    stage : str
        ``"pixels"`` or ``"catalog"``.
    key : str
        Hash of every input and parameter of the stage.
    action : str
        ``"reuse"`` (a checkpoint with this key exists), ``"incremental"``
        (pixels only: some galaxies can be carried over), ``"predict"``
        (classify only: the stored model classifies new pixels), ``"compute"``, or
        ``"skip"`` (the stage cannot apply; ``reason`` says why).
    checkpoint : dict or None
        The checkpoint reused or carried over from.
    band_key : str or None
        A second key: for pixels, of the bands and options alone (galaxies may
        be carried over when only the segmentation changed); for classify, of
        the labels and options alone (the model may be reused).
    ids : list of int or None
        For ``"incremental"``: the galaxies to cluster.
    carried : list of int or None
        For ``"incremental"``: the galaxies whose rows are carried over.
    reason : str or None
        For ``"skip"``: why the stage cannot apply (recorded in the run).
    """

    stage: str
    key: str
    action: str
    checkpoint: dict[str, Any] | None = None
    band_key: str | None = None
    ids: list[int] | None = None
    carried: list[int] | None = None
    reason: str | None = None

    @property
    def needs_compute(self) -> bool:
        return self.action not in ("reuse", "skip")


# --------------------------------------------------------------------------- preflight
def preflight(manifest: str, store: str, results: str, *, scheduler: str | None = None,
              labels: str | None = None, class_labels: str | None = None) -> None:
    """Every check a survey run can make before it ingests or starts a cluster.

    The manifest is parsed, both stores checked (writable, galclust's or new,
    clear of the survey's inputs), the labels files read (inspection labels, and
    classification labels: checked against the catalog when the stage is planned) and
    the scheduler
    reached: a missing bucket, refused credentials or a dead scheduler fail
    here, in seconds, with one clear message. (Options are checked when their
    :mod:`galclust.options` dataclasses are built, before this.)

    Raises
    ------
    GalclustError
        The first problem found, naming the option, file or URL.
    """
    from galclust.cluster import connect
    from galclust.config import load_manifest
    from galclust.store.labels import read_labels
    from galclust.store.safety import claim_store
    from galclust.store.urls import check_writable

    m = load_manifest(manifest)
    inputs = [manifest, *m.input_paths().values()]
    for url, kind, arg in ((store, "cube", "store"), (results, "results", "results store")):
        claim_store(url, kind, inputs=inputs, argument=arg)
        check_writable(url)
    if labels:
        read_labels(labels)
    if class_labels:
        from galclust.store.tables import read_table

        read_table(class_labels, what="classification labels")
    if scheduler:
        connect(scheduler).close()


# --------------------------------------------------------------------------- checkpoints
def write_checkpoint(run: RunWriter, stage: str, key: str, products: list[str],
                     **extra: Any) -> None:
    """Record that ``stage`` of ``run`` is complete (after its products are written)."""
    doc = {"stage": stage, "key": key, "run": run.run_id,
           "products": {p: run.products[p] for p in products},
           "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
    write_bytes(join(run.url, run_path(run.run_id, "stages", f"{stage}.json")),
                json.dumps(doc, default=str).encode())


def _adopt(run: RunWriter, plan: StagePlan) -> None:
    """Reuse a checkpoint: its products are linked into ``run``, which records the same
    checkpoint, so later runs can reuse it from here when the older run is deleted."""
    cp = plan.checkpoint
    run.adopt(cp["products"])
    extra = {k: v for k, v in cp.items() if k not in ("stage", "key", "run", "products",
                                                        "written")}
    write_checkpoint(run, cp["stage"], cp["key"], list(cp["products"]), **extra)


def start_stage(run: RunWriter, plan: StagePlan, products: Any) -> dict[str, Any] | None:
    """Drop ``products`` inherited from the last run (they are not this run's own), and on
    a ``"reuse"`` plan adopt the checkpoint's: returns the reuse summary, else None."""
    for product in products:
        run.products.pop(product, None)
    if plan.action == "reuse":
        _adopt(run, plan)
        return {"action": "reuse", "from_run": plan.checkpoint["run"]}
    return None


def _checkpoints(url: str, stage: str) -> list[dict[str, Any]]:
    """Every checkpoint of ``stage`` in the store, newest run first (published or not)."""
    out = []
    for run_id in reversed(run_ids(url)):
        doc_url = join(url, run_path(run_id, "stages", f"{stage}.json"))
        if exists(doc_url):
            out.append(json.loads(read_bytes(doc_url, what="stage checkpoint")))
    return out


def find_checkpoint(url: str, stage: str, key: str) -> dict[str, Any] | None:
    """The newest checkpoint of ``stage`` with ``key``, or None."""
    return next((c for c in _checkpoints(url, stage) if c["key"] == key), None)


# --------------------------------------------------------------------------- pixels
def _footprints(cube: xr.Dataset, catalog: pd.DataFrame, client: Any) -> pd.DataFrame:
    from galclust.pixels.survey import segment_boxes

    boxes = segment_boxes(cube["seg"], scheduler=client)
    cols = ["id", "x", "y", "z"]
    return boxes.merge(catalog[cols], on="id", how="inner")


def plan_pixels(cube: xr.Dataset, catalog: pd.DataFrame, results: str,
                params: dict[str, Any], *, client: Any = None,
                footprints: pd.DataFrame | None = None) -> tuple[StagePlan, pd.DataFrame | None]:
    """Decide what pixel clustering must redo; returns the plan and the footprints
    (segment boxes joined with catalog positions) when they were computed."""
    bands = _inputs(cube, ("sci", "err", "weight"))
    key = _key("pixels", bands, _inputs(cube, ("seg", "catalog")), params)
    band_key = _key("pixels-bands", bands, params)
    cp = find_checkpoint(results, "pixels", key)
    if cp is not None:
        return StagePlan("pixels", key, "reuse", cp, band_key), footprints
    older = next((c for c in _checkpoints(results, "pixels")
                  if c.get("band_key") == band_key and FOOTPRINTS in c["products"]), None)
    if older is None:
        return StagePlan("pixels", key, "compute", None, band_key), footprints
    if footprints is None:
        footprints = _footprints(cube, catalog, client)
    prev = read_product(results, older["products"][FOOTPRINTS])
    merged = footprints.merge(prev, on="id", how="left", suffixes=("", "_prev"),
                              indicator=True)
    same = merged["_merge"] == "both"
    for col in ("y0", "y1", "x0", "x1", "n_pixels"):
        same &= merged[col].to_numpy() == merged[f"{col}_prev"].to_numpy()
    for col in ("x", "y"):
        same &= np.isclose(merged[col], merged[f"{col}_prev"], rtol=0, atol=1e-6)
    same &= (merged["z"].to_numpy() == merged["z_prev"].to_numpy()) | (
        merged["z"].isna().to_numpy() & merged["z_prev"].isna().to_numpy())
    carried = merged.loc[same, "id"].astype("int64").tolist()
    todo = merged.loc[~same, "id"].astype("int64").tolist()
    return StagePlan("pixels", key, "incremental", older, band_key, todo, carried), footprints


def run_pixels_stage(cube: xr.Dataset, catalog: pd.DataFrame, run: RunWriter,
                     plan: StagePlan, params: dict[str, Any], *, client: Any = None,
                     footprints: pd.DataFrame | None = None) -> dict[str, Any]:
    """Carry out a pixel-clustering plan into ``run``; returns what was done.

    ``reuse`` adopts the checkpoint's products; ``incremental`` clusters
    ``plan.ids`` and appends the previous rows of ``plan.carried``;
    ``compute`` clusters every galaxy. The stage's checkpoint is written last.
    """
    from galclust.pixels.survey import run_pixels

    t0 = time.perf_counter()
    if plan.action == "reuse":
        _adopt(run, plan)
        return {"action": "reuse", "from_run": plan.checkpoint["run"], "clustered": 0,
                "seconds": time.perf_counter() - t0}
    if footprints is None:
        footprints = _footprints(cube, catalog, client)
    boxes = footprints[["id", "y0", "y1", "x0", "x1", "n_pixels"]]
    selection = {"ids": plan.ids} if plan.action == "incremental" else {}
    clustered = 0
    if plan.action == "compute" or plan.ids:
        out = run_pixels(cube, catalog, run, client=client, boxes=boxes, **selection,
                         **params)
        clustered = int(out["n_galaxies"])
    else:  # nothing new: empty tables of the right schema, then the carried rows
        from galclust.pixels.survey import SCHEMAS, empty_frame

        for name in PIXEL_TABLES:
            run.write_table(name, empty_frame(SCHEMAS[name.split("/")[1]]))
    if plan.action == "incremental" and plan.carried:
        for name in PIXEL_TABLES:
            rows = read_product(run.url, plan.checkpoint["products"][name], ids=plan.carried)
            run.append_rows(name, rows, part="carried")
    run.write_table(FOOTPRINTS, footprints.reset_index(drop=True))
    write_checkpoint(run, "pixels", plan.key, [*PIXEL_TABLES, FOOTPRINTS],
                     band_key=plan.band_key)
    return {"action": plan.action, "clustered": clustered,
            "carried": len(plan.carried or []), "seconds": time.perf_counter() - t0}


def pixel_failure(run: RunWriter) -> str | None:
    """Why the run's pixel clustering must not be published, or None if it may be.

    A run that selected no galaxy, or in which no galaxy could be clustered
    (every one flagged), is a failed run: publishing it would replace a good
    ``latest`` with an empty one.
    """
    if GALAXIES not in run.products:
        return None
    gal = run.table(GALAXIES, columns=["n_clusters", "flag_names"])
    if gal.empty:
        return "the selection holds no galaxy, so nothing was clustered"
    if not (gal["n_clusters"] > 0).any():
        names = gal["flag_names"].str.split(",").explode()
        names = names[names.astype(bool)]
        common = names.value_counts().head(3)
        why = ", ".join(f"{k} ({v})" for k, v in common.items()) or "no flag"
        return (f"every one of the {len(gal)} selected galaxies failed to cluster "
                f"(most common flags: {why})")
    return None


def finish_run(run: RunWriter, failure: str | None) -> str:
    """Publish ``run``, or, if ``failure`` says why it must not be, keep it as failed.

    Raises
    ------
    RunFailedError
        When the run failed: it is kept under ``runs/<id>`` for inspection and
        the pointer still names the previous run.
    """
    if failure is None:
        return run.publish()
    run.fail(failure)
    raise RunFailedError(f"run {run.run_id} failed and was not published: {failure}. It is "
                         f"kept for inspection in {run.url} (open_results(url, run="
                         f"{run.run_id!r})); the latest published run is unchanged.")


# --------------------------------------------------------------------------- catalog
def plan_catalog(cube: xr.Dataset, results: str, params: dict[str, Any],
                 labels_key: str | None) -> StagePlan:
    """Decide whether the catalog embedding and flags must be recomputed.

    They are global fits (PCA and mixture over the whole catalog): any change
    of pixels, catalog, labels or parameters recomputes them all.
    """
    key = _key("catalog", _inputs(cube, ("sci", "err", "weight", "seg", "catalog", "labels")),
               labels_key, params)
    cp = find_checkpoint(results, "catalog", key)
    return StagePlan("catalog", key, "reuse" if cp else "compute", cp)


def run_catalog_stage(cube: xr.Dataset, catalog: pd.DataFrame, labels: pd.DataFrame | None,
                      run: RunWriter, plan: StagePlan, params: dict[str, Any], *,
                      client: Any = None) -> dict[str, Any]:
    """Carry out a catalog plan into ``run``; the checkpoint is written last."""
    from galclust.catalog.survey import run_catalog

    t0 = time.perf_counter()
    if plan.action == "reuse":
        _adopt(run, plan)
        return {"action": "reuse", "from_run": plan.checkpoint["run"], "sources": 0,
                "seconds": time.perf_counter() - t0}
    table = run_catalog(cube, catalog, labels, run, client=client, **params)
    write_checkpoint(run, "catalog", plan.key, list(CATALOG_PRODUCTS))
    counts = {k: v for k, v in table.attrs.get("summary", {}).items() if not k.endswith("_ids")}
    return {"action": "compute", "sources": len(table), "flagged": int(table["flag"].sum()),
            **counts, "seconds": time.perf_counter() - t0}


def labels_fingerprint(labels: pd.DataFrame | None) -> str | None:
    """A key of the labels table's content (None without labels)."""
    if labels is None:
        return None
    return xxhash.xxh3_128(pd.util.hash_pandas_object(labels, index=False).values).hexdigest()
