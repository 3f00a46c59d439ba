"""The spurious-source model: a Gaussian mixture calibrated on inspection labels.

:class:`SpuriousModel` fits a Gaussian mixture to an embedding of the whole
catalog (labelled or not), then measures in each mixture component the
fraction of its *labelled* members that are spurious, shrunk towards the
overall labelled spurious fraction ``pi0`` so that a component holding one
labelled source is not called 100% spurious::

    f_k = (s_k + a * pi0_k) / (n_k + a)

where ``n_k`` and ``s_k`` are the responsibility-weighted counts of labelled
and labelled-spurious sources in component ``k``, ``a`` is ``prior_strength``
and ``pi0_k`` the spurious fraction among the labelled sources nearest the
component (so a small component that no labelled source falls in inherits
the verdict of its surroundings). Components with ``f_k >= threshold`` are flagged; a
source's spurious probability is ``p_i = sum_k r_ik f_k`` (its posterior
responsibilities ``r_ik``), and its most likely reason the labelled reason
carrying most spurious weight in its components.

:func:`flag_spurious` is the public one-call API from cutouts to a per-source
table; its pipeline lives in :mod:`galclust.catalog.pipeline`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from galclust.errors import InputError, check_choice

__all__ = ["MIN_LABELS", "SpuriousModel", "bic_grid"]

#: Fewest labelled sources of *each* class (reliable, spurious) the model needs
#: to say anything: with fewer, every shrunk fraction is ~ the labelled
#: fraction (e.g. 0.5 for 2 of 4), so every source would be flagged alike.
MIN_LABELS = 2


def _as_labels(y: Any, n: int) -> np.ndarray:
    if y is None:
        return np.full(n, -1, dtype=np.int8)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != n:
        raise InputError(f"y has {len(y)} values for {n} sources.")
    y = np.where(np.isfinite(y), y, -1).astype(np.int8)
    bad = ~np.isin(y, (-1, 0, 1))
    if bad.any():
        raise InputError("y must be 1 (spurious), 0 (reliable) or -1 (unlabelled); found "
                         f"{np.unique(y[bad]).tolist()}.")
    return y


def bic_grid(top: int) -> list[int]:
    """Candidate component counts for the BIC search: 1-4, then ~25% steps to ``top``."""
    grid = set(range(1, min(top, 4) + 1))
    k = 4.0
    while k < top:
        k *= 1.25
        grid.add(min(int(round(k)), top))
    return sorted(grid)


class SpuriousModel(ClassifierMixin, BaseEstimator):
    """Gaussian mixture over an embedding, calibrated on a labelled subset.

    Parameters
    ----------
    n_components : int or "bic"
        Mixture components, or ``"bic"`` to choose between 1 and
        ``max_components`` by the Bayesian information criterion.
    max_components : int
        Upper bound of the BIC search.
    covariance_type : str
        As :class:`sklearn.mixture.GaussianMixture`.
    threshold : float
        A component is flagged when its (shrunk) spurious fraction reaches it.
    prior_strength : float
        ``a`` in the shrinkage ``(s_k + a pi0_k) / (n_k + a)``.
    local_prior : int
        ``pi0_k``, the prior of component ``k``, is the spurious fraction of the
        ``local_prior`` labelled sources nearest the component's mean (smoothed
        towards the global labelled fraction); 0 uses the global fraction for
        every component.
    flag_rule : {"component", "probability"}
        Flag a source when its most likely component is flagged, or when its
        ``p_spurious >= threshold``.
    min_labels : int
        The model is calibrated only with at least this many labelled
        reliable *and* labelled spurious sources (default :data:`MIN_LABELS`).
    bic_samples : int
        At most this many sources (a random subset) fit the BIC search.
    n_init : int
        Mixture initialisations.
    random_state : int, optional

    Attributes
    ----------
    mixture_ : GaussianMixture
    scaler_ : StandardScaler
    n_components_ : int
    bic_ : dict of int -> float
        BIC per candidate (empty when ``n_components`` is given).
    prior_ : float
        The labelled spurious fraction.
    component_prior_ : ndarray (n_components_,)
        ``pi0_k`` (see ``local_prior``).
    component_labelled_, component_spurious_ : ndarray (n_components_,)
        Soft counts ``n_k`` and ``s_k``.
    component_fraction_ : ndarray (n_components_,)
        Shrunk spurious fraction ``f_k``.
    flagged_components_ : ndarray of bool (n_components_,)
    reasons_ : ndarray of str
        Reasons seen among labelled spurious sources.
    component_reason_weight_ : ndarray (n_components_, n_reasons)
    component_reason_ : ndarray of str (n_components_,)
    reference_X_, reference_reason_, reference_component_ : ndarray
        Standardised coordinates, reasons and components of the labelled
        spurious sources that have a reason (they vote for flagged sources'
        reasons).
    n_labelled_reliable_, n_labelled_spurious_ : int
        Labelled sources of each class.
    calibrated_ : bool
        False with fewer than ``min_labels`` labelled sources of either
        class: then ``p_spurious`` is NaN (unknown), :meth:`predict` is 0 and
        the flag of :meth:`explain` False (the per-source table makes it null).
    classes_ : ndarray [0, 1]
    """

    def __init__(self, *, n_components: int | str = "bic", max_components: int = 20,
                 covariance_type: str = "full", threshold: float = 0.05,
                 prior_strength: float = 2.0, local_prior: int = 10,
                 flag_rule: str = "component", min_labels: int = MIN_LABELS,
                 bic_samples: int = 10000, n_init: int = 1,
                 random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.threshold = threshold
        self.prior_strength = prior_strength
        self.local_prior = local_prior
        self.flag_rule = flag_rule
        self.min_labels = min_labels
        self.bic_samples = bic_samples
        self.n_init = n_init
        self.random_state = random_state

    def _validate(self, n: int) -> None:
        if not (isinstance(self.n_components, (int, np.integer)) and self.n_components >= 1
                or self.n_components == "bic"):
            raise InputError(f"n_components={self.n_components!r} must be an integer >= 1 or "
                             "'bic'.")
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold={self.threshold!r} must be in (0, 1).")
        if self.prior_strength < 0:
            raise InputError(f"prior_strength={self.prior_strength!r} must be >= 0.")
        check_choice("flag_rule", self.flag_rule, ("component", "probability"))
        if (isinstance(self.min_labels, bool) or not isinstance(self.min_labels, int | np.integer)
                or self.min_labels < 1):
            raise InputError(f"min_labels={self.min_labels!r} must be an integer >= 1.")
        if n < 2:
            raise InputError(f"need at least 2 sources to fit a mixture; got {n}.")

    def _mixture(self, k: int) -> GaussianMixture:
        return GaussianMixture(n_components=k, covariance_type=self.covariance_type,
                               n_init=self.n_init, reg_covar=1e-4, max_iter=200,
                               init_params="k-means++",
                               random_state=self.random_state)

    def fit(self, X: Any, y: Any = None, *, reason: Any = None) -> SpuriousModel:
        """Fit the mixture on all of ``X``; calibrate it on the labelled rows.

        Parameters
        ----------
        X : array-like, shape (n, d)
            Embedding coordinates (and optionally features) of every source.
        y : array-like, shape (n,), optional
            1 spurious, 0 reliable, -1 (or NaN) unlabelled.
        reason : array-like of str, shape (n,), optional
            Reason of each labelled spurious source ("" if none given).

        Returns
        -------
        self
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise InputError(f"X must be (source, dimension); got shape {X.shape}.")
        n = X.shape[0]
        self._validate(n)
        if not np.all(np.isfinite(X)):
            raise InputError("X holds NaN/inf; embed finite values only.")
        y = _as_labels(y, n)
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)
        self.bic_ = {}
        if self.n_components == "bic":
            rng = np.random.default_rng(self.random_state)
            sub = Xs if n <= self.bic_samples else Xs[rng.choice(n, self.bic_samples,
                                                                 replace=False)]
            for k in bic_grid(int(max(1, min(self.max_components, len(sub) // 10)))):
                self.bic_[k] = float(self._mixture(k).fit(sub).bic(sub))
            k_best = min(self.bic_, key=self.bic_.__getitem__)
        else:
            k_best = int(min(self.n_components, n))
        self.mixture_ = self._mixture(k_best).fit(Xs)
        self.n_components_ = k_best
        self.classes_ = np.array([0, 1])
        self._scaled = Xs
        try:
            self._calibrate(self.mixture_.predict_proba(Xs), y, reason)
        finally:
            del self._scaled
        return self

    def _calibrate(self, resp: np.ndarray, y: np.ndarray, reason: Any) -> None:
        lab = y >= 0
        spur = y == 1
        self.component_labelled_ = resp[lab].sum(axis=0)
        self.component_spurious_ = resp[spur].sum(axis=0)
        self.n_labelled_spurious_ = int(spur.sum())
        self.n_labelled_reliable_ = int((y == 0).sum())
        self.calibrated_ = min(self.n_labelled_spurious_,
                               self.n_labelled_reliable_) >= int(self.min_labels)
        n_lab = max(int(lab.sum()), 1)
        self.prior_ = float(spur.sum()) / n_lab
        self.component_prior_ = self._local_prior(lab, spur)
        a = float(self.prior_strength)
        denom = self.component_labelled_ + a
        self.component_fraction_ = np.where(
            denom > 0,
            (self.component_spurious_ + a * self.component_prior_) / np.where(denom > 0, denom, 1),
            self.component_prior_)
        self.flagged_components_ = (self.component_fraction_ >= self.threshold) & self.calibrated_
        reasons = (np.asarray(reason, dtype=object).reshape(-1) if reason is not None
                   else np.full(len(y), "", dtype=object))
        if len(reasons) != len(y):
            raise InputError(f"reason has {len(reasons)} values for {len(y)} sources.")
        reasons = np.asarray(["" if r is None or (isinstance(r, float) and np.isnan(r))
                              else str(r) for r in reasons], dtype=object)
        self.reasons_ = np.asarray(sorted({r for r in reasons[spur] if r}), dtype=object)
        weight = np.zeros((self.n_components_, len(self.reasons_)))
        for j, r in enumerate(self.reasons_):
            weight[:, j] = resp[spur & (reasons == r)].sum(axis=0)
        self.component_reason_weight_ = weight / np.where(denom > 0, denom, 1)[:, None]
        best = weight.argmax(axis=1) if len(self.reasons_) else np.zeros(self.n_components_, int)
        self.component_reason_ = np.asarray(
            [self.reasons_[b] if len(self.reasons_) and weight[k, b] > 0 else ""
             for k, b in enumerate(best)], dtype=object)
        named = spur & (reasons != "")
        self.reference_X_ = self._scaled[named]
        self.reference_reason_ = reasons[named]
        self.reference_component_ = resp[named].argmax(axis=1)

    def _local_prior(self, lab: np.ndarray, spur: np.ndarray) -> np.ndarray:
        """Per-component prior: spurious fraction of the labelled sources nearest its mean.

        A small component that no labelled source falls in takes the verdict of
        the labelled sources around it in the embedding (smoothed towards the
        global fraction ``prior_`` with weight 1), not the catalog-wide rate.
        """
        m = int(self.local_prior)
        if m <= 0 or not lab.any():
            return np.full(self.n_components_, self.prior_)
        ref = self._scaled[lab]
        m = min(m, len(ref))
        _, j = cKDTree(ref).query(self.mixture_.means_, k=m)
        near = spur[lab][np.asarray(j).reshape(self.n_components_, m)]
        return (near.sum(axis=1) + self.prior_) / (m + 1.0)

    def _reasons(self, X: np.ndarray, resp: np.ndarray, comp: np.ndarray,
                 flag: np.ndarray) -> np.ndarray:
        """Reason of each flagged source: vote of its nearest labelled spurious sources.

        The ``k_reason`` nearest labelled spurious sources (with a reason) of
        the same component vote, weighted by inverse distance in the
        standardised space; in a component without any, the responsibility-
        weighted reason mix of the source's components decides.
        """
        reason = np.full(len(resp), "", dtype=object)
        if not len(self.reasons_) or not flag.any():
            return reason
        w = resp @ self.component_reason_weight_
        pick = w.argmax(axis=1)
        has = flag & (w[np.arange(len(w)), pick] > 0)
        reason[has] = self.reasons_[pick[has]]
        Xs = self.scaler_.transform(X)
        code = {r: i for i, r in enumerate(self.reasons_)}
        ref_code = np.asarray([code[r] for r in self.reference_reason_], dtype=int)
        for k in np.unique(comp[flag]):
            ref = self.reference_component_ == k
            rows = np.flatnonzero(flag & (comp == k))
            if not ref.any():
                continue
            nn = int(min(3, ref.sum()))
            d, j = cKDTree(self.reference_X_[ref]).query(Xs[rows], k=nn)
            d, j = d.reshape(len(rows), nn), j.reshape(len(rows), nn)
            votes = np.zeros((len(rows), len(self.reasons_)))
            np.add.at(votes, (np.repeat(np.arange(len(rows)), nn), ref_code[ref][j].ravel()),
                      (1.0 / (d + 1e-6)).ravel())
            reason[rows] = self.reasons_[votes.argmax(axis=1)]
        return reason

    def responsibilities(self, X: Any) -> np.ndarray:
        """Posterior component probabilities, shape (n, n_components_)."""
        check_is_fitted(self, "mixture_")
        return self.mixture_.predict_proba(self.scaler_.transform(np.asarray(X, np.float64)))

    def predict_component(self, X: Any) -> np.ndarray:
        """Most likely mixture component of each source."""
        return self.responsibilities(X).argmax(axis=1).astype(np.int32)

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[[1 - p, p]]`` with ``p`` the spurious probability (NaN if uncalibrated)."""
        resp = self.responsibilities(X)
        p = resp @ self.component_fraction_ if self.calibrated_ else np.full(len(resp), np.nan)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """1 for flagged (spurious) sources, 0 otherwise."""
        return self.explain(X)["flag"].astype(np.int64)

    def explain(self, X: Any) -> dict[str, np.ndarray]:
        """Component, ``p_spurious``, flag and most likely reason of each source.

        Returns
        -------
        dict
            ``component`` (int32), ``p_spurious`` (float64), ``flag`` (bool),
            ``reason`` (str; "" where not flagged or no reason was labelled).
        """
        resp = self.responsibilities(X)
        comp = resp.argmax(axis=1).astype(np.int32)
        if not self.calibrated_:
            n = len(resp)
            return {"component": comp, "p_spurious": np.full(n, np.nan),
                    "flag": np.zeros(n, dtype=bool), "reason": np.full(n, "", dtype=object)}
        p = resp @ self.component_fraction_
        if self.flag_rule == "component":
            flag = self.flagged_components_[comp]
        else:
            flag = p >= self.threshold
        reason = self._reasons(np.asarray(X, dtype=np.float64), resp, comp, flag)
        return {"component": comp, "p_spurious": p, "flag": np.asarray(flag, dtype=bool),
                "reason": reason}
