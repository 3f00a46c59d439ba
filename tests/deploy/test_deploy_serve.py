"""``galclust serve`` for real: a Prefect server, the service, a triggered nightly run.

Everything is real and local: ``prefect server start`` on 127.0.0.1 (its own
home and SQLite database), ``galclust serve`` as a separate process, the
nightly flow (ingest -> pixel clustering -> catalog flags -> publish) on a
LocalCluster, and the results store on disk.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sqlite3
import subprocess

import pytest
from helpers_deploy import api, free_port, galclust_command, health, stop, tail, wait_for

import galclust
from flows.serve import build_deployment
from galclust.options import RunSettings
from galclust.store.cube import open_catalog
from galclust.synth import make_survey

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

FULL_NAME = "galclust-nightly/galclust-nightly"


def _deployment(client, name=FULL_NAME):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


def _scheduled_runs(client, deployment_id):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))


def _serve_env(home, **extra):
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_RUNNER_POLL_FREQUENCY="2", DASK_LOGGING__DISTRIBUTED="warning")
    env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env


def test_serve_registers_the_schedule_and_runs_a_triggered_night(prefect_server, tmp_path):
    survey = make_survey(tmp_path / "survey", shape=(256, 256), seed=0)
    store, results = str(tmp_path / "field.zarr"), str(tmp_path / "field-results")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            galclust_command("serve", survey.manifest_path, "--store", store, "--results",
                             results, "--cron", "0 3 * * *", "--workers", "2"),
            env=_serve_env(tmp_path / "serve-home", PREFECT_API_URL=prefect_server.url),
            stdout=out, stderr=subprocess.STDOUT)
    try:
        with api(prefect_server.url) as client:
            dep = wait_for(lambda: _deployment(client), timeout=240, log=log,
                           what=f"deployment {FULL_NAME} to be registered")
            [sched] = dep.schedules
            assert (sched.schedule.cron, sched.schedule.timezone, sched.active) == (
                "0 3 * * *", "UTC", True)
            assert not dep.paused
            assert dep.entrypoint == "flows.nightly.nightly_flow"
            assert dep.parameters == {"manifest": survey.manifest_path, "store": store,
                                      "results": results, "workers": 2,
                                      "settings": RunSettings().to_dict()}
            # a run triggered through the API is executed by the service
            run = client.create_flow_run_from_deployment(dep.id)
            final = wait_for(lambda: (r := client.read_flow_run(run.id)).state.is_final()
                             and r, timeout=420, interval=3, log=log,
                             what=f"flow run {run.name} to finish")
            assert final.state.is_completed(), f"{final.state}\n{tail(log)}"
            assert final.parameters == dep.parameters
        res = galclust.open_results(results)
        assert {"pixels/galaxies", "catalog_spurious"} <= set(res.products)
        galaxies = res.table("pixels/galaxies")
        assert len(galaxies) > 0 and (galaxies["n_clusters"] > 0).any()
        assert len(res.table("catalog_spurious")) == len(open_catalog(store))
        assert res.params["manifest"] == survey.manifest_path
        printed = log.read_text()
        assert f"deployment   {FULL_NAME}" in printed
        assert "schedule     cron '0 3 * * *' (UTC)" in printed
        assert "next runs    " in printed and "03:00 UTC" in printed
    finally:
        before = len(log.read_bytes())  # (the flow run's own output comes before)
        status = stop(proc)  # SIGTERM, as systemd or docker stop would
    assert status == 0, tail(log)
    # it stops in order: no exception unwinds the event loop on the way out
    assert b"Traceback" not in log.read_bytes()[before:], tail(log)
    with api(prefect_server.url) as client:
        assert _deployment(client).paused  # a stopped service pauses its schedule


def test_serve_stopped_as_it_starts_still_pauses_its_schedule(prefect_server, tmp_path):
    """SIGTERM and Ctrl-C while the runner is still starting: it stops in order."""
    survey = make_survey(tmp_path / "survey", shape=(128, 128), seed=3,
                         bands={"F150W": 1.501, "F444W": 4.402})
    for sig, name in ((signal.SIGTERM, "stop-term"), (signal.SIGINT, "stop-int")):
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                galclust_command("serve", survey.manifest_path, "--store",
                                 str(tmp_path / f"{name}.zarr"), "--name", name),
                env=_serve_env(tmp_path / f"{name}-home", PREFECT_API_URL=prefect_server.url),
                stdout=out, stderr=subprocess.STDOUT)
        try:  # the signal comes the moment the service says it serves
            wait_for(lambda log=log, proc=proc: "serving; stop with" in log.read_text()
                     or proc.poll() is not None, timeout=240, interval=0.05, log=log,
                     what="the service to start serving")
        finally:
            status = stop(proc, sig=sig)
        assert status == 0, tail(log)
        assert "Traceback" not in log.read_text(), tail(log)
        with api(prefect_server.url) as client:
            assert _deployment(client, f"galclust-nightly/{name}").paused, tail(log)


def test_a_stop_asked_for_before_serving_stops_the_runner_in_order(prefect_server, tmp_path):
    """A SIGTERM that came before the service's handlers (its SystemExit dropped) is handed
    over: the runner stops by itself once started, and its schedule is paused."""
    import asyncio

    from prefect.runner import Runner
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.service import _serve_until_signalled

    survey = make_survey(tmp_path / "survey", shape=(128, 128), seed=4,
                         bands={"F150W": 1.501, "F444W": 4.402})
    dep = build_deployment(survey.manifest_path, str(tmp_path / "field.zarr"),
                           name="handed-over")
    asked = []
    with temporary_settings({PREFECT_API_URL: prefect_server.url}):
        runner = Runner(name="handed-over", pause_on_shutdown=True)
        runner.add_deployment(dep)
        previous = signal.getsignal(signal.SIGTERM)
        asyncio.run(asyncio.wait_for(_serve_until_signalled(
            runner, "serving", hand_over=lambda: asked.append(1) or True), timeout=120))
        assert signal.getsignal(signal.SIGTERM) is previous  # handlers put back
    assert asked == [1] and not runner.started
    with api(prefect_server.url) as client:
        assert _deployment(client, "galclust-nightly/handed-over").paused


def test_the_server_plans_the_nights_of_the_schedule(prefect_server, tmp_path):
    """The Prefect server's scheduler turns the deployment's cron into 03:00 UTC runs."""
    import sqlalchemy
    from prefect.settings import PREFECT_API_URL, temporary_settings

    survey = make_survey(tmp_path / "survey", shape=(128, 128), seed=2,
                         bands={"F150W": 1.501, "F444W": 4.402})
    dep = build_deployment(survey.manifest_path, str(tmp_path / "field.zarr"),
                           name="plan-check")
    with temporary_settings({PREFECT_API_URL: prefect_server.url}):
        dep_id = dep.apply()

    def planned():
        if "Can't evaluate bulk DML statement" in prefect_server.log.read_text():
            raise AssertionError(
                "Prefect's scheduler service fails to insert the scheduled runs on "
                f"SQLAlchemy {sqlalchemy.__version__} ('Can't evaluate bulk DML statement'): "
                "cron schedules never fire. Pin sqlalchemy<2.1 (2.0.x works).")
        return _scheduled_runs(client, dep_id)

    with api(prefect_server.url) as client:
        try:
            runs = wait_for(planned, timeout=120, what="the server to plan the next runs",
                            log=prefect_server.log)
        finally:
            client.delete_deployment(dep_id)
    now = datetime.datetime.now(datetime.UTC)
    starts = sorted(datetime.datetime.fromtimestamp(r.expected_start_time.timestamp(),
                                                    datetime.UTC) for r in runs)
    assert len(starts) >= 3 and now < starts[0] <= now + datetime.timedelta(days=1)
    assert {(t.hour, t.minute, t.second) for t in starts} == {(3, 0, 0)}
    assert {b - a for a, b in zip(starts, starts[1:], strict=False)} == {
        datetime.timedelta(days=1)}


def test_serve_without_a_server_starts_its_own(tmp_path):
    """No PREFECT_API_URL: `galclust serve` runs a Prefect server (with its scheduler)."""
    survey = make_survey(tmp_path / "survey", shape=(128, 128), seed=1,
                         bands={"F150W": 1.501, "F444W": 4.402})
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "home"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            galclust_command("serve", survey.manifest_path, "--store",
                             str(tmp_path / "field.zarr"), "--cron", "15 4 * * *",
                             "--timezone", "Europe/Paris", "--prefect-port", str(port)),
            env=_serve_env(home), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, as a terminal gives it
    try:
        wait_for(lambda: health(url) or proc.poll() is not None, timeout=240, log=log,
                 what="the local Prefect server")
        assert proc.poll() is None, tail(log)
        with api(url) as client:
            dep = wait_for(lambda: _deployment(client), timeout=120, log=log,
                           what="the deployment on the local server")
            [sched] = dep.schedules
            assert (sched.schedule.cron, sched.schedule.timezone, sched.active) == (
                "15 4 * * *", "Europe/Paris", True)
        assert (home / "prefect.db").exists()  # its database lives under PREFECT_HOME
        printed = log.read_text()
        assert "starting a local Prefect server" in printed
        assert f"Prefect API  {url}" in printed
        wait_for(lambda: "serving; stop with" in log.read_text(), timeout=120, log=log,
                 what="the service to serve")
    finally:
        if proc.poll() is None:  # Ctrl-C in its terminal: SIGINT to the whole group
            os.killpg(proc.pid, signal.SIGINT)
            # and nothing more while it stops: a second signal would stop it outright
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(120)
        status = stop(proc)
    assert status == 0, tail(log)
    assert "Traceback" not in log.read_text(), tail(log)
    assert not health(url)  # the server it started is gone with it
    # the server outlived the runner's stop: the schedule was paused in its database
    with sqlite3.connect(home / "prefect.db") as db:
        assert db.execute("select paused from deployment").fetchall() == [(1,)]
