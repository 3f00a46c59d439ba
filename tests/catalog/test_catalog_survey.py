"""run_catalog end to end: results store, schema, catalog order, a distributed cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galclust.catalog.schema import CORE_COLUMNS, TABLE_NAME, spurious_schema
from galclust.errors import InputError


def test_run_catalog_writes_the_results_store(tmp_path, cube, catalog, labels_25, truth):
    import galclust
    from galclust.catalog.survey import run_catalog
    from galclust.store.results import RunWriter

    url = str(tmp_path / "results")
    run = RunWriter.begin(url, params={"step": "catalog"})
    table = run_catalog(cube, catalog, labels_25, run)
    run.publish()
    res = galclust.open_results(url)
    back = res.table(TABLE_NAME)
    back["reason"] = back["reason"].astype(object)  # parquet strings come back as str dtype
    pd.testing.assert_frame_equal(back, table)
    schema = spurious_schema(16, features=[c for c in table.columns if c in (
        "coverage", "zero_fraction", "ridge_m2", "ridge_m6", "stamp_neighbour", "centre_snr",
        "brighter_distance", "brighter_ratio", "spike_score")], positions=True)
    assert list(table.columns) == list(schema)
    assert {c: str(t) for c, t in table.dtypes.items()} == {
        c: str(pd.api.types.pandas_dtype(d)) for c, d in schema.items()}
    assert table["flag"].dtype == "boolean" and table["flag"].notna().all()  # labelled: known
    s = back.attrs["summary"]  # the run summary travels with the stored table
    assert s == table.attrs["summary"] and s["n_labelled"] == len(labels_25)
    lab = labels_25.merge(table[["id", "flag"]], on="id")
    assert s["contradicted_reliable"] == int(((lab["reliable"] == 1) & lab["flag"]).sum())
    assert s["contradicted_spurious"] == int(((lab["reliable"] == 0) & ~lab["flag"]).sum())
    # catalog order, positions carried over
    assert table["id"].tolist() == catalog["id"].tolist()
    np.testing.assert_allclose(table["ra"], catalog["ra"])
    ds = res.dataset("catalog_embedding")
    np.testing.assert_array_equal(ds["id"].values, table["id"])
    np.testing.assert_allclose(ds["linear"].values[:, 3], table["pc_3"])
    comps = res.table("catalog_components")
    assert comps["flagged"].any() and comps["n_labelled"].sum() == pytest.approx(len(labels_25))
    # truly spurious edge-of-data sources have lost coverage; galaxies mostly have not
    t = truth.set_index("id").loc[table["id"]]
    edge = (t["artefact"] == "edge data").to_numpy()
    assert table["coverage"][edge].max() < 0.8
    assert np.median(table["coverage"][(t["kind"] == "galaxy").to_numpy()]) == 1.0


def test_embedding_is_order_independent_of_tiles(cube, catalog, embedded):
    """embed_catalog returns rows in catalog order whatever the tile grouping."""
    from galclust.catalog.survey import embed_catalog

    other = embed_catalog(cube, catalog, tile=128)
    np.testing.assert_array_equal(other.ids, embedded.ids)
    np.testing.assert_allclose(other.coverage, embedded.coverage)
    np.testing.assert_allclose(other.features["spike_score"], embedded.features["spike_score"])
    np.testing.assert_allclose(np.abs(other.embedding.components[:, :3]),
                               np.abs(embedded.embedding.components[:, :3]), rtol=1e-3,
                               atol=1e-3)


def test_same_flags_on_a_distributed_cluster(embedded, labels_25):
    from distributed import Client, LocalCluster

    from galclust.catalog.survey import flag_catalog

    local, _ = flag_catalog(embedded, labels_25)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dist, fitted = flag_catalog(embedded, labels_25, client=client)
    pd.testing.assert_frame_equal(local, dist)
    assert fitted.mixture.calibrated_


def test_tsne_map(embedded, labels_25):
    from galclust.catalog.survey import flag_catalog

    table, fitted = flag_catalog(embedded, labels_25, embedding="tsne", method="mixture")
    assert fitted.map2.shape == (len(table), 2)
    assert not np.allclose(table["map_x"], table["pc_0"])
    assert set(CORE_COLUMNS) <= set(table.columns)


def test_umap_map(embedded, labels_25):
    from galclust.catalog.survey import flag_catalog

    tsne, _ = flag_catalog(embedded, labels_25, embedding="tsne", method="mixture")
    table, fitted = flag_catalog(embedded, labels_25, embedding="umap", method="mixture")
    assert fitted.map2.shape == (len(table), 2) and np.isfinite(fitted.map2).all()
    assert not np.allclose(table["map_x"], table["pc_0"])
    assert not np.allclose(table["map_x"], tsne["map_x"])  # a different map than t-SNE's
    again, _ = flag_catalog(embedded, labels_25, embedding="umap", method="mixture")
    np.testing.assert_allclose(again["map_x"], table["map_x"])  # same seed, same map


def test_run_catalog_refuses_bad_input_before_compute(cube, catalog, labels):
    import dask

    from galclust.catalog.survey import run_catalog

    def no_compute(*args, **kwargs):
        raise AssertionError("computed before validating")

    with dask.config.set(scheduler=no_compute):
        with pytest.raises(InputError, match=r"no column for reliable='reliable'"):
            run_catalog(cube, catalog, labels.rename(columns={"reliable": "good"}))
        with pytest.raises(InputError, match=r"method='gmm' is not one of"):
            run_catalog(cube, catalog, labels, method="gmm")
        with pytest.raises(InputError, match="no column"):
            run_catalog(cube, catalog.drop(columns=["y"]), labels)
