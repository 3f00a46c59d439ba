"""The nightly flow on real components: a Dask scheduler and two worker processes,
moto S3, Prefect's local API; reprocessing only what changed; faults."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import galclust
from galclust.cluster import ClusterUnavailable
from galclust.config import load_manifest
from galclust.errors import StoreError
from galclust.synth import make_survey

pytestmark = [pytest.mark.prefect, pytest.mark.cluster, pytest.mark.slow]

TABLES = ("pixels/galaxies", "pixels/composites", "pixels/stamps", "catalog_spurious")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("nightly"), shape=(384, 384), seed=21,
                       psf_matched=True)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("id", "cluster", "band") if c in df.columns]
    return df.sort_values(keys).reset_index(drop=True)


def _tables(results: str, run: str = "latest") -> dict[str, pd.DataFrame]:
    res = galclust.open_results(results, run=run)
    return {name: _sorted(res.table(name)) for name in TABLES}


def test_nightly_on_dask_processes_and_s3_reprocesses_only_what_changed(
        prefect_harness, s3, bucket, survey, tmp_path, dask_processes):
    """Full run, unchanged rerun, one band changed, new sources: on a real cluster, in S3."""
    from flows.nightly import nightly_flow

    work = tmp_path / "delivery"
    shutil.copytree(os.path.dirname(survey.manifest_path), work)
    manifest = str(work / os.path.basename(survey.manifest_path))
    store, results = f"{bucket}/field.zarr", f"{bucket}/field-results"
    address, _ = dask_processes
    full = nightly_flow(manifest, store, results=results, scheduler=address, tile=128)
    assert full["pixels"]["action"] == "compute" and full["catalog"]["action"] == "compute"
    first = _tables(results)
    catalog = galclust.store.cube.open_catalog(store)
    galaxies = set(np.unique(galclust.open_cube(store)["seg"].values)) - {0}
    assert set(first["pixels/galaxies"]["id"]) == galaxies
    assert set(first["catalog_spurious"]["id"]) == set(catalog["id"])
    assert s3.exists(f"{results[5:]}/latest.json")

    same = nightly_flow(manifest, store, results=results, scheduler=address, tile=128)
    assert same["run"] != full["run"]
    assert same["ingest"]["bands_written"] == [] and not same["ingest"]["seg_written"]
    assert same["pixels"] == {**same["pixels"], "action": "reuse", "from_run": full["run"]}
    assert same["catalog"]["action"] == "reuse"
    for name, df in _tables(results).items():
        pd.testing.assert_frame_equal(df, first[name])

    # A reprocessed band: every stage must see the new pixels.
    m = load_manifest(manifest)
    with fits.open(m.bands[2].sci, mode="update") as hdul:
        hdul[0].data = hdul[0].data * 1.5
    band = nightly_flow(manifest, store, results=results, scheduler=address, tile=128)
    assert band["ingest"]["bands_written"] == [m.bands[2].name]
    assert band["pixels"]["action"] == "compute"
    assert band["pixels"]["clustered"] == len(galaxies)
    assert band["catalog"]["action"] == "compute"
    comp = _tables(results)["pixels/composites"]
    old = first["pixels/composites"]
    band2 = m.bands[2].name
    new_flux = comp.loc[comp["band"] == band2, "flux"].sum()
    old_flux = old.loc[old["band"] == band2, "flux"].sum()
    assert new_flux == pytest.approx(1.5 * old_flux, rel=0.2)  # the band is 1.5x brighter

    # A new source in the segmentation map and the catalog: only it is clustered.
    new_id = _add_source(manifest)
    inc = nightly_flow(manifest, store, results=results, scheduler=address, tile=128)
    assert inc["ingest"]["bands_written"] == [] and inc["ingest"]["seg_written"]
    assert inc["pixels"]["action"] == "incremental"
    assert inc["pixels"]["clustered"] == 1 and inc["pixels"]["carried"] == len(galaxies)
    after = _tables(results)
    gal = after["pixels/galaxies"]
    assert set(gal["id"]) == galaxies | {new_id}
    before = _tables(results, run=band["run"])["pixels/galaxies"]
    pd.testing.assert_frame_equal(
        gal[gal["id"] != new_id].reset_index(drop=True).drop(columns="tile"),
        before.drop(columns="tile"), check_dtype=False)


def _add_source(manifest: str) -> int:
    """A deeper detection run finds one more source on the same images: a new segment
    and catalog row (the band mosaics are unchanged)."""
    from astropy.wcs import WCS

    m = load_manifest(manifest)
    seg_path = m.segmentation.path
    seg = fits.getdata(seg_path)
    cat = pd.read_parquet(m.catalog.path)
    new_id = int(cat["id"].max()) + 1
    # an empty sky patch inside coverage
    errs = [fits.getdata(b.noise_path) for b in m.bands]
    ny, nx = seg.shape
    for y in range(40, ny - 40, 8):
        for x in range(40, nx - 40, 8):
            box = (slice(y - 6, y + 7), slice(x - 6, x + 7))
            if (seg[box] == 0).all() and all(np.isfinite(e[box]).all() and (e[box] > 0).all()
                                             for e in errs):
                break
        else:
            continue
        break
    yy, xx = np.mgrid[:ny, :nx]
    seg[((yy - y) ** 2 + (xx - x) ** 2 <= 16) & (seg == 0)] = new_id
    with fits.open(seg_path, mode="update") as hdul:
        hdul[0].data = seg
    ra, dec = WCS(fits.getheader(m.bands[0].sci)).pixel_to_world_values(x, y)
    row = {c: np.nan for c in cat.columns}
    row.update(id=new_id, ra=float(ra), dec=float(dec), x=float(x), y=float(y), z=2.0)
    pd.concat([cat, pd.DataFrame([row])], ignore_index=True).astype(
        {"id": "int64"}).to_parquet(m.catalog.path)
    return new_id


def test_killing_a_worker_mid_run_gives_the_same_results(prefect_harness, survey, tmp_path,
                                                          dask_processes):
    """SIGKILL one of two worker processes while pixel tiles run; Dask reruns its tasks
    on the survivor and the published tables equal an undisturbed run's."""
    from distributed import Client

    from flows.nightly import nightly_flow

    store = str(tmp_path / "field.zarr")
    address, workers = dask_processes
    clean = nightly_flow(survey.manifest_path, store, results=str(tmp_path / "clean"),
                         scheduler=address, tile=64)
    expected = _tables(clean["results"])
    victim = workers[1]
    killed = {}

    def watcher(client: Client) -> None:
        t0 = time.time()
        while time.time() - t0 < 300:
            busy = [w for w, keys in client.processing().items()
                    if any("cluster_tile" in str(k) for k in keys)]
            if len(busy) == 2:  # both workers are clustering pixel tiles: kill one
                os.kill(victim.pid, signal.SIGKILL)
                killed["after"] = time.time() - t0
                return
            time.sleep(0.02)

    with Client(address) as client:
        thread = threading.Thread(target=watcher, args=(client,), daemon=True)
        thread.start()
        faulty = nightly_flow(survey.manifest_path, store, results=str(tmp_path / "faulty"),
                              scheduler=address, tile=64)
        thread.join(5)
    assert "after" in killed, "no moment with both workers busy on pixel tiles was seen"
    assert victim.wait(10) == -signal.SIGKILL
    assert faulty["pixels"]["action"] == "compute"
    got = _tables(faulty["results"])
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], expected[name], check_exact=False, rtol=1e-6)


