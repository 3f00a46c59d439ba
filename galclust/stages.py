"""The one run path: open a survey's inputs once, plan every stage, run them, publish.

Every entry point goes through here: ``galclust pixels`` / ``galclust flag`` run
one stage with :func:`execute`; ``galclust nightly``, ``galclust serve`` and
``galclust demo`` run the Prefect flow :func:`flows.nightly.nightly_flow`, one
Prefect task per stage, each calling :func:`run_stage`. A run is::

    inputs = RunInputs.open(store, results)           # cube, catalog, labels: once
    run, plans = begin(inputs, settings)               # one RunWriter; plan each stage
    for plan in plans: run_stage(inputs, run, plan)    # compute, reuse, or skip
    publish(run, summaries)                            # or keep it as failed

A stage is a small object (:class:`Stage`): a name, its typed options class
(:mod:`galclust.options`), and ``plan`` / ``run``. ``plan`` returns a
:class:`~galclust.pipeline.StagePlan` whose action is ``"compute"``,
``"incremental"``, ``"reuse"`` (same inputs and options as a checkpoint) or
``"skip"`` with the reason the stage cannot apply (too few sources for a
mixture, no labels); a skipped stage is recorded with its reason in the run
manifest and the rest of the run publishes.

Adding a stage is one module defining a :class:`Stage` subclass and one line in
:data:`STAGES`; the command line, the flows and ``serve`` pick it up from there.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import xarray as xr

from galclust.errors import InputError
from galclust.options import (
    CatalogOptions,
    ClassifyOptions,
    DetectOptions,
    MorphologyOptions,
    PixelOptions,
    RunSettings,
)
from galclust.pipeline import (
    StagePlan,
    finish_run,
    labels_fingerprint,
    pixel_failure,
    plan_catalog,
    plan_pixels,
    run_catalog_stage,
    run_pixels_stage,
)
from galclust.products import (
    CATALOG_PRODUCTS,
    DETECT_PRODUCTS,
    EMISSION_PRODUCTS,
    MORPHOLOGY_PRODUCTS,
    PIXEL_PRODUCTS,
    STRUCTURES_PRODUCTS,
)
from galclust.store.cube import open_catalog, open_cube, open_labels
from galclust.store.results import RunWriter, default_results_url
from galclust.structures_stage import (
    EmissionOptions,
    StructuresOptions,
    plan_emission,
    plan_structures,
    run_emission_stage,
    run_structures_stage,
)

__all__ = ["SMALL_JOB", "STAGES", "RunInputs", "Stage", "begin", "execute", "publish",
           "run_stage"]

log = logging.getLogger(__name__)

#: Below this many galaxies a run computes in-process with threads: starting a
#: process cluster (~10-20 s) costs more than the second core gains.
SMALL_JOB = 300
#: Fewest catalog sources the catalog stage's mixture model can be fitted on.
MIN_CATALOG_SOURCES = 10


@dataclass
class RunInputs:
    """A survey's inputs, opened once for the whole run.

    Attributes
    ----------
    store, results : str
        Cube store and results store URLs.
    cube : xarray.Dataset
        The cube, lazily opened.
    catalog : pandas.DataFrame
        The ingested catalog.
    labels_url : str, optional
        An inspection-labels file given for this run (default: the ingested labels).
    footprints : pandas.DataFrame, optional
        Segment boxes joined with catalog positions, computed once when a
        stage first needs them.
    class_labels : pandas.DataFrame, optional
        The classification labels (id, label), read and checked when the
        classify stage is planned.
    plans : dict
        The plans of the stages planned so far in this run (a stage whose
        products depend on an earlier stage's keys on its plan).
    """

    store: str
    results: str
    cube: xr.Dataset
    catalog: pd.DataFrame
    labels_url: str | None = None
    footprints: pd.DataFrame | None = None
    class_labels: pd.DataFrame | None = None
    plans: dict[str, StagePlan] = field(default_factory=dict)

    @classmethod
    def open(cls, store: str, results: str | None = None, *,
             labels: str | None = None) -> RunInputs:
        """Open the cube, its catalog and (lazily) its labels."""
        store = str(store).rstrip("/")
        return cls(store=store, results=results or default_results_url(store),
                   cube=open_cube(store), catalog=open_catalog(store), labels_url=labels)

    @functools.cached_property
    def labels(self) -> pd.DataFrame | None:
        """The inspection labels (id, reliable, reason), or None."""
        if self.labels_url:
            from galclust.store.labels import read_labels

            return read_labels(self.labels_url)
        return open_labels(self.store)


class Stage(abc.ABC):
    """One stage of a run: a name, typed options, and ``plan`` / ``run``.

    Subclasses set :attr:`name`, :attr:`options` (the options dataclass) and
    :attr:`products`, and implement :meth:`plan` and :meth:`run`.
    """

    name: ClassVar[str]
    options: ClassVar[type]
    products: ClassVar[tuple[str, ...]]

    #: Whether a stage that cannot apply drops its products from the new run (its older
    #: products would mislead) or carries them (they stay valid without it).
    drops_on_skip: ClassVar[bool] = True

    def owns(self, product: str) -> bool:
        """Whether ``product`` is one of this stage's."""
        return product in self.products

    @abc.abstractmethod
    def plan(self, inputs: RunInputs, options: Any, **selection: Any) -> StagePlan:
        """Decide what this stage must do: compute, reuse, or skip (with the reason)."""

    @abc.abstractmethod
    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan, options: Any, *,
            client: Any = None, **selection: Any) -> dict[str, Any]:
        """Carry out ``plan`` into ``run``; returns the stage's summary."""


