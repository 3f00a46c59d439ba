"""One run path: the same options through `galclust nightly`, `galclust serve`'s
deployment and the Python API give the same stage keys (a served run is reused by
nightly); a stage that cannot apply is skipped with its reason and the rest publishes."""

from __future__ import annotations

import json
import os

import pytest

import galclust
from flows.cli import main
from galclust.options import CatalogOptions, PixelOptions, RunSettings, load_settings
from galclust.stages import RunInputs, begin, execute
from galclust.synth import make_survey

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("runpath") / "survey", shape=(192, 192),
                       seed=8, psf_matched=True)


def _keys(store: str, results: str, settings: RunSettings) -> dict[str, str]:
    inputs = RunInputs.open(store, results)
    _, plans = begin(inputs, settings)
    return {name: plan.key for name, plan in plans.items()}


def test_nightly_serve_and_api_share_stage_keys_and_reuse(prefect_harness, survey, tmp_path,
                                                         capsys):
    from flows.nightly import nightly_flow
    from flows.serve import nightly_parameters

    store, results = str(tmp_path / "field.zarr"), str(tmp_path / "field-results")
    # what `galclust serve --method kmeans` schedules: only one option given
    params = nightly_parameters(survey.manifest_path, store, results=results,
                                settings={"pixels": {"method": "kmeans"}})
    assert params["settings"]["pixels"] == {**vars(PixelOptions()), "method": "kmeans"}
    served = nightly_flow(**params)
    assert served["pixels"]["action"] == "compute"
    # the same settings through the command line (explicit defaults) and Python
    assert main(["nightly", survey.manifest_path, "--store", store, "--results", results,
                 "--method", "kmeans", "--normalize", "l2", "--snr-min", "3", "-q"]) == 0
    out = capsys.readouterr().out
    assert "pixels   reuse" in out and "catalog  reuse" in out
    report = execute(store, results=results, settings=RunSettings())
    assert {k: v["action"] for k, v in report.stages.items()} == {
        "detect": "reuse", "pixels": "reuse", "morphology": "reuse", "structures": "skip",
        "emission": "reuse", "catalog": "reuse", "classify": "skip"}
    keys = _keys(store, results, RunSettings())
    assert keys == _keys(store, results, RunSettings.from_dict(params["settings"]))
    assert keys["pixels"] != _keys(store, results, RunSettings(
        pixels=PixelOptions(normalize="sum")))["pixels"]
    # a settings file configures the same
    (tmp_path / "run.toml").write_text('[pixels]\nmethod = "kmeans"\n[catalog]\nsize = 51\n')
    assert _keys(store, results, load_settings(str(tmp_path / "run.toml"))) == keys


def test_one_galaxy_survey_publishes_pixels_and_skips_the_catalog(prefect_harness, tmp_path,
                                                                   capsys):
    survey = make_survey(tmp_path / "one", shape=(128, 128), n_galaxies=1, n_stars=0,
                         spurious_fraction=0.0, label_fraction=0.0, seed=3)
    store = str(tmp_path / "field.zarr")
    status = main(["nightly", survey.manifest_path, "--store", store, "-q"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "catalog  skip" in out and "the embedding's mixture model needs at least" in out
    res = galclust.open_results(str(tmp_path / "field-results"))
    assert {"pixels/galaxies", "pixels/composites", "pixels/stamps"} <= set(res.products)
    assert not any(p.startswith("catalog") for p in res.products)
    assert len(res.table("pixels/galaxies")) == 1
    skipped = res.manifest["provenance"]["skipped"]
    assert "1 catalog source: the embedding's mixture model needs at least" in skipped["catalog"]
    assert "Traceback" not in out + err


def test_skipping_a_stage_by_settings_carries_its_products(survey, tmp_path):
    store, results = str(tmp_path / "field.zarr"), str(tmp_path / "r")
    galclust.ingest(survey.manifest_path, store)
    first = execute(store, results=results)
    assert first.stages["catalog"]["action"] == "compute"
    again = execute(store, results=results, settings=RunSettings(
        pixels=PixelOptions(normalize="sum"), catalog=CatalogOptions(), skip=("catalog",)))
    assert again.stages["catalog"] == {"action": "skip", "reason": "skipped by the run settings",
                                       "seconds": 0.0}
    res = galclust.open_results(results)
    assert res.products == galclust.open_results(results, run=first.run).products
    doc = json.loads(open(os.path.join(results, "runs", again.run, "run.json")).read())
    assert doc["params"]["settings"]["pixels"]["normalize"] == "sum"
    assert doc["params"]["settings"]["skip"] == ["catalog"]


def test_a_new_stage_is_one_module_and_one_registration_line(survey, tmp_path, monkeypatch,
                                                             capsys):
    """Written as a capability issue will: an options dataclass and a Stage, registered;
    its flag reaches the command line and its options the settings, untouched cli/flows."""
    import dataclasses
    from typing import Any

    from galclust import options, stages
    from galclust.pipeline import StagePlan

    monkeypatch.setitem(options.OPTIONS, "morphology", None)  # restored after the test

    @options.stage_options("morphology")
    @dataclasses.dataclass(frozen=True)
    class MorphologyOptions:
        """Options of a test stage."""

        petrosian_eta: float = options._opt(0.2, "--petrosian-eta", "Petrosian ratio")

    class MorphologyStage(stages.Stage):
        name, options, products = "morphology", MorphologyOptions, ("morphology/table",)

        def plan(self, inputs: Any, opts: Any, **selection: Any) -> StagePlan:
            return StagePlan(self.name, "", "skip", reason=f"eta {opts.petrosian_eta}")

        def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise AssertionError("a skipped stage is not run")

    monkeypatch.setitem(stages.STAGES, "morphology", MorphologyStage())
    assert main(["nightly", "--help"]) == 0
    assert "--petrosian-eta" in capsys.readouterr().out
    store = str(tmp_path / "field.zarr")
    galclust.ingest(survey.manifest_path, store)
    settings = RunSettings.from_dict({"morphology": {"petrosian_eta": 0.3}})
    report = execute(store, settings=settings, stages=["morphology"])
    assert report.stages["morphology"] == {"action": "skip", "reason": "eta 0.3",
                                           "seconds": 0.0}


def test_nightly_classifies_when_labels_are_given_and_reuses_the_model(prefect_harness,
                                                                      tmp_path, capsys):
    from galclust.synth import make_cluster_survey

    sv = make_cluster_survey(tmp_path / "cluster", n_sources=144, size=32, random_state=4)
    store = str(tmp_path / "field.zarr")
    (tmp_path / "run.toml").write_text('[run]\nskip = ["pixels"]\n')
    argv = ["nightly", sv.manifest_path, "--store", store, "--settings",
            str(tmp_path / "run.toml"), "--class-labels", sv.labels_path, "--class-column",
            "member", "--class-model", "features", "--class-size", "31", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "classify compute" in out.replace("  ", " ")
    res = galclust.open_results(str(tmp_path / "field-results"))
    table = res.table("classify/member")
    assert len(table) == 144 and table["probability"].between(0.5, 1).all()
    assert res.manifest["params"]["settings"]["classify"]["column"] == "member"
    assert main(argv) == 0
    assert "classify reuse" in capsys.readouterr().out.replace("  ", " ")
