"""File names and titles of pictures: which galaxy, which method and options, which run.

Runs made with different methods or options never overwrite one another's
pictures, and a picture found on its own says what made it::

    >>> opts = {"method": "kmeans", "normalize": "l2", "metric": "euclidean", "n_clusters": 3}
    >>> picture_stem("galaxy-1042", options=opts, run_id="20261201T031500Z-a1b2c3")
    'galaxy-1042_kmeans-l2-euclidean-k3_run-20261201T031500Z-a1b2c3'
    >>> picture_title("galaxy 1042", options=opts, run_id="20261201T031500Z-a1b2c3")
    'galaxy 1042 — kmeans, l2, euclidean, k=3 — run 20261201T031500Z-a1b2c3'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PIXEL_OPTIONS", "options_tag", "options_text", "picture_stem", "picture_title",
           "pixel_options"]

#: Pixel-clustering options a picture names, in this order.
PIXEL_OPTIONS = ("method", "normalize", "metric", "n_clusters")
_UNSAFE = re.compile(r"[^A-Za-z0-9.+=]+")


def _present(options: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """Items of ``options`` that hold a value (not None, NaN or missing)."""
    out = []
    for k, v in (options or {}).items():
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        if not missing and str(v) not in ("", "<NA>", "nan"):
            out.append((str(k), v))
    return out


def pixel_options(source: Mapping[str, Any] | Any,
                  n_clusters: Any = None) -> dict[str, Any]:
    """The :data:`PIXEL_OPTIONS` held by ``source`` (a params dict or a ``pixels/galaxies`` row).

    Parameters
    ----------
    source : mapping or pandas.Series or None
        None: no options.
    n_clusters : optional
        Overrides ``source["n_clusters"]`` (e.g. the requested ``"auto"``).

    Returns
    -------
    dict
        In :data:`PIXEL_OPTIONS` order, without the absent ones.
    """
    got = {} if source is None else {k: source.get(k) for k in PIXEL_OPTIONS if k in source}
    if n_clusters is not None:
        got["n_clusters"] = n_clusters
    return dict(_present(got))


def _word(key: str, value: Any, *, title: bool) -> str:
    if key == "n_clusters":
        return f"k={value}" if title else f"k{value}"
    if isinstance(value, str):
        return value
    return f"{key}={value}" if title else f"{key}{value}"


def options_tag(options: Mapping[str, Any] | None) -> str:
    """File-name part: the option values joined by ``-``, ``n_clusters`` as ``k3``."""
    words = (_word(k, v, title=False) for k, v in _present(options))
    return "-".join(_UNSAFE.sub("-", w).strip("-") for w in words)


def options_text(options: Mapping[str, Any] | None) -> str:
    """Title part: the option values joined by ``, ``, ``n_clusters`` as ``k=3``."""
    return ", ".join(_word(k, v, title=True) for k, v in _present(options))


def picture_stem(subject: str, *, options: Mapping[str, Any] | None = None,
                 run_id: str | None = None, kind: str | None = None) -> str:
    """A file name without suffix: ``<subject>_<options>_run-<run_id>[_<kind>]``.

    Parameters
    ----------
    subject : str
        What is drawn, e.g. ``"galaxy-1042"`` or ``"embedding"``.
    options : mapping, optional
        Method and options, in the order to name them (None values skipped).
    run_id : str, optional
    kind : str, optional
        Which picture of the subject, e.g. ``"labels"``.

    Returns
    -------
    str
        Just ``subject`` (plus ``kind``) when neither options nor run are given.
    """
    parts = [_UNSAFE.sub("-", subject), options_tag(options),
             f"run-{_UNSAFE.sub('-', run_id)}" if run_id else "", kind or ""]
    return "_".join(p for p in parts if p)


def picture_title(subject: str, *, options: Mapping[str, Any] | None = None,
                  run_id: str | None = None, notes: Sequence[str] = ()) -> str:
    """A title: ``subject — options — run <run_id> — notes`` (absent parts left out)."""
    parts = [subject, options_text(options), f"run {run_id}" if run_id else "", *notes]
    return " — ".join(p for p in parts if p)
