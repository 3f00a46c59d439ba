"""Dask cluster specs (deploy/clusters/*.yaml): parsed, validated, and used for real."""

from __future__ import annotations

import importlib.util

import dask.array as da
import numpy as np
import pytest
import yaml
from helpers_deploy import DEPLOY

import galclust
from flows.serve import check_cluster_available, load_cluster_spec, validate_cluster_spec
from galclust.cluster import dask_client, make_cluster

SPECS = sorted(p.name for p in (DEPLOY / "clusters").glob("*.yaml"))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_every_spec_file_loads():
    assert {"local.yaml", "kubernetes.yaml", "gateway.yaml"} <= set(SPECS)
    for name in SPECS:
        spec = load_cluster_spec(DEPLOY / "clusters" / name)
        assert set(spec) == {"address", "cluster_class", "cluster_kwargs", "adapt_kwargs"}
        assert (spec["address"] is None) != (spec["cluster_class"] is None), name


def test_local_spec_starts_a_cluster_that_computes():
    spec = load_cluster_spec(DEPLOY / "clusters" / "local.yaml")
    assert spec["cluster_class"] == "distributed.LocalCluster"
    with dask_client(**spec) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == spec["cluster_kwargs"]["n_workers"]
        assert {w["nthreads"] for w in info["workers"].values()} == {1}
        assert client.submit(np.add, 40, 2).result() == 42
        total = client.compute(da.arange(1000, chunks=100).sum()).result()
        assert total == 999 * 1000 // 2


def test_kubernetes_spec_is_the_operator_kubecluster():
    spec = load_cluster_spec(DEPLOY / "clusters" / "kubernetes.yaml")
    kw = spec["cluster_kwargs"]
    assert spec["cluster_class"] == "dask_kubernetes.operator.KubeCluster"
    assert {"name", "image", "n_workers", "resources"} <= set(kw)
    assert isinstance(kw["n_workers"], int) and kw["n_workers"] >= 1
    assert set(kw["resources"]) == {"requests", "limits"}
    # credentials come from a Kubernetes secret, never from the file
    env = {e["name"]: e for e in kw["env"]}
    assert "valueFrom" in env["AWS_SECRET_ACCESS_KEY"] and "value" not in env[
        "AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize("name, module, package", [
    ("kubernetes.yaml", "dask_kubernetes", "dask-kubernetes"),
    ("gateway.yaml", "dask_gateway", "dask-gateway"),
])
def test_cloud_specs_name_the_package_to_install(name, module, package):
    """On this machine neither package is installed: both checks say what to install."""
    assert not _installed(module), f"{module} is installed here; this test expects it absent"
    spec = load_cluster_spec(DEPLOY / "clusters" / name)
    with pytest.raises(galclust.InputError, match=package) as info:
        make_cluster(spec["cluster_class"], spec["cluster_kwargs"])
    assert spec["cluster_class"] in str(info.value)
    with pytest.raises(galclust.InputError, match=f"pip install {package}"):
        check_cluster_available(spec, source=name)


def test_gateway_spec_passes_gateway_options():
    spec = load_cluster_spec(DEPLOY / "clusters" / "gateway.yaml")
    assert spec["cluster_class"] == "dask_gateway.GatewayCluster"
    assert spec["adapt_kwargs"] == {"minimum": 2, "maximum": 20}  # starts with no workers
    kw = spec["cluster_kwargs"]
    assert kw["address"].startswith("https://") and kw["proxy_address"].startswith("gateway://")
    assert "token" not in str(kw).lower() and "password" not in str(kw).lower()


def test_daskcluster_resource_matches_its_address_spec():
    """kubectl's DaskCluster and the address the flow uses name the same service."""
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text()))
    assert len(docs) == 1
    cr = docs[0]
    assert cr["apiVersion"] == "kubernetes.dask.org/v1" and cr["kind"] == "DaskCluster"
    name, namespace = cr["metadata"]["name"], cr["metadata"]["namespace"]
    sched = cr["spec"]["scheduler"]
    port = next(p["port"] for p in sched["service"]["ports"] if p["name"] == "tcp-comm")
    assert sched["service"]["selector"]["dask.org/cluster-name"] == name
    address = load_cluster_spec(DEPLOY / "clusters" / "kubernetes-daskcluster.yaml")["address"]
    assert address == f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:{port}"
    worker = cr["spec"]["worker"]["spec"]["containers"][0]
    scheduler = sched["spec"]["containers"][0]
    assert worker["args"][0] == "dask-worker" and scheduler["args"][0] == "dask-scheduler"
    assert worker["image"] == scheduler["image"] == load_cluster_spec(
        DEPLOY / "clusters" / "kubernetes.yaml")["cluster_kwargs"]["image"]


def test_unknown_key_is_refused_with_a_suggestion(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster_class: distributed.LocalCluster\ncluster_kwarg:\n  n_workers: 2\n")
    with pytest.raises(galclust.InputError, match="Did you mean 'cluster_kwargs'") as info:
        load_cluster_spec(bad)
    assert str(bad) in str(info.value) and "'cluster_kwarg'" in str(info.value)


@pytest.mark.parametrize("data, match", [
    ({"description": "nothing"}, "exactly one of 'address'"),
    ({"address": "tcp://s:8786", "cluster_class": "distributed.LocalCluster"}, "not both"),
    ({"address": "tcp://s:8786", "cluster_kwargs": {"n_workers": 2}}, "only apply with"),
    ({"address": ""}, "scheduler address"),
    ({"cluster_class": "LocalCluster"}, "dotted path"),
    ({"cluster_class": "distributed.LocalCluster", "cluster_kwargs": [2]}, "mapping"),
    ({"cluster_class": "distributed.LocalCluster", "cluster_kwargs": {"n workers": 2}},
     "argument names"),
    (["address", "tcp://s:8786"], "mapping"),
])
def test_invalid_specs(data, match):
    with pytest.raises(galclust.InputError, match=match):
        validate_cluster_spec(data, source="spec.yaml")


def test_address_spec_and_file_errors(tmp_path):
    assert validate_cluster_spec({"address": " tcp://10.0.0.5:8786 "}) == {
        "address": "tcp://10.0.0.5:8786", "cluster_class": None, "cluster_kwargs": None,
        "adapt_kwargs": None}
    with pytest.raises(galclust.MissingInputError, match="cluster spec not found"):
        load_cluster_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster_class: [unclosed\n")
    with pytest.raises(galclust.InputError, match="not valid YAML"):
        load_cluster_spec(broken)
    missing_class = {"cluster_class": "distributed.NoSuchCluster"}
    with pytest.raises(galclust.InputError, match="has no class 'NoSuchCluster'"):
        check_cluster_available(missing_class)
    check_cluster_available(load_cluster_spec(DEPLOY / "clusters" / "local.yaml"))
