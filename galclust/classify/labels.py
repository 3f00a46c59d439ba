"""A table of class labels (id + a label column), checked against a catalog.

Pure pandas: the file is read by :func:`galclust.store.tables.read_table`;
this module only decides what the rows mean. Labels become strings (``1``,
``1.0`` and ``True`` alike become ``"1"``; ``0``/``False`` become ``"0"``), so
a class reads the same in every table, query and picture.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from galclust.classify import defaults
from galclust.errors import InputError, did_you_mean

__all__ = ["POSITIVE", "class_labels", "label_text", "positive_class", "product_name"]

#: Values read as the positive class of a binary label (``--class member`` selects them).
POSITIVE = ("1", "yes", "true", "y", "t", "member")


def label_text(value: Any) -> str:
    """One label as text: integral numbers without a decimal point, booleans as 1/0."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    try:  # "1.0" typed on a command line is the class 1 of a numeric column
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def positive_class(classes: Any) -> Any:
    """The positive class of a binary classification (``1``, ``yes``, ``member`` ...), or
    None (more or fewer than two classes, or no single one reads as positive)."""
    classes = list(classes)
    hits = [c for c in classes if str(c).lower() in POSITIVE]
    return hits[0] if len(classes) == 2 and len(hits) == 1 else None


def product_name(name: str) -> str:
    """A classification's name made safe for a product path (lower case, ``_``)."""
    out = re.sub(r"[^a-z0-9_]+", "_", str(name).strip().lower()).strip("_")
    if not out:
        raise InputError(f"classification name {name!r} has no letter or digit; name it "
                         "with --name.")
    return out


def class_labels(table: pd.DataFrame, column: str, catalog_ids: Any, *,
                 id_column: str = "id", source: str = "labels file",
                 min_examples: int = defaults.MIN_EXAMPLES) -> pd.DataFrame:
    """The labelled sources of a catalog: ``id`` and ``label`` (text), one row per id.

    Rows without a label are dropped (unlabelled sources are classified, not
    trained on).

    Parameters
    ----------
    table : DataFrame
        The labels as read from the file.
    column : str
        The column holding the class.
    catalog_ids : array_like
        Every id of the catalog.
    id_column : str
        The column holding source ids.
    source : str
        What to call the table in messages (its file name).
    min_examples : int
        Fewest examples of each class.

    Raises
    ------
    InputError
        A missing column (listing those present), ids that are not whole
        numbers, ids absent from the catalog (listing them), one id labelled
        twice with different classes, a single class, or too few examples of
        a class.
    """
    cols = [str(c) for c in table.columns]
    for want, what in ((id_column, "id column"), (column, "label column")):
        if want not in cols:
            raise InputError(f"{source}: no {what} {want!r}." + did_you_mean(want, cols)
                             + f" Its columns: {', '.join(cols[:30])}.")
    ids = pd.to_numeric(table[id_column], errors="coerce")
    bad = ids.isna() | (ids != np.floor(ids))
    if bad.any():
        raise InputError(f"{source}: {int(bad.sum())} row(s) have an id that is not a whole "
                         f"number (e.g. {table[id_column][bad].head(3).tolist()}).")
    labels = table[column]
    keep = labels.notna() & (labels.astype(str).str.strip() != "")
    df = pd.DataFrame({"id": ids[keep].astype(np.int64).to_numpy(),
                       "label": [label_text(v) for v in labels[keep]]})
    known = np.isin(df["id"].to_numpy(), np.asarray(catalog_ids, dtype=np.int64))
    if not known.all():
        absent = df["id"][~known].unique()
        raise InputError(f"{source}: {len(absent)} labelled id(s) are not in the catalog: "
                         f"{absent[:20].tolist()}{' ...' if len(absent) > 20 else ''}. Fix the "
                         "ids or label sources of this survey's catalog.")
    per_id = df.groupby("id")["label"].nunique()
    clash = per_id[per_id > 1].index
    if len(clash):
        raise InputError(f"{source}: {len(clash)} id(s) are labelled with different classes "
                         f"(e.g. {clash[:5].tolist()}); keep one label per source.")
    df = df.drop_duplicates("id").sort_values("id").reset_index(drop=True)
    counts = df["label"].value_counts()
    if len(counts) < 2:
        raise InputError(f"{source}: column {column!r} holds a single class "
                         f"({counts.index[0] if len(counts) else 'none'}); a classifier needs "
                         "at least two.")
    few = counts[counts < min_examples]
    if len(few):
        text = ", ".join(f"{k!r}: {v}" for k, v in few.items())
        raise InputError(f"{source}: too few examples of class(es) {text} in column "
                         f"{column!r}; each class needs at least {min_examples}.")
    return df
