"""Fixtures of the deployment tests: a real Prefect server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
from helpers_deploy import free_port, health, stop, tail, wait_for


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real ``prefect server start`` on 127.0.0.1 with its own home and database.

    Its scheduler service runs every 2 s (instead of 60 s), so scheduled runs of
    a deployment appear quickly. Yields its API ``url`` and ``log`` file.
    """
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2", PREFECT_UI_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: health(url) or proc.poll() is not None, timeout=240,
                 what="the Prefect server's /api/health", log=log)
        assert proc.poll() is None, f"prefect server exited:\n{tail(log)}"
        yield SimpleNamespace(url=url, log=log)
    finally:
        stop(proc, sig=signal.SIGINT)
