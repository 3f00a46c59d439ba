"""Survey mapping: one task per tile, declared schemas, flagged rows instead of failures."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from galclust.errors import InputError
from galclust.pixels import PixelFlag, cluster_galaxy
from galclust.pixels.survey import (
    SCHEMAS,
    decode_labels,
    pixel_tables,
    run_pixels,
    segment_boxes,
)


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("the graph was computed while it was only being built")


@pytest.fixture(scope="module")
def computed(small_cube):
    cube, cat, _ = small_cube
    tables = pixel_tables(cube, cat)
    return tables, tables.compute(scheduler="sync")


def test_tables_follow_the_declared_schemas(computed, small_cube):
    tables, frames = computed
    gal, comp, stamps, fractions, components = frames
    _, cat, _ = small_cube
    for name, df in zip(SCHEMAS, frames, strict=True):
        assert list(df.columns) == list(SCHEMAS[name])
        assert df.dtypes.to_dict() == {k: pd.api.types.pandas_dtype(v)
                                       for k, v in SCHEMAS[name].items()}
        assert getattr(tables, name).dtypes.to_dict() == df.dtypes.to_dict()
    assert sorted(gal["id"]) == sorted(cat["id"]) and tables.n_galaxies == len(cat)
    assert (gal["error"] == "").all() and (gal["flags"] == 0).all()
    assert len(comp) == gal["n_clusters"].sum() * 8
    assert set(stamps["id"]) == set(gal["id"])
    assert fractions.empty and components.empty  # unmix is off by default


def test_one_task_per_tile(computed):
    tables, (gal, *_) = computed
    assert tables.n_tiles == 4 and tables.galaxies.npartitions == 4
    assert gal.groupby("tile")["id"].count().to_dict() == {0: 4, 1: 2, 2: 2, 3: 1}
    graph = dict(tables.galaxies.__dask_graph__())
    tile_tasks = [k for k in graph if "cluster_tile" in str(k)]
    assert len(tile_tasks) == 4


def test_results_equal_cluster_galaxy_on_the_stamp(computed, small_cube):
    _, (gal, comp, stamps, *_) = computed
    cube, _, truths = small_cube
    for row in stamps.itertuples():
        labels = decode_labels(row.labels, row.ny, row.nx)
        sl = (slice(row.y0, row.y0 + row.ny), slice(row.x0, row.x0 + row.nx))
        seg = cube["seg"].values[sl]
        g = gal.set_index("id").loc[row.id]
        # the stage rescaled each band's errors from the sky and recorded the factors
        scale = dict(kv.split("=") for kv in g["err_scale"].split(","))
        factors = np.array([float(scale[str(b)]) for b in cube["band"].values])
        assert len(factors) == cube.sizes["band"] and np.all(factors > 0)
        direct = cluster_galaxy(cube["sci"].values[:, sl[0], sl[1]],
                                cube["err"].values[:, sl[0], sl[1]] * factors[:, None, None]
                                .astype(np.float32), seg == row.id,
                                cube["wavelength"].values)
        np.testing.assert_array_equal(labels, direct.labels)
        assert g["n_clusters"] == direct.n_clusters and g["n_pixels"] == direct.n_pixels
        mine = comp[comp["id"] == row.id].sort_values(["cluster", "wavelength"])
        np.testing.assert_allclose(mine["flux"], direct.composites["flux"].values.ravel())
    single = gal[gal["id"].isin([1000, 1021, 1042])]  # the one-component galaxies
    assert (single["n_clusters"] == 1).all()


def test_building_the_graph_does_not_compute(small_cube):
    cube, cat, _ = small_cube
    boxes = segment_boxes(cube["seg"])
    with dask.config.set(scheduler=_no_compute):
        tables = pixel_tables(cube, cat, boxes=boxes)
    assert tables.n_tiles == 4


def test_pathological_galaxies_become_flagged_rows(cube_factory):
    cube, cat, _ = cube_factory(n_side=2, chunk=41)
    cube = cube.compute()
    cube["sci"][:, :41, :41] = np.nan  # galaxy 1000: all-NaN
    cube["err"][:, :41, :41] = np.inf
    cube["seg"][0, 45] = 77  # galaxy 77: one pixel
    cube["seg"][78:80, 78:80] = 0
    extra = pd.DataFrame([{"id": 77, "ra": 150.0, "dec": 2.0, "x": 45.0, "y": 0.0, "z": 1.0},
                          {"id": 88, "ra": 150.0, "dec": 2.0, "x": 5.0, "y": 5.0, "z": 1.0}])
    cat = pd.concat([cat, extra], ignore_index=True)
    gal, comp, stamps, *_ = pixel_tables(cube.chunk({"y": 41, "x": 41}), cat,
                                     n_clusters=2).compute(scheduler="sync")
    g = gal.set_index("id")
    assert g.loc[1000, "flags"] & PixelFlag.ALL_NAN and g.loc[1000, "n_clusters"] == 0
    # one pixel cannot be split in two: cluster_galaxy refuses, the row says why
    assert g.loc[77, "flags"] == PixelFlag.FAILED
    assert "InputError: n_clusters=2 is larger than the number of pixels" in g.loc[77, "error"]
    assert g.loc[88, "flags"] == PixelFlag.NOT_IN_SEGMENTATION and g.loc[88, "tile"] == -1
    assert (g.loc[[1007, 1014, 1021], "n_clusters"] == 2).all()
    assert set(stamps["id"]) == {1000, 1007, 1014, 1021}


def test_selections(small_cube):
    cube, cat, _ = small_cube
    boxes = segment_boxes(cube["seg"])

    def ids(**kw):
        return sorted(pixel_tables(cube, cat, boxes=boxes, **kw).compute(
            scheduler="sync")[0]["id"])

    assert ids(ids=[1007, 1049]) == [1007, 1049]
    assert ids(box=(0, 50, 0, 50)) == [1000]
    assert ids(cone=(150.0, 2.0, 0.00045 * 3600)) == [1000, 1007, 1021]  # radius in arcsec
    cat2 = cat.assign(z=np.where(cat["id"] < 1020, 1.0, 3.0))
    assert sorted(pixel_tables(cube, cat2, boxes=boxes, z_range=(0.5, 1.5)).compute(
        scheduler="sync")[0]["id"]) == [1000, 1007, 1014]


def test_neighbours_at_the_same_redshift_enlarge_the_footprint(small_cube):
    cube, cat, _ = small_cube
    cube = cube.compute()
    seg = cube["seg"].values.copy()
    seg[(seg == 1000) & (np.arange(seg.shape[1])[None, :] >= 20)] = 5  # split galaxy 1000
    cube = cube.assign(seg=(("y", "x"), seg)).chunk({"y": 82, "x": 82})
    cat = pd.concat([cat, pd.DataFrame([{"id": 5, "ra": 150, "dec": 2, "x": 25.0, "y": 20.0,
                                         "z": 2.01}])], ignore_index=True)
    alone = pixel_tables(cube, cat, ids=[1000]).compute(scheduler="sync")[0]
    joined = pixel_tables(cube, cat, ids=[1000], z_tolerance=0.05,
                          margin=25).compute(scheduler="sync")[0]
    assert joined["n_pixels"].iloc[0] > 1.5 * alone["n_pixels"].iloc[0]


def test_bad_inputs_fail_before_compute(small_cube):
    cube, cat, _ = small_cube
    with pytest.raises(InputError, match="cube has no variable 'seg'"):
        pixel_tables(cube.drop_vars("seg"), cat)
    with pytest.raises(InputError, match=r"catalog lacks column\(s\) \['x'\]"):
        pixel_tables(cube, cat.drop(columns="x"))
    with pytest.raises(InputError, match="Did you mean 'hdbscan'"):
        pixel_tables(cube, cat, method="hdbscn")
    with pytest.raises(InputError, match=r"ids not in the catalog: \[3\]"):
        pixel_tables(cube, cat, ids=[3, 1000])
    with pytest.raises(InputError, match="absent from the segmentation map"):
        pixel_tables(cube, pd.concat([cat, cat.iloc[:1].assign(id=4)]), ids=[4])
    with pytest.raises(InputError, match="box="):
        pixel_tables(cube, cat, box=(0, 1))
    with pytest.raises(InputError, match="unknown option 'n_int'"):
        pixel_tables(cube, cat, n_int=3)


def test_run_pixels_writes_a_published_run(small_cube, tmp_path, computed):
    from galclust.store.results import RunWriter, open_results

    cube, cat, _ = small_cube
    url = str(tmp_path / "results")
    run = RunWriter.begin(url, params={"method": "kmeans"})
    summary = run_pixels(cube, cat, run)
    run.publish()
    assert summary["n_galaxies"] == 9 and summary["n_tiles"] == 4
    res = open_results(url)
    gal = res.table("pixels/galaxies").sort_values("id").reset_index(drop=True)
    want = computed[1][0].sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(gal[["id", "n_clusters", "n_pixels"]],
                                  want[["id", "n_clusters", "n_pixels"]])
    stamps = res.table("pixels/stamps")
    row = stamps.iloc[0]
    assert decode_labels(row["labels"], row["ny"], row["nx"]).max() >= 0
    assert len(res.table("pixels/composites")) == want["n_clusters"].sum() * 8


def test_distributed_scheduler_gives_the_same_tables(small_cube, computed):
    from distributed import Client, LocalCluster

    cube, cat, _ = small_cube
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        gal, *_ = pixel_tables(cube, cat, scheduler=client).compute(scheduler=client)
    pd.testing.assert_frame_equal(gal.sort_values("id").reset_index(drop=True),
                                  computed[1][0].sort_values("id").reset_index(drop=True))


def test_end_to_end_on_an_ingested_synthetic_survey(tmp_path):
    """FITS survey (galclust.synth) -> zarr cube (galclust.ingest) -> pixel tables."""
    from galclust.store.cube import open_catalog
    from galclust.store.ingest import ingest
    from galclust.synth import make_survey

    survey = make_survey(tmp_path / "survey", shape=(256, 256), seed=1)
    cube = ingest(survey.manifest_path, str(tmp_path / "cube.zarr"), tile=128)
    cat = open_catalog(str(tmp_path / "cube.zarr"))
    tables = pixel_tables(cube, cat)
    gal, comp, stamps, *_ = tables.compute()
    assert tables.n_tiles == 4 and sorted(gal["id"]) == sorted(cat["id"])
    assert not (gal["flags"] & int(PixelFlag.FAILED)).any()
    clustered = gal[gal["n_clusters"] > 0]
    assert len(clustered) >= 0.8 * len(gal)
    seg = cube["seg"].values
    for row in stamps.itertuples():
        labels = decode_labels(row.labels, row.ny, row.nx)
        own = seg[row.y0:row.y0 + row.ny, row.x0:row.x0 + row.nx] == row.id
        assert not (labels[~own] >= 0).any()  # labels only inside the galaxy's segment
    assert np.isfinite(comp[["flux", "err", "shape"]].to_numpy()).all()
