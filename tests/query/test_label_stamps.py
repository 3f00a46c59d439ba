"""Results.label_stamps: decoded label maps with cube-pixel coordinates, as Query shows them."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.query import Query
from galclust.store.results import open_results


@pytest.fixture(scope="module")
def q(published):
    return Query(published.results)


def test_label_stamps_equal_the_query_labels(q, tables):
    stamps = open_results(q.results.url).label_stamps()
    ids = tables["pixels/stamps"]["id"].to_numpy()
    assert list(stamps) == sorted(ids.tolist()) and len(stamps) >= 30
    for gid in ids[:: max(1, len(ids) // 8)]:  # every ~8th galaxy: each decode is checked
        got, want = stamps[int(gid)], q.galaxy(int(gid)).labels
        assert got.dims == ("y", "x") and got.attrs["id"] == gid
        assert got.dtype == np.int16 and got.values.min() >= -1
        np.testing.assert_array_equal(got.values, want.values)
        np.testing.assert_array_equal(got["y"].values, want["y"].values)
        np.testing.assert_array_equal(got["x"].values, want["x"].values)


def test_label_stamps_of_some_ids_in_id_order(q, tables):
    ids = np.sort(tables["pixels/stamps"]["id"].to_numpy())
    pick = [int(ids[3]), int(ids[0]), 10**9]  # unsorted, one without a stamp
    got = q.results.label_stamps(pick)
    assert list(got) == [int(ids[0]), int(ids[3])]
    row = tables["pixels/stamps"].set_index("id").loc[ids[3]]
    lab = got[int(ids[3])]
    assert lab.shape == (row["ny"], row["nx"])
    assert int(lab["y"][0]) == row["y0"] and int(lab["x"][0]) == row["x0"]
    assert q.results.label_stamps([]) == {}
