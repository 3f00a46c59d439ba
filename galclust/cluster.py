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
from collections.abc import Iterator, Mapping
from typing import Any

from galclust.errors import GalclustError, InputError, did_you_mean

__all__ = ["CLUSTER_SPEC_KEYS", "ClusterUnavailable", "check_cluster_available", "connect",
           "dask_client", "load_cluster_spec", "make_cluster", "validate_cluster_spec"]

log = logging.getLogger(__name__)

#: Worker processes of the default local cluster.
DEFAULT_WORKERS = 2


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

        kwargs.setdefault("n_workers", n_workers or DEFAULT_WORKERS)
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


# --------------------------------------------------------------------------- cluster specs
#: Keys a cluster spec file may hold (``description`` is for people only).
CLUSTER_SPEC_KEYS = ("address", "cluster_class", "cluster_kwargs", "adapt", "description")
#: The pip package that provides each cluster module, for the error message.
CLUSTER_PACKAGES = {"dask_kubernetes": "dask-kubernetes", "dask_gateway": "dask-gateway",
                    "dask_jobqueue": "dask-jobqueue", "dask_cloudprovider": "dask-cloudprovider"}


# --------------------------------------------------------------------------- cluster specs
def validate_cluster_spec(data: Any, *, source: str = "<memory>") -> dict[str, Any]:
    """Check a cluster spec and return it as keyword arguments of ``dask_client``.

    Parameters
    ----------
    data : mapping
        ``{"address": ...}`` or ``{"cluster_class": ..., "cluster_kwargs": {...}}``,
        optionally with a ``description``.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    dict
        ``address``, ``cluster_class`` and ``cluster_kwargs`` (unused ones None).

    Raises
    ------
    InputError
        On an unknown key (with the closest valid one), on neither or both of
        ``address`` / ``cluster_class``, or on values of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: a cluster spec is a mapping with either 'address' or "
                         f"'cluster_class' (+ 'cluster_kwargs'), not {type(data).__name__}.")
    for key in (k for k in data if k not in CLUSTER_SPEC_KEYS):
        raise InputError(f"{source}: unknown key {key!r} in the cluster spec; valid keys are "
                         f"{', '.join(CLUSTER_SPEC_KEYS)}." + did_you_mean(str(key),
                                                                        CLUSTER_SPEC_KEYS))
    address, cls = data.get("address"), data.get("cluster_class")
    kwargs = data.get("cluster_kwargs")
    adapt = data.get("adapt")
    if adapt is not None and (not isinstance(adapt, Mapping)
                              or not set(adapt) <= {"minimum", "maximum"}):
        raise InputError(f"{source}: 'adapt' must be a mapping with 'minimum' and/or "
                         f"'maximum' workers, not {adapt!r}.")
    if (address is None) == (cls is None):
        raise InputError(f"{source}: give exactly one of 'address' (a running scheduler, "
                         "tcp://host:8786) or 'cluster_class' (a cluster to start), "
                         f"not {'both' if address is not None else 'neither'}.")
    if address is not None:
        if not isinstance(address, str) or not address.strip():
            raise InputError(f"{source}: 'address' must be a scheduler address such as "
                             f"tcp://scheduler:8786, not {address!r}.")
        if kwargs or adapt:
            raise InputError(f"{source}: 'cluster_kwargs' and 'adapt' only apply with "
                             "'cluster_class'; "
                             "remove them or replace 'address' with a 'cluster_class'.")
        return {"address": address.strip(), "cluster_class": None, "cluster_kwargs": None,
                "adapt_kwargs": None}
    if not isinstance(cls, str) or "." not in cls.strip(".") or " " in cls:
        raise InputError(f"{source}: 'cluster_class' must be a dotted path such as "
                         f"distributed.LocalCluster, not {cls!r}.")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InputError(f"{source}: 'cluster_kwargs' must be a mapping of keyword "
                         f"arguments of {cls}, not {type(kwargs).__name__}.")
    bad = [k for k in (kwargs or {}) if not (isinstance(k, str) and k.isidentifier())]
    if bad:
        raise InputError(f"{source}: 'cluster_kwargs' keys must be argument names; "
                         f"{bad[0]!r} is not.")
    return {"address": None, "cluster_class": cls, "cluster_kwargs": dict(kwargs or {}),
            "adapt_kwargs": dict(adapt) if adapt else None}


def load_cluster_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a cluster spec (YAML), local or ``s3://``.

    Parameters
    ----------
    path : str or path-like
        The spec file, e.g. ``deploy/clusters/kubernetes.yaml``.

    Returns
    -------
    dict
        ``address``, ``cluster_class``, ``cluster_kwargs``: usable as
        ``galclust.cluster.dask_client(**spec)``.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it is not YAML or not a valid spec (see :func:`validate_cluster_spec`).
    """
    import yaml

    from galclust.store.urls import read_bytes  # only store/ opens files

    path = os.fspath(path)
    raw = read_bytes(path, what="cluster spec")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({exc}).") from None
    return validate_cluster_spec(data, source=path)


def check_cluster_available(spec: Mapping[str, Any], *, source: str = "cluster spec") -> None:
    """Fail now, not at 3 a.m., if the spec's cluster class cannot be imported here.

    Raises
    ------
    InputError
        Naming the class and the package to install (``pip install dask-kubernetes``).
    """
    import importlib

    cls = spec.get("cluster_class")
    if not cls or cls in ("distributed.LocalCluster", "LocalCluster"):
        return
    module, _, attr = cls.rpartition(".")
    package = CLUSTER_PACKAGES.get(module.split(".")[0], module.split(".")[0])
    try:
        found: bool | None = hasattr(importlib.import_module(module), attr)
    except ImportError:
        found = None
    if found is None:
        raise InputError(f"{source}: cluster_class {cls!r} needs the package {package!r}, "
                         f"which is not installed here: pip install {package}")
    if not found:
        raise InputError(f"{source}: module {module!r} has no class {attr!r}; check "
                         f"'cluster_class' (is {package!r} recent enough?).")
