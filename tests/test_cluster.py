"""Dask clusters described as data: adaptive scaling of a cluster that starts empty."""

from __future__ import annotations

import dask.array as da

from galclust.cluster import dask_client


def test_a_cluster_that_starts_without_workers_is_adapted_and_computes():
    # Like a dask-gateway cluster: no workers until scaled.
    with dask_client(cluster_class="distributed.LocalCluster",
                     cluster_kwargs={"n_workers": 0, "processes": False,
                                     "dashboard_address": None},
                     adapt_kwargs={"minimum": 1, "maximum": 2}) as client:
        client.wait_for_workers(1, timeout=60)
        assert da.ones((100, 100), chunks=10).sum().compute() == 10_000