def test_flow_killed_before_publishing_leaves_previous_run_and_rerun_finishes(
        prefect_harness, survey, tmp_path):
    from flows.nightly import nightly_flow

    work = tmp_path / "delivery"
    shutil.copytree(os.path.dirname(survey.manifest_path), work)
    manifest = str(work / os.path.basename(survey.manifest_path))
    store, results = str(tmp_path / "field.zarr"), str(tmp_path / "results")
    first = nightly_flow(manifest, store, results=results, workers=1)
    before = _tables(results)
    m = load_manifest(manifest)
    with fits.open(m.bands[0].sci, mode="update") as hdul:  # tonight's data differ
        hdul[0].data = hdul[0].data + 1.0

    env = dict(os.environ, PYTHONPATH=os.getcwd())
    code = ("import sys; from flows.nightly import nightly_flow; "
            "nightly_flow(sys.argv[1], sys.argv[2], results=sys.argv[3], workers=1)")
    # its own process group: the kill also takes Prefect's temporary server, which
    # would otherwise live on as an orphan
    proc = subprocess.Popen([sys.executable, "-c", code, manifest, store, results], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    killed_run = None
    t0 = time.time()
    while time.time() - t0 < 400 and proc.poll() is None:
        stages = [p for p in (tmp_path / "results" / "runs").glob("*/stages/pixels.json")
                  if p.parts[-3] != first["run"]]
        if stages:  # the pixel stage of tonight's run is complete: kill before publishing
            os.killpg(proc.pid, signal.SIGKILL)
            killed_run = stages[0].parts[-3]
            break
        time.sleep(0.05)
    proc.wait(30)
    assert killed_run is not None, "the run finished or failed before it could be killed"
    pointer = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert pointer["run"] == first["run"]  # readers still get last night's run
    res = galclust.open_results(results)
    assert res.run_id == first["run"]
    for name, df in _tables(results).items():
        pd.testing.assert_frame_equal(df, before[name])

    rerun = nightly_flow(manifest, store, results=results, workers=1)
    assert rerun["pixels"] == {**rerun["pixels"], "action": "reuse", "from_run": killed_run}
    assert rerun["catalog"]["action"] == "compute"
    assert galclust.open_results(results).run_id == rerun["run"]
    assert set(_tables(results)["pixels/galaxies"]["id"]) == set(before["pixels/galaxies"]["id"])


def test_scheduler_that_does_not_answer_fails_fast(prefect_harness, survey, tmp_path,
                                                   unused_port):
    from flows.nightly import nightly_flow

    address = f"tcp://127.0.0.1:{unused_port}"
    t0 = time.time()
    with pytest.raises(ClusterUnavailable, match=f"scheduler at {address} does not answer"):
        nightly_flow(survey.manifest_path, str(tmp_path / "c.zarr"), scheduler=address)
    assert time.time() - t0 < 60
    assert not (tmp_path / "c.zarr").exists()  # nothing was ingested


def test_results_bucket_that_does_not_exist(prefect_harness, s3, survey):
    from flows.nightly import nightly_flow

    with pytest.raises(StoreError, match="bucket 'missing-results' does not exist"):
        nightly_flow(survey.manifest_path, "s3://missing-results/field.zarr",
                     results="s3://missing-results/field-results")


def test_run_whose_every_galaxy_failed_is_not_published(prefect_harness, survey, tmp_path,
                                                        dask_processes):
    """A first good run is latest; a run at an impossible S/N threshold fails, is kept
    as failed for inspection, and the pointer still names the good run."""
    from flows.nightly import nightly_flow
    from galclust.errors import RunFailedError

    store, results = str(tmp_path / "c.zarr"), str(tmp_path / "c-results")
    address, _ = dask_processes
    good = nightly_flow(survey.manifest_path, store, results=results, scheduler=address)
    with pytest.raises(RunFailedError, match="every one of the .* selected galaxies failed"):
        nightly_flow(survey.manifest_path, store, results=results, scheduler=address,
                     pixels={"snr_threshold": 1e9})
    assert galclust.open_results(results).run_id == good["run"]
    failed = [r for r in os.listdir(os.path.join(results, "runs")) if r != good["run"]]
    assert len(failed) == 1
    assert galclust.open_results(results, run=failed[0]).status == "failed"


def test_bogus_method_is_refused_before_ingest(prefect_harness, survey, tmp_path):
    from flows.nightly import nightly_flow
    from galclust.errors import InputError

    with pytest.raises(InputError, match="method='bogus' is not one of"):
        nightly_flow(survey.manifest_path, str(tmp_path / "c.zarr"),
                     pixels={"method": "bogus"})
    assert not (tmp_path / "c.zarr").exists()  # nothing was ingested
