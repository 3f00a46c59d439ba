"""What the flows share: which failures are worth a retry."""

from __future__ import annotations

from typing import Any

from galclust.errors import GalclustError


def _exception(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # a result that cannot be loaded: treat as its error
        return exc
    return result if isinstance(result, BaseException) else None


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry storage and network faults, never bad input.

    Bad input (:class:`galclust.errors.GalclustError`: a malformed manifest, a
    missing bucket, refused credentials) fails the same way every time, so it
    is reported at once; an ``OSError``/``TimeoutError`` from object storage or
    a lost worker may pass.
    """
    exc = _exception(state)
    if isinstance(exc, GalclustError):
        return False
    return isinstance(exc, OSError | TimeoutError | ConnectionError) or exc is None
