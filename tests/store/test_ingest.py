"""Ingest: FITS mosaics -> zarr cube, on disk; values, layout, provenance, increments."""

from __future__ import annotations

import os
import shutil
import tomllib
import warnings

import numpy as np
import pandas as pd
import pytest
import tomli_w
import xxhash
from astropy.io import fits
from astropy.wcs import WCS

import galclust
from galclust.config import FLUX_UNITS, canonical_unit, load_manifest
from galclust.errors import GalclustWarning, StoreError
from galclust.store.cube import open_catalog, open_labels
from galclust.synth import make_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A small synthetic survey: 4 bands, error maps for two, weight maps for two."""
    path = tmp_path_factory.mktemp("survey")
    bands = {"F115W": 1.154, "F200W": 1.988, "F356W": 3.565, "F444W": 4.402}
    return make_survey(path, shape=(300, 260), bands=bands, seed=3, noise="mixed")


@pytest.fixture
def survey_copy(survey, tmp_path):
    """A private copy of the survey files, free to modify."""
    src = os.path.dirname(survey.manifest_path)
    dst = tmp_path / "survey"
    shutil.copytree(src, dst)
    return str(dst / os.path.basename(survey.manifest_path))


def _chunk_files(store: str, var: str) -> dict[str, float]:
    root = os.path.join(store, var, "c")
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".partial"):  # zarr's temporary file of a chunk being written
                continue
            p = os.path.join(dirpath, f)
            try:
                out[os.path.relpath(p, root)] = os.stat(p).st_mtime_ns
            except FileNotFoundError:  # replaced while we looked (a writer is running)
                continue
    return out


def test_cube_holds_the_fits_pixels(survey, tmp_path):
    store = str(tmp_path / "field.zarr")
    cube = galclust.ingest(survey.manifest_path, store, tile=64)
    m = load_manifest(survey.manifest_path)
    assert list(cube["band"].values) == m.band_names
    np.testing.assert_allclose(cube["wavelength"].values, m.wavelengths)
    assert cube["sci"].dtype == np.float32 and cube["err"].dtype == np.float32
    assert cube["seg"].dtype == np.int32
    assert cube["sci"].data.chunksize == (4, 64, 64)
    for i, band in enumerate(m.bands):
        sci = fits.getdata(band.sci).astype(np.float32)
        noise = fits.getdata(band.noise_path).astype(np.float32)
        if band.noise_kind == "weight":
            covered = noise > 0
            expected_err = np.where(covered, 1 / np.sqrt(np.where(covered, noise, 1)), np.inf)
        else:
            covered = np.isfinite(noise) & (noise > 0)
            expected_err = np.where(covered, noise, np.inf)
        covered &= np.isfinite(sci)
        got_sci = cube["sci"][i].values
        got_err = cube["err"][i].values
        np.testing.assert_array_equal(got_sci[covered], sci[covered])
        np.testing.assert_allclose(got_err[covered], expected_err[covered], rtol=1e-6)
        # no coverage is kept as such: infinite error, zero flux, never NaN
        assert np.all(np.isinf(got_err[~covered])) and np.all(got_sci[~covered] == 0)
        assert not np.isnan(got_sci).any() and not np.isnan(got_err).any()
        assert (~covered).sum() > 0, "the synthetic survey has an uncovered edge"
    np.testing.assert_array_equal(cube["seg"].values, fits.getdata(m.segmentation.path))


def test_weight_maps_become_errors(tmp_path):
    survey = make_survey(tmp_path / "w", shape=(128, 128), bands={"F150W": 1.501,
                                                                  "F444W": 4.402},
                         seed=1, noise="weight")
    m = load_manifest(survey.manifest_path)
    assert all(b.noise_kind == "weight" for b in m.bands)
    cube = galclust.ingest(survey.manifest_path, str(tmp_path / "c.zarr"), tile=64)
    w = fits.getdata(m.bands[1].weight)
    err = cube["err"][1].values
    good = w > 0
    np.testing.assert_allclose(err[good], 1 / np.sqrt(w[good]), rtol=1e-6)
    assert np.isinf(err[~good]).all() and (~good).any()


def test_attributes_wcs_and_provenance(survey, tmp_path):
    store = str(tmp_path / "field.zarr")
    cube = galclust.ingest(survey.manifest_path, store, tile=128)
    m = load_manifest(survey.manifest_path)
    header = fits.getheader(m.bands[0].sci)
    ref = WCS(header)
    stored = WCS(fits.Header(cube.attrs["wcs"]))
    px = np.array([[0.0, 0.0], [259.0, 299.0], [130.5, 77.25]])
    np.testing.assert_allclose(stored.pixel_to_world_values(px[:, 0], px[:, 1]),
                               ref.pixel_to_world_values(px[:, 0], px[:, 1]), atol=1e-10)
    assert cube.attrs["pixel_scale"] == pytest.approx(0.04, rel=1e-6)
    prov = cube.attrs["provenance"]
    assert prov["galclust_version"] == galclust.__version__
    for key, info in prov["inputs"].items():
        with open(info["path"], "rb") as fh:
            assert info["xxh3_128"] == xxhash.xxh3_128(fh.read()).hexdigest(), key
    assert set(prov["inputs"]) >= {f"{b.name}.sci" for b in m.bands} | {"seg", "catalog"}


def test_catalog_positions_agree_with_wcs_and_segmentation(survey, tmp_path):
    store = str(tmp_path / "field.zarr")
    cube = galclust.ingest(survey.manifest_path, store, tile=128)
    cat = open_catalog(store)
    truth = pd.read_parquet(survey.catalog_path)
    merged = cat.merge(truth[["id", "x", "y"]], on="id", suffixes=("", "_true"))
    assert len(merged) == len(truth) == len(cat)
    np.testing.assert_allclose(merged["x"], merged["x_true"], atol=0.01)
    np.testing.assert_allclose(merged["y"], merged["y_true"], atol=0.01)
    assert {"id", "ra", "dec", "x", "y", "z"} <= set(cat.columns)
    seg_ids = set(np.unique(cube["seg"].values)) - {0}
    assert seg_ids <= set(cat["id"])
    labels = open_labels(store)
    assert labels is not None and set(labels["id"]) <= set(cat["id"])
    assert set(labels["reliable"].unique()) <= {0, 1}


def test_reingest_unchanged_writes_nothing(survey_copy, tmp_path):
    store = str(tmp_path / "field.zarr")
    _, first = galclust.ingest(survey_copy, store, tile=64, report=True)
    assert first.changed and len(first.bands_written) == 4
    before = _chunk_files(store, "sci"), _chunk_files(store, "err"), _chunk_files(store, "seg")
    _, again = galclust.ingest(survey_copy, store, tile=64, report=True)
    assert not again.changed and again.bytes_read == 0
    after = _chunk_files(store, "sci"), _chunk_files(store, "err"), _chunk_files(store, "seg")
    assert before == after  # no chunk file was rewritten


def test_changed_band_rewrites_only_that_band(survey_copy, tmp_path):
    store = str(tmp_path / "field.zarr")
    m = load_manifest(survey_copy)
    galclust.ingest(survey_copy, store, tile=64)
    old = galclust.open_cube(store).load()
    # A reprocessed F200W mosaic: same grid, new pixels.
    with fits.open(m.bands[1].sci, mode="update") as hdul:
        hdul[0].data = hdul[0].data * 2 + 1
    seg_before = _chunk_files(store, "seg")
    cube, rep = galclust.ingest(survey_copy, store, tile=64, report=True)
    assert rep.bands_written == ["F200W"] and not rep.seg_written and not rep.tables_written
    assert _chunk_files(store, "seg") == seg_before
    new = cube.load()
    for i in (0, 2, 3):
        np.testing.assert_array_equal(new["sci"][i].values, old["sci"][i].values)
        np.testing.assert_array_equal(new["err"][i].values, old["err"][i].values)
    covered = np.isfinite(old["err"][1].values)
    np.testing.assert_allclose(new["sci"][1].values[covered],
                               old["sci"][1].values[covered] * 2 + 1, rtol=1e-6)
    digest = cube.attrs["provenance"]["inputs"]["F200W.sci"]["xxh3_128"]
    with open(m.bands[1].sci, "rb") as fh:
        assert digest == xxhash.xxh3_128(fh.read()).hexdigest()


def test_two_changed_bands_are_rewritten_together(survey_copy, tmp_path):
    """Bands 0 and 2 change (not neighbours): both are rewritten, the others kept."""
    store = str(tmp_path / "field.zarr")
    m = load_manifest(survey_copy)
    old = galclust.ingest(survey_copy, store, tile=64).load()
    for i, factor in ((0, 3.0), (2, -1.0)):
        with fits.open(m.bands[i].sci, mode="update") as hdul:
            hdul[0].data = hdul[0].data * factor
    cube, rep = galclust.ingest(survey_copy, store, tile=64, report=True)
    assert rep.bands_written == ["F115W", "F356W"]
    new = cube.load()
    for i, factor in ((0, 3.0), (1, 1.0), (2, -1.0), (3, 1.0)):
        np.testing.assert_allclose(new["sci"][i].values, old["sci"][i].values * factor,
                                   rtol=1e-6)
        np.testing.assert_array_equal(new["err"][i].values, old["err"][i].values)


def _status(store: str) -> str | None:
    import json

    try:
        with open(os.path.join(store, "zarr.json")) as fh:
            return json.load(fh).get("attributes", {}).get("ingest_status")
    except (OSError, ValueError):
        return None


def test_killed_ingest_is_not_read_as_complete_and_rerun_finishes(tmp_path):
    """Kill -9 an ingest process while it writes chunks; the store must say so."""
    import signal
    import subprocess
    import sys
    import time

    survey = make_survey(tmp_path / "big", shape=(512, 512), seed=5,
                         bands={"F115W": 1.154, "F200W": 1.988, "F444W": 4.402})
    store = str(tmp_path / "field.zarr")
    code = "import galclust, sys; galclust.ingest(sys.argv[1], sys.argv[2], tile=32)"
    proc = subprocess.Popen([sys.executable, "-c", code, survey.manifest_path, store])
    t0 = time.time()
    while time.time() - t0 < 120:
        if _status(store) == "writing" and len(_chunk_files(store, "sci")) >= 10:
            break
        assert proc.poll() is None, "the ingest finished before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _status(store) == "writing"
    n_written = len(_chunk_files(store, "sci"))
    assert 0 < n_written < 16 * 16  # killed part-way through
    with pytest.raises(StoreError, match="did not complete"):
        galclust.open_cube(store)
    cube, rep = galclust.ingest(survey.manifest_path, store, tile=32, report=True)
    assert rep.changed and len(rep.bands_written) == 3
    clean = galclust.ingest(survey.manifest_path, str(tmp_path / "clean.zarr"), tile=32)
    for var in ("sci", "err", "seg"):
        np.testing.assert_array_equal(cube[var].values, clean[var].values)


def test_ingest_on_a_dask_cluster_equals_local_threads(survey, tmp_path):
    from galclust.cluster import dask_client

    local = galclust.ingest(survey.manifest_path, str(tmp_path / "a.zarr"), tile=64)
    with dask_client(n_workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = galclust.ingest(survey.manifest_path, str(tmp_path / "b.zarr"), tile=64,
                                 client=client)
    for var in ("sci", "err", "seg"):
        np.testing.assert_array_equal(local[var].values, remote[var].values)


def test_block_tasks_write_disjoint_chunks(survey, tmp_path):
    from galclust.store.blocks import plan_blocks as _plan_blocks
    from galclust.store.ingest import _validate

    inputs = _validate(load_manifest(survey.manifest_path))
    jobs = _plan_blocks(str(tmp_path / "x.zarr"), inputs, 64, range(4), True)
    regions = [(job.ys, xs) for job in jobs for xs in job.xs]
    assert len(regions) == len(set(regions)) == 5 * 5  # 300x260 px in 64-px tiles
    covered = np.zeros((300, 260), int)
    for (y0, y1), (x0, x1) in regions:
        assert y0 % 64 == 0 and x0 % 64 == 0  # chunk-aligned: no two tasks share a chunk
        assert y1 == min(y0 + 64, 300) and x1 == min(x0 + 64, 260)
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()  # every pixel written by exactly one task


def test_open_cube_is_lazy(survey, tmp_path):
    import dask.array as da

    store = str(tmp_path / "field.zarr")
    galclust.ingest(survey.manifest_path, store, tile=64)
    cube = galclust.open_cube(store)
    assert isinstance(cube["sci"].data, da.Array) and isinstance(cube["seg"].data, da.Array)


def test_open_cube_without_store(tmp_path):
    with pytest.raises(StoreError, match="no cube store"):
        galclust.open_cube(str(tmp_path / "nothing.zarr"))


def _set_coverage(manifest: str, region: tuple[slice, slice], covered: bool) -> None:
    """Give (or take away) coverage of ``region`` in every band's noise map."""
    m = load_manifest(manifest)
    for band in m.bands:
        with fits.open(band.noise_path, mode="update") as hdul:
            data = hdul[0].data
            if covered:
                data[region] = 1.0 if band.noise_kind == "weight" else 0.05
            else:
                data[region] = 0.0  # zero weight, or a zero error: no coverage
            hdul[0].data = data


