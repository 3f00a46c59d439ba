"""The pixels and catalog flows, and the galclust pixels / flag commands, run for real."""

from __future__ import annotations

import os

import pytest

import galclust
from flows.cli import main
from galclust.synth import make_survey

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture(scope="module")
def cube_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stages")
    survey = make_survey(path / "survey", shape=(256, 256), seed=5)
    store = str(path / "field.zarr")
    galclust.ingest(survey.manifest_path, store, tile=128)
    return store


def test_pixels_then_catalog_flow_publish_runs_that_build_on_each_other(prefect_harness,
                                                                         cube_store, tmp_path):
    from flows.catalog import catalog_flow
    from flows.pixels import pixels_flow

    results = str(tmp_path / "results")
    pix = pixels_flow(cube_store, results, method="kmeans", normalize="l2")
    res = galclust.open_results(results)
    assert res.run_id == pix["run"] and "pixels/galaxies" in res.products
    assert pix["galaxies"] == len(res.table("pixels/galaxies")) > 0
    cat = catalog_flow(cube_store, results)
    res = galclust.open_results(results)
    assert res.run_id == cat["run"]
    # the catalog run inherits the pixel products of the run before it
    assert {"pixels/galaxies", "catalog_spurious"} <= set(res.products)
    assert cat["sources"] == len(res.table("catalog_spurious"))
    assert res.params["store"] == cube_store


def test_pixels_and_flag_commands_publish_and_draw(cube_store, tmp_path, capsys):
    results = str(tmp_path / "cli-results")
    plots = tmp_path / "plots"
    assert main(["pixels", "--store", cube_store, "--results", results, "--workers", "1",
                 "--plots", str(plots), "--n-plots", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"published to {results}" in out and "label maps written" in out
    pngs = sorted(p.name for p in plots.glob("galaxy-*.png"))
    assert len(pngs) == 4 and all(os.path.getsize(plots / p) > 10_000 for p in pngs)
    assert main(["flag", "--store", cube_store, "--results", results, "--workers", "1",
                 "--plots", str(plots), "-q"]) == 0
    out = capsys.readouterr().out
    assert "flagged spurious" in out
    run = galclust.open_results(results).run_id  # options and run id name the pictures
    assert (plots / f"embedding_none-combined_run-{run}.png").stat().st_size > 10_000
    assert (plots / f"embedding-imaged_none-combined_run-{run}.png").stat().st_size > 10_000
    res = galclust.open_results(results)
    assert {"pixels/galaxies", "catalog_spurious"} <= set(res.products)


def test_pixels_command_refuses_a_misspelt_method_before_starting_a_cluster(cube_store,
                                                                            capsys):
    assert main(["pixels", "--store", cube_store, "--method", "kmean"]) == 2
    err = capsys.readouterr().err
    assert "method='kmean' is not one of" in err and "Did you mean 'kmeans'" in err
