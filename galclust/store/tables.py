"""Reading tables (FITS, CSV, parquet, Excel) and the survey's source catalog."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd

from galclust.argtypes import integer_ids
from galclust.errors import InputError, MissingInputError
from galclust.store.urls import get_fs, is_url, read_bytes

__all__ = ["TABLE_SUFFIXES", "normalise_catalog", "read_id_list", "read_table"]

TABLE_SUFFIXES = {
    ".csv": "csv", ".txt": "csv", ".ecsv": "ecsv", ".parquet": "parquet", ".pq": "parquet",
    ".fits": "fits", ".fit": "fits", ".fits.gz": "fits", ".xlsx": "excel",
}


def _kind(path: str) -> str:
    low = path.lower()
    for suffix in sorted(TABLE_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            return TABLE_SUFFIXES[suffix]
    if is_url(path) and low.rstrip("/").endswith(".parquet"):
        return "parquet"
    raise InputError(
        f"{path}: unknown table format; use one of "
        f"{', '.join(sorted(set(TABLE_SUFFIXES)))} (by file name)."
    )


def read_table(path: str, *, what: str = "table", hdu: int | str | None = None) -> pd.DataFrame:
    """Read a FITS, CSV, ECSV, parquet or Excel table into a DataFrame.

    Parameters
    ----------
    path : str
        Local path or URL; the format is taken from the file name.
    what : str
        What the table is, for error messages (``"source catalog"``).
    hdu : int or str, optional
        For FITS: the table HDU (default: the first one holding a table).

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be parsed.
    """
    kind = _kind(path)
    if kind == "parquet":
        fs, p = get_fs(path)
        if not fs.exists(p):
            raise MissingInputError(f"{what} not found: {path}")
        try:
            return pd.read_parquet(p, filesystem=fs)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise InputError(f"{what} {path}: not a readable parquet file ({exc}).") from None
    raw = read_bytes(path, what=what)
    try:
        if kind == "csv":
            return pd.read_csv(io.BytesIO(raw), comment="#", skipinitialspace=True)
        if kind == "excel":
            return pd.read_excel(io.BytesIO(raw))
        from astropy.table import Table

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "ecsv":
                table = Table.read(raw.decode(), format="ascii.ecsv")
            else:
                table = Table.read(io.BytesIO(raw), format="fits", hdu=hdu)
        names = [n for n in table.colnames if len(table[n].shape) <= 1]
        return table[names].to_pandas()
    except (InputError, MissingInputError):
        raise
    except Exception as exc:
        raise InputError(f"{what} {path}: cannot be read as {kind} ({exc}).") from None


def require_columns(df: pd.DataFrame, columns: dict[str, str], *, what: str, path: str,
                    key: str) -> None:
    """Raise :class:`InputError` if a required column is absent.

    Parameters
    ----------
    df : DataFrame
        The table.
    columns : dict
        Role (``"id"``) -> expected column name.
    what, path : str
        Table description and file, for the message.
    key : str
        The manifest table where the user can rename columns (``"[catalog]"``).
    """
    missing = {role: col for role, col in columns.items() if col not in df.columns}
    if missing:
        have = ", ".join(map(str, df.columns[:40]))
        wanted = ", ".join(f"{role}={col!r}" for role, col in missing.items())
        raise InputError(
            f"{what} {path}: no column for {wanted}. The table has: {have}. "
            f"Name the right columns in the manifest's {key} table "
            f"(e.g. {next(iter(missing))} = \"...\")."
        )


def normalise_catalog(df: pd.DataFrame, *, id: str, ra: str, dec: str,
                      redshift: str | None, path: str) -> pd.DataFrame:
    """Return the catalog with normalised ``id, ra, dec, z`` columns first.

    The original columns are kept (renamed with a ``cat_`` prefix when they
    would clash). Ids must be unique positive integers: the segmentation map
    refers to sources by id.
    """
    roles = {"id": id, "ra": ra, "dec": dec}
    if redshift:
        roles["redshift"] = redshift
    require_columns(df, roles, what="source catalog", path=path, key="[catalog]")
    ids = pd.to_numeric(df[id], errors="coerce")
    if ids.isna().any() or not np.all(np.mod(ids, 1) == 0):
        raise InputError(f"source catalog {path}: column {id!r} must hold integer ids "
                         "(the values of the segmentation map).")
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].astype("int64").unique()[:5].tolist()
        raise InputError(f"source catalog {path}: ids in column {id!r} repeat, e.g. {dup}.")
    if (ids <= 0).any():
        raise InputError(f"source catalog {path}: ids must be > 0 (0 is sky in the "
                         "segmentation map).")
    out = pd.DataFrame({
        "id": ids.astype("int64").to_numpy(),
        "ra": pd.to_numeric(df[ra], errors="coerce").astype("float64").to_numpy(),
        "dec": pd.to_numeric(df[dec], errors="coerce").astype("float64").to_numpy(),
        "z": (pd.to_numeric(df[redshift], errors="coerce").astype("float64").to_numpy()
              if redshift else np.full(len(df), np.nan)),
    })
    for bad in ("ra", "dec"):
        if out[bad].isna().any():
            n = int(out[bad].isna().sum())
            raise InputError(f"source catalog {path}: {n} rows have no numeric value in "
                             f"column {roles[bad]!r}.")
    used = {id, ra, dec} | ({redshift} if redshift else set())
    for col in df.columns:
        if col in used:
            continue
        name = f"cat_{col}" if col in ("id", "ra", "dec", "z", "x", "y") else str(col)
        out[name] = df[col].to_numpy()
    return out


def read_id_list(path: str, *, argument: str = "--ids") -> list[int]:
    """Read a list of integer ids, one per line (``#`` starts a comment), local or ``s3://``.

    Parameters
    ----------
    path : str
        The file.
    argument : str
        The option that named it, for messages.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        Naming the file, the line and the first offending token (never more of
        the file's contents), if a line does not hold one integer id.
    """
    raw = read_bytes(path, what=f"{argument} file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{argument} @{path}: not a text file; give one integer id per "
                         "line.") from None
    ids = []
    for n, line in enumerate(text.splitlines(), 1):
        ids += integer_ids(line.split("#", 1)[0].replace(",", " ").split(),
                           where=f"{argument} @{path}: line {n}",
                           hint="give one integer id per line.")
    if not ids:
        raise InputError(f"{argument} @{path}: the file holds no id; give one integer id per "
                         "line.")
    return ids
