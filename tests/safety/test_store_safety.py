"""Stores galclust owns, on disk and on a real S3 server (moto): what it refuses, what it
repairs, and what it keeps (every file it did not make, byte for byte)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
from safety_world import snapshot

import galclust
from flows.cli import main
from galclust.errors import GalclustWarning, InputError, RunFailedError, StoreError
from galclust.pipeline import finish_run, pixel_failure
from galclust.store.results import RunWriter, list_runs, open_results
from galclust.store.safety import check_run_id, claim_store, overlaps, run_path


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("good", ["20261201T031500Z-a1b2c3", "nightly.2026-12-01", "r1", "A_b-c"])
def test_run_ids_of_the_allowed_form_pass(good):
    assert check_run_id(good) == good
    assert run_path(good, "run.json") == f"runs/{good}/run.json"


@pytest.mark.parametrize("bad", ["../x", "..", "a/../b", "/abs", "a/b", "", ".hidden", "a..b",
                                 "x" * 101, "a b", None, 7])
def test_run_ids_that_could_leave_the_store_are_refused(bad):
    with pytest.raises(InputError, match="is not a run id: a run id is 1-100 letters"):
        check_run_id(bad)


@pytest.mark.parametrize("part", ["../x", "a/../../b", "/etc/passwd", "", "a//b"])
def test_paths_inside_a_run_are_plain_relative_names(part):
    with pytest.raises(InputError, match="is not a path inside run"):
        run_path("r1", part)


def test_overlap_is_found_through_dots_links_and_trailing_slashes(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.fits").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "v")
    inputs = [str(tmp_path / "v" / "a.fits")]
    for store in (tmp_path / "v", f"{tmp_path}/x/../v/", tmp_path / "link", tmp_path):
        assert overlaps(str(store), inputs) == inputs, store
    assert overlaps(str(tmp_path / "v" / "field.zarr"), inputs) == []
    assert overlaps(str(tmp_path / "v" / "a.fits" / "cube"), inputs) == inputs
    assert overlaps("s3://b/v", ["s3://b/v/a.fits"]) == ["s3://b/v/a.fits"]
    assert overlaps("s3://b/vv", ["s3://b/v/a.fits"]) == []


# --------------------------------------------------------------------------- on disk
def test_rewriting_a_galclust_cube_keeps_the_users_files_in_it(world):
    """A layout change and --overwrite rewrite galclust's arrays, never a user's file."""
    keep = Path(world.store) / "README-from-the-team.txt"
    keep.write_text("our notes\n")
    (Path(world.store) / "tables" / "extra.csv").write_text("a,b\n")
    cube = galclust.ingest(world.manifest, world.store, tile=32)  # layout change: rewrite
    assert cube["sci"].data.chunksize == (3, 32, 32)
    assert keep.read_text() == "our notes\n"
    assert (Path(world.store) / "tables" / "extra.csv").read_text() == "a,b\n"
    assert main(["ingest", world.manifest, "--store", world.store, "--overwrite", "-q"]) == 0
    assert galclust.open_cube(world.store)["sci"].data.chunksize == (3, 32, 32)  # its own tile
    assert keep.read_text() == "our notes\n"


def test_an_empty_folder_is_a_new_store(world):
    Path("empty").mkdir()
    assert claim_store("empty", "cube") == "new"
    cube = galclust.ingest(world.manifest, "empty")
    assert cube.attrs["galclust_store"] == "cube"
    assert claim_store("empty", "cube") == "existing"


def test_plots_folder_keeps_what_was_there(world, capsys):
    pics = world.root / "pictures"
    pics.mkdir()
    (pics / "figure1.pdf").write_bytes(b"%PDF the paper's figure")
    before = snapshot(pics)
    assert main(["pixels", "--store", world.store, "--plots", "pictures", "--n-plots", "2",
                 "-q"]) == 0
    after = snapshot(pics)
    assert {k: after[k] for k in before} == before
    assert len(after) > len(before)  # the label maps were added beside it


def test_deleting_an_older_run_leaves_later_runs_readable(world):
    """The second run reuses the first's pixel products: they are linked into it."""
    first = open_results(world.results)
    expected = first.table("pixels/galaxies")
    run = RunWriter.begin(world.results, params={"store": world.store})  # inherits
    run.write_table("notes", pd.DataFrame({"id": [1], "note": ["checked"]}))
    second = run.publish()
    shutil.rmtree(Path(world.results) / "runs" / first.run_id)
    res = open_results(world.results)
    assert res.run_id == second
    pd.testing.assert_frame_equal(res.table("pixels/galaxies"), expected)
    assert res.manifest["products"]["pixels/galaxies"]["carried_from"] == first.run_id


def test_a_dangling_pointer_is_passed_over_and_repaired_by_the_next_run(world):
    first = open_results(world.results).run_id
    second = RunWriter.begin(world.results, params={"store": world.store}).publish()
    shutil.rmtree(Path(world.results) / "runs" / second)
    with pytest.warns(GalclustWarning, match=f"names run {second}, which no longer exists; "
                                             f"using the newest published run, {first}"):
        assert open_results(world.results).run_id == first
    with pytest.warns(GalclustWarning, match="which no longer exists"):
        run = RunWriter.begin(world.results, params={"store": world.store})
    third = run.publish()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_results(world.results).run_id == third
        assert "pixels/galaxies" in open_results(world.results).products