def test_chunks_without_coverage_are_not_stored(survey_copy, tmp_path):
    """A chunk no band covers is not written; it reads as no coverage (0 flux,
    +inf error), and one that loses its coverage on re-ingest is removed, not
    left stale."""
    store = str(tmp_path / "field.zarr")
    block = (slice(64, 128), slice(64, 128))  # chunk 0/1/1
    _set_coverage(survey_copy, block, covered=False)
    galclust.ingest(survey_copy, store, tile=64)
    for var in ("sci", "err"):
        files = _chunk_files(store, var)
        assert "0/1/1" not in files and "0/2/2" in files, sorted(files)[:5]
    cube = galclust.open_cube(store).load()
    assert np.all(cube["sci"].values[:, 64:128, 64:128] == 0)
    assert np.all(np.isinf(cube["err"].values[:, 64:128, 64:128]))

    _set_coverage(survey_copy, block, covered=True)  # every band changes
    cube, rep = galclust.ingest(survey_copy, store, tile=64, report=True)
    assert len(rep.bands_written) == 4
    assert "0/1/1" in _chunk_files(store, "err")
    err = cube["err"].values[:, 64:128, 64:128]
    assert np.all(np.isfinite(err)) and np.all(err > 0)

    _set_coverage(survey_copy, block, covered=False)
    cube = galclust.ingest(survey_copy, store, tile=64).load()
    assert "0/1/1" not in _chunk_files(store, "err") and "0/1/1" not in _chunk_files(store, "sci")
    assert np.all(np.isinf(cube["err"].values[:, 64:128, 64:128]))
    assert np.all(cube["sci"].values[:, 64:128, 64:128] == 0)


