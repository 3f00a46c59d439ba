"""The nightly deployment as data: built in Python, in prefect.yaml, and validated first."""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import subprocess
import sys
import zoneinfo

import jsonschema
import pytest
import yaml
from cronsim import CronSim
from helpers_deploy import DEPLOY, ROOT, free_port, galclust_command

import galclust
from flows.serve import (
    DEFAULT_CRON,
    DEPLOYMENT_NAME,
    WORK_POOL,
    add_serve_parser,
    build_deployment,
    cmd_serve,
    describe_deployment,
    next_runs,
)
from galclust.options import RunSettings
from galclust.synth import make_survey

UTC = datetime.UTC


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("survey"), shape=(128, 128), seed=0,
                       bands={"F150W": 1.501, "F444W": 4.402})


@pytest.fixture(scope="module")
def deploy_script():
    """deploy/deploy.py, imported from its path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("galclust_deploy_script",
                                                  DEPLOY / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flow_schema():
    from prefect.utilities.callables import parameter_schema

    from flows.nightly import nightly_flow

    return parameter_schema(nightly_flow.fn).model_dump_for_openapi()


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="galclust")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["serve", *argv])


def test_deployment_carries_its_cron_schedule_and_parameters(survey, tmp_path):
    store = str(tmp_path / "field.zarr")
    dep = build_deployment(survey.manifest_path, store, scheduler="tcp://10.1.2.3:8786")
    assert dep.name == DEPLOYMENT_NAME == "galclust-nightly"
    assert dep.flow_name == "galclust-nightly"
    assert dep.entrypoint == "flows.nightly.nightly_flow"
    module, _, attr = dep.entrypoint.rpartition(".")
    from flows.nightly import nightly_flow

    assert getattr(importlib.import_module(module), attr) is nightly_flow
    [sched] = dep.schedules
    assert (sched.schedule.cron, sched.schedule.timezone, sched.active) == (
        "0 3 * * *", "UTC", True)
    assert dep.parameters == {"manifest": survey.manifest_path, "store": store,
                              "results": str(tmp_path / "field-results"),
                              "scheduler": "tcp://10.1.2.3:8786",
                              "settings": RunSettings().to_dict()}  # defaults filled in
    assert dep.work_pool_name is None  # served, not on a pool
    schema = _flow_schema()
    jsonschema.validate(dep.parameters, schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema check has teeth
        jsonschema.validate({**dep.parameters, "workers": "two"}, schema)


def test_cluster_spec_and_schedule_options(survey, tmp_path):
    from flows.serve import load_cluster_spec

    spec = load_cluster_spec(DEPLOY / "clusters" / "local.yaml")
    dep = build_deployment(survey.manifest_path, str(tmp_path / "f.zarr"), cluster=spec,
                           cron="30 1 * * 1-5", timezone="Europe/Paris", name="weekdays")
    [sched] = dep.schedules
    assert (sched.schedule.cron, sched.schedule.timezone) == ("30 1 * * 1-5", "Europe/Paris")
    assert dep.parameters["cluster_class"] == "distributed.LocalCluster"
    assert dep.parameters["cluster_kwargs"]["n_workers"] == 2
    assert "scheduler" not in dep.parameters
    jsonschema.validate(dep.parameters, _flow_schema())
    text = describe_deployment(dep)
    assert "galclust-nightly/weekdays" in text and "cron '30 1 * * 1-5' (Europe/Paris)" in text
    assert "distributed.LocalCluster" in text


def test_next_runs_are_daily_at_three_and_agree_with_cronsim():
    start = datetime.datetime(2025, 3, 28, 12, 0, tzinfo=UTC)
    runs = next_runs(DEFAULT_CRON, "UTC", n=3, start=start)
    assert [r.astimezone(UTC).replace(tzinfo=None) for r in runs] == [
        datetime.datetime(2025, 3, 29, 3), datetime.datetime(2025, 3, 30, 3),
        datetime.datetime(2025, 3, 31, 3)]
    it = CronSim(DEFAULT_CRON, start)
    assert [next(it) for _ in range(3)] == [r.astimezone(UTC) for r in runs]
    # across the switch to summer time (30 March 2025) 03:00 stays 03:00 local
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    local = next_runs(DEFAULT_CRON, "Europe/Paris", n=3, start=start)
    assert [r.astimezone(paris).hour for r in local] == [3, 3, 3]
    assert [r.astimezone(UTC).hour for r in local] == [2, 1, 1]


def test_deploy_script_builds_the_same_deployment(survey, tmp_path, deploy_script):
    store = str(tmp_path / "field.zarr")
    argv = [survey.manifest_path, "--store", store, "--scheduler", "tcp://s:8786"]
    served = deploy_script.make_deployment(deploy_script.build_parser().parse_args(
        ["serve", *argv]))
    pooled = deploy_script.make_deployment(deploy_script.build_parser().parse_args(
        ["deploy", *argv]))
    reference = build_deployment(survey.manifest_path, store, scheduler="tcp://s:8786")
    for dep in (served, pooled):
        assert dep.parameters == reference.parameters
        assert dep.entrypoint == reference.entrypoint
        assert dep.schedules[0].schedule == reference.schedules[0].schedule
    assert served.work_pool_name is None and pooled.work_pool_name == WORK_POOL
    assert WORK_POOL in deploy_script.WORK_POOL_COMMAND


def test_prefect_yaml_names_a_real_flow_and_a_daily_cron(monkeypatch):
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.templating import apply_values

    project = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    [dep] = project["deployments"]
    assert dep["name"] == DEPLOYMENT_NAME and dep["work_pool"]["name"] == WORK_POOL
    path, _, func = dep["entrypoint"].partition(":")
    assert (path, func) == ("flows/nightly.py", "nightly_flow")
    assert (ROOT / path).is_file()
    flow = load_flow_from_entrypoint(f"{ROOT / path}:{func}")
    assert flow.name == "galclust-nightly"
    [sched] = dep["schedules"]
    assert sched["cron"] == DEFAULT_CRON and sched["active"] is True
    tz = zoneinfo.ZoneInfo(sched["timezone"])
    it = CronSim(sched["cron"], datetime.datetime(2025, 6, 1, 12, tzinfo=tz))
    fires = [next(it) for _ in range(4)]
    assert {(b - a) for a, b in zip(fires, fires[1:], strict=False)} == {
        datetime.timedelta(days=1)}
    assert {(f.hour, f.minute) for f in fires} == {(3, 0)}
    # the placeholders render into parameters the flow accepts
    schema = _flow_schema()
    assert set(dep["parameters"]) <= set(schema["properties"])
    assert set(schema["required"]) <= set(dep["parameters"])
    env = {"GALCLUST_MANIFEST": "s3://b/survey.toml", "GALCLUST_STORE": "s3://b/field.zarr",
           "GALCLUST_RESULTS": "", "GALCLUST_SCHEDULER": "tcp://scheduler:8786"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    params = apply_values(dep["parameters"], {}, remove_notset=False)
    assert params == {"manifest": "s3://b/survey.toml", "store": "s3://b/field.zarr",
                      "results": "", "scheduler": "tcp://scheduler:8786"}
    jsonschema.validate(params, schema)
    # the pull step's folder is where the image keeps the flows
    [step] = project["pull"]
    folder = step["prefect.deployments.steps.set_working_directory"]["directory"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"WORKDIR {folder}\n" in dockerfile and "COPY flows ./flows" in dockerfile


@pytest.mark.parametrize("argv, error, match", [
    (["missing.toml", "--store", "{tmp}/f.zarr"], galclust.MissingInputError,
     "survey manifest not found"),
    (["{manifest}", "--store", "{tmp}/f.zarr", "--cron", "0 25 * * *"], galclust.InputError,
     "--cron '0 25 \\* \\* \\*' is not a valid cron"),
    (["{manifest}", "--store", "{tmp}/f.zarr", "--timezone", "Mars/Olympus"],
     galclust.InputError, "not an IANA time zone"),
    (["{manifest}", "--store", "{tmp}/f.zarr", "--cluster-spec",
      str(DEPLOY / "clusters" / "kubernetes.yaml")], galclust.InputError,
     "pip install dask-kubernetes"),
    (["{manifest}", "--store", "{tmp}/f.zarr", "--cluster-spec", "{tmp}/none.yaml"],
     galclust.MissingInputError, "cluster spec not found"),
    (["{manifest}", "--store", "{tmp}/f.zarr", "--name", "a/b"], galclust.InputError,
     "without '/'"),
])
def test_bad_input_fails_before_serving(survey, tmp_path, monkeypatch, argv, error, match):
    """Every check runs before Prefect is contacted (its API here does not answer)."""
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    argv = [a.format(tmp=tmp_path, manifest=survey.manifest_path) for a in argv]
    with pytest.raises(error, match=match):
        cmd_serve(_serve_args(*argv))


def test_missing_bucket_fails_before_serving(survey, s3, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    with pytest.raises(galclust.StoreError, match="no-such-bucket-galclust"):
        cmd_serve(_serve_args(survey.manifest_path, "--store",
                              "s3://no-such-bucket-galclust/field.zarr"))


def test_serve_and_deploy_script_command_lines(tmp_path):
    help_ = subprocess.run(galclust_command("serve", "--help"), capture_output=True,
                           text=True, timeout=120)
    assert help_.returncode == 0, help_.stderr
    for option in ("--store", "--results", "--cron", "--scheduler", "--cluster-spec",
                   "--name", "--run-now"):
        assert option in help_.stdout
    bad = subprocess.run(galclust_command("serve", str(tmp_path / "none.toml"), "--store",
                                          str(tmp_path / "f.zarr")),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("galclust serve: error: survey manifest not found")
    assert "Traceback" not in bad.stderr
    script = subprocess.run([sys.executable, str(DEPLOY / "deploy.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert script.returncode == 0, script.stderr
    assert "prefect work-pool create galclust-pool --type process" in " ".join(
        script.stdout.split())
