"""Helpers of the deployment tests: the serve command line, a Prefect client, polling."""

from __future__ import annotations

import contextlib
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def galclust_command(*argv: str) -> list[str]:
    """``galclust ARGV...`` run by this interpreter (the real command line)."""
    return [sys.executable, "-m", "flows.cli", *argv]


def health(api_url: str) -> bool:
    """Whether a Prefect API answers ``/health``."""
    try:
        with urllib.request.urlopen(api_url + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    """Send ``sig`` to a process we started and wait for it (kill if it hangs)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    return proc.returncode


def tail(path: pathlib.Path, n: int = 60) -> str:
    """The last lines of a log file, for failure messages."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() \
        else "(no log)"


@contextlib.contextmanager
def api(url: str):
    """A synchronous Prefect client of the API at ``url``."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        yield client


def wait_for(predicate, *, timeout: float, what: str, interval: float = 1.0, log=None):
    """Poll ``predicate()`` until it returns a truthy value; return it."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f"\n--- log ---\n{tail(log)}" if log else ""))