class DetectStage(Stage):
    """Detection and deblending over the cube's tiles (:mod:`galclust.sources`)."""

    name = "detect"
    options = DetectOptions
    products = DETECT_PRODUCTS

    def plan(self, inputs: RunInputs, options: DetectOptions, **selection: Any) -> StagePlan:
        from galclust.sources_stage import plan_detect

        return plan_detect(inputs, options)

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan, options: DetectOptions,
            *, client: Any = None, **selection: Any) -> dict[str, Any]:
        from galclust.sources_stage import run_detect_stage

        return run_detect_stage(inputs, run, plan, options, client=client)


class PixelStage(Stage):
    """Pixel-SED clustering of every (selected) galaxy (:mod:`galclust.pixels`)."""

    name = "pixels"
    options = PixelOptions
    products = PIXEL_PRODUCTS

    def plan(self, inputs: RunInputs, options: PixelOptions, **selection: Any) -> StagePlan:
        params = {**options.kwargs(), **_selection(selection)}
        plan, inputs.footprints = plan_pixels(inputs.cube, inputs.catalog, inputs.results,
                                              params, footprints=inputs.footprints)
        return plan

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan, options: PixelOptions,
            *, client: Any = None, **selection: Any) -> dict[str, Any]:
        params = {**options.kwargs(), **_selection(selection)}
        status = (inputs.cube.attrs.get("psf") or {}).get("status", "none")
        if status == "none":
            log.warning("pixels: the cube's bands are not PSF-matched (its manifest gives no "
                        "psf per band and does not declare psf_matched = true): colour "
                        "gradients may be PSF artefacts; every galaxy is flagged "
                        "PSF_UNMATCHED")
        params["psf_unmatched"] = status == "none"
        return run_pixels_stage(inputs.cube, inputs.catalog, run, plan, params, client=client,
                                footprints=inputs.footprints)


class MorphologyStage(Stage):
    """Gini, M20, CAS and Petrosian radii per galaxy, detection and SED cluster."""

    name = "morphology"
    options = MorphologyOptions
    products = tuple(MORPHOLOGY_PRODUCTS.values())

    def plan(self, inputs: RunInputs, options: MorphologyOptions,
             **selection: Any) -> StagePlan:
        from galclust.sources_stage import plan_morphology

        return plan_morphology(inputs, options, inputs.plans)

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan,
            options: MorphologyOptions, *, client: Any = None,
            **selection: Any) -> dict[str, Any]:
        from galclust.sources_stage import run_morphology_stage

        return run_morphology_stage(inputs, run, plan, options, client=client)


class StructuresStage(Stage):
    """Density structures (AstroLink) per galaxy footprint or per tile."""

    name = "structures"
    drops_on_skip = False  # off by default in nightly runs: the last structures are kept
    options = StructuresOptions
    products = tuple(STRUCTURES_PRODUCTS.values())

    def plan(self, inputs: RunInputs, options: StructuresOptions,
             **selection: Any) -> StagePlan:
        return plan_structures(inputs, options)

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan,
            options: StructuresOptions, *, client: Any = None,
            **selection: Any) -> dict[str, Any]:
        return run_structures_stage(inputs, run, plan, options, client=client)


