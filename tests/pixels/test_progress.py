"""Progress of the pixel stage in galaxies done of total, on threads and on a real
Dask cluster of worker processes, and the Progress counter itself."""

from __future__ import annotations

import logging
import re

import pytest

import galclust
from galclust.pixels.survey import run_pixels
from galclust.progress import Progress
from galclust.store.cube import open_catalog
from galclust.store.results import RunWriter
from galclust.synth import make_survey


@pytest.fixture(scope="module")
def cube_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("progress")
    survey = make_survey(path / "survey", shape=(256, 256), seed=12)
    store = str(path / "field.zarr")
    galclust.ingest(survey.manifest_path, store, tile=64)  # 16 tiles: many tasks
    return store


def _counts(caplog) -> list[tuple[int, int]]:
    return [tuple(map(int, re.search(r"(\d+) of (\d+) galaxies", r.getMessage()).groups()))
            for r in caplog.records if r.name == "galclust.progress"]


def _run(store, tmp_path, caplog, client=None) -> tuple[dict, list[tuple[int, int]]]:
    run = RunWriter.begin(str(tmp_path / "r"))
    with caplog.at_level(logging.INFO, logger="galclust.progress"):
        out = run_pixels(galclust.open_cube(store), open_catalog(store), run, client=client)
    return out, _counts(caplog)


def test_progress_counts_galaxies_on_threads(cube_store, tmp_path, caplog):
    out, counts = _run(cube_store, tmp_path, caplog)
    total = out["n_galaxies"]
    assert counts[-1] == (total, total)
    assert all(t == total for _, t in counts)
    assert [d for d, _ in counts] == sorted(d for d, _ in counts)
    assert len(counts) >= 3  # logged at every tenth, not only at the end


@pytest.mark.cluster
def test_progress_counts_galaxies_on_worker_processes(cube_store, tmp_path, caplog):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        out, counts = _run(cube_store, tmp_path, caplog, client=client)
    total = out["n_galaxies"]
    assert counts[-1] == (total, total)
    assert len(counts) >= 3 and counts[0][0] < total


def test_progress_rate_and_time_left():
    p = Progress(10, what="galaxies", desc="test", enabled=False)
    assert p.eta == float("inf")
    p.update(4)
    p.update(0)
    assert p.done == 4 and p.rate > 0 and p.eta > 0
    p.update(100)  # never past the total
    assert p.done == 10 and p.eta == 0
