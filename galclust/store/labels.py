"""Reading an inspection-labels table (CSV, parquet, FITS or Excel), local or ``s3://``.

The table is normalised by :func:`galclust.catalog.labels.normalise_labels`
(pure pandas, usable without any storage): one row per inspected source, its
catalog id, reliable ``1/0`` and, for spurious ones, a reason.
"""

from __future__ import annotations

import pandas as pd

from galclust.catalog.labels import (
    LABEL_COLUMNS,
    check_label_ids,
    normalise_labels,
    parse_reliable,
)
from galclust.store.tables import read_table

__all__ = ["LABEL_COLUMNS", "check_label_ids", "normalise_labels", "parse_reliable",
           "read_labels"]


def read_labels(path: str, *, id: str = "id", reliable: str = "reliable",
                reason: str | None = "reason") -> pd.DataFrame:
    """Read an inspection-labels table (CSV, parquet, FITS or Excel .xlsx).

    Parameters
    ----------
    path : str
        Local path or URL; the format is taken from the file name.
    id, reliable, reason : str
        Column names; ``reason=None`` if the table has no reason column.

    Returns
    -------
    DataFrame
        ``id`` (int64), ``reliable`` (int8, 1 reliable / 0 spurious),
        ``reason`` (str, "" when none).

    Raises
    ------
    MissingInputError
        The file does not exist.
    InputError
        Unreadable file, missing column (naming the columns present), bad ids
        or unrecognised reliable values.
    """
    df = read_table(str(path), what="labels table")
    return normalise_labels(df, id=id, reliable=reliable, reason=reason,
                            what=f"labels table {path}")