def test_segmentation_ids_are_kept_exactly(survey_copy, tmp_path):
    """Ids above 2**24 (where float32 rounds) come through unchanged."""
    m = load_manifest(survey_copy)
    with fits.open(m.segmentation.path, mode="update") as hdul:
        seg = hdul[0].data.astype(np.int32)
        seg[10:20, 10:20] = 2**24 + 1
        seg[30:40, 10:20] = 2**31 - 1
        hdul[0].data = seg
    cube = galclust.ingest(survey_copy, str(tmp_path / "field.zarr"), tile=64)
    got = cube["seg"].values
    assert np.all(got[10:20, 10:20] == 2**24 + 1)
    assert np.all(got[30:40, 10:20] == 2**31 - 1)
    np.testing.assert_array_equal(got[100:], seg[100:])
    assert cube.attrs["segmentation"]["ids_not_in_catalog"] == 2


def _set_units(manifest: str, units: dict[str, str | None]) -> None:
    """Set (or, for None, remove) the unit of the named bands in a manifest file."""
    with open(manifest, "rb") as fh:
        data = tomllib.load(fh)
    for band in data["bands"]:
        if band["name"] in units:
            band.pop("unit", None)
            if units[band["name"]] is not None:
                band["unit"] = units[band["name"]]
    with open(manifest, "wb") as fh:
        tomli_w.dump(data, fh)


