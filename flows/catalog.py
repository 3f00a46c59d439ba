"""Prefect flow: cutout embeddings and spurious-source flags of a whole catalog.

One coarse task calling the one run path (:func:`galclust.stages.execute`) with
the catalog stage only.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import retry_transient
from galclust.options import CatalogOptions, RunSettings, make_options
from galclust.products import SPURIOUS
from galclust.stages import execute
from galclust.store.results import open_results


@task(name="flag-spurious", retries=2, retry_delay_seconds=5,
      retry_condition_fn=retry_transient)
def catalog_task(store: str, results: str | None, labels: str | None,
                 options: dict[str, Any], scheduler: str | None = None) -> dict[str, Any]:
    """Embed and flag every catalog source and publish a run; returns its id and counts."""
    settings = RunSettings(catalog=make_options(CatalogOptions, options, where="catalog_flow"))
    report = execute(store, results=results, settings=settings, stages=["catalog"],
                     labels=labels, scheduler=scheduler)
    out = {"run": report.run, **report.stages["catalog"]}
    if report.stages["catalog"]["action"] != "skip":
        table = open_results(report.results, run=report.run).table(SPURIOUS)
        out.update(sources=len(table), flagged=int(table["flag"].fillna(False).sum()))
    return out


@flow(name="galclust-catalog", log_prints=True)
def catalog_flow(store: str, results: str | None = None, labels: str | None = None,
                 scheduler: str | None = None, **options: Any) -> dict[str, Any]:
    """Spurious-source flags of a cube store's catalog (``options``:
    :class:`~galclust.options.CatalogOptions`)."""
    return catalog_task(store, results, labels, options, scheduler=scheduler)
