"""``galclust serve``: the nightly deployment as a long-lived service; cluster specs.

A Dask cluster is data (as in prefect-dask): a YAML file (``deploy/clusters/``)
with the ``address`` of a running scheduler, or a ``cluster_class`` (dotted
path) and its ``cluster_kwargs``; :func:`load_cluster_spec` validates one.

:func:`build_deployment` validates every input, then builds the scheduled
deployment (``nightly_flow.to_deployment``); :func:`run_service` serves it with
Prefect's runner against ``PREFECT_API_URL``, or against a Prefect server it
starts on 127.0.0.1 (Prefect's ephemeral mode has no scheduler: a cron schedule
would never fire).
"""

from __future__ import annotations

import argparse
import datetime
import os
import threading
from collections.abc import Mapping
from typing import Any

from flows.service import _SigtermExit, local_prefect_server, serve_deployment
from galclust.argtypes import whole
from galclust.cli import (
    add_common_arguments,
    add_run_options,
    add_survey_arguments,
    settings_from_args,
)
from galclust.cluster import (
    CLUSTER_SPEC_KEYS,
    DEFAULT_WORKERS,
    check_cluster_available,
    load_cluster_spec,
    validate_cluster_spec,
)
from galclust.errors import InputError

__all__ = [
    "CLUSTER_SPEC_KEYS", "DEFAULT_CRON", "DEFAULT_TIMEZONE", "DEPLOYMENT_NAME", "WORK_POOL",
    "add_serve_parser", "build_deployment", "check_cluster_available", "cmd_serve",
    "describe_deployment", "load_cluster_spec", "local_prefect_server", "next_runs",
    "nightly_parameters", "run_service", "serve_deployment", "validate_cluster_spec",
]

DEPLOYMENT_NAME = "galclust-nightly"
DEFAULT_CRON = "0 3 * * *"
DEFAULT_TIMEZONE = "UTC"
WORK_POOL = "galclust-pool"
# --------------------------------------------------------------------------- the deployment
def _check_schedule(cron: str, timezone: str) -> Any:
    import zoneinfo

    from prefect.schedules import Cron

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError(f"--timezone {timezone!r} is not an IANA time zone "
                         "(e.g. UTC, Europe/Paris, America/New_York).") from None
    try:
        return Cron(cron, timezone=timezone)
    except ValueError:
        raise InputError(f"--cron {cron!r} is not a valid cron expression; give five "
                         "fields, minute hour day month weekday, e.g. \"0 3 * * *\" "
                         "for 03:00 every day.") from None