def test_ingest_warns_once_naming_bands_without_or_with_an_unknown_unit(survey_copy, tmp_path):
    _set_units(survey_copy, {"F115W": None, "F200W": None, "F356W": "jansky"})
    with pytest.warns(GalclustWarning) as record:
        cube = galclust.ingest(survey_copy, str(tmp_path / "field.zarr"), tile=64)
    mine = [w for w in record if "unit" in str(w.message)]
    assert len(mine) == 1  # once per ingest, every band named in it
    text = str(mine[0].message)
    assert "bands F115W, F200W give no unit" in text and "'flux per pixel'" in text
    assert "band F356W ('jansky') gives a unit galclust does not recognise" in text
    assert "F444W" not in text and ", ".join(FLUX_UNITS) in text
    assert cube.attrs["units"] == {"F115W": "", "F200W": "", "F356W": "jansky", "F444W": "nJy"}


def test_ingest_with_recognised_units_is_silent(survey_copy, tmp_path):
    _set_units(survey_copy, {"F115W": "uJy", "F200W": "MJy / sr", "F356W": "\u00b5Jy"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", GalclustWarning)
        galclust.ingest(survey_copy, str(tmp_path / "field.zarr"), tile=64)


def test_canonical_unit_spellings():
    assert [canonical_unit(u) for u in ("njy", "\u00b5Jy", "\u03bcJy", " MJy / sr", "E-/S",
                                        "Nanomaggy")] == ["nJy", "uJy", "uJy", "MJy/sr", "e-/s",
                                                          "nanomaggy"]
    assert canonical_unit("jansky") is None and canonical_unit("") is None
