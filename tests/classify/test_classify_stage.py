"""The classify stage on the one run path: CLI, reuse, prediction-only reruns, skips, bad labels,
query, and prediction on a real process cluster."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import galclust
from galclust.classify.estimator import SourceClassifier
from galclust.cli import main
from galclust.errors import InputError
from galclust.options import RunSettings
from galclust.query import Query
from galclust.stages import execute
from galclust.synth import make_cluster_survey

SIZE = 31  # cutout side for the tests (odd); the survey's stamps are 32 px apart


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    sv = make_cluster_survey(str(root / "survey"), n_sources=196, size=32, random_state=2)
    store = str(root / "field.zarr")
    galclust.ingest(sv.manifest_path, store)
    return sv, store


def settings(labels, **kw):
    opts = dict(labels=labels, column="member", model="features", size=SIZE)
    opts.update(kw)
    return RunSettings(classify=opts)


def copy_store(field, tmp_path):
    sv, store = field
    dst = str(tmp_path / "field.zarr")
    shutil.copytree(store, dst)
    return sv, dst


def test_classify_command_trains_evaluates_publishes_and_query_selects(field, tmp_path,
                                                                      capsys):
    sv, store = copy_store(field, tmp_path)
    plots = tmp_path / "figs"
    code = main(["classify", "--store", store, "--labels", sv.labels_path, "--column",
                 "member", "--model", "features", "--size", str(SIZE), "--plots", str(plots),
                 "--learning-curve", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Confusion matrix" in out and "precision" in out and "By colour region" in out
    assert "model features (asked for)" in out
    res = galclust.open_results(store.replace(".zarr", "-results"))
    table = res.table("classify/member")
    truth = pd.read_csv(sv.labels_path)
    assert len(table) == len(truth) and set(table["class"]) <= {"0", "1"}
    test = table[table["split"] == "test"]
    assert 0.2 < len(test) / len(table) < 0.3  # the 25% hold-out
    acc = np.mean(test["class"].to_numpy() == test["label"].to_numpy())
    summary = res.table("classify/member/summary").iloc[0]
    assert summary["accuracy"] == pytest.approx(acc)
    majority = max(np.mean(test["label"] == "1"), np.mean(test["label"] == "0"))
    assert acc > majority + 0.1
    card = json.loads(res.file("classify/member/model", "model.json"))
    assert card["n_test"] == len(test) and card["model"] == "features"
    assert set(table["model"]) == {card["model_id"]}
    # the stored model reproduces the published probabilities
    model = SourceClassifier.from_bytes(res.file("classify/member/model", "model.pkl"))
    from galclust.classify.survey import predict_catalog
    from galclust.store.cube import open_catalog

    again = predict_catalog(galclust.open_cube(store), open_catalog(store), model, size=SIZE,
                            progress=False)
    assert np.allclose(again["p_1"], table["p_1"], atol=1e-6)
    pngs = sorted(os.listdir(plots))
    assert any("confusion" in p for p in pngs) and any("reliability" in p for p in pngs)
    assert any("cmd" in p for p in pngs) and all(res.run_id in p for p in pngs)
    assert any("learning-curve" in p for p in pngs)
    members = Query(res.url).select(classified=("member", None))
    assert set(members["id"]) == set(table.loc[table["class"] == "1", "id"])
    assert (members["member_class"] == "1").all()
    code = main(["query", "--results", res.url, "--class", "member=0", "--limit", "3"])
    assert code == 0 and "member_class" in capsys.readouterr().out


def test_reruns_reuse_the_model_until_labels_or_options_change(field, tmp_path):
    sv, store = copy_store(field, tmp_path)
    first = execute(store, settings=settings(sv.labels_path), stages=["classify"])
    assert first.stages["classify"]["action"] == "compute"
    model_id = first.stages["classify"]["model_id"]
    same = execute(store, settings=settings(sv.labels_path), stages=["classify"])
    assert same.stages["classify"]["action"] == "reuse"
    # new pixels (one band re-reduced), same labels and options: predict with the stored model
    path = sv.sci_paths["g"]
    with fits.open(path, mode="update") as hdul:
        hdul[0].data = hdul[0].data * np.float32(1.02)
    galclust.ingest(sv.manifest_path, store)
    moved = execute(store, settings=settings(sv.labels_path), stages=["classify"])
    assert moved.stages["classify"]["action"] == "predict"
    res = galclust.open_results(moved.results)
    moved_table = res.table("classify/member")
    assert set(moved_table["model"]) == {model_id}
    first_table = galclust.open_results(first.results, run=first.run).table("classify/member")
    assert moved_table["split"].tolist() == first_table["split"].tolist()
    assert "classify/member/confusion" in res.products  # the model's evaluation travels
    # other options: retrain
    seeded = execute(store, settings=settings(sv.labels_path, random_state=5),
                     stages=["classify"])
    assert seeded.stages["classify"]["action"] == "compute"
    assert seeded.stages["classify"]["model_id"] != model_id
    # other labels: retrain
    labels = pd.read_csv(sv.labels_path)
    labels.loc[labels.index[:3], "member"] = 1 - labels.loc[labels.index[:3], "member"]
    changed = tmp_path / "members2.csv"
    labels.to_csv(changed, index=False)
    relabelled = execute(store, settings=settings(str(changed)), stages=["classify"])
    assert relabelled.stages["classify"]["action"] == "compute"


def test_without_labels_the_stage_is_skipped_and_the_last_classification_kept(field,
                                                                             tmp_path):
    sv, store = copy_store(field, tmp_path)
    first = execute(store, settings=settings(sv.labels_path), stages=["classify"])
    before = galclust.open_results(first.results).table("classify/member")
    report = execute(store, settings=RunSettings(), stages=["classify"])
    assert report.stages["classify"]["action"] == "skip"
    assert "--class-labels" in report.stages["classify"]["reason"]
    res = galclust.open_results(report.results)
    assert res.run_id == report.run != first.run
    assert "classify" in res.manifest["provenance"]["skipped"]
    assert res.table("classify/member").equals(before)  # carried into the new run


def test_a_run_evaluates_only_its_own_model(field, tmp_path):
    sv, store = copy_store(field, tmp_path)
    execute(store, settings=settings(sv.labels_path), stages=["classify"])
    report = execute(store, settings=settings(sv.labels_path, test_fraction=0.0),
                     stages=["classify"])
    res = galclust.open_results(report.results)
    assert (res.table("classify/member")["split"] == "train").all()
    assert not [p for p in res.products if p.startswith("classify/member/")
                and p != "classify/member/model"]  # no evaluation carried from run 1


@pytest.mark.parametrize("edit, match", [
    (lambda df: pd.concat([df, pd.DataFrame({"id": [90001, 90002], "member": [1, 0],
                                             "kind": ["x", "x"]})]),
     r"2 labelled id\(s\) are not in the catalog: \[90001, 90002\]"),
    (lambda df: df.assign(member=1), "holds a single class"),
    (lambda df: df.rename(columns={"member": "memb"}), "no label column 'member'"),
    (lambda df: df.iloc[np.r_[np.flatnonzero(df["member"] == 0),
                              np.flatnonzero(df["member"] == 1)[:12]]],
     "keep fewer than 10 training examples"),
])
def test_bad_labels_fail_at_planning_before_any_compute(field, tmp_path, edit, match):
    sv, store = copy_store(field, tmp_path)
    bad = tmp_path / "bad.csv"
    edit(pd.read_csv(sv.labels_path)).to_csv(bad, index=False)
    with pytest.raises(InputError, match=match):
        execute(store, settings=settings(str(bad)), stages=["classify"])
    results = store.replace(".zarr", "-results")
    assert not os.path.exists(os.path.join(results, "latest.json"))


def test_prediction_on_a_process_cluster_matches_threads(field, tmp_path):
    from distributed import Client, LocalCluster

    from galclust.classify.survey import predict_catalog
    from galclust.store.cube import open_catalog

    sv, store = field
    cube, catalog = galclust.open_cube(store), open_catalog(store)
    from galclust.classify.survey import labelled_cutouts

    labels = pd.read_csv(sv.labels_path)
    stamps, _, _ = labelled_cutouts(cube, catalog, labels["id"], size=SIZE)
    model = SourceClassifier(model="features").fit(stamps, labels["member"])
    here = predict_catalog(cube, catalog, model, size=SIZE, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        there = predict_catalog(cube, catalog, model, size=SIZE, client=client, progress=False)
    assert np.array_equal(here["id"], catalog["id"])
    assert np.allclose(here["p_1"], there["p_1"], atol=1e-6)


def test_query_class_values_are_checked_and_model_files_stay_inside_the_store(field,
                                                                             tmp_path):
    from galclust.store.results import RunWriter

    sv, store = copy_store(field, tmp_path)
    report = execute(store, settings=settings(sv.labels_path), stages=["classify"])
    q = Query(report.results)
    ones = q.select(classified=("member", "1.0"))  # normalised like the labels
    assert len(ones) and set(ones["member_class"]) == {"1"}
    with pytest.raises(InputError, match=r"not one of its classes \['0', '1'\]"):
        q.select(classified=("member", "yes"))
    with pytest.raises(InputError, match="has no classification 'colour'"):
        q.select(classified=("colour", None))
    run = RunWriter.begin(report.results)
    with pytest.raises(InputError, match="not a file name"):
        run.write_files("classify/x/model", {"../evil.pkl": b""})
    assert "classify/x/model" not in run.products  # nothing registered before the check
    run.products["classify/member/model"] = {**run.products["classify/member/model"],
                                             "path": "runs/../../outside.files"}
    with pytest.raises(galclust.StoreError, match="does not lie inside the results store"):
        run.file("classify/member/model", "model.pkl")
