"""Ingest of a survey without a segmentation map and catalog (galclust detects) and
without error maps for some bands (errors estimated from the image).

One small synthetic survey (384 x 384 px, 3 bands, 20 galaxies, tile 128 so 3 x 3
tiles), a bright galaxy added on a corner shared by four tiles, and a manifest
with no [segmentation]/[catalog], one band without err/weight and one with
``err = "estimate"``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tomllib

import numpy as np
import pandas as pd
import pytest
import tomli_w
from astropy.io import fits
from astropy.wcs import WCS
from scipy.spatial import cKDTree

import galclust
from galclust.config import load_manifest, manifest_from_dict
from galclust.errors import ManifestError, MissingInputError, StoreError
from galclust.options import DetectOptions
from galclust.store.cube import open_catalog
from galclust.synth import make_survey

TILE = 128
BANDS = {"F150W": 1.501, "F277W": 2.776, "F444W": 4.402}
#: The added galaxy: centred on the corner of tiles (1, 1), (1, 2), (2, 1), (2, 2).
CORNER = (2 * TILE - 0.5, TILE - 0.5)  # (x, y): between pixels 255|256 and 127|128


def _add_corner_galaxy(sci_path: str, flux_per_px: float) -> None:
    """An exponential disk (scale 4 px, axis ratio 0.6) centred on ``CORNER``."""
    with fits.open(sci_path, mode="update") as hdul:
        data = hdul[0].data
        yy, xx = np.mgrid[0:data.shape[0], 0:data.shape[1]]
        dx, dy = xx - CORNER[0], yy - CORNER[1]
        r = np.hypot(dx, dy / 0.6)
        data += (flux_per_px * np.exp(-r / 4.0)).astype(data.dtype)


def _write_manifest(folder: str, name: str, edit=None) -> str:
    data = tomllib.loads(open(os.path.join(folder, "survey.toml")).read())
    data.pop("segmentation")
    data.pop("catalog")
    data["bands"][0].pop("err")           # neither err nor weight: estimated
    data["bands"][1]["err"] = "estimate"  # said explicitly
    if edit is not None:
        edit(data)
    path = os.path.join(folder, name)
    with open(path, "wb") as fh:
        tomli_w.dump(data, fh)
    return path


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    path = tmp_path_factory.mktemp("nodetect")
    s = make_survey(path, shape=(384, 384), bands=BANDS, n_galaxies=20, seed=7,
                    spurious_fraction=0.0, label_fraction=0.0, noise="err")
    for band in BANDS:
        _add_corner_galaxy(s.sci_paths[band], 400.0)
    s.detect_manifest = _write_manifest(s.path, "detect.toml")
    return s


@pytest.fixture(scope="module")
def ingested(survey, tmp_path_factory):
    store = str(tmp_path_factory.mktemp("cubes") / "field.zarr")
    cube, rep = galclust.ingest(survey.detect_manifest, store, tile=TILE, report=True)
    return store, cube, rep


def _chunk_mtimes(store: str) -> dict[str, int]:
    out = {}
    for dirpath, _, files in os.walk(store):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, store)] = os.stat(p).st_mtime_ns
    return out


# --------------------------------------------------------------------------- manifest
def test_manifest_without_segmentation_and_catalog(survey):
    m = load_manifest(survey.detect_manifest)
    assert m.detects and m.segmentation is None and m.catalog is None
    assert m.estimated_bands == ["F150W", "F277W"]
    assert m.detect_options == DetectOptions()
    paths = m.input_paths()
    assert set(paths) == {"F150W.sci", "F277W.sci", "F444W.sci", "F444W.err"}
    again = manifest_from_dict(m.to_dict(), source=m.source, base=survey.path)
    assert again == m
    opts = {"nsigma": 3.5, "npixels": 9, "deblend": "none", "halo": 32}
    m2 = load_manifest(_write_manifest(survey.path, "opts.toml",
                                       lambda d: d.update(detection=opts)))
    assert m2.detect_options == DetectOptions(**opts)
    assert manifest_from_dict(m2.to_dict(), source=m2.source, base=survey.path) == m2
    # the survey's own manifest (segmentation and catalog given) is as before
    full = load_manifest(survey.manifest_path)
    assert not full.detects and {"seg", "catalog"} <= set(full.input_paths())


@pytest.mark.parametrize("drop", ["segmentation", "catalog"])
def test_only_one_of_segmentation_and_catalog_is_refused(survey, tmp_path, drop):
    data = tomllib.loads(open(survey.manifest_path).read())
    data.pop(drop)
    path = tmp_path / "one.toml"
    path.write_text(tomli_w.dumps(data))
    store = str(tmp_path / "c.zarr")
    kept = "catalog" if drop == "segmentation" else "segmentation"
    with pytest.raises(ManifestError, match=rf"one\.toml: the manifest has a \[{kept}\] table "
                                            rf"but no \[{drop}\]; give both .* or neither"):
        galclust.ingest(str(path), store)
    assert not os.path.exists(store)


@pytest.mark.parametrize("table, match", [
    ({"nsigma": -1.0}, r"\[detection\]: nsigma=-1.0 must be > 0"),
    ({"npixels": 0}, r"\[detection\]: npixels=0 must be a whole number >= 1"),
    ({"deblend": "magic"}, r"\[detection\]: deblend='magic' is not one of"),
    ({"halo": -4}, r"\[detection\]: halo=-4 must be a whole number >= 0"),
    ({"nsigma": "high"}, r"\[detection\] nsigma='high' must be a number"),
    ({"nsigm": 2.0}, r"unknown key 'nsigm' in \[detection\]\. Did you mean 'nsigma'"),
])
def test_bad_detection_option_is_refused_before_compute(survey, tmp_path, table, match):
    path = _write_manifest(survey.path, "bad.toml", lambda d: d.update(detection=table))
    store = str(tmp_path / "c.zarr")
    with pytest.raises(ManifestError, match=r"bad\.toml.*" + match):
        galclust.ingest(path, store)
    assert not os.path.exists(store)


def test_detection_table_beside_a_segmentation_map_is_refused(survey, tmp_path):
    data = tomllib.loads(open(survey.manifest_path).read())
    data["detection"] = {"nsigma": 3.0}
    path = tmp_path / "both.toml"
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(ManifestError, match=r"\[detection\] .* remove \[detection\]"):
        load_manifest(str(path))


def test_err_that_is_not_a_file_is_still_a_missing_file(survey, tmp_path):
    def edit(d):
        d["bands"][2]["err"] = "something-else"

    path = _write_manifest(survey.path, "typo.toml", edit)
    store = str(tmp_path / "c.zarr")
    with pytest.raises(MissingInputError, match=r"band F444W err image.*not found.*"
                                                r"something-else"):
        galclust.ingest(path, store)
    assert not os.path.exists(store) or not os.listdir(store)
    with pytest.raises(StoreError):
        galclust.open_cube(store)


# --------------------------------------------------------------------------- detection
def test_ingest_detects_the_sources(survey, ingested):
    store, cube, rep = ingested
    assert rep.detected and rep.seg_written and rep.tables_written
    assert rep.bands_written == list(BANDS)
    assert galclust.open_cube(store).attrs["ingest_status"] == "complete"
    seg = cube["seg"].values
    cat = open_catalog(store)
    n = len(cat)
    assert n >= 20
    # the map's ids are exactly 1..N, the catalog's the same
    np.testing.assert_array_equal(np.unique(seg[seg > 0]), np.arange(1, n + 1))
    np.testing.assert_array_equal(np.sort(cat["id"].to_numpy()), np.arange(1, n + 1))
    assert list(cat.columns[:6]) == ["id", "ra", "dec", "x", "y", "z"]
    assert cat["z"].isna().all()
    assert {f"flux_{b}" for b in BANDS} <= set(cat.columns)
    # RA/Dec from the mosaics' WCS
    wcs = WCS(fits.getheader(survey.sci_paths["F150W"])).celestial
    ra, dec = wcs.pixel_to_world_values(cat["x"].to_numpy(), cat["y"].to_numpy())
    np.testing.assert_allclose(cat["ra"], ra, atol=1e-9)
    np.testing.assert_allclose(cat["dec"], dec, atol=1e-9)
    # each source's pixels are around its position
    for row in cat.nlargest(10, "snr").itertuples():
        yy, xx = np.nonzero(seg == row.id)
        assert abs(np.median(xx) - row.x) < 5 and abs(np.median(yy) - row.y) < 5
    # >= 90 % of the true galaxies have a detection within 2 px
    truth = pd.read_parquet(survey.truth_sources_path)
    galaxies = truth[truth["kind"] == "galaxy"]
    assert len(galaxies) == 20
    dist, _ = cKDTree(cat[["x", "y"]].to_numpy()).query(galaxies[["x", "y"]].to_numpy())
    assert (dist < 2.0).mean() >= 0.9, np.sort(dist)
    # the attributes say what was done
    attrs = cube.attrs
    assert attrs["segmentation"] == {"made_by": "galclust.detect", "n_segments": n,
                                     "ids_not_in_catalog": 0}
    det = attrs["detection"]
    defaults = DetectOptions()
    assert det["options"] == defaults.kwargs() | {"halo": defaults.halo}
    assert det["n_sources"] == n and det["tiles"] == 9
    assert not {"segmentation", "catalog"} & set(attrs["manifest"])


def test_a_source_across_a_tile_corner_has_one_id(ingested):
    store, cube, _ = ingested
    seg = cube["seg"].values
    cx, cy = int(CORNER[0] + 0.5), int(CORNER[1] + 0.5)  # first pixel right of / below
    # the four pixels around the corner, one in each tile, and a ring 3 px out
    quad = seg[cy - 1:cy + 1, cx - 1:cx + 1]
    ring = seg[[cy - 4, cy - 4, cy + 3, cy + 3], [cx - 4, cx + 3, cx - 4, cx + 3]]
    ids = np.unique(np.concatenate([quad.ravel(), ring]))
    assert len(ids) == 1 and ids[0] > 0, (quad, ring)
    the_id = int(ids[0])
    yy, xx = np.nonzero(seg == the_id)
    # its footprint spans all four tiles
    assert {(y // TILE, x // TILE) for y, x in zip(yy, xx, strict=True)} >= {
        (0, 1), (0, 2), (1, 1), (1, 2)}
    cat = open_catalog(store)
    near = cat[np.hypot(cat["x"] - CORNER[0], cat["y"] - CORNER[1]) < 5]
    assert near["id"].tolist() == [the_id]


def test_reingest_writes_nothing_and_ids_are_stable(survey, ingested):
    store, cube, _ = ingested
    seg = cube["seg"].values
    cat = open_catalog(store)
    before = _chunk_mtimes(store)
    again, rep = galclust.ingest(survey.detect_manifest, store, report=True)
    assert not rep.changed and not rep.detected
    assert _chunk_mtimes(store) == before
    np.testing.assert_array_equal(again["seg"].values, seg)
    forced, rep = galclust.ingest(survey.detect_manifest, store, report=True, overwrite=True)
    assert rep.detected and rep.bands_written == list(BANDS)
    np.testing.assert_array_equal(forced["seg"].values, seg)
    pd.testing.assert_frame_equal(open_catalog(store), cat)


def test_a_detection_by_another_method_version_is_redone(survey, ingested, tmp_path,
                                                        monkeypatch):
    import galclust.sources_stage as sources_stage
    import galclust.store.ingest_detect as ingest_detect
    from galclust.stages import execute

    store = str(tmp_path / "field.zarr")
    shutil.copytree(ingested[0], store)
    seg = galclust.open_cube(store)["seg"].values
    # the detect stage uses the detection ingest made with the same options and version
    plan = execute(store, stages=["detect"]).stages["detect"]
    assert plan["action"] == "skip" and "method version" in plan["reason"]
    version = ingest_detect.DETECT_VERSION
    monkeypatch.setattr(sources_stage, "DETECT_VERSION", version + 1)
    monkeypatch.setattr(ingest_detect, "DETECT_VERSION", version + 1)
    # a newer deblender: the stage no longer takes the stored detection for its own ...
    assert execute(store, stages=["detect"]).stages["detect"]["action"] == "compute"
    # ... and a re-ingest redoes the detection alone, recording the version
    cube, rep = galclust.ingest(survey.detect_manifest, store, report=True)
    assert rep.detected and rep.bands_written == []
    assert cube.attrs["detection"]["version"] == version + 1
    np.testing.assert_array_equal(cube["seg"].values, seg)  # same pixels, same method here
    assert execute(store, stages=["detect"]).stages["detect"]["action"] == "skip"


# --------------------------------------------------------------------------- noise
def test_estimated_errors_are_the_true_noise(survey, ingested):
    _, cube, _ = ingested
    noise = cube.attrs["noise"]
    assert set(noise) == {"F150W", "F277W"}  # F444W has its error map
    prov = cube.attrs["provenance"]["inputs"]
    for i, band in enumerate(["F150W", "F277W"]):
        true = fits.getdata(survey.noise_paths[band]).astype(float)
        est = cube["err"][i].values.astype(float)
        covered = np.isfinite(true)
        # no coverage stays no coverage; covered pixels get a finite error
        assert np.isinf(est[~covered]).all() and np.isfinite(est[covered]).all()
        # the mosaic's flat-noise interior (the synthetic noise rises near the
        # coverage edges, faster than a 64 px background mesh follows)
        flat = covered & (true < 1.05 * np.nanmin(true))
        ratio = est[flat] / true[flat]
        assert abs(np.median(ratio) - 1) < 0.15, np.percentile(ratio, [5, 50, 95])
        assert (abs(ratio - 1) < 0.15).mean() > 0.6
        info = noise[band]
        assert info["estimator"] == "galclust.sources.noise.estimate_noise"
        assert "empty-aperture" in info["method"]
        assert info["n_blocks"] == 3  # one per row of tiles
        assert 0.7 < info["correlation_factor"] < 1.3  # the synthetic noise is white
        # the record summarises the map it describes (median over blocks of RMS x factor)
        assert abs(info["err_median"] / np.median(est[covered]) - 1) < 0.15
        assert prov[f"{band}.err"]["estimated"] and prov[f"{band}.err"]["path"] is None
    assert not prov["F444W.err"].get("estimated")
    given = fits.getdata(survey.noise_paths["F444W"])
    np.testing.assert_array_equal(cube["err"][2].values[np.isfinite(given)],
                                  given[np.isfinite(given)])


def test_a_changed_band_or_option_reruns_the_detection(survey, tmp_path, caplog):
    folder = tmp_path / "survey"
    shutil.copytree(survey.path, folder)
    manifest = str(folder / "detect.toml")
    store = str(tmp_path / "field.zarr")
    with caplog.at_level(logging.INFO):
        galclust.ingest(manifest, store, tile=TILE)
    assert any("errors estimated from the image" in r.getMessage()
               and "F150W, F277W" in r.getMessage() for r in caplog.records)
    first = galclust.open_cube(store)
    n0, written0 = first.attrs["detection"]["n_sources"], first.attrs["provenance"]["written"]
    assert first["seg"].values[44, 44] == 0

    def seg_key(cube):  # what later stages key the cube's segmentation map by
        entry = cube.attrs["provenance"]["inputs"]["seg"]
        assert entry["made_by"] == "galclust.detect"
        assert cube.attrs["provenance"]["inputs"]["catalog"]["xxh3_128"] == entry["xxh3_128"]
        return entry["xxh3_128"]

    keys = [seg_key(first)]
    # an estimated band's science image changes: that band and the detection are redone
    with fits.open(folder / "F277W_sci.fits", mode="update") as hdul:
        yy, xx = np.mgrid[36:53, 36:53]  # a new bright, PSF-like source at (44, 44)
        hdul[0].data[36:53, 36:53] += 2000.0 * np.exp(-((yy - 44) ** 2 + (xx - 44) ** 2) / 4.5)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        cube, rep = galclust.ingest(manifest, store, report=True)
    assert rep.bands_written == ["F277W"] and rep.detected
    assert any("band F277W: errors estimated" in r.getMessage() for r in caplog.records)
    assert cube.attrs["provenance"]["written"] != written0
    new = int(cube["seg"].values[44, 44])
    cat = open_catalog(store)
    assert new > 0 and np.hypot(*(cat.set_index("id").loc[new, ["x", "y"]] - 44.0)) < 1
    assert cube.attrs["detection"]["n_sources"] == len(cat)
    keys.append(seg_key(cube))
    # only the [detection] options change: no band is rewritten, the detection is redone
    opt = _write_manifest(str(folder), "detect.toml",
                          lambda d: d.update(detection={"nsigma": 4.0, "npixels": 9}))
    cube, rep = galclust.ingest(opt, store, report=True)
    assert rep.bands_written == [] and rep.detected
    det = cube.attrs["detection"]
    assert det["options"]["nsigma"] == 4.0 and det["options"]["npixels"] == 9
    assert det["n_sources"] < n0
    seg = cube["seg"].values
    assert np.unique(seg[seg > 0]).tolist() == list(range(1, det["n_sources"] + 1))
    assert len(open_catalog(store)) == det["n_sources"]
    keys.append(seg_key(cube))
    cube, rep = galclust.ingest(opt, store, report=True)
    assert not rep.changed and seg_key(cube) == keys[-1]
    assert len(set(keys)) == 3


def test_detection_into_an_s3_store(survey, ingested, bucket, s3):
    """The same detection, ids and estimated errors when the cube is in object storage."""
    store, local, _ = ingested
    url = f"{bucket}/fields/field.zarr"
    cube, rep = galclust.ingest(survey.detect_manifest, url, tile=TILE, report=True)
    assert rep.detected and s3.exists(f"{url[5:]}/tables/catalog.parquet")
    for var in ("seg", "err"):
        np.testing.assert_array_equal(cube[var].values, local[var].values)
    pd.testing.assert_frame_equal(open_catalog(url), open_catalog(store))
    assert cube.attrs["noise"] == local.attrs["noise"]
    _, again = galclust.ingest(survey.detect_manifest, url, report=True)
    assert not again.changed


def test_block_estimate_on_no_and_sparse_coverage():
    """A block without coverage stays without; one too sparse for the tiled estimate
    still gets its noise (one robust value), not "no coverage"."""
    from galclust.store.blocks import _estimate_block

    class Info:
        header = {"BITPIX": -32}

    rng = np.random.default_rng(1)
    empty = np.full((128, 384), np.nan, np.float32)
    err, summary = _estimate_block(empty, Info())
    assert np.isinf(err).all() and summary is None
    sparse = np.zeros((128, 384), np.float32)  # 0 = no coverage in a float image
    sparse[:12, :12] = rng.normal(0, 5.0, (12, 12))
    err, summary = _estimate_block(sparse, Info())
    assert np.isnan(err[sparse == 0]).all()  # ingest turns these into +inf
    assert abs(np.median(err[:12, :12]) / 5.0 - 1) < 0.25
    assert "robust standard deviation" in summary["method"]
    full = rng.normal(0, 5.0, (128, 384)).astype(np.float32)
    err, summary = _estimate_block(full, Info())
    assert abs(np.median(err) / 5.0 - 1) < 0.15 and "empty-aperture" in summary["method"]
