"""Inspection labels: which sources a person judged reliable or spurious, and why.

A labels table (CSV, parquet, FITS or Excel) has one row per inspected
source: its catalog id, whether it is reliable (``1/0``, ``True/False``,
``yes/no``, ...) and, for spurious ones, a reason ("diffraction spike", "edge
data", "close to another source", ...). :func:`normalise_labels` normalises
an in-memory DataFrame (:func:`galclust.store.labels.read_labels` reads a file); :func:`check_label_ids` reports labelled ids that are not in the
catalog instead of dropping them silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from galclust.errors import GalclustWarning, InputError

__all__ = ["LABEL_COLUMNS", "check_label_ids", "normalise_labels", "parse_reliable"]

#: Normalised labels table: column -> dtype.
LABEL_COLUMNS = {"id": "int64", "reliable": "int8", "reason": "object"}

_TRUE = {"1", "1.0", "true", "t", "yes", "y", "reliable", "real", "good", "ok"}
_FALSE = {"0", "0.0", "false", "f", "no", "n", "unreliable", "spurious", "bad", "artefact",
          "artifact"}


def _text(v: object) -> str:
    """str of a value; bytes (FITS string columns) decoded."""
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)


def parse_reliable(values: Iterable[object], *, column: str = "reliable",
                   what: str = "labels") -> np.ndarray:
    """Turn common spellings of a reliable flag into 1 (reliable) / 0 (spurious).

    Accepts 1/0 (ints, floats, strings), booleans and, case-insensitively,
    true/false, yes/no, y/n, t/f, reliable/spurious, good/bad.

    Parameters
    ----------
    values : iterable
        The column's values.
    column, what : str
        Column name and table description for the error message.

    Returns
    -------
    ndarray of int8

    Raises
    ------
    InputError
        Naming the unrecognised values (and blanks).
    """
    out = []
    bad: list[object] = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            out.append(int(bool(v)))
            continue
        if v is None or (isinstance(v, float) and np.isnan(v)):
            bad.append("<blank>")
            out.append(-1)
            continue
        s = _text(v).strip().lower()
        if s in _TRUE:
            out.append(1)
        elif s in _FALSE:
            out.append(0)
        else:
            bad.append(v)
            out.append(-1)
    if bad:
        uniq = list(dict.fromkeys(map(str, bad)))[:5]
        raise InputError(
            f"{what}: column {column!r} must say whether each source is reliable (1/0, "
            f"True/False or yes/no); {len(bad)} rows hold something else, e.g. {uniq}. "
            "Fix or remove those rows."
        )
    return np.asarray(out, dtype=np.int8)


def normalise_labels(df: pd.DataFrame, *, id: str = "id", reliable: str = "reliable",
                     reason: str | None = "reason", what: str = "labels table") -> pd.DataFrame:
    """Normalise a labels DataFrame to ``id`` (int64), ``reliable`` (0/1), ``reason`` (str).

    Parameters
    ----------
    df : DataFrame
        The table as read.
    id, reliable, reason : str
        Its column names; ``reason=None`` when the table has no reasons (all
        reasons become "").
    what : str
        Description (file name) for error messages.

    Returns
    -------
    DataFrame
        Columns :data:`LABEL_COLUMNS`; reasons stripped, "" for reliable sources
        and blanks.

    Raises
    ------
    InputError
        A required column is missing (the message lists the columns the table
        has), ids are not integers or repeat, or a reliable value is not
        recognised.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what}: labels must be a pandas DataFrame with columns id, reliable, "
                         f"reason; got {type(df).__name__}.")
    wanted = {"id": id, "reliable": reliable}
    if reason is not None:
        wanted["reason"] = reason
    missing = {role: col for role, col in wanted.items() if col not in df.columns}
    if missing:
        have = ", ".join(map(repr, map(str, df.columns[:40]))) or "(none)"
        roles = ", ".join(f"{role}={col!r}" for role, col in missing.items())
        hint = " (or reason=None if it has no reasons)" if "reason" in missing else ""
        raise InputError(
            f"{what}: no column for {roles}. The table has: {have}. Pass the right "
            f"names, e.g. read_labels(path, id=..., reliable=..., reason=...){hint}."
        )
    ids = pd.to_numeric(df[id], errors="coerce")
    if ids.isna().any() or not np.all(np.mod(ids.to_numpy(dtype=float), 1) == 0):
        bad = df.loc[ids.isna() | (np.mod(ids.fillna(0), 1) != 0), id].head(5).tolist()
        raise InputError(f"{what}: column {id!r} must hold integer catalog ids; "
                         f"found e.g. {bad}.")
    ids = ids.astype("int64")
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].unique()[:5].tolist()
        raise InputError(f"{what}: ids in column {id!r} repeat, e.g. {dup}; keep one row "
                         "per inspected source.")
    rel = parse_reliable(df[reliable].tolist(), column=reliable, what=what)
    if reason is None:
        reasons = np.full(len(df), "", dtype=object)
    else:
        reasons = df[reason].astype(object).where(df[reason].notna(), "")
        reasons = np.asarray([_text(r).strip() for r in reasons], dtype=object)
    reasons[rel == 1] = ""
    return pd.DataFrame({"id": ids.to_numpy(), "reliable": rel,
                         "reason": pd.Series(reasons, dtype=object)})


def check_label_ids(labels: pd.DataFrame, catalog_ids: Iterable[int], *,
                    what: str = "labels") -> list[int]:
    """Report labelled ids that are not in the catalog.

    Parameters
    ----------
    labels : DataFrame
        With an ``id`` column.
    catalog_ids : iterable of int
        The catalog's ids.
    what : str
        Description for the warning.

    Returns
    -------
    list of int
        The labelled ids missing from the catalog (empty if none).

    Warns
    -----
    GalclustWarning
        If any are missing: how many, and the first few. They cannot inform
        the model (there is no cutout for them); nothing is dropped silently.
    """
    ids = pd.to_numeric(labels["id"], errors="coerce").dropna().astype("int64").to_numpy()
    known = np.asarray(list(catalog_ids), dtype=np.int64)
    missing = ids[~np.isin(ids, known)]
    out = [int(i) for i in missing]
    if out:
        warnings.warn(
            f"{what}: {len(out)} of {len(ids)} labelled ids are not in the catalog "
            f"(first few: {out[:5]}); they have no cutout and cannot calibrate the model. "
            "Check that the labels belong to this catalog.",
            GalclustWarning, stacklevel=2,
        )
    return out
