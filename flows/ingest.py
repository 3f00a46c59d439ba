"""Prefect flow: ingest a survey's FITS mosaics into a zarr cube store.

One coarse Prefect task; the block reads and chunk writes inside it are a Dask
graph run on the cluster the flow is given (a scheduler address), or on local
threads.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prefect import flow, task

import galclust
from flows.common import retry_transient
from galclust.cluster import dask_client


@task(name="ingest-cube", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def ingest_task(manifest: str, store: str, tile: int | None = None,
                scheduler: str | None = None) -> dict[str, Any]:
    """Ingest ``manifest`` into ``store``; returns the ingest report as a dict."""
    with dask_client(scheduler) if scheduler else contextlib.nullcontext() as client:
        _, rep = galclust.ingest(manifest, store, tile=tile, client=client, report=True)
    return {"store": rep.store, "bands_written": rep.bands_written,
            "seg_written": rep.seg_written, "tables_written": rep.tables_written,
            "bytes_read": rep.bytes_read, "seconds": rep.seconds}


@flow(name="galclust-ingest", log_prints=True)
def ingest_flow(manifest: str, store: str, tile: int | None = None,
                scheduler: str | None = None) -> dict[str, Any]:
    """Ingest a survey (see :func:`galclust.ingest`)."""
    return ingest_task(manifest, store, tile=tile, scheduler=scheduler)
