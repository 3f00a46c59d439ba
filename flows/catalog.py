"""Prefect flow: cutout embeddings and spurious-source flags of a whole catalog."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

import galclust
from flows.common import retry_transient
from galclust.cluster import dask_client
from galclust.store.cube import open_catalog, open_labels
from galclust.store.results import RunWriter, default_results_url


@task(name="flag-spurious", retries=2, retry_delay_seconds=5,
      retry_condition_fn=retry_transient)
def catalog_task(store: str, results: str, labels: str | None, params: dict[str, Any],
                 scheduler: str | None = None) -> dict[str, Any]:
    """Embed and flag every catalog source and publish a run; returns its id and counts."""
    from galclust.catalog.survey import run_catalog
    from galclust.store.labels import read_labels

    table_labels = read_labels(labels) if labels else open_labels(store)
    cube = galclust.open_cube(store)
    catalog = open_catalog(store)
    run = RunWriter.begin(results, params={"store": store,
                                           "catalog": {**params, "labels": labels}})
    with dask_client(scheduler) as client:
        table = run_catalog(cube, catalog, table_labels, run, client=client, **params)
    run.publish()
    return {"run": run.run_id, "sources": len(table), "flagged": int(table["flag"].sum())}


@flow(name="galclust-catalog", log_prints=True)
def catalog_flow(store: str, results: str | None = None, labels: str | None = None,
                 scheduler: str | None = None, **params: Any) -> dict[str, Any]:
    """Spurious-source flags of a cube store's catalog (see ``run_catalog``)."""
    return catalog_task(store, results or default_results_url(store), labels, params,
                        scheduler=scheduler)
