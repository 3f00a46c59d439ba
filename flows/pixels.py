"""Prefect flow: pixel-SED clustering of every galaxy of a cube store.

One coarse task; the per-tile clustering inside it is a Dask graph run on the
cluster the flow is given (a scheduler address, or a local cluster).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

import galclust
from flows.common import retry_transient
from galclust.cluster import dask_client
from galclust.pipeline import check_pixel_params, finish_run, pixel_failure
from galclust.store.cube import open_catalog
from galclust.store.results import RunWriter, default_results_url


@task(name="cluster-pixels", retries=2, retry_delay_seconds=5,
      retry_condition_fn=retry_transient)
def pixels_task(store: str, results: str, params: dict[str, Any],
                scheduler: str | None = None) -> dict[str, Any]:
    """Cluster every selected galaxy and publish a run; returns its id and counts."""
    cube = galclust.open_cube(store)
    catalog = open_catalog(store)
    check_pixel_params(params)
    run = RunWriter.begin(results, params={"store": store, "pixels": params})
    with dask_client(scheduler) as client:
        from galclust.pixels.survey import run_pixels

        run_pixels(cube, catalog, run, client=client, **params)
    finish_run(run, pixel_failure(run))
    gal = galclust.open_results(results, run=run.run_id).table("pixels/galaxies",
                                                              columns=["n_clusters", "flags"])
    return {"run": run.run_id, "galaxies": len(gal),
            "flagged": int((gal["flags"] != 0).sum())}


@flow(name="galclust-pixels", log_prints=True)
def pixels_flow(store: str, results: str | None = None, scheduler: str | None = None,
                **params: Any) -> dict[str, Any]:
    """Pixel-SED clustering of a cube store (see :func:`galclust.pixels.survey.run_pixels`)."""
    return pixels_task(store, results or default_results_url(store), params,
                       scheduler=scheduler)
