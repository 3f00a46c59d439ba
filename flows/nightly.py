"""Prefect flow: the nightly reprocessing of a survey.

ingest -> one task per stage of :data:`galclust.stages.STAGES` -> publish.

Coarse tasks only, each a call into :mod:`galclust.stages` (the one run path):
the heavy work of a stage is a Dask graph on the cluster the configuration names
(a scheduler address, a cluster class with its arguments, or a LocalCluster
started only when a stage has enough work for it; small runs use threads). What
each stage must redo (compute, reuse, incremental, or skip with its reason) is
planned once, with the survey's inputs opened once; the run becomes visible
only when its pointer is written, last.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from flows.common import retry_transient
from flows.ingest import ingest_task
from galclust.cluster import connect
from galclust.options import RunSettings
from galclust.pipeline import StagePlan, preflight
from galclust.stages import RunInputs, begin, publish, run_client, run_stage
from galclust.store.results import RunWriter, default_results_url


@task(name="plan-stages", cache_policy=NO_CACHE)
def plan_task(store: str, results: str, settings: RunSettings, labels: str | None,
              params: dict[str, Any]) -> tuple[RunInputs, RunWriter, dict[str, StagePlan]]:
    """Open the inputs once, begin the run and plan every stage."""
    inputs = RunInputs.open(store, results, labels=labels)
    run, plans = begin(inputs, settings, params=params)
    return inputs, run, plans


@task(name="stage", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def stage_task(inputs: RunInputs, run: RunWriter, plan: StagePlan, settings: RunSettings,
               address: str | None) -> dict[str, Any]:
    """Carry out one stage's plan on the cluster at ``address`` (threads if None)."""
    if address is None:
        return run_stage(inputs, run, plan, settings)
    with connect(address) as client:
        return run_stage(inputs, run, plan, settings, client=client)


@task(name="publish", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def publish_task(run: RunWriter, summaries: dict[str, dict[str, Any]]) -> str:
    """Write the run's manifest, then its pointer (last); a run whose every galaxy
    failed is kept as failed instead, and the task fails."""
    return publish(run, summaries)


def _settings(settings: dict[str, Any] | None, pixels: dict[str, Any] | None,
              catalog: dict[str, Any] | None) -> RunSettings:
    data = dict(settings or {})
    for name, over in (("pixels", pixels), ("catalog", catalog)):
        if over:
            data[name] = {**dict(data.get(name) or {}), **over}
    return RunSettings.from_dict(data, where="nightly_flow settings")


@flow(name="galclust-nightly", log_prints=True)
def nightly_flow(manifest: str, store: str, results: str | None = None,
                 scheduler: str | None = None, cluster_class: str | None = None,
                 cluster_kwargs: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None,
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
        default a LocalCluster of ``workers`` processes when the run is large
        enough, threads when it is small.
    settings : dict, optional
        Run settings (:meth:`galclust.options.RunSettings.to_dict`): every
        stage's options and the stages to skip.
    pixels, catalog : dict, optional
        Options of one stage (:class:`~galclust.options.PixelOptions`,
        :class:`~galclust.options.CatalogOptions`), over ``settings``.
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
    run_settings = _settings(settings, pixels, catalog)
    results = results or default_results_url(store)
    # bad options, foreign or overlapping stores, a missing bucket, refused
    # credentials or a dead scheduler fail here, before any work
    preflight(manifest, store, results, scheduler=scheduler, labels=labels,
              class_labels=run_settings.classify.labels)
    summary: dict[str, Any] = {"results": results, "store": store}
    t = time.perf_counter()
    summary["ingest"] = ingest_task(manifest, store, tile=tile, scheduler=scheduler)
    summary["ingest"]["seconds"] = time.perf_counter() - t
    inputs, run, plans = plan_task(store, results, run_settings, labels,
                                   {"manifest": manifest, "labels": labels})
    log.info("run %s: %s", run.run_id, ", ".join(f"{k} {p.action}" for k, p in plans.items()))
    summaries: dict[str, dict[str, Any]] = {}
    with run_client(inputs, plans, scheduler=scheduler, cluster_class=cluster_class,
                    cluster_kwargs=cluster_kwargs, adapt_kwargs=adapt_kwargs,
                    workers=workers) as client:
        address = scheduler or (client.scheduler.address if client is not None else None)
        for name, plan in plans.items():
            # quote: the task gets these very objects (opened once; the run is shared)
            summaries[name] = stage_task.with_options(name=f"stage-{name}")(
                quote(inputs), quote(run), plan, run_settings, address)
    run.provenance["ingest"] = summary["ingest"]
    summary.update(summaries)
    summary["run"] = publish_task(quote(run), summaries)
    summary["seconds"] = time.perf_counter() - t0
    print(f"published run {summary['run']} to {results} in {summary['seconds']:.1f} s ("
          + ", ".join(f"{k}: {v['action']}" for k, v in summaries.items()) + ")")
    return summary