class EmissionStage(Stage):
    """Extended emission-line regions in the medium band each galaxy's redshift calls for."""

    name = "emission"
    options = EmissionOptions
    products = tuple(EMISSION_PRODUCTS.values())

    def plan(self, inputs: RunInputs, options: EmissionOptions, **selection: Any) -> StagePlan:
        return plan_emission(inputs, options)

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan, options: EmissionOptions,
            *, client: Any = None, **selection: Any) -> dict[str, Any]:
        return run_emission_stage(inputs, run, plan, options, client=client)


class CatalogStage(Stage):
    """Cutout embedding and spurious-source flags of the whole catalog (:mod:`galclust.catalog`)."""

    name = "catalog"
    options = CatalogOptions
    products = CATALOG_PRODUCTS

    def plan(self, inputs: RunInputs, options: CatalogOptions, **selection: Any) -> StagePlan:
        n = len(inputs.catalog)
        if n < MIN_CATALOG_SOURCES:
            return StagePlan(self.name, "", "skip", reason=(
                f"{n} catalog source{'s' if n != 1 else ''}: the embedding's mixture model "
                f"needs at least {MIN_CATALOG_SOURCES}"))
        if inputs.labels is None or inputs.labels.empty:
            return StagePlan(self.name, "", "skip", reason=(
                "no inspection labels: spurious flags are learnt from labelled sources (give "
                "[labels] in the survey manifest, or --labels FILE)"))
        return plan_catalog(inputs.cube, inputs.results, options.kwargs(),
                            labels_fingerprint(inputs.labels))

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan, options: CatalogOptions,
            *, client: Any = None, **selection: Any) -> dict[str, Any]:
        return run_catalog_stage(inputs.cube, inputs.catalog, inputs.labels, run, plan,
                                 options.kwargs(), client=client)


class ClassifyStage(Stage):
    """Supervised classification of every source from its cutout (:mod:`galclust.classify`).

    Runs when the options name a label table; reuses the stored model while the
    labels and options are unchanged (:mod:`galclust.classify_stage`).
    """

    name = "classify"
    options = ClassifyOptions
    products = ()
    drops_on_skip = False  # a run without labels keeps the last classification

    def owns(self, product: str) -> bool:
        return product.startswith("classify/")

    def plan(self, inputs: RunInputs, options: ClassifyOptions, **selection: Any) -> StagePlan:
        from galclust.classify_stage import plan_classify

        plan, inputs.class_labels = plan_classify(inputs, options)
        return plan

    def run(self, inputs: RunInputs, run: RunWriter, plan: StagePlan, options: ClassifyOptions,
            *, client: Any = None, **selection: Any) -> dict[str, Any]:
        from galclust.classify_stage import run_classify_stage

        return run_classify_stage(inputs, run, plan, options, inputs.class_labels,
                                  client=client)


#: Every stage, in run order. Adding a stage: one Stage subclass and one line here.
STAGES: dict[str, Stage] = {s.name: s for s in (
    DetectStage(), PixelStage(), MorphologyStage(), StructuresStage(), EmissionStage(),
    CatalogStage(), ClassifyStage())}


def _selection(selection: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in selection.items() if v is not None}


def stage_names(names: Sequence[str] | None = None) -> list[str]:
    """``names`` checked and put in run order (default: every stage)."""
    if names is None:
        return list(STAGES)
    for n in names:
        if n not in STAGES:
            raise InputError(f"{n!r} is not a stage; stages: {', '.join(STAGES)}.")
    return [n for n in STAGES if n in names]


# --------------------------------------------------------------------------- the run
def begin(inputs: RunInputs, settings: RunSettings, *, stages: Sequence[str] | None = None,
          params: dict[str, Any] | None = None, **selection: Any
          ) -> tuple[RunWriter, dict[str, StagePlan]]:
    """Start a run (one :class:`RunWriter`) and plan each stage.

    Stages in ``settings.skip`` are planned as skipped ("skipped by the run
    settings"); the run inherits the last published run's products, so a
    stage that is not run still publishes what it last made.
    """
    names = stage_names(stages)
    run = RunWriter.begin(inputs.results, params={
        "store": inputs.store, **(params or {}), "settings": settings.to_dict(),
        **({"selection": _selection(selection)} if _selection(selection) else {})})
    plans = inputs.plans = {}
    for name in names:
        if name in settings.skip:  # its last products are carried: the user chose so
            plans[name] = StagePlan(name, "", "skip", reason="skipped by the run settings")
        else:
            plans[name] = STAGES[name].plan(inputs, settings.of(name), **selection)
            if plans[name].action == "skip" and STAGES[name].drops_on_skip:
                for product in [p for p in run.products if STAGES[name].owns(p)]:
                    run.products.pop(product)
        log.info("run %s: %s %s%s", run.run_id, name, plans[name].action,
                 f" ({plans[name].reason})" if plans[name].reason else "")
    return run, plans


