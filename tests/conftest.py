"""Fixtures shared by the whole suite: real S3 (moto) servers, synthetic surveys."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

# Before anything imports prefect, dask or matplotlib.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="galclust-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("MPLBACKEND", "Agg")

# Prefect binds its console log handler to sys.stderr when it is first imported; a
# test's capsys stream is closed after that test, so import it now, once.
import prefect  # noqa: E402, F401, I001

_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    return free_port()


def _wait_port(port: int, timeout: float = 20.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _use_endpoint(endpoint: str) -> None:
    import s3fs

    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
    })
    os.environ.pop("AWS_PROFILE", None)
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3(s3_server):
    """The moto endpoint set in the AWS environment for this test; an s3fs filesystem."""
    import s3fs

    _use_endpoint(s3_server)
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})


@pytest.fixture
def bucket(s3, request):
    """A fresh, empty bucket; yields ``s3://name``."""
    name = ("t-" + request.node.name.lower().replace("_", "-"))[:40].strip("-") + \
        f"-{os.getpid() % 1000}-{int(time.time() * 1000) % 100000}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    s3.mkdir(name)
    return f"s3://{name}"


@pytest.fixture
def s3_with_auth():
    """A second moto server, in its own process, that checks credentials.

    Yields its endpoint with the AWS environment pointed at it and bogus keys,
    so every request is refused as a real S3 would refuse unknown keys.
    """
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        _use_endpoint(f"http://127.0.0.1:{port}")
        os.environ["AWS_ACCESS_KEY_ID"] = "AKIAREFUSEDREFUSED00"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect against a temporary local API (SQLite), once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def dask_processes(tmp_path):
    """A real Dask scheduler and two workers, each its own process (``dask scheduler``,
    ``dask worker``) on 127.0.0.1.

    Yields ``(address, workers)``, the worker ``Popen`` objects last (a test may
    kill one). The processes inherit the environment of the moment: request the
    ``s3`` fixture first when the workers must reach the moto server.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_LOGGING__DISTRIBUTED="warning", PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", ":0"],
        env=env, stdout=open(tmp_path / "scheduler.log", "w"), stderr=subprocess.STDOUT)]
    try:
        _wait_port(port)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
             "--host", "127.0.0.1", "--dashboard-address", ":0", "--name", f"w{i}"],
            env=env, stdout=open(tmp_path / f"worker{i}.log", "w"), stderr=subprocess.STDOUT)
            for i in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address, workers
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
