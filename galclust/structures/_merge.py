"""Merging of density structures found in abutting tiles (a deep field run by tiles)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from galclust.errors import InputError

__all__ = ["merge_tile_structures"]


def merge_tile_structures(tiles, shape, *, max_shape_distance: float = 0.1):
    """Merge per-tile structures into one label mosaic.

    Strategy: each tile's ids are offset to be unique; two structures whose
    labelled pixels touch (4-connectivity) across a tile edge, and whose SED
    shapes agree — the L2 distance between their L2-normalised composite fluxes
    is at most ``max_shape_distance`` — become one (union-find, so chains merge).
    A merged row sums fluxes (errors in quadrature), pixels and points, takes the
    point-weighted centroid, the largest significance and the smallest level.
    Tiles must not overlap (cut the mosaic into abutting tiles, or run per
    galaxy footprint instead and skip merging).

    Parameters
    ----------
    tiles : sequence of (int, int, Structures)
        ``(y0, x0, structures)``: each tile's origin in the mosaic and its result.
    shape : (int, int)
        Mosaic shape ``(ny, nx)``.
    max_shape_distance : float
        SED-shape tolerance for merging (0-2).

    Returns
    -------
    labels : numpy.ndarray
        ``(ny, nx)`` int32 mosaic labels (merged ids; 0 none, -1 masked/uncovered).
    table : pandas.DataFrame
        One row per merged structure, the columns of :class:`Structures.table`
        plus ``tile`` (index of the tile of its first part).
    """
    labels = np.full(shape, -1, dtype=np.int64)
    rows, offset = [], 0
    for t, (y0, x0, st) in enumerate(tiles):
        lab = np.asarray(st.labels, dtype=np.int64)
        view = labels[y0:y0 + lab.shape[0], x0:x0 + lab.shape[1]]
        if (view != -1).any():
            raise InputError(f"tile {t} at ({y0}, {x0}) overlaps an earlier tile: give "
                             "abutting, non-overlapping tiles.")
        view[...] = np.where(lab > 0, lab + offset, lab)
        tb = st.table.copy()
        tb["id"] += offset
        tb["parent"] = np.where(tb["parent"] > 0, tb["parent"] + offset, 0)
        tb["tile"] = t
        rows.append(tb)
        offset += int(st.table["id"].max()) if len(st.table) else 0
    if not rows or offset == 0:
        return labels.astype(np.int32), (pd.concat(rows, ignore_index=True) if rows
                                         else pd.DataFrame())
    table = pd.concat(rows, ignore_index=True).set_index("id", drop=False)
    flux_cols = [c for c in table.columns if c.startswith("flux_") and
                 not c.startswith("flux_err_")]
    sed = table[flux_cols].to_numpy(float)
    sed = sed / np.maximum(np.linalg.norm(sed, axis=1, keepdims=True), 1e-300)
    sed_of = dict(zip(table["id"], sed, strict=True))
    tile_of = dict(zip(table["id"], table["tile"], strict=True))
    root = {int(i): int(i) for i in table["id"]}

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        touch = (a > 0) & (b > 0) & (a != b)
        pairs = np.unique(np.column_stack([a[touch], b[touch]]), axis=0)
        for i, j in pairs:
            if tile_of[i] == tile_of[j]:
                continue
            if np.linalg.norm(sed_of[i] - sed_of[j]) <= max_shape_distance:
                root[find(int(i))] = find(int(j))
    new = {i: find(i) for i in root}
    lut = np.arange(offset + 1)
    for i, r in new.items():
        lut[i] = r
    merged = np.where(labels > 0, lut[np.clip(labels, 0, None)], labels)
    table["group"] = [new[int(i)] for i in table["id"]]
    err_cols = [c for c in table.columns if c.startswith("flux_err_")]
    out = []
    for g, part in table.groupby("group", sort=True):
        w = part["n_points"].to_numpy(float)
        w = w / w.sum() if w.sum() > 0 else np.full(len(part), 1 / len(part))
        row = {"id": int(g), "parent": int(lut[int(part["parent"].iloc[0])]),
               "significance": float(part["significance"].max()),
               "n_points": int(part["n_points"].sum()), "n_pixels": int(part["n_pixels"].sum()),
               "x": float((part["x"] * w).sum()), "y": float((part["y"] * w).sum()),
               "level": int(part["level"].min()), "tile": int(part["tile"].iloc[0])}
        row.update({c: float(part[c].sum()) for c in flux_cols})
        row.update({c: float(np.sqrt((part[c] ** 2).sum())) for c in err_cols})
        out.append(row)
    return merged.astype(np.int32), pd.DataFrame(out)
