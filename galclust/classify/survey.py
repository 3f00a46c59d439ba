"""Classification of every catalog source of a survey with Dask (the one Dask module).

Cutouts are cut per spatial tile (:func:`galclust.catalog.survey.survey_cutouts`:
one task per tile of sources), and the fitted :class:`SourceClassifier` is
mapped over those blocks. The model enters the graph once, as one key
(``dask.delayed``), so a cluster sends it to each worker once and every block
on that worker reuses it; a block predicts all its sources in batches. The
training cutouts (labelled sources only) are computed the same way. Every
function given to Dask is module-level.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from galclust.catalog.survey import survey_cutouts
from galclust.classify.estimator import SourceClassifier
from galclust.errors import InputError
from galclust.progress import Progress, compute_counting

__all__ = ["classification_table", "labelled_cutouts", "predict_catalog"]

#: A source whose cutout covers less than this fraction of data is flagged.
MIN_COVERAGE = 0.5


def _catalog_features(catalog: pd.DataFrame, columns: list[str]) -> pd.DataFrame | None:
    if not columns:
        return None
    missing = [c for c in columns if c not in catalog.columns]
    if missing:
        raise InputError(f"catalog has no column(s) {missing} for the feature model; it has "
                         f"{[str(c) for c in catalog.columns][:30]}.")
    return catalog[columns].reset_index(drop=True)


def labelled_cutouts(cube: xr.Dataset, catalog: pd.DataFrame, ids: Any, *, size: int,
                     columns: list[str] | None = None, client: Any = None
                     ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None]:
    """The cutouts (and catalog columns) of the sources ``ids``, in the order of ``ids``.

    Returns
    -------
    stamps : ndarray (source, band, size, size) float32
    coverage : ndarray (source,)
        Fraction of each stamp with data.
    features : DataFrame or None
        ``columns`` of the catalog for those sources.
    """
    ids = np.asarray(ids, dtype=np.int64)
    sub = catalog[catalog["id"].isin(ids)]
    cut = survey_cutouts(cube, sub, size=size)
    stamps, aux = dask.compute(cut.stamps, cut.aux, scheduler=client or "threads")
    pos = pd.Series(np.arange(len(cut.ids)), index=cut.ids).loc[ids].to_numpy()
    feats = _catalog_features(sub.iloc[cut.order[pos]].reset_index(drop=True), columns or [])
    return stamps[pos], aux[pos, 0], feats


def _predict_block(stamps: np.ndarray, model: SourceClassifier,
                   extra: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of one tile's cutouts (a Dask task; the model is one key)."""
    if len(stamps) == 0:
        return np.zeros((0, len(model.classes_)), dtype=np.float32)
    stamps = np.where(np.isfinite(stamps), stamps, 0.0).astype(np.float32)
    features = None
    if extra is not None:
        features = pd.DataFrame(extra, columns=model.extra_columns_)
    return model.predict_proba(stamps, features=features, threads=1).astype(np.float32)


def predict_catalog(cube: xr.Dataset, catalog: pd.DataFrame, model: SourceClassifier, *,
                    size: int, columns: list[str] | None = None, client: Any = None,
                    progress: bool | None = None) -> pd.DataFrame:
    """Class probabilities of every catalog source.

    Parameters
    ----------
    cube : xarray.Dataset
        ``sci`` and ``err`` (band, y, x), dask-backed.
    catalog : DataFrame
        ``id``, ``x``, ``y`` (0-based pixels) and any ``columns``.
    model : SourceClassifier
        Fitted on cutouts of side ``size``.
    size : int
        Cutout side, pixels (the training cutouts' side).
    columns : list of str, optional
        Catalog columns the model was trained with.
    client : distributed.Client, optional
        The cluster to compute on (default: threads here).
    progress : bool, optional
        Show a progress bar (default: on a terminal).

    Returns
    -------
    DataFrame
        In catalog order: ``id``, ``coverage`` and one probability column
        ``p_<class>`` per class.
    """
    if tuple(model.cutout_shape_) != (cube.sizes["band"], size, size):
        raise InputError(f"the model was trained on {model.cutout_shape_} cutouts; this cube "
                         f"gives ({cube.sizes['band']}, {size}, {size}).")
    cut = survey_cutouts(cube, catalog, size=size)
    k = len(model.classes_)
    model_key = dask.delayed(model, pure=True, traverse=False)  # one key: once per worker
    feats = _catalog_features(catalog.iloc[cut.order].reset_index(drop=True), columns or [])
    prefix = f"galclust-classify-{dask.base.tokenize(cut.stamps.name, model_key.key)}"
    blocks, weights, start = [], {}, 0
    for i, (block, n) in enumerate(zip(cut.stamps.to_delayed().ravel(), cut.stamps.chunks[0],
                                       strict=True)):
        extra = None if feats is None else feats.iloc[start:start + n].to_numpy(np.float64)
        key = f"{prefix}-{i}"
        task = dask.delayed(_predict_block, pure=True)(block, model_key, extra,
                                                      dask_key_name=key)
        blocks.append(da.from_delayed(task, shape=(n, k), dtype=np.float32))
        weights[key] = int(n)
        start += n
    with Progress(len(catalog), what="sources", desc="classify", enabled=progress) as bar:
        values, aux = compute_counting([da.concatenate(blocks), cut.aux], weights, bar,
                                       client=client, prefix=prefix)
    out = pd.DataFrame({"id": cut.ids, "coverage": aux[:, 0].astype(np.float64)})
    for j, c in enumerate(model.classes_):
        out[f"p_{c}"] = values[:, j].astype(np.float64)
    back = np.empty(len(cut.order), dtype=np.int64)
    back[cut.order] = np.arange(len(cut.order))
    return out.iloc[back].reset_index(drop=True)


def classification_table(proba: pd.DataFrame, classes: Any, *, model_id: str,
                         labels: pd.DataFrame | None = None,
                         split: dict[int, str] | None = None) -> pd.DataFrame:
    """The published table: id, class, probability, ``p_<class>``, label, split, flag.

    Parameters
    ----------
    proba : DataFrame
        From :func:`predict_catalog`.
    classes : array_like
        The model's classes (the ``p_<class>`` columns' order).
    model_id : str
        Written in every row.
    labels : DataFrame, optional
        ``id``, ``label`` of the labelled sources.
    split : dict, optional
        id -> ``"train"`` or ``"test"`` for labelled sources.
    """
    classes = [str(c) for c in classes]
    p = proba[[f"p_{c}" for c in classes]].to_numpy()
    best = np.argmax(p, axis=1) if len(p) else np.zeros(0, dtype=int)
    out = pd.DataFrame({"id": proba["id"].astype(np.int64),
                        "class": pd.array([classes[i] for i in best], dtype="string"),
                        "probability": p[np.arange(len(p)), best] if len(p) else [],
                        })
    for c in classes:
        out[f"p_{c}"] = proba[f"p_{c}"].to_numpy()
    lab = pd.Series(dtype="string") if labels is None else \
        pd.Series(labels["label"].to_numpy(), index=labels["id"].to_numpy(), dtype="string")
    out["label"] = out["id"].map(lab).astype("string")
    out["split"] = out["id"].map(pd.Series(split or {}, dtype="string")).fillna("") \
        .astype("string")
    low = proba["coverage"].to_numpy() < MIN_COVERAGE
    out["flag"] = pd.array(np.where(low, "low_coverage", ""), dtype="string")
    out["model"] = pd.array([model_id] * len(out), dtype="string")
    return out