def nightly_parameters(manifest: str, store: str, *, results: str | None = None,
                       scheduler: str | None = None,
                       cluster: Mapping[str, Any] | None = None,
                       workers: int | None = None,
                       settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of ``nightly_flow`` for one survey (None values left out).

    Parameters
    ----------
    manifest, store : str
        Survey manifest and cube store URL.
    results : str, optional
        Results store (default: beside the cube store, ``<name>-results``).
    scheduler : str, optional
        A running Dask scheduler's address.
    cluster : mapping, optional
        A validated cluster spec (:func:`load_cluster_spec`); exclusive with
        ``scheduler``.
    workers : int, optional
        Worker processes of the default local cluster.
    settings : mapping, optional
        Run settings (:meth:`galclust.options.RunSettings.to_dict`): every
        stage's options; filled with the defaults, so a served run and
        ``galclust nightly`` with the same options share their stage keys.
    """
    from galclust.options import RunSettings
    from galclust.store.results import default_results_url

    if scheduler and cluster:
        raise InputError("give either a scheduler address or a cluster spec, not both.")
    params: dict[str, Any] = {"manifest": str(manifest), "store": str(store),
                              "results": results or default_results_url(store)}
    spec = dict(cluster or {})
    scheduler = scheduler or spec.get("address")
    if scheduler:
        params["scheduler"] = scheduler
    elif spec.get("cluster_class"):
        params["cluster_class"] = spec["cluster_class"]
        params["cluster_kwargs"] = dict(spec.get("cluster_kwargs") or {})
        if spec.get("adapt_kwargs"):
            params["adapt_kwargs"] = dict(spec["adapt_kwargs"])
    if workers is not None:
        params["workers"] = int(workers)
    params["settings"] = RunSettings.from_dict(settings, where="settings").to_dict()
    return params


def build_deployment(manifest: str, store: str, *, results: str | None = None,
                     cron: str = DEFAULT_CRON, timezone: str = DEFAULT_TIMEZONE,
                     scheduler: str | None = None, cluster: Mapping[str, Any] | None = None,
                     workers: int | None = None, name: str = DEPLOYMENT_NAME,
                     work_pool: str | None = None, validate: bool = True,
                     settings: Mapping[str, Any] | None = None) -> Any:
    """Validate the inputs, then build the scheduled nightly deployment.

    Parameters
    ----------
    manifest, store, results, scheduler, cluster, workers, settings
        As :func:`nightly_parameters`.
    cron, timezone : str
        When it runs (default 03:00 UTC every day).
    name : str
        Deployment name.
    work_pool : str, optional
        For ``prefect deploy`` to a work pool; None to ``serve`` it.
    validate : bool
        Load the manifest and check that the stores are writable first.

    Returns
    -------
    prefect.deployments.runner.RunnerDeployment
        With a module entrypoint (``flows.nightly.nightly_flow``), so it runs
        wherever galclust is installed.

    Raises
    ------
    InputError, ManifestError, MissingInputError, StoreError
        Before anything is registered or scheduled.
    """
    from prefect.types.entrypoint import EntrypointType

    if not name or "/" in name:
        raise InputError(f"--name {name!r}: give a deployment name without '/'.")
    schedule = _check_schedule(cron, timezone)
    if cluster:
        check_cluster_available(cluster)
    params = nightly_parameters(manifest, store, results=results, scheduler=scheduler,
                                cluster=cluster, workers=workers, settings=settings)
    if validate:  # manifest, stores writable and galclust's (or new), clear of the inputs
        from galclust.pipeline import preflight

        preflight(params["manifest"], params["store"], params["results"])
    from flows.nightly import nightly_flow

    return nightly_flow.to_deployment(
        name=name, schedule=schedule, parameters=params, work_pool_name=work_pool,
        tags=["galclust", "nightly"], entrypoint_type=EntrypointType.MODULE_PATH,
        description="Nightly reprocessing of a survey: ingest, pixel-SED clustering, "
                    "catalog embedding and spurious flags; publishes one run.")


def next_runs(cron: str, timezone: str = DEFAULT_TIMEZONE, *, n: int = 3,
              start: datetime.datetime | None = None) -> list[datetime.datetime]:
    """The next ``n`` fire times of a cron schedule, computed as Prefect's scheduler does."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    return list(asyncio.run(CronSchedule(cron=cron, timezone=timezone).get_dates(n, start)))


def describe_deployment(deployment: Any, *, api_url: str | None = None) -> str:
    """Lines saying what is scheduled, when it next runs and on what."""
    params = deployment.parameters
    lines = [f"deployment   {deployment.flow_name}/{deployment.name}",
             f"flow         {deployment.entrypoint}"]
    for sched in deployment.schedules or []:
        s = sched.schedule
        tz = getattr(s, "timezone", None) or "UTC"
        lines.append(f"schedule     cron {s.cron!r} ({tz})")
        runs = next_runs(s.cron, tz)
        lines.append("next runs    " + ", ".join(d.strftime("%Y-%m-%d %H:%M %Z") for d in runs))
    for key in ("manifest", "store", "results"):
        lines.append(f"{key:<12} {params[key]}")
    if params.get("scheduler"):
        cluster = f"Dask scheduler at {params['scheduler']}"
    elif params.get("cluster_class"):
        cluster = f"{params['cluster_class']} (started for each run)"
    else:
        cluster = (f"local Dask cluster of {params.get('workers') or DEFAULT_WORKERS} worker processes "
                   "(started for each run)")
    lines.append(f"cluster      {cluster}")
    for stage, opts in (params.get("settings") or {}).items():
        if isinstance(opts, dict):
            lines.append(f"{stage:<12} " + ", ".join(f"{k}={v}" for k, v in opts.items()))
        elif opts:
            lines.append(f"{stage:<12} {', '.join(map(str, opts))}")
    if api_url:
        ui = f"  (UI: {api_url.removesuffix('/api')})" if api_url.endswith("/api") else ""
        lines.append(f"Prefect API  {api_url}{ui}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- serving
def run_service(deployment: Any, *, run_now: bool = False, prefect_port: int = 4200) -> None:
    """Print what is scheduled, then serve ``deployment`` until stopped.

    Against the Prefect server of ``PREFECT_API_URL`` if set, else against a
    local one started here (:func:`local_prefect_server`) and stopped after.
    """
    stopper = _SigtermExit()  # until the runner serves, SIGTERM exits at once, quietly
    if threading.current_thread() is threading.main_thread():
        stopper.install()
    try:
        api_url = os.environ.get("PREFECT_API_URL")
        if api_url:
            print(describe_deployment(deployment, api_url=api_url), flush=True)
            serve_deployment(deployment, run_now=run_now, hand_over=stopper.hand_over)
        else:
            _serve_with_local_server(deployment, run_now=run_now, port=prefect_port,
                                     stopper=stopper)
    finally:
        stopper.unwinding()
        stopper.restore()


def _serve_with_local_server(deployment: Any, *, run_now: bool, port: int,
                             stopper: _SigtermExit) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = str(PREFECT_HOME.value())
    os.makedirs(home, exist_ok=True)
    print(f"no PREFECT_API_URL: starting a local Prefect server on 127.0.0.1:{port} "
          f"(database in {home})", flush=True)
    # on_stop: the resends end before the server's shutdown, not during it
    with local_prefect_server(port=port, on_stop=stopper.unwinding,
                              log_path=os.path.join(home, "galclust-server.log")) as url:
        os.environ["PREFECT_API_URL"] = url  # for the runner's flow-run processes
        try:
            with temporary_settings({PREFECT_API_URL: url}):
                print(describe_deployment(deployment, api_url=url), flush=True)
                serve_deployment(deployment, run_now=run_now, hand_over=stopper.hand_over)
        finally:
            os.environ.pop("PREFECT_API_URL", None)


# --------------------------------------------------------------------------- command line
def deployment_from_args(args: argparse.Namespace, *, work_pool: str | None = None,
                         validate: bool = True) -> Any:
    """The nightly deployment the arguments of :func:`add_deployment_arguments` describe."""
    cluster = None
    if args.cluster_spec:
        cluster = load_cluster_spec(args.cluster_spec)
        check_cluster_available(cluster, source=args.cluster_spec)
    settings = settings_from_args(args)  # every pixel and catalog option, checked now
    return build_deployment(args.manifest, args.store, results=args.results,
                            cron=args.cron, timezone=args.timezone,
                            scheduler=args.scheduler, cluster=cluster,
                            workers=args.workers, name=args.name, work_pool=work_pool,
                            validate=validate, settings=settings.to_dict())


def cmd_serve(args: argparse.Namespace) -> int:
    """``galclust serve``: validate, print the schedule, then serve until stopped."""
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # flow runs inherit it
    run_service(deployment_from_args(args), run_now=args.run_now,
                prefect_port=args.prefect_port)
    return 0


def add_deployment_arguments(p: argparse.ArgumentParser) -> None:
    """What a scheduled nightly run needs: the survey, the schedule, the cluster and
    every stage's options; shared by ``galclust serve`` and ``deploy/deploy.py``."""
    add_survey_arguments(p)
    p.add_argument("--cron", default=DEFAULT_CRON,
                   help='when to run, cron syntax (default: "%(default)s", 03:00 daily)')
    p.add_argument("--timezone", default=DEFAULT_TIMEZONE,
                   help="time zone of the cron schedule (default: %(default)s)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler (default: a local cluster per run)")
    where.add_argument("--cluster-spec", default=None, metavar="FILE",
                       help="a cluster spec (YAML: address, or cluster_class + "
                       "cluster_kwargs), e.g. deploy/clusters/kubernetes.yaml")
    p.add_argument("--workers", type=whole(1), default=None,
                   help="worker processes of the default local cluster (default: 2)")
    p.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name (default: %(default)s)")
    p.add_argument("--run-now", action="store_true", help="also start one run immediately")
    p.add_argument("--prefect-port", type=whole(1, 65535), default=4200,
                   help="port of the local Prefect server started when PREFECT_API_URL "
                   "is not set (default: %(default)s)")
    add_run_options(p)


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` sub-command to the ``galclust`` parser's sub-parsers."""
    p = subparsers.add_parser(
        "serve", help="run the nightly reprocessing as a scheduled service",
        description="Serve the nightly deployment (ingest -> every stage, from detection "
        "to classification -> publish) with Prefect on this machine: runs start on the cron schedule "
        "and whenever triggered from the Prefect UI/API. Uses the Prefect server named by "
        "PREFECT_API_URL, else starts a local one (database under PREFECT_HOME). The "
        "manifest, the stores and every option are checked before anything is scheduled.",
        epilog="S3 endpoint and credentials come from the standard AWS environment "
        "(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); they are never "
        "printed.")
    add_deployment_arguments(p)
    add_common_arguments(p)
    p.set_defaults(func=cmd_serve)
    return p
