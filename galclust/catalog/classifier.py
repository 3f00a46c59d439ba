"""A supervised alternative to the mixture: a classifier on features + embedding.

:class:`SpuriousClassifier` is trained on the labelled subset only. Its
decision threshold is chosen from out-of-fold probabilities on that subset:
the highest threshold that still recovers ``target_recall`` of the labelled
spurious sources, so that the flagged fraction is as small as the labels
allow for the recall asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from galclust.errors import InputError, check_choice

__all__ = ["ESTIMATORS", "SpuriousClassifier"]

ESTIMATORS = ("forest", "boosting", "logistic")


def _make(kind: str, random_state: int | None, n_jobs: int) -> Any:
    if kind == "forest":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=2,
                                      class_weight="balanced_subsample", n_jobs=n_jobs,
                                      random_state=random_state)
    if kind == "boosting":
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05,
                                              class_weight="balanced",
                                              random_state=random_state)
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced",
                                                              max_iter=2000))


class SpuriousClassifier(ClassifierMixin, BaseEstimator):
    """Spurious / reliable classifier with a recall-targeted threshold.

    Parameters
    ----------
    estimator : {"forest", "boosting", "logistic"}
        Random forest, histogram gradient boosting or logistic regression (all
        class-balanced).
    target_recall : float
        Fraction of labelled spurious sources the threshold must recover out
        of fold.
    n_splits : int
        Cross-validation folds (reduced when few spurious sources are labelled).
    n_jobs : int
        Threads for the forest.
    random_state : int, optional

    Attributes
    ----------
    estimator_ : fitted scikit-learn classifier (on all labelled rows)
    threshold_ : float
        Probability at or above which a source is flagged.
    oof_proba_ : ndarray
        Out-of-fold spurious probabilities of the labelled rows.
    classes_ : ndarray [0, 1]
    """

    def __init__(self, *, estimator: str = "forest", target_recall: float = 0.97,
                 n_splits: int = 5, n_jobs: int = 1, random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.target_recall = target_recall
        self.n_splits = n_splits
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SpuriousClassifier:
        """Fit on labelled rows: ``y`` 1 spurious, 0 reliable (no unlabelled rows).

        Returns
        -------
        self
        """
        check_choice("estimator", self.estimator, ESTIMATORS)
        if not 0 < self.target_recall <= 1:
            raise InputError(f"target_recall={self.target_recall!r} must be in (0, 1].")
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if X.ndim != 2 or len(X) != len(y):
            raise InputError(f"X {X.shape} and y ({len(y)},) do not match.")
        if not np.isin(y, (0, 1)).all():
            raise InputError("y must be 1 (spurious) or 0 (reliable) for every row.")
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        if n_pos == 0 or n_neg == 0:
            raise InputError("the classifier needs labelled spurious and labelled reliable "
                             f"sources; got {n_pos} spurious and {n_neg} reliable.")
        self.classes_ = np.array([0, 1])
        base = _make(self.estimator, self.random_state, self.n_jobs)
        k = int(min(self.n_splits, n_pos, n_neg))
        oof = np.full(len(y), np.nan)
        if k >= 2:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=self.random_state)
            for train, test in folds.split(X, y):
                model = clone(base).fit(X[train], y[train])
                oof[test] = model.predict_proba(X[test])[:, 1]
            pos = np.sort(oof[y == 1])
            # highest threshold keeping at least target_recall of positives above it
            n_keep = int(np.ceil(self.target_recall * len(pos)))
            self.threshold_ = float(pos[len(pos) - n_keep]) if n_keep else 1.0
        else:
            self.threshold_ = 0.5
        self.oof_proba_ = oof
        self.estimator_ = clone(base).fit(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``[[p_reliable, p_spurious]]``."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(np.asarray(X, dtype=np.float64))

    def predict(self, X: Any) -> np.ndarray:
        """1 where the spurious probability reaches ``threshold_``."""
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(np.int64)
