"""Dask clusters: a laptop's LocalCluster, a scheduler address, or a cluster class.

A cluster is described as data (as prefect-dask does): either an ``address``
of a running scheduler, or a ``cluster_class`` (dotted path, e.g.
``dask_kubernetes.operator.KubeCluster``) with ``cluster_kwargs``; by default
a :class:`distributed.LocalCluster` of worker processes.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from galclust.errors import GalclustError, InputError

__all__ = ["ClusterUnavailable", "connect", "dask_client", "make_cluster"]

log = logging.getLogger(__name__)


class ClusterUnavailable(GalclustError, ConnectionError):
    """The Dask scheduler named by the configuration does not answer."""


def make_cluster(cluster_class: str | None = None, cluster_kwargs: dict[str, Any] | None = None,
                 *, n_workers: int | None = None,
                 adapt_kwargs: dict[str, Any] | None = None) -> Any:
    """Start a Dask cluster object.

    Parameters
    ----------
    cluster_class : str, optional
        Dotted path of the cluster class (default ``distributed.LocalCluster``).
    cluster_kwargs : dict, optional
        Keyword arguments of the class.
    n_workers : int, optional
        For the default LocalCluster: worker processes (default: 2, one
        thread each, silent logs, no dashboard port clash).
    adapt_kwargs : dict, optional
        ``cluster.adapt(**adapt_kwargs)`` once started (e.g. ``{"minimum": 2,
        "maximum": 20}``): clusters such as dask-gateway's start with no
        workers until scaled.
    """
    kwargs = dict(cluster_kwargs or {})
    if n_workers is not None and (isinstance(n_workers, bool) or int(n_workers) != n_workers
                                  or n_workers < 1):
        raise InputError(f"n_workers={n_workers!r} must be a whole number >= 1 (default 2).")
    if cluster_class in (None, "", "distributed.LocalCluster", "LocalCluster"):
        from distributed import LocalCluster

        kwargs.setdefault("n_workers", n_workers or 2)
        kwargs.setdefault("threads_per_worker", 1)
        kwargs.setdefault("processes", True)
        kwargs.setdefault("dashboard_address", ":0")
        kwargs.setdefault("silence_logs", logging.WARNING)
        return _adapt(LocalCluster(**kwargs), adapt_kwargs)
    module_name, _, attr = cluster_class.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise InputError(
            f"cluster_class={cluster_class!r} cannot be imported; install its package "
            "(e.g. dask-kubernetes or dask-gateway) or give a scheduler address instead."
        ) from None
    return _adapt(cls(**kwargs), adapt_kwargs)


def _adapt(cluster: Any, adapt_kwargs: dict[str, Any] | None) -> Any:
    if adapt_kwargs:
        cluster.adapt(**adapt_kwargs)
    return cluster


def connect(address: str, *, timeout: float = 10.0) -> Any:
    """A :class:`distributed.Client` to a running scheduler at ``address``.

    Raises
    ------
    ClusterUnavailable
        If ``address`` does not answer within ``timeout`` seconds.
    """
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailable(
            f"the Dask scheduler at {address} does not answer ({type(exc).__name__}); "
            "check that it is running and reachable, or leave the address out to start "
            "a local cluster."
        ) from None


@contextlib.contextmanager
def dask_client(address: str | None = None, *, n_workers: int | None = None,
                cluster_class: str | None = None,
                cluster_kwargs: dict[str, Any] | None = None,
                adapt_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
    """Yield a :class:`distributed.Client`; close it, and any cluster it started, after.

    Parameters
    ----------
    address : str, optional
        A running scheduler (``tcp://host:8786``). If not given, a cluster is
        started from ``cluster_class``/``cluster_kwargs`` (default: a local
        cluster of ``n_workers`` processes).
    """
    if address:
        client = connect(address)
        try:
            yield client
        finally:
            client.close()
        return
    from distributed import Client

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    with make_cluster(cluster_class, cluster_kwargs, n_workers=n_workers,
                      adapt_kwargs=adapt_kwargs) as cluster, \
            Client(cluster) as client:
        yield client
