"""Progress of a long stage: items done of total, rate and time left.

:func:`compute_counting` computes a Dask graph and counts, as each weighted task
finishes, its weight (the galaxies of a tile) done: with a scheduler callback on
threads, with a scheduler plugin on a cluster.

On a terminal a tqdm bar (on stderr); otherwise, and always in the log of
``galclust.progress`` (which a Prefect run shows when ``PREFECT_LOGGING_EXTRA_LOGGERS``
includes ``galclust``, as the command line sets it), a line at every tenth of
the work. Quiet (``enabled=False``) prints nothing and still logs at DEBUG.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import dask
from dask.callbacks import Callback
from distributed.diagnostics.plugin import SchedulerPlugin

__all__ = ["Progress", "TaskCounter", "compute_counting"]

log = logging.getLogger("galclust.progress")


class Progress:
    """Count items (galaxies, sources) done of ``total``.

    Parameters
    ----------
    total : int
        Items to do.
    what : str
        Their name, plural (``"galaxies"``).
    desc : str
        What is being done (``"pixels"``), for the bar and the log.
    enabled : bool
        Show a bar on a terminal (default: when stderr is one).
    """

    def __init__(self, total: int, *, what: str, desc: str, enabled: bool | None = None):
        self.total, self.what, self.desc = int(total), what, desc
        self.done = 0
        self.t0 = time.perf_counter()
        self._next_log = 0.1
        show = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        if show and self.total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=f" {what}",
                             file=sys.stderr, leave=False, dynamic_ncols=True)

    @property
    def rate(self) -> float:
        """Items per second so far."""
        return self.done / max(time.perf_counter() - self.t0, 1e-9)

    @property
    def eta(self) -> float:
        """Seconds left at the rate so far (inf before the first item)."""
        return (self.total - self.done) / self.rate if self.done else float("inf")

    def update(self, n: int) -> None:
        """``n`` more items are done."""
        if n <= 0:
            return
        self.done = min(self.total, self.done + int(n))
        if self._bar is not None:
            self._bar.update(n)
        frac = self.done / self.total if self.total else 1.0
        if frac >= self._next_log or self.done == self.total:
            log.info("%s: %d of %d %s done (%.0f%%), %.1f %s/s, %s left", self.desc,
                     self.done, self.total, self.what, 100 * frac, self.rate, self.what,
                     _duration(self.eta))
            while self._next_log <= frac:
                self._next_log += 0.1

    def close(self) -> None:
        """Remove the bar (the log keeps the record)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- Dask
class _CountTasks(Callback):
    """Threads: report each finished weighted task to a :class:`Progress`."""

    def __init__(self, weights: dict[str, int], progress: Progress) -> None:
        super().__init__()
        self.weights, self.progress = weights, progress

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
        self.progress.update(self.weights.get(key, 0))


def compute_counting(collections: list[Any], weights: dict[str, int], progress: Progress, *,
                     client: Any = None, prefix: str = "", poll: float = 0.5) -> list[Any]:
    """Compute ``collections``; as each task named in ``weights`` finishes, count its
    weight (e.g. the galaxies of a tile) done. Threads when ``client`` is None; on a
    cluster a scheduler plugin records the finished keys starting with ``prefix``
    and is polled every ``poll`` seconds."""
    if client is None:
        with _CountTasks(weights, progress):
            return list(dask.compute(*collections))
    name = f"galclust-progress-{uuid.uuid4().hex[:8]}"
    client.register_plugin(TaskCounter(prefix), name=name)
    seen: set[str] = set()
    try:
        futures = client.compute(collections)
        while True:
            finished = all(f.done() for f in futures)
            for key in client.run_on_scheduler(_drain_counter, name=name):
                if key in weights and key not in seen:  # a rerun after a lost worker: once
                    seen.add(key)
                    progress.update(weights[key])
            if finished:
                break
            time.sleep(poll)
        return client.gather(futures)
    finally:
        client.unregister_scheduler_plugin(name)


class TaskCounter(SchedulerPlugin):
    """On the scheduler: the keys starting with ``prefix`` that reached memory."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.finished: list[str] = []

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory" and str(key).startswith(self.prefix):
            self.finished.append(str(key))


def _drain_counter(dask_scheduler: Any, name: str) -> list[str]:
    """Run on the scheduler: the keys a :class:`TaskCounter` saw since the last call."""
    plugin = dask_scheduler.plugins[name]
    out, plugin.finished = plugin.finished, []
    return out
