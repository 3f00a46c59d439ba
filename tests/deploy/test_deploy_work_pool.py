"""Path (b) for real: a work pool, ``prefect deploy`` of prefect.yaml, deploy.py, a worker.

The documented commands are run as written (``prefect work-pool create ...``,
``prefect --no-prompt deploy --prefect-file deploy/prefect.yaml ...``,
``python deploy/deploy.py deploy ...``, ``prefect worker start --pool ...``)
against a real Prefect server on 127.0.0.1; the worker executes a nightly run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers_deploy import DEPLOY, ROOT, api, tail, wait_for

import galclust
from flows.serve import WORK_POOL
from galclust.synth import make_survey

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

PREFECT = [sys.executable, "-m", "prefect"]


def _env(prefect_server, tmp_path, **extra):
    env = dict(os.environ, PREFECT_API_URL=prefect_server.url,
               PREFECT_HOME=str(tmp_path / "client-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DASK_LOGGING__DISTRIBUTED="warning")
    env.update(extra)
    return env


def _run(cmd, env, *, cwd=ROOT, timeout=300):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd[2:])} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def work_pool(prefect_server, tmp_path_factory):
    """The pool, created with the command deploy/prefect.yaml documents."""
    env = _env(prefect_server, tmp_path_factory.mktemp("pool"))
    documented = (DEPLOY / "prefect.yaml").read_text()
    command = f"prefect work-pool create {WORK_POOL} --type process"
    assert command in documented
    _run([*PREFECT, *command.split()[1:]], env)
    with api(prefect_server.url) as client:
        assert client.read_work_pool(WORK_POOL).type == "process"
    return WORK_POOL


def test_prefect_yaml_deploys_to_the_pool(prefect_server, work_pool, tmp_path):
    env = _env(prefect_server, tmp_path, GALCLUST_MANIFEST="s3://survey/ceers.toml",
               GALCLUST_STORE="s3://survey/field.zarr", GALCLUST_RESULTS="",
               GALCLUST_SCHEDULER="tcp://dask-scheduler:8786")
    _run([*PREFECT, "--no-prompt", "deploy", "--prefect-file", "deploy/prefect.yaml",
          "--name", "galclust-nightly"], env)
    with api(prefect_server.url) as client:
        dep = client.read_deployment_by_name("galclust-nightly/galclust-nightly")
        try:
            assert dep.work_pool_name == work_pool
            assert dep.entrypoint == "flows/nightly.py:nightly_flow"
            assert dep.parameters == {"manifest": "s3://survey/ceers.toml",
                                      "store": "s3://survey/field.zarr", "results": "",
                                      "scheduler": "tcp://dask-scheduler:8786"}
            [sched] = dep.schedules
            assert (sched.schedule.cron, sched.schedule.timezone, sched.active) == (
                "0 3 * * *", "UTC", True)
            assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
                "directory": "/opt/galclust"}}]
            assert dep.global_concurrency_limit.limit == 1
            assert set(dep.tags) == {"galclust", "nightly"}
        finally:
            client.delete_deployment(dep.id)


def test_deploy_script_deploys_and_a_worker_runs_it(prefect_server, work_pool, tmp_path):
    survey = make_survey(tmp_path / "survey", shape=(128, 128), seed=3)
    store, results = str(tmp_path / "field.zarr"), str(tmp_path / "field-results")
    env = _env(prefect_server, tmp_path)
    out = _run([sys.executable, str(DEPLOY / "deploy.py"), "deploy", survey.manifest_path,
                "--store", store, "--results", results, "--cluster-spec",
                str(DEPLOY / "clusters" / "local.yaml"), "--name", "from-deploy-py"], env)
    assert f"deployed to work pool '{work_pool}'" in out.stdout
    assert "next runs" in out.stdout
    with api(prefect_server.url) as client:
        dep = client.read_deployment_by_name("galclust-nightly/from-deploy-py")
        assert dep.work_pool_name == work_pool
        assert dep.entrypoint == "flows.nightly.nightly_flow"
        assert dep.parameters["cluster_class"] == "distributed.LocalCluster"
        assert dep.schedules[0].schedule.cron == "0 3 * * *"
        run = client.create_flow_run_from_deployment(dep.id)
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:  # a worker, started as the docs say, executes the run
        worker = subprocess.run([*PREFECT, "worker", "start", "--pool", work_pool,
                                 "--run-once"], env=env, cwd=tmp_path, stdout=fh,
                                stderr=subprocess.STDOUT, timeout=600)
    assert worker.returncode == 0, tail(log)
    with api(prefect_server.url) as client:
        final = wait_for(lambda: (r := client.read_flow_run(run.id)).state.is_final() and r,
                         timeout=60, what="the worker's run to finish", log=log)
        assert final.state.is_completed(), f"{final.state}\n{tail(log)}"
        client.delete_deployment(dep.id)
    res = galclust.open_results(results)
    assert {"pixels/galaxies", "catalog_spurious"} <= set(res.products)
    assert len(res.table("pixels/galaxies")) > 0
