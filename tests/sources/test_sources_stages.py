"""The detect and morphology stages on the one run path: products, reuse, the commands,
queries by morphology and the pictures, on a synthetic survey ingested for real."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import galclust
from flows.cli import main
from galclust.errors import InputError
from galclust.options import MorphologyOptions, RunSettings
from galclust.stages import execute
from galclust.synth import make_survey

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    survey = make_survey(root / "survey", shape=(256, 256), seed=8, psf_matched=True)
    store = str(root / "field.zarr")
    galclust.ingest(survey.manifest_path, store, tile=128)
    report = execute(store, stages=["detect", "pixels", "morphology"])
    return survey, store, report


def test_detect_stage_finds_the_galaxies_and_publishes_map_and_table(field):
    survey, store, report = field
    assert report.stages["detect"]["action"] == "compute"
    assert report.stages["detect"]["tiles"] == 4
    res = galclust.open_results(report.results, run=report.run)
    sources = res.table("detect/sources")
    seg = res.dataset("detect/seg")["seg"].values
    assert set(np.unique(seg)) - {0} == set(sources["id"])
    truth = pd.read_parquet(survey.truth_sources_path)
    truth = truth[truth["kind"] == "galaxy"]
    d = np.hypot(truth["x"].to_numpy()[:, None] - sources["x"].to_numpy()[None],
                 truth["y"].to_numpy()[:, None] - sources["y"].to_numpy()[None])
    found = (d.min(axis=1) < 3.0).mean()
    assert found >= 0.9, found
    # RA/Dec from the cube's WCS agree with the truth's through the catalog
    cat = galclust.open_cube(store)
    assert {"ra", "dec"} <= set(sources) and np.isfinite(sources["ra"]).all()
    assert sources["ra"].between(214.8, 215.0).all(), cat.attrs["wcs"]


def test_morphology_stage_measures_every_level(field):
    _, store, report = field
    summary = report.stages["morphology"]
    assert set(summary["levels"]) == {"galaxies", "detections", "clusters"}
    res = galclust.open_results(report.results, run=report.run)
    gal = res.table("morphology/galaxies")
    seg_ids = set(np.unique(galclust.open_cube(store)["seg"].values)) - {0}
    assert set(gal["id"]) == seg_ids
    good = gal[gal["flag"] == 0]
    assert len(good) >= 0.7 * len(gal)
    assert good["gini"].between(0.2, 0.9).all() and (good["r20"] < good["r80"]).all()
    assert (gal["band"] == "F444W").all()  # the reddest band by default
    # one row per SED cluster of every clustered galaxy
    pix = res.table("pixels/galaxies")
    pix = pix[pix["n_clusters"] > 0]
    clusters = res.table("morphology/clusters")
    per = clusters.groupby("id")["cluster"].nunique()
    assert per.reindex(pix["id"]).fillna(0).astype(int).tolist() == pix["n_clusters"].tolist()
    det = res.table("morphology/detections")
    assert set(det["id"]) == set(res.table("detect/sources")["id"])


def test_unchanged_inputs_reuse_and_a_new_band_recomputes(field, monkeypatch):
    _, store, report = field
    again = execute(store, stages=["detect", "pixels", "morphology"])
    assert {k: v["action"] for k, v in again.stages.items()} == {
        "detect": "reuse", "pixels": "reuse", "morphology": "reuse"}
    # a detection stored by another version of the deblender is recomputed, not reused
    import galclust.sources_stage as sources_stage
    with monkeypatch.context() as m:
        m.setattr(sources_stage, "DETECT_VERSION", sources_stage.DETECT_VERSION + 1)
        assert execute(store, stages=["detect"]).stages["detect"]["action"] == "compute"
    other = execute(store, stages=["morphology"],
                    settings=RunSettings(morphology=MorphologyOptions(band="F200W",
                                                                      levels="galaxies")))
    assert other.stages["morphology"]["action"] == "compute"
    assert other.stages["morphology"]["band"] == "F200W"
    with pytest.raises(InputError, match="F999W"):
        execute(store, stages=["morphology"],
                settings=RunSettings(morphology=MorphologyOptions(band="F999W")))


def test_commands_queries_and_pictures(field, tmp_path, capsys):
    _, store, report = field
    assert main(["detect", "--help"]) == 0
    assert "--deblend" in capsys.readouterr().out
    figs = tmp_path / "figs"
    assert main(["detect", "--store", store, "--plots", str(figs), "-q"]) == 0
    out = capsys.readouterr().out
    assert "detect   reuse" in out and "sources (" in out
    assert main(["morphology", "--store", store, "--plots", str(figs), "-q"]) == 0
    out = capsys.readouterr().out
    assert "morphology/galaxies:" in out and "median Gini" in out
    pngs = sorted(p.name for p in figs.glob("*.png"))
    assert any(p.startswith("segmentation") for p in pngs), pngs
    assert any(p.startswith("gini-m20-galaxies") for p in pngs), pngs
    assert all("run-" in p for p in pngs)
    # a query by morphology returns exactly the rows of the table in range
    res = galclust.open_results(report.results)
    gal = res.table("morphology/galaxies")
    g, a = float(gal["gini"].quantile(0.3)), float(gal["asymmetry"].quantile(0.8))
    want = set(gal[(gal["gini"] >= g) & (gal["asymmetry"] <= a)]["id"])
    assert 0 < len(want) < len(gal)
    got = galclust.query.Query(report.results).select(
        morphology={"gini": (g, None), "asymmetry": (None, a)})
    assert set(got["id"]) == want and {"gini", "m20", "morph_flag"} <= set(got)
    assert main(["query", "--results", report.results, "--gini", f"{g!r}:", "--asymmetry",
                 f":{a!r}", "--format", "json"]) == 0
    rows = pd.read_json(io.StringIO(capsys.readouterr().out))
    assert set(rows["id"]) == want
