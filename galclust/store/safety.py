"""Where galclust may write: names confined to their store, stores it owns.

Two rules keep a user's files safe:

* **Names are confined.** Run ids and product names match strict patterns
  (:data:`RUN_ID_PATTERN`, :data:`PRODUCT_PATTERN`), checked where they are
  parsed and again, by :func:`run_path`, wherever a path inside a results store
  is built; a name such as ``../../x`` or ``/abs`` never becomes a path.
* **galclust writes only where it owns the place.** :func:`claim_store`
  accepts a store URL that does not exist yet, is an empty folder or prefix,
  or already holds a galclust store *of the same kind* (recognised by its
  marker); anything else is refused, naming what is there. A store may
  neither contain nor lie inside any input file of the survey.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Iterable
from typing import Any

from galclust.errors import InputError, StoreError
from galclust.paths import local_path
from galclust.store.urls import _explain_s3, get_fs, is_url, join, read_bytes

__all__ = [
    "PRODUCT_PATTERN",
    "RUN_ID_PATTERN",
    "check_product_name",
    "check_run_id",
    "claim_store",
    "overlaps",
    "run_path",
    "store_kind",
]

#: A run id: letters, digits, ``_``, ``-`` and single dots, at most 100 characters.
RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
#: A product name: lower-case words of ``a-z0-9_`` joined by ``/`` (``pixels/galaxies``).
PRODUCT_PATTERN = r"[a-z][a-z0-9_]*(?:/[a-z][a-z0-9_]*)*"
_RUN_ID = re.compile(RUN_ID_PATTERN)
_PRODUCT = re.compile(PRODUCT_PATTERN)
_SUFFIXES = (".parquet", ".zarr", ".files")
#: The marker file at the root of a results store.
RESULTS_MARKER = "galclust.json"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def check_run_id(value: Any, *, argument: str = "run") -> str:
    """Return ``value`` if it is a valid run id, else raise naming the allowed form.

    Raises
    ------
    InputError
        For anything but letters, digits, ``_``, ``-`` and single inner dots
        (at most 100 characters), e.g. ``../x`` or ``/abs/path``.
    """
    if not (isinstance(value, str) and len(value) <= 100 and _RUN_ID.fullmatch(value)):
        raise InputError(
            f"{argument}={_shown(value)} is not a run id: a run id is 1-100 letters, digits, "
            "'_', '-' or '.', starting with a letter or digit, with no '/' and no '..' "
            "(e.g. 20261201T031500Z-a1b2c3)."
        )
    return value


def check_product_name(value: Any, *, argument: str = "product") -> str:
    """Return ``value`` if it is a valid product name (``pixels/galaxies``), else raise."""
    if not (isinstance(value, str) and len(value) <= 200 and _PRODUCT.fullmatch(value)):
        raise InputError(
            f"{argument}={_shown(value)} is not a product name: lower-case words of letters, "
            "digits and '_', joined by '/' (e.g. pixels/galaxies)."
        )
    return value


_FILE_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9]+)?")


def check_file_name(value: Any, *, argument: str = "file name") -> str:
    """Return ``value`` if it is a plain file name of a ``files`` product (``model.pkl``)."""
    if not (isinstance(value, str) and len(value) <= 100 and _FILE_NAME.fullmatch(value)):
        raise InputError(f"{argument}={_shown(value)} is not a file name of a product: lower-case "
                         "letters, digits and '_', with one extension (e.g. model.json).")
    return value


def run_path(run_id: str, *parts: str) -> str:
    """The path, relative to a results store, of ``runs/<run_id>/<parts...>``.

    The one place a path inside a results store is built: ``run_id`` is
    checked again, and every part must be a plain relative name.

    Raises
    ------
    InputError
        If ``run_id`` or a part could leave the run's prefix.
    """
    check_run_id(run_id)
    for part in parts:
        pieces = str(part).split("/")
        if not part or str(part).startswith("/") or any(p in ("", ".", "..") for p in pieces):
            raise InputError(f"{_shown(part)} is not a path inside run {run_id}: give a "
                             "relative name without '.', '..' or empty parts.")
    return posixpath.join("runs", run_id, *parts)


def check_product_path(rel: Any, *, where: str) -> str:
    """Check a product's stored relative path (``runs/<id>/<name>.parquet``) from ``where``.

    Raises
    ------
    StoreError
        If the path would leave the results store (a tampered ``run.json``).
    """
    ok = isinstance(rel, str)
    if ok:
        pieces = rel.split("/")
        ok = (len(pieces) >= 3 and pieces[0] == "runs" and bool(_RUN_ID.fullmatch(pieces[1]))
              and rel.endswith(_SUFFIXES)
              and bool(_PRODUCT.fullmatch("/".join(pieces[2:]).rsplit(".", 1)[0])))
    if not ok:
        raise StoreError(f"{where}: product path {_shown(rel)} does not lie inside the results "
                         "store (expected runs/<run id>/<product>.parquet, .zarr or .files); the file "
                         "was not written by galclust or was edited.")
    return rel


# --------------------------------------------------------------------------- overlap
def _canonical(url: str) -> str:
    url = local_path(url)
    if is_url(url):
        scheme, rest = url.split("://", 1)
        rest = posixpath.normpath("/" + rest).lstrip("/")
        return f"{scheme.lower()}://{rest}"
    return os.path.realpath(os.path.abspath(os.path.expanduser(url)))


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def overlaps(store: str, inputs: Iterable[str]) -> list[str]:
    """The inputs that ``store`` contains or lies inside (empty when none)."""
    s = _canonical(store)
    return [i for i in inputs if i and (_inside(_canonical(i), s) or _inside(s, _canonical(i)))]


# --------------------------------------------------------------------------- ownership
def _listing(url: str) -> list[str] | None:
    """Names at ``url`` (a folder or prefix); None if nothing is there; ``[]`` if empty."""
    fs, path = get_fs(url)
    if not is_url(url):
        if not os.path.lexists(path):
            return None
        if not os.path.isdir(path):
            raise StoreError(f"{url}: this is a file, not a folder; give a store folder that "
                             "does not exist yet (galclust creates it).")
        return sorted(os.listdir(path))
    try:
        fs.invalidate_cache(path)
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return None
    except Exception as exc:  # refused credentials, unreachable endpoint: say which
        raise _explain_s3(url, exc) from None
    names = sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
    if names == [path.rstrip("/").rsplit("/", 1)[-1]] and fs.isfile(path):
        raise StoreError(f"{url}: this is an object, not a prefix; give a store prefix that "
                         "does not exist yet (galclust creates it).")
    return names


def _json_at(url: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(read_bytes(url, what="store metadata").decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def store_kind(url: str, names: list[str] | None = None) -> str | None:
    """``"cube"``, ``"results"`` or None: which galclust store, if any, is at ``url``.

    A cube store is a zarr group whose attributes carry ``galclust_store:
    "cube"`` (or, for stores of galclust < 0.2, ``ingest_status``); a results
    store has the marker ``galclust.json`` (or, before 0.2, ``latest.json``).
    """
    names = _listing(url) if names is None else names
    if not names:
        return None
    if RESULTS_MARKER in names:
        doc = _json_at(join(url, RESULTS_MARKER)) or {}
        if doc.get("galclust_store") == "results":
            return "results"
    if "zarr.json" in names:
        attrs = (_json_at(join(url, "zarr.json")) or {}).get("attributes", {})
        if isinstance(attrs, dict) and (attrs.get("galclust_store") == "cube"
                                        or "ingest_status" in attrs):
            return "cube"
    if "latest.json" in names and "runs" in names:
        return "results"
    return None


_HOW = {"cube": "`galclust ingest`", "results": "a galclust run"}


def claim_store(url: str, kind: str, *, inputs: Iterable[str] = (),
                argument: str = "store") -> str:
    """Check that galclust may write a ``kind`` store at ``url``; return its state.

    Parameters
    ----------
    url : str
        The store: a local folder or ``s3://bucket/prefix``.
    kind : {"cube", "results"}
        The kind of store about to be written.
    inputs : iterable of str
        Input files (the survey manifest and everything it names): the store
        may neither contain nor lie inside any of them.
    argument : str
        The option's name, for messages (``store``, ``results``).

    Returns
    -------
    str
        ``"new"`` (nothing there, or an empty folder/prefix) or ``"existing"``
        (a galclust store of this kind).

    Raises
    ------
    StoreError
        If the location holds anything else (its first entries are named), a
        galclust store of another kind, or an input of the survey.
    """
    clash = overlaps(url, inputs)
    if clash:
        raise StoreError(
            f"{argument} {url} would hold or lie inside input {clash[0]}"
            + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else "")
            + "; galclust never writes over its inputs. Give a store outside the survey's "
            "files, e.g. a new folder beside them (survey/field.zarr is fine, survey/ is not).")
    names = _listing(url)
    if not names:
        return "new"
    found = store_kind(url, names)
    if found == kind:
        return "existing"
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
    if found is not None:
        raise StoreError(f"{argument} {url} is a galclust {found} store, not a {kind} store; "
                         f"give another location for the {kind} store.")
    raise StoreError(
        f"{argument} {url} already exists and is not a galclust {kind} store (it holds: "
        f"{shown}); galclust writes only into a new or empty location, or into a store "
        f"{_HOW[kind]} made. Give a new folder or prefix.")
