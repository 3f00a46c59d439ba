"""The same queries against object storage (moto S3 server) give the same answers."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from galclust.errors import InputError
from galclust.query import Query, to_json
from galclust.query_cli import add_query_parser, cmd_query
from galclust.store.results import RunWriter, open_results

pytestmark = pytest.mark.s3


def _same_answers(local, remote):
    cat = local.catalog
    ids = cat["id"].iloc[[0, 7, 19, len(cat) - 1]].tolist()
    for gid in ids:
        a, b = local.galaxy(gid), remote.galaxy(gid)
        pd.testing.assert_series_equal(a.catalog, b.catalog)
        pd.testing.assert_series_equal(a.pixels, b.pixels)
        pd.testing.assert_series_equal(a.spurious, b.spurious)
        pd.testing.assert_frame_equal(a.composites, b.composites)
        assert a.labels.identical(b.labels)
        np.testing.assert_array_equal(a.cutout.values, b.cutout.values)
        assert a.cutout.coords.to_dataset().identical(b.cutout.coords.to_dataset())
        da, db = json.loads(to_json(a)), json.loads(to_json(b))
        assert {**da, "run": None} == {**db, "run": None}
    row = cat.iloc[len(cat) // 2]
    pd.testing.assert_frame_equal(local.cone(row["ra"], row["dec"], 3.0),
                                  remote.cone(row["ra"], row["dec"], 3.0))
    for crit in ({}, {"n_clusters": (2, 3), "spurious": False}, {"z": (1, 5), "flags": False}):
        pd.testing.assert_frame_equal(local.select(**crit), remote.select(**crit))
    e = local.sky["extent"]
    with pytest.raises(InputError, match="outside survey") as a:
        local.cone(e["ra_max"] + 0.01, e["dec_max"], 3)
    with pytest.raises(InputError, match="outside survey") as b:
        remote.cone(e["ra_max"] + 0.01, e["dec_max"], 3)
    assert str(a.value).split("which covers")[1] == str(b.value).split("which covers")[1]
    assert remote.sky["extent"] == e


def test_queries_on_s3_equal_local(published, s3, bucket):
    name = bucket.removeprefix("s3://")
    s3.put(published.store, f"{name}/field.zarr", recursive=True)
    store = f"{bucket}/field.zarr"
    local = Query(published.results)

    # a run published straight to S3, naming the S3 cube store
    results = f"{bucket}/field-results"
    run_s3 = RunWriter.begin(results, params={"store": store})
    for product, kind in local.results.kinds.items():
        if kind == "table":
            run_s3.write_table(product, local.results.table(product))
        else:
            run_s3.write_dataset(product, local.results.dataset(product).load())
    run_s3.publish()
    remote = Query(results)
    assert remote.store == store and remote.run_id == run_s3.run_id
    _same_answers(local, remote)

    # the local results store copied as is; the cube store given explicitly
    s3.put(published.results, f"{name}/copied-results", recursive=True)
    copied = Query(f"{bucket}/copied-results", store=store)
    assert copied.run_id == local.run_id
    _same_answers(local, copied)

    # the command line reads S3 and writes its answer there
    row = local.catalog.iloc[5]
    out = f"{bucket}/answers/cone.json"
    parser = argparse.ArgumentParser(prog="galclust")
    add_query_parser(parser.add_subparsers(dest="command"))
    assert cmd_query(parser.parse_args([
        "query", "--results", results, "--cone", f"{float(row['ra'])!r},{float(row['dec'])!r},2",
        "--format", "json", "--output", out])) == 0
    got = json.loads(s3.cat_file(out.removeprefix("s3://")))
    assert [r["id"] for r in got] == local.cone(row["ra"], row["dec"], 2)["id"].tolist()
    assert open_results(results).products == local.results.products