def test_a_failed_run_is_kept_for_inspection_and_never_latest(world):
    latest = open_results(world.results).run_id
    run = RunWriter.begin(world.results, params={"store": world.store})
    run.write_table("pixels/galaxies", open_results(world.results).table("pixels/galaxies")
                    .assign(n_clusters=0, flag_names="NO_PIXELS"))
    reason = pixel_failure(run)
    assert reason.startswith("every one of the ") and "NO_PIXELS" in reason
    with pytest.raises(RunFailedError, match="was not published"):
        finish_run(run, reason)
    assert open_results(world.results).run_id == latest
    failed = open_results(world.results, run=run.run_id)
    assert failed.status == "failed" and failed.manifest["reason"] == reason
    assert run.run_id not in list_runs(world.results)
    assert RunWriter.begin(world.results).previous["run"] == latest  # never inherited


def test_run_json_is_written_inside_the_run_only(world):
    run = RunWriter.begin(world.results, run_id="nightly.2026-12-01")
    run.publish()
    assert (Path(world.results) / "runs" / "nightly.2026-12-01" / "run.json").exists()
    assert json.loads((Path(world.results) / "latest.json").read_text())["run"] == \
        "nightly.2026-12-01"


# --------------------------------------------------------------------------- on S3 (moto)
def _put_user_objects(s3, prefix: str) -> dict[str, bytes]:
    objects = {f"{prefix}/thesis.txt": b"three years of work\n",
               f"{prefix}/raw/f150w.fits": b"SIMPLE  = T" + b" " * 2869,
               f"{prefix}/raw/f444w.fits": b"SIMPLE  = T" + b"\0" * 2869}
    for key, data in objects.items():
        s3.pipe(key, data)
    return objects


def _assert_unchanged(s3, objects: dict[str, bytes]) -> None:
    s3.invalidate_cache()
    for key, data in objects.items():
        assert s3.cat(key) == data, key


@pytest.mark.s3
def test_s3_prefix_holding_other_objects_is_refused_and_kept(world, s3, bucket, capsys):
    name = bucket.split("://")[1]
    objects = _put_user_objects(s3, f"{name}/shared")
    status = main(["ingest", world.manifest, "--store", f"{bucket}/shared", "-q"])
    err = capsys.readouterr().err
    assert status == 2
    assert "store s3://" in err and "/shared already exists and is not a galclust cube store " \
        "(it holds: raw, thesis.txt)" in err
    with pytest.raises(StoreError, match="not a galclust results store"):
        RunWriter.begin(f"{bucket}/shared")
    status = main(["pixels", "--store", world.store, "--results", f"{bucket}/shared"])
    assert status == 2 and "not a galclust results store" in capsys.readouterr().err
    _assert_unchanged(s3, objects)
    assert sorted(s3.find(f"{name}/shared")) == sorted(objects)


@pytest.mark.s3
def test_s3_store_at_the_surveys_own_prefix_is_refused(world, s3, bucket, capsys):
    name = bucket.split("://")[1]
    s3.put(str(world.root / "survey"), f"{name}/v", recursive=True)
    objects = {k: s3.cat(k) for k in s3.find(f"{name}/v")}
    status = main(["ingest", f"{bucket}/v/survey.toml", "--store", f"{bucket}/v", "-q"])
    err = capsys.readouterr().err
    assert status == 2 and "would hold or lie inside input s3://" in err
    _assert_unchanged(s3, objects)
    assert sorted(s3.find(f"{name}/v")) == sorted(objects)
    # beside the survey, in a prefix of its own, is fine; carried products are copied
    cube = galclust.ingest(f"{bucket}/v/survey.toml", f"{bucket}/v/field.zarr", tile=64)
    assert cube.attrs["galclust_store"] == "cube"
    _assert_unchanged(s3, objects)


@pytest.mark.s3
def test_s3_runs_stay_readable_when_an_older_run_is_deleted(world, s3, bucket):
    results = f"{bucket}/field-results"
    first = RunWriter.begin(results, params={"store": world.store})
    table = pd.DataFrame({"id": [1, 2], "n_clusters": [2, 3]})
    first.write_table("pixels/galaxies", table)
    first.publish()
    second = RunWriter.begin(results, params={"store": world.store}).publish()
    s3.rm(f"{bucket.split('://')[1]}/field-results/runs/{first.run_id}", recursive=True)
    s3.invalidate_cache()
    res = open_results(results)
    assert res.run_id == second
    pd.testing.assert_frame_equal(res.table("pixels/galaxies"), table)


@pytest.mark.s3
def test_querying_a_missing_bucket_says_so(s3, capsys):
    status = main(["query", "--results", "s3://no-such-bucket-here/field-results", "--id", "1"])
    err = capsys.readouterr().err
    assert status == 2
    assert "bucket 'no-such-bucket-here' does not exist" in err
    assert "galclust nightly" not in err and "Traceback" not in err


@pytest.mark.s3
def test_refused_credentials_are_one_line(world, s3_with_auth, capsys):
    status = main(["nightly", world.manifest, "--store", "s3://somebucket/field.zarr"])
    err = capsys.readouterr().err
    assert status == 2
    assert "access to bucket 'somebucket' was refused. Check the credentials" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.s3
def test_nightly_into_a_missing_bucket_is_one_line_before_any_work(world, s3, capsys):
    status = main(["nightly", world.manifest, "--store", "s3://no-such-bucket-x/field.zarr"])
    err = capsys.readouterr().err
    assert status == 2
    assert "bucket 'no-such-bucket-x' does not exist. Create it first" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
