"""A folder of cutout images made elsewhere -> a (source, band, y, x) array and ids.

One image per source, PNG, JPEG or FITS. The source's catalog id comes from
the file name through a regular expression (its named group ``id`` or its
first group), or from a mapping table with a file-name column and an id
column. PNG/JPEG images become 3 bands (R, G, B; alpha dropped) or 1 band
(grey), scaled to [0, 1] and flipped vertically so that row 0 is the bottom,
as in FITS and in the cube. FITS cutouts may be 2-D (1 band) or 3-D
``(band, y, x)``.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from galclust.errors import GalclustWarning, InputError, MissingInputError
from galclust.store.tables import read_table
from galclust.store.urls import get_fs, is_url, read_bytes

__all__ = ["IMAGE_SUFFIXES", "CutoutFolder", "read_cutout_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".fits", ".fit", ".fits.gz", ".fit.gz")


@dataclass(frozen=True)
class CutoutFolder:
    """Cutouts read from a folder.

    Attributes
    ----------
    cutouts : ndarray, shape (source, band, y, x), float32
    ids : ndarray, shape (source,), int64
    files : list of str
        The file each cutout came from (same order).
    """

    cutouts: np.ndarray
    ids: np.ndarray
    files: list[str]


def _list_images(path: str) -> list[str]:
    fs, root = get_fs(path)
    if not fs.exists(root):
        raise MissingInputError(f"cutout folder not found: {path}")
    if not fs.isdir(root):
        raise InputError(f"cutout folder {path} is a file, not a folder.")
    names = [p for p in fs.ls(root, detail=False)
             if str(p).lower().endswith(IMAGE_SUFFIXES)]
    if not names:
        raise InputError(f"cutout folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} images.")
    base = path.rstrip("/")
    return sorted(f"{base}/{os.path.basename(str(p))}" if is_url(path)
                  else os.path.join(path, os.path.basename(str(p))) for p in names)


def _read_image(url: str, *, hdu: int | str | None) -> np.ndarray:
    raw = read_bytes(url, what="cutout image")
    low = url.lower()
    try:
        if low.endswith((".png", ".jpg", ".jpeg")):
            from PIL import Image

            with Image.open(io.BytesIO(raw)) as im:
                if im.mode in ("L", "I", "I;16", "F", "1"):
                    arr = np.asarray(im.convert("F"), dtype=np.float32)[None]
                    scale = 255.0 if im.mode in ("L", "1") else float(max(arr.max(), 1.0))
                else:
                    arr = np.moveaxis(np.asarray(im.convert("RGB"), dtype=np.float32), -1, 0)
                    scale = 255.0
            return (arr[:, ::-1, :] / scale).astype(np.float32)
        from astropy.io import fits

        with fits.open(io.BytesIO(raw), memmap=False) as hdul:
            if hdu is not None:
                data = hdul[hdu].data
            else:
                data = next((h.data for h in hdul if h.data is not None
                             and getattr(h, "is_image", False) and h.data.ndim in (2, 3)), None)
            if data is None:
                raise InputError(f"cutout image {url}: no 2-D or 3-D image HDU.")
            arr = np.asarray(data, dtype=np.float32)
        return arr[None] if arr.ndim == 2 else arr
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cutout image {url}: cannot be read ({type(exc).__name__}: {exc}).") \
            from None


def _ids_from_names(files: list[str], pattern: str) -> np.ndarray:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"pattern={pattern!r} is not a valid regular expression ({exc}).") \
            from None
    ids, bad = [], []
    for f in files:
        m = rx.search(os.path.basename(f))
        group = None
        if m:
            group = m.group("id") if "id" in rx.groupindex else (m.group(1) if rx.groups else
                                                                  m.group(0))
        try:
            ids.append(int(group))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            bad.append(os.path.basename(f))
    if bad:
        raise InputError(
            f"pattern={pattern!r} finds no integer id in {len(bad)} file names, e.g. "
            f"{bad[:3]}. Pass a pattern whose group 'id' (or first group) matches the id, "
            "or a mapping table of file -> id."
        )
    return np.asarray(ids, dtype=np.int64)


def _ids_from_mapping(files: list[str], mapping: str | Mapping[str, int] | pd.DataFrame,
                      file_column: str, id_column: str) -> np.ndarray:
    if isinstance(mapping, Mapping):
        table = {os.path.basename(str(k)): int(v) for k, v in mapping.items()}
    else:
        df = mapping if isinstance(mapping, pd.DataFrame) else read_table(
            str(mapping), what="cutout mapping table")
        missing = [c for c in (file_column, id_column) if c not in df.columns]
        if missing:
            raise InputError(
                f"cutout mapping table: no column {missing}; it has "
                f"{[str(c) for c in df.columns]}. Pass file_column=... and id_column=...."
            )
        table = {os.path.basename(str(f)): int(i) for f, i in
                 zip(df[file_column], df[id_column], strict=True)}
    names = [os.path.basename(f) for f in files]
    unmapped = [n for n in names if n not in table]
    if unmapped:
        raise InputError(f"cutout mapping table has no id for {len(unmapped)} files, e.g. "
                         f"{unmapped[:3]}; add them or remove the files.")
    return np.asarray([table[n] for n in names], dtype=np.int64)


def read_cutout_folder(path: str, *, pattern: str = r"(\d+)",
                       mapping: str | Mapping[str, int] | pd.DataFrame | None = None,
                       file_column: str = "file", id_column: str = "id",
                       catalog_ids: Iterable[int] | None = None,
                       hdu: int | str | None = None) -> CutoutFolder:
    """Read a folder of per-source cutout images.

    Parameters
    ----------
    path : str
        Folder (local or URL) holding one image per source.
    pattern : str
        Regular expression applied to each file name; the group named ``id``,
        else the first group, else the whole match, is the id (default: the
        first run of digits).
    mapping : str, mapping or DataFrame, optional
        Instead of ``pattern``: a table file (CSV/parquet/FITS/Excel) or
        DataFrame with ``file_column`` and ``id_column``, or a dict file -> id.
    file_column, id_column : str
        Columns of the mapping table.
    catalog_ids : iterable of int, optional
        If given, the ids are checked against the catalog: none matching is an
        error; some not matching is a :class:`GalclustWarning`.
    hdu : int or str, optional
        FITS HDU to read (default: the first 2-D/3-D image).

    Returns
    -------
    CutoutFolder
        ``cutouts`` (source, band, y, x) float32, ``ids``, ``files``.

    Raises
    ------
    InputError
        Images of different sizes or band counts (naming the files), ids that
        cannot be read from a name, repeated ids, or ids matching no catalog
        source.
    """
    files = _list_images(str(path))
    if mapping is not None:
        ids = _ids_from_mapping(files, mapping, file_column, id_column)
    else:
        ids = _ids_from_names(files, pattern)
    if len(np.unique(ids)) != len(ids):
        vals, counts = np.unique(ids, return_counts=True)
        dup = vals[counts > 1][:3].tolist()
        names = [os.path.basename(f) for f, i in zip(files, ids, strict=True) if i in dup][:6]
        raise InputError(f"cutout folder {path}: ids {dup} occur in several files ({names}); "
                         "keep one image per source.")
    if catalog_ids is not None:
        known = np.isin(ids, np.asarray(list(catalog_ids), dtype=np.int64))
        if not known.any():
            raise InputError(
                f"cutout folder {path}: none of the {len(ids)} ids read from the file names "
                f"(e.g. {ids[:3].tolist()}) is in the catalog. Check pattern={pattern!r} or the "
                "mapping table."
            )
        if not known.all():
            warnings.warn(f"cutout folder {path}: {int((~known).sum())} of {len(ids)} images "
                          f"have ids not in the catalog (e.g. {ids[~known][:5].tolist()}).",
                          GalclustWarning, stacklevel=2)
    images = [_read_image(f, hdu=hdu) for f in files]
    shapes: dict[tuple[int, ...], list[str]] = {}
    for f, im in zip(files, images, strict=True):
        shapes.setdefault(im.shape, []).append(os.path.basename(f))
    if len(shapes) > 1:
        parts = sorted(shapes.items(), key=lambda kv: -len(kv[1]))
        text = "; ".join(
            f"{'x'.join(map(str, s[1:]))} px x {s[0]} band(s): {len(names)} files "
            f"(e.g. {', '.join(names[:3])})" for s, names in parts)
        raise InputError(f"cutout folder {path}: the images differ in size — {text}. "
                         "Make every cutout the same size and number of bands.")
    return CutoutFolder(cutouts=np.stack(images).astype(np.float32, copy=False), ids=ids,
                        files=files)