def run_stage(inputs: RunInputs, run: RunWriter, plan: StagePlan, settings: RunSettings, *,
              client: Any = None, **selection: Any) -> dict[str, Any]:
    """Carry out one stage's plan; a skipped stage returns its reason."""
    if plan.action == "skip":
        return {"action": "skip", "reason": plan.reason, "seconds": 0.0}
    stage = STAGES[plan.stage]
    return stage.run(inputs, run, plan, settings.of(plan.stage), client=client, **selection)


def publish(run: RunWriter, summaries: dict[str, dict[str, Any]]) -> str:
    """Record every stage's summary (skips with their reasons) and publish the run, or
    keep it as failed when it selected nothing or every galaxy failed."""
    run.provenance["stages"] = summaries
    skipped = {k: v["reason"] for k, v in summaries.items() if v["action"] == "skip"}
    if skipped:
        run.provenance["skipped"] = skipped
    return finish_run(run, pixel_failure(run) if "pixels" in summaries else None)


def needs_cluster(inputs: RunInputs, plans: dict[str, StagePlan]) -> bool:
    """Whether the run is worth a process cluster (some stage computes, and the survey
    holds at least :data:`SMALL_JOB` galaxies)."""
    work = [p for p in plans.values() if p.needs_compute and p.action != "skip"]
    if not work:
        return False
    n = len(inputs.catalog)
    if all(p.action == "incremental" for p in work):
        n = sum(len(p.ids or []) for p in work)
    return n >= SMALL_JOB


@contextlib.contextmanager
def run_client(inputs: RunInputs, plans: dict[str, StagePlan], *, scheduler: str | None = None,
               cluster_class: str | None = None, cluster_kwargs: dict[str, Any] | None = None,
               adapt_kwargs: dict[str, Any] | None = None, workers: int | None = None
               ) -> Iterator[Any]:
    """The Dask client a run computes on: the named scheduler or cluster; else a local
    process cluster for large jobs, or None (in-process threads) for small ones."""
    from galclust.cluster import dask_client

    if scheduler or cluster_class:
        with dask_client(scheduler, cluster_class=cluster_class, cluster_kwargs=cluster_kwargs,
                         adapt_kwargs=adapt_kwargs) as client:
            yield client
    elif needs_cluster(inputs, plans):
        with dask_client(n_workers=workers) as client:
            yield client
    else:
        yield None


@dataclass
class RunReport:
    """What :func:`execute` did: the run id, the results store and each stage's summary."""

    run: str
    results: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def execute(store: str, *, results: str | None = None, settings: RunSettings | None = None,
            stages: Sequence[str] | None = None, labels: str | None = None,
            scheduler: str | None = None, workers: int | None = None,
            params: dict[str, Any] | None = None, **selection: Any) -> RunReport:
    """Run stages of a cube store in this process and publish the run.

    Parameters
    ----------
    store : str
        The cube store.
    results : str, optional
        Results store (default beside the cube store).
    settings : RunSettings, optional
        Every stage's options (default: the defaults).
    stages : sequence of str, optional
        Which stages (default all); the others' products are carried from the
        last published run.
    labels : str, optional
        Inspection labels file (default: those ingested with the cube).
    scheduler : str, optional
        A Dask scheduler address; default: threads for small jobs, a local
        process cluster of ``workers`` for large ones.
    params : dict, optional
        Recorded with the run.
    **selection
        ``ids``, ``cone``, ``z_range``: only these galaxies (pixel stage).

    Returns
    -------
    RunReport

    Raises
    ------
    RunFailedError
        When the run selected nothing or every galaxy failed (kept, not published).
    """
    t0 = time.perf_counter()
    settings = settings or RunSettings()
    inputs = RunInputs.open(store, results, labels=labels)
    run, plans = begin(inputs, settings, stages=stages, params=params, **selection)
    summaries = {}
    with run_client(inputs, plans, scheduler=scheduler, workers=workers) as client:
        for name, plan in plans.items():
            summaries[name] = run_stage(inputs, run, plan, settings, client=client,
                                        **selection)
    run_id = publish(run, summaries)
    return RunReport(run=run_id, results=inputs.results, stages=summaries,
                     seconds=time.perf_counter() - t0)
