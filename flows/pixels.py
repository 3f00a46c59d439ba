"""Prefect flow: pixel-SED clustering of every galaxy of a cube store.

One coarse task calling the one run path (:func:`galclust.stages.execute`) with
the pixel stage only; its per-tile clustering is a Dask graph on the cluster
the flow is given (a scheduler address), or threads for a small survey.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import retry_transient
from galclust.options import PixelOptions, RunSettings, make_options
from galclust.products import GALAXIES
from galclust.stages import execute
from galclust.store.results import open_results


@task(name="cluster-pixels", retries=2, retry_delay_seconds=5,
      retry_condition_fn=retry_transient)
def pixels_task(store: str, results: str | None, options: dict[str, Any],
                scheduler: str | None = None) -> dict[str, Any]:
    """Cluster every galaxy and publish a run; returns its id and counts."""
    settings = RunSettings(pixels=make_options(PixelOptions, options, where="pixels_flow"))
    report = execute(store, results=results, settings=settings, stages=["pixels"],
                     scheduler=scheduler)
    gal = open_results(report.results, run=report.run).table(GALAXIES,
                                                             columns=["n_clusters", "flags"])
    return {"run": report.run, "galaxies": len(gal),
            "flagged": int((gal["flags"] != 0).sum())}


@flow(name="galclust-pixels", log_prints=True)
def pixels_flow(store: str, results: str | None = None, scheduler: str | None = None,
                **options: Any) -> dict[str, Any]:
    """Pixel-SED clustering of a cube store (``options``: :class:`~galclust.options.PixelOptions`)."""
    return pixels_task(store, results, options, scheduler=scheduler)
