"""The container image and the compose stack, checked without a Docker engine.

No image is built here (this machine has no Docker engine). What can be checked
is: the Dockerfile's inputs exist and its entrypoint works (the entrypoint
script is run for real against this environment's ``galclust`` and ``dask``),
and the compose file is consistent: every address a service uses names
another service and the port it listens on, the credentials match, and the
commands are valid (the Dask ones are run for real on 127.0.0.1, the galclust
one is parsed by galclust's own parser).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import yaml
from helpers_deploy import DEPLOY, ROOT, free_port, stop

import galclust
from flows.serve import add_serve_parser
from galclust.cluster import connect

BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))


def _interpolate(value, env=None):
    """Compose's variable substitution: ``${VAR:-default}``, ``${VAR}``, ``$$``."""
    env = {} if env is None else env
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1)) or (m.group(3) or "")

    return re.sub(r"\$\$|\$\{(\w+)(:-([^}]*))?\}", sub, value)


@pytest.fixture(scope="module")
def compose():
    return _interpolate(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def _option(command, name):
    return command[command.index(name) + 1]


# --------------------------------------------------------------------------- Dockerfile
def test_dockerfile_inputs_user_and_entrypoint():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert stages and all(s == "python:3.11-slim" for s in stages)
    final = text[text.rindex("\nFROM "):]
    # the project is installed (built as a wheel from `.`, installed in the final stage)
    assert re.search(r"pip wheel .*--wheel-dir /wheels \.$", text, flags=re.M)
    assert re.search(r"pip install .*galclust$", final, flags=re.M)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"COPY source {path} missing from the build context"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for path in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for p in path.split():
            assert f"!{p.split('/')[0]}" in ignore or f"!{p.split('/')[0]}/" in ignore, p
    users = re.findall(r"^USER (\S+)", final, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert f"useradd --uid 1000 --gid galclust --create-home --shell /bin/sh {users[-1]}" in text
    assert final.index(f"USER {users[-1]}") < final.index("ENTRYPOINT")
    assert re.search(r'^ENTRYPOINT \["galclust-entrypoint"\]$', final, flags=re.M)
    assert "COPY deploy/docker-entrypoint.sh /usr/local/bin/galclust-entrypoint" in final


def test_galclust_entrypoint_command_exists():
    exe = shutil.which("galclust", path=ENV["PATH"])
    assert exe, "the galclust console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: galclust")


def test_entrypoint_script_dispatches(tmp_path):
    script = str(DEPLOY / "docker-entrypoint.sh")
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", script]).returncode == 0

    def run(*args):
        return subprocess.run(["sh", script, *args], capture_output=True, text=True, env=ENV,
                              timeout=120)

    default = run()
    assert default.returncode == 0 and default.stdout.startswith("usage: galclust")
    sub = run("ingest", "--help")  # anything else goes to galclust
    assert sub.returncode == 0 and sub.stdout.startswith("usage: galclust ingest")
    dask = run("dask", "--version")  # Dask (compose, the k8s operator) passes through
    assert dask.returncode == 0 and "version" in dask.stdout.lower()
    worker = run("dask-worker", "--help") if shutil.which("dask-worker", path=ENV["PATH"]) \
        else run("dask", "worker", "--help")
    assert worker.returncode == 0 and "--nthreads" in worker.stdout
    py = run("python", "-c", "import galclust; print(galclust.__version__)")
    assert py.returncode == 0 and py.stdout.strip() == galclust.__version__


# --------------------------------------------------------------------------- compose file
def test_compose_services_images_and_builds(compose):
    services = compose["services"]
    assert set(services) == {"prefect-server", "minio", "create-bucket", "survey", "scheduler",
                             "worker-1", "worker-2", "galclust"}
    prefect = services["prefect-server"]
    assert prefect["image"] == "prefecthq/prefect:3-python3.11"
    assert prefect["command"][:5] == ["prefect", "server", "start", "--host", "0.0.0.0"]
    built = [n for n, s in services.items() if "build" in s]
    assert set(built) == {"survey", "scheduler", "worker-1", "worker-2", "galclust"}
    for name in built:
        build = services[name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT and (context / build["dockerfile"]).is_file()
        assert (context / "pyproject.toml").is_file()
    assert len({services[n]["image"] for n in built}) == 1  # one image, built once


def test_compose_addresses_name_the_services_that_listen(compose):
    services = compose["services"]
    sched = services["scheduler"]["command"]
    assert sched[:2] == ["dask", "scheduler"]
    sched_address = f"tcp://scheduler:{_option(sched, '--port')}"
    for name in ("worker-1", "worker-2"):
        cmd = services[name]["command"]
        assert cmd[:3] == ["dask", "worker", sched_address]
        assert services[name]["environment"]["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    galclust = services["galclust"]
    args = argparse.ArgumentParser(prog="galclust")
    add_serve_parser(args.add_subparsers(dest="command", required=True))
    serve = args.parse_args(galclust["command"])  # galclust's own parser accepts it
    assert serve.scheduler == sched_address
    env = galclust["environment"]
    api = urlsplit(env["PREFECT_API_URL"])
    prefect_cmd = services["prefect-server"]["command"]
    assert (api.hostname, str(api.port), api.path) == (
        "prefect-server", _option(prefect_cmd, "--port"), "/api")
    s3 = urlsplit(env["AWS_ENDPOINT_URL_S3"])
    minio = services["minio"]
    assert s3.hostname == "minio" and f":{s3.port}" == _option(minio["command"], "--address")
    assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
    bucket = services["create-bucket"]["environment"]["BUCKET"]
    for url in (serve.store, serve.results):
        assert urlsplit(url).scheme == "s3" and urlsplit(url).hostname == bucket
    init = " ".join(services["create-bucket"]["command"])
    assert "http://minio:9000" in init and 'mc mb --ignore-existing "local/$BUCKET"' in init
    # the manifest the service reads is the one the survey service writes, and the
    # workers (which read its FITS files) see the same volume at the same path
    writes = re.search(r"make_survey\('([^']+)'", services["survey"]["command"][-1]).group(1)
    assert serve.manifest == writes + "/survey.toml"
    mount = next(v for v in galclust["volumes"] if v.split(":")[1] == writes)
    for name in ("worker-1", "worker-2"):
        assert mount.split(":")[:2] == services[name]["volumes"][0].split(":")[:2]
    deps = galclust["depends_on"]
    assert deps["prefect-server"]["condition"] == "service_healthy"
    assert deps["create-bucket"]["condition"] == "service_completed_successfully"
    assert deps["survey"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["prefect-server"]


def test_compose_interpolates_credentials_from_the_environment():
    raw = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    stack = _interpolate(raw, {"MINIO_ROOT_USER": "alice", "MINIO_ROOT_PASSWORD": "s3cr3t"})
    for name in ("galclust", "worker-1", "scheduler"):
        env = stack["services"][name]["environment"]
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("alice", "s3cr3t")
    assert stack["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "s3cr3t"


@pytest.mark.cluster
def test_compose_dask_commands_run(compose):
    """The scheduler and worker commands of the compose file, run here on 127.0.0.1."""
    services = compose["services"]
    port = free_port()

    def local(cmd):
        cmd = [c.replace("tcp://scheduler:", "tcp://127.0.0.1:") for c in cmd]
        cmd = ["127.0.0.1" if c == "0.0.0.0" else c for c in cmd]
        if "--port" in cmd:
            cmd[cmd.index("--port") + 1] = str(port)
        if "--dashboard-address" in cmd:
            cmd[cmd.index("--dashboard-address") + 1] = ":0"
        cmd = [c.replace(":8786", f":{port}") for c in cmd]
        return [os.path.join(BIN, cmd[0]), *cmd[1:]]

    procs = [subprocess.Popen(local(services["scheduler"]["command"]), env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for name in ("worker-1", "worker-2"):
            procs.append(subprocess.Popen(local(services[name]["command"]), env=ENV,
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        t0 = time.monotonic()
        client = None
        while client is None:
            try:
                client = connect(f"tcp://127.0.0.1:{port}", timeout=5)
            except OSError:
                assert time.monotonic() - t0 < 60, "the compose scheduler did not start"
                time.sleep(1)
        with client:
            client.wait_for_workers(2, timeout=90)
            workers = client.scheduler_info()["workers"].values()
            assert sorted(w["name"] for w in workers) == ["worker-1", "worker-2"]
            assert {w["nthreads"] for w in workers} == {1}
            futures = client.map(pow, range(8), [2] * 8)
            assert client.gather(futures) == [i * i for i in range(8)]
    finally:
        for proc in reversed(procs):
            stop(proc, timeout=30)
