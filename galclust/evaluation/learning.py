"""The learning curve of a classifier: held-out accuracy against training examples.

One stratified hold-out (not k-fold: a CNN fit is costly), then the estimator is
fitted on nested, stratified subsets of the training part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from galclust.errors import InputError
from galclust.evaluation.classify import _scores, _vector

__all__ = ["learning_curve"]


def _take(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def _nested_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation whose every prefix is stratified and, from ``K`` items on,
    holds every class: class members interleaved by rank ``j / n_class``."""
    rank = np.empty(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[rng.permutation(idx)] = np.arange(len(idx)) / len(idx)
    return np.lexsort((rng.random(len(y)), rank))


def learning_curve(estimator: Any, X: Any, y: Any, *,
                   train_sizes: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                   test_size: float = 0.25, random_state: int | None = 0,
                   progress: Callable[[int, int], Any] | Any = None) -> pd.DataFrame:
    """Accuracy against the number of training examples.

    One stratified held-out split (a CNN fit is too costly for k-fold); a clone
    of ``estimator`` is fitted on nested stratified subsets of the training part
    (each contains the smaller ones) and scored on it and on the held-out part.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Cloned (``sklearn.base.clone``) for every fit.
    X : array-like (n, ...)
        Features or cutouts ``(source, band, y, x)``; indexed along axis 0 only.
    y : array-like (n,)
    train_sizes : sequence
        Floats in (0, 1]: fractions of the training part; ints: numbers of examples.
    test_size : float
        Held-out fraction.
    random_state : int, optional
    progress : callable or object, optional
        ``progress.update(1)`` (e.g. :class:`galclust.progress.Progress`) or
        ``progress(done, total)`` after each fit.

    Returns
    -------
    DataFrame
        ``n_train``, ``n_test``, ``train_accuracy``, ``test_accuracy``,
        ``test_balanced_accuracy``, ``seconds`` (of the fit), one row per size.

    Raises
    ------
    InputError
        Lengths differ, a class too small to split, bad ``train_sizes`` or ``test_size``.
    """
    y, X = _vector("y", y), X if hasattr(X, "shape") else np.asarray(X)
    if X.shape[0] != len(y):
        raise InputError(f"X has {X.shape[0]} rows but y has {len(y)}; pass one label per row.")
    if not 0 < test_size < 1:
        raise InputError(f"test_size={test_size!r} must be a fraction in (0, 1).")
    classes = np.unique(y)
    try:
        train, test = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y,
                                       random_state=random_state)
    except ValueError as exc:
        raise InputError(f"y cannot be split with stratification ({exc}); every class needs "
                         "at least 2 examples.") from exc
    sizes = []
    for s in train_sizes:
        integer = isinstance(s, int | np.integer) and not isinstance(s, bool)
        if not integer and not 0 < float(s) <= 1:
            raise InputError(f"train_sizes: {s!r} is neither a fraction in (0, 1] nor a count.")
        sizes.append(min(int(s), len(train)) if integer else int(round(float(s) * len(train))))
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < len(classes):
        raise InputError(f"train_sizes gives {sizes[:1]} training examples, fewer than the "
                         f"{len(classes)} classes; use larger sizes.")
    order = train[_nested_order(y[train], np.random.default_rng(random_state))]
    X_test, y_test = _take(X, np.sort(test)), y[np.sort(test)]
    rows = []
    for i, m in enumerate(sizes):
        sub = np.sort(order[:m])
        X_sub, y_sub = _take(X, sub), y[sub]
        t0 = time.perf_counter()
        model = clone(estimator).fit(X_sub, y_sub)
        seconds = time.perf_counter() - t0
        y_hat = np.asarray(model.predict(X_test))
        sc = _scores(confusion_matrix(y_test, y_hat, labels=classes))
        rows.append({"n_train": m, "n_test": len(test),
                     "train_accuracy": float(np.mean(np.asarray(model.predict(X_sub)) == y_sub)),
                     "test_accuracy": sc["accuracy"],
                     "test_balanced_accuracy": sc["balanced_accuracy"], "seconds": seconds})
        if hasattr(progress, "update"):
            progress.update(1)
        elif progress is not None:
            progress(i + 1, len(sizes))
    return pd.DataFrame(rows).astype({"n_train": "int64", "n_test": "int64"})
