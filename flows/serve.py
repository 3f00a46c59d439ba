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
import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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
def _health(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def local_prefect_server(*, port: int = 4200, host: str = "127.0.0.1",
                         timeout: float = 180.0, log_path: str | None = None,
                         on_stop: Callable[[], None] | None = None) -> Iterator[str]:
    """Run ``prefect server start`` (scheduler included) for as long as the context.

    The database lives under ``PREFECT_HOME`` (default ``~/.prefect``), so run
    history outlives the service. Yields the API URL.

    ``on_stop`` is called first when the context ends (before the server is
    stopped), however it ends.

    Raises
    ------
    InputError
        If ``port`` is taken (name another with ``--prefect-port``).
    RuntimeError
        If the server does not answer ``/api/health`` within ``timeout`` s.
    """
    with socket.socket() as s:
        if s.connect_ex((host, port)) == 0:
            raise InputError(f"--prefect-port {port}: something already listens on "
                             f"{host}:{port}; if it is a Prefect server, set "
                             f"PREFECT_API_URL=http://{host}:{port}/api, else pick another "
                             "port.")
    url = f"http://{host}:{port}/api"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start",
                             "--host", host, "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        while not _health(url):
            if proc.poll() is not None:
                raise RuntimeError(f"the local Prefect server exited with status "
                                   f"{proc.returncode}" + (f"; see {log_path}" if log_path
                                                           else ""))
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the local Prefect server did not answer {url}/health "
                                   f"within {timeout:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        if on_stop is not None:
            on_stop()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if log is not subprocess.DEVNULL:
            log.close()


def serve_deployment(deployment: Any, *, run_now: bool = False, limit: int = 1) -> None:
    """Register ``deployment`` with the configured Prefect API and execute its runs.

    Blocks until interrupted (Ctrl-C or SIGTERM); the schedule is paused on
    shutdown so missed nights do not pile up.

    Parameters
    ----------
    deployment : RunnerDeployment
        From :func:`build_deployment`.
    run_now : bool
        Also start one run at once (besides the schedule).
    limit : int
        Runs executed at the same time (one: nights never overlap).
    """
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.runner import Runner

    runner = Runner(name=f"galclust-serve-{deployment.name}", limit=limit,
                    pause_on_shutdown=True)
    deployment_id = runner.add_deployment(deployment)
    if run_now:
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(deployment_id)
        print(f"run now      flow run {run.name} ({run.id})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_signalled(
            runner, f"serving; stop with Ctrl-C (deployment id {deployment_id})"))


async def _serve_until_signalled(runner: Any, announce: str) -> None:
    """Run ``runner`` until SIGTERM or SIGINT, then stop it in order.

    ``Runner.start`` installs a SIGTERM handler that raises ``SystemExit`` from
    inside the event loop; the loop then unwinds by cancellation, which can cut
    short the runner's exit, where it pauses the schedule, and prints
    tracebacks. Here both signals, from before the runner starts until it has
    stopped, only ask the loop to stop it: the first signal makes it stop once
    started (its exit pauses the schedule and ``start`` returns); a second
    cancels it outright. ``announce`` is printed once they are in place.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    stop_wanted = asyncio.Event()
    signals = 0
    task: asyncio.Future[Any] | None = None

    def on_signal() -> None:  # in the loop
        nonlocal signals
        signals += 1
        if signals == 1:
            stop_wanted.set()
        elif task is not None:
            task.cancel()

    def handler(signum: int, frame: Any) -> None:  # between two bytecodes of the main thread
        loop.call_soon_threadsafe(on_signal)

    async def stop_when_asked() -> None:
        await stop_wanted.wait()
        while not runner.started and not task.done():
            await asyncio.sleep(0.05)
        if not task.done():
            await runner.astop()

    main = threading.current_thread() is threading.main_thread()
    previous: dict[int, Any] = {}
    if main:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        runner.handle_sigterm = handler  # what Runner.start installs for SIGTERM
    print(announce, flush=True)
    task = asyncio.ensure_future(runner.start())
    stopper = asyncio.ensure_future(stop_when_asked())
    try:
        await task
    except asyncio.CancelledError:
        if signals < 2:
            raise
    finally:
        stopper.cancel()
        for sig, old in previous.items():
            signal.signal(sig, old)


class _SigtermExit:
    """SIGTERM → ``SystemExit`` in the main thread, made to stick.

    Python runs a signal handler between two bytecodes of the main thread, and
    that can be inside a weakref callback or ``__del__``, where the exception
    it raises is printed ("Exception ignored in ...") and dropped: the service
    would go on serving until killed. So the first SIGTERM also starts a
    watchdog that sends SIGTERM again every ``retry`` seconds until the main
    thread calls :meth:`unwinding` on its way out.
    """

    def __init__(self, retry: float = 3.0) -> None:
        self.retry = retry
        self._unwinding = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._previous: Any = None

    def install(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._handler)

    def restore(self) -> None:
        """Put back the SIGTERM handler that was there before :meth:`install`."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def unwinding(self) -> None:
        """The exit is under way: no more SIGTERMs to raise or resend."""
        self._unwinding.set()

    def _handler(self, signum: int, frame: Any) -> None:
        if self._unwinding.is_set():
            return
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._resend, daemon=True,
                                              name="galclust-sigterm")
            self._watchdog.start()
        raise SystemExit(0)

    def _resend(self) -> None:
        main = threading.main_thread().ident
        while not self._unwinding.wait(self.retry):
            signal.pthread_kill(main, signal.SIGTERM)


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
            serve_deployment(deployment, run_now=run_now)
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
                serve_deployment(deployment, run_now=run_now)
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
