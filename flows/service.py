"""Running a deployment as a service: a local Prefect server, Prefect's runner, signals.

:func:`serve_deployment` registers a deployment and executes its runs until
SIGTERM or Ctrl-C, then stops the runner in order (its schedule paused);
:func:`local_prefect_server` starts and stops a Prefect server on this
machine for a service that has none; :class:`_SigtermExit` makes SIGTERM
stop a service before it serves. :mod:`flows.serve` builds the deployment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from galclust.errors import InputError

__all__ = ["local_prefect_server", "serve_deployment"]


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
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # a terminal's Ctrl-C: ours to handle
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


def serve_deployment(deployment: Any, *, run_now: bool = False, limit: int = 1,
                     hand_over: Callable[[], bool] | None = None) -> None:
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
    hand_over : callable, optional
        Called once the service's own SIGTERM/SIGINT handlers are in place (see
        :class:`_SigtermExit`); returns whether a stop was asked for before, in
        which case the runner is stopped in order as soon as it has started.
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
            runner, f"serving; stop with Ctrl-C (deployment id {deployment_id})",
            hand_over=hand_over))


async def _serve_until_signalled(runner: Any, announce: str, *,
                                 hand_over: Callable[[], bool] | None = None) -> None:
    """Run ``runner`` until SIGTERM or SIGINT, then stop it in order.

    ``Runner.start`` installs a SIGTERM handler that raises ``SystemExit`` from
    inside the event loop; the loop then unwinds by cancellation, which can cut
    short the runner's exit, where it pauses the schedule, and prints
    tracebacks. Here both signals, from before the runner starts until it has
    stopped, only ask the loop to stop it: the first signal makes it stop once
    started (its exit pauses the schedule and ``start`` returns); a second
    cancels it outright. ``announce`` is printed once they are in place, and
    ``hand_over`` called: when it says a stop was asked for already (a SIGTERM
    whose ``SystemExit`` was dropped), that counts as the first signal.
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
            try:
                await runner.astop()
            except Exception:
                task.cancel()  # it cannot be stopped in order: stop it outright
                raise

    main = threading.current_thread() is threading.main_thread()
    previous: dict[int, Any] = {}
    if main:
        # (a SIGINT ignored by the parent, as under nohup, stays ignored)
        sigs = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT)
                                   is not signal.SIG_IGN else [])
        previous = {sig: signal.signal(sig, handler) for sig in sigs}
        runner.handle_sigterm = handler  # what Runner.start installs for SIGTERM
    if hand_over is not None and hand_over():
        on_signal()
    print(announce, flush=True)
    task = asyncio.ensure_future(runner.start())
    stopper = asyncio.ensure_future(stop_when_asked())
    try:
        await task
    except asyncio.CancelledError:
        if signals < 2:
            raise
    finally:
        if stopper.done() and not stopper.cancelled() and stopper.exception() is not None:
            print(f"the runner did not stop in order: {stopper.exception()!r}",
                  file=sys.stderr, flush=True)
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
    thread calls :meth:`unwinding` on its way out, or the service's own
    handlers take over (:meth:`hand_over`).
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

    def hand_over(self) -> bool:
        """The service's own handlers have replaced this one: stop resending.

        Returns whether a SIGTERM came (its ``SystemExit`` was then dropped, or
        the service would not be here), so that the service stops in order
        once instead of taking the resends as a second, forceful, signal.
        """
        came = self._watchdog is not None
        self._unwinding.set()
        return came

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
