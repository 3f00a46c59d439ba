"""Prefect flow: the nightly reprocessing of a survey.

ingest -> pixel clustering -> catalog embedding and flags -> publish.

Coarse tasks only: each stage is one Prefect task whose heavy work is a Dask
graph on the cluster the configuration names (a scheduler address, a cluster
class with its arguments, or a LocalCluster started only if some stage has
work to do). What each stage must redo is decided by
:mod:`galclust.pipeline` (unchanged inputs and parameters are reused, an
interrupted run's finished stages are picked up); the run becomes visible
only when its pointer is written, last.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from prefect import flow, get_run_logger, task

import galclust
from flows.common import retry_transient
from flows.ingest import ingest_task
from galclust.cluster import connect, dask_client
from galclust.pipeline import (
    StagePlan,
    finish_run,
    labels_fingerprint,
    pixel_failure,
    plan_catalog,
    plan_pixels,
    preflight,
    run_catalog_stage,
    run_pixels_stage,
)
from galclust.store.cube import open_catalog, open_labels
from galclust.store.results import RunWriter, default_results_url


def _labels(store: str, labels: str | None) -> Any:
    from galclust.store.labels import read_labels

    return read_labels(labels) if labels else open_labels(store)


@task(name="plan-stages")
def plan_task(store: str, results: str, pixels: dict[str, Any], catalog: dict[str, Any],
              labels: str | None) -> dict[str, Any]:
    """Decide what each stage must redo."""
    cube = galclust.open_cube(store)
    pix, footprints = plan_pixels(cube, open_catalog(store), results, pixels)
    cat = plan_catalog(cube, results, catalog, labels_fingerprint(_labels(store, labels)))
    return {"pixels": pix, "catalog": cat, "footprints": footprints}


@task(name="pixel-clustering", retries=2, retry_delay_seconds=10,
      retry_condition_fn=retry_transient)
def pixels_task(store: str, results: str, run_id: str, plan: StagePlan,
                params: dict[str, Any], address: str | None,
                footprints: Any = None) -> dict[str, Any]:
    """Carry out the pixel-clustering plan; returns its summary and products."""
    run = RunWriter(url=results, run_id=run_id)
    with connect(address) if address else contextlib.nullcontext() as client:
        summary = run_pixels_stage(galclust.open_cube(store), open_catalog(store), run, plan,
                                   params, client=client, footprints=footprints)
    return {**summary, "products": run.products}


@task(name="catalog-flags", retries=2, retry_delay_seconds=10,
      retry_condition_fn=retry_transient)
def catalog_task(store: str, results: str, run_id: str, plan: StagePlan,
                 params: dict[str, Any], labels: str | None,
                 address: str | None) -> dict[str, Any]:
    """Carry out the catalog plan; returns its summary and products."""
    run = RunWriter(url=results, run_id=run_id)
    with connect(address) if address else contextlib.nullcontext() as client:
        summary = run_catalog_stage(galclust.open_cube(store), open_catalog(store),
                                    _labels(store, labels), run, plan, params, client=client)
    return {**summary, "products": run.products}


@task(name="publish", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def publish_task(run: RunWriter) -> str:
    """Write the run's manifest, then its pointer (last); a run whose every galaxy
    failed is kept as failed instead, and the task fails."""
    return finish_run(run, pixel_failure(run))


@flow(name="galclust-nightly", log_prints=True)
def nightly_flow(manifest: str, store: str, results: str | None = None,
                 scheduler: str | None = None, cluster_class: str | None = None,
                 cluster_kwargs: dict[str, Any] | None = None,
                 pixels: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None,
                 labels: str | None = None, workers: int | None = None,
                 tile: int | None = None,
                 adapt_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reprocess a survey and publish the run atomically.

    Parameters
    ----------
    manifest : str
        Survey manifest (TOML), local or ``s3://``.
    store : str
        Cube store URL.
    results : str, optional
        Results store (default: beside the cube store, ``<name>-results``).
    scheduler : str, optional
        Address of a running Dask scheduler.
    cluster_class, cluster_kwargs : optional
        Otherwise, a cluster to start (e.g. ``dask_kubernetes.operator.KubeCluster``);
        default a LocalCluster of ``workers`` processes.
    pixels, catalog : dict, optional
        Options of :func:`galclust.pixels.survey.pixel_tables` and
        :func:`galclust.catalog.survey.run_catalog`.
    labels : str, optional
        Inspection labels file (default: those ingested with the cube).
    workers : int, optional
        Worker processes of the default local cluster.
    tile : int, optional
        Cube chunk size for ingest (also the unit of the pixel-clustering tasks).
    adapt_kwargs : dict, optional
        Adaptive scaling of the started cluster (``{"minimum": 2, "maximum": 20}``).

    Returns
    -------
    dict
        The run id, the results URL and each stage's summary with timings.
    """
    log = get_run_logger()
    t0 = time.perf_counter()
    pixels, catalog = dict(pixels or {}), dict(catalog or {})
    results = results or default_results_url(store)
    # bad options, foreign or overlapping stores, a missing bucket, refused
    # credentials or a dead scheduler fail here, before any work
    preflight(manifest, store, results, scheduler=scheduler, pixels=pixels, catalog=catalog,
              labels=labels)
    summary: dict[str, Any] = {"results": results, "store": store}
    t = time.perf_counter()
    summary["ingest"] = ingest_task(manifest, store, tile=tile, scheduler=scheduler)
    summary["ingest"]["seconds"] = time.perf_counter() - t
    plans = plan_task(store, results, pixels, catalog, labels)
    run = RunWriter.begin(results, inherit=False, params={
        "store": store, "manifest": manifest, "pixels": pixels, "catalog": catalog,
        "labels": labels})
    need = plans["pixels"].needs_compute or plans["catalog"].needs_compute
    log.info("run %s: pixels %s, catalog %s", run.run_id, plans["pixels"].action,
             plans["catalog"].action)
    own_cluster = need and not scheduler
    with (dask_client(n_workers=workers, cluster_class=cluster_class,
                      cluster_kwargs=cluster_kwargs, adapt_kwargs=adapt_kwargs) if own_cluster
          else contextlib.nullcontext()) as client:
        address = scheduler or (client.scheduler.address if client is not None else None)
        pix = pixels_task(store, results, run.run_id, plans["pixels"], pixels, address,
                          footprints=plans["footprints"])
        run.products.update(pix.pop("products"))
        cat = catalog_task(store, results, run.run_id, plans["catalog"], catalog, labels,
                           address)
        run.products.update(cat.pop("products"))
    summary.update(pixels=pix, catalog=cat)
    run.provenance.update(stages={"pixels": pix, "catalog": cat},
                          ingest=summary["ingest"])
    summary["run"] = publish_task(run)
    summary["seconds"] = time.perf_counter() - t0
    print(f"published run {summary['run']} to {results} in {summary['seconds']:.1f} s "
          f"(pixels: {pix['action']}, catalog: {cat['action']})")
    return summary
