"""What a location string is: a local path or a URL. The one definition of galclust.

Dependency-free (no fsspec), so :mod:`galclust.config` can import it at module
import time; :mod:`galclust.store.urls` re-exports :func:`is_url` and
:func:`join` next to the functions that open what they name.

``file://`` means a local path: ``file:///data/survey.toml`` is
``/data/survey.toml`` (and ``file://rel/x`` is the relative path ``rel/x``, as
fsspec reads it). Every other ``scheme://`` (``s3://``, ``memory://``, ...) is
a URL.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["FILE_SCHEME", "is_url", "join", "local_path"]

#: The scheme of a local path written as a URL.
FILE_SCHEME = "file://"


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL of a remote or in-memory store.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    bool
        True for ``scheme://...`` (``s3://``, ``memory://``, ...); False for
        local paths, including ``file://`` ones (see :func:`local_path`).
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return "://" in text and not text.startswith(FILE_SCHEME)


def local_path(path: Any) -> str:
    """``path`` as a string, with a leading ``file://`` removed.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        ``"file:///a/b"`` -> ``"/a/b"``; URLs and plain paths unchanged.
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return text[len(FILE_SCHEME):] if text.startswith(FILE_SCHEME) else text


def join(base: str, *parts: str) -> str:
    """Join components with ``/`` for a URL, with :func:`os.path.join` for a local path.

    Parameters
    ----------
    base : str
        A local path (``file://`` included) or a URL.
    *parts : str
        Components; for a URL, their leading and trailing ``/`` are dropped.

    Returns
    -------
    str
    """
    if is_url(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return os.path.join(base, *parts)
