"""`PixelClusterer`: a scikit-learn estimator clustering pixel SEDs by shape.

``fit(X, err=...)`` takes the raw pixel-SED matrix ``X`` ``(n_pixels,
n_bands)`` (fluxes) and optional errors, normalises it
(:mod:`~galclust.pixels.normalize`), maps it to the chosen metric
(:mod:`~galclust.pixels.distance`), chooses the number of clusters
(:mod:`~galclust.pixels.nclusters`) and clusters:

=================  ==========================================================
``kmeans``         :class:`sklearn.cluster.KMeans` on the metric's embedding
``gmm``            :class:`sklearn.mixture.GaussianMixture` on the embedding
``agglomerative``  ``linkage="ward"``: Ward on the embedding; ``"complete"``,
                   ``"average"``, ``"single"``: on the precomputed distance
                   matrix (the tree is built once and cut at every k)
``dbscan``         :class:`sklearn.cluster.DBSCAN` (embedding, or precomputed
                   for ``chi2``); ``eps`` default: the best (silhouette ×
                   clustered fraction) of :data:`DBSCAN_EPS_FACTORS` × the
                   median distance to the ``min_samples``-th neighbour
``hdbscan``        the ``hdbscan`` package (falls back to
                   :class:`sklearn.cluster.HDBSCAN`, ~9× slower, with a
                   warning); ``min_cluster_size`` default ``max(10, n // 20)``
``spectral``       spectral embedding of the affinity ``exp(−d²/2σ²)``
                   (σ = median distance), computed once, then k-means per k
=================  ==========================================================

Methods on a precomputed matrix fit at most ``max_pairwise`` pixels: above
that a random subsample is clustered and every other pixel takes the label of
its nearest sampled pixel (flag ``SUBSAMPLED``). Clusters are numbered by
decreasing size. Rows that cannot be normalised are labelled −1.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN, KMeans
from sklearn.manifold import spectral_embedding
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController

import galclust.pixels.options as _defaults
from galclust.errors import GalclustWarning, InputError
from galclust.pixels.distance import (
    DEFAULT_MEMORY_BUDGET,
    embed,
    nearest,
    pairwise_distances,
    trapezoid_weights,
)
from galclust.pixels.flags import PixelFlag
from galclust.pixels.nclusters import (
    CHI2_SIGMA,
    MIN_SPLIT_PIXELS,
    cluster_snr,
    clustered_chi2,
    gap_prefers_one,
    is_single_population,
    merge_gaussians,
    silhouette_from_distances,
)
from galclust.pixels.normalize import normalize_seds
from galclust.pixels.options import check_options

__all__ = ["DBSCAN_EPS_FACTORS", "PixelClusterer", "hdbscan_class"]

#: Multiples of the median distance to the ``min_samples``-th neighbour tried
#: as DBSCAN's ``eps`` when none is given (best silhouette × clustered fraction).
DBSCAN_EPS_FACTORS = (0.5, 0.7, 1.0, 1.4, 2.0)
#: Largest number of pixels whose silhouette is scored (a fixed random subsample above).
SILHOUETTE_SAMPLE = 2000


def hdbscan_class() -> Any:
    """The HDBSCAN class: the ``hdbscan`` package's, else scikit-learn's with a warning."""
    try:
        import hdbscan
    except ImportError:
        warnings.warn("the `hdbscan` package is not installed; using sklearn.cluster.HDBSCAN "
                      "(~9x slower). Install it with `pip install hdbscan`.", GalclustWarning,
                      stacklevel=3)
        from sklearn.cluster import HDBSCAN
        return HDBSCAN
    return hdbscan.HDBSCAN


@functools.cache
def _threadpools() -> ThreadpoolController:
    """The process's BLAS/OpenMP pools, found once (finding them costs ~7 ms)."""
    return ThreadpoolController()


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Number clusters 0, 1, ... by decreasing size (ties: first occurrence); keep −1."""
    out = np.full_like(labels, -1)
    keep = labels >= 0
    if not keep.any():
        return out
    values, first, counts = np.unique(labels[keep], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = np.empty(values.max() + 1, dtype=labels.dtype)
    mapping[values[order]] = np.arange(values.size)
    out[keep] = mapping[labels[keep]]
    return out


class PixelClusterer(ClusterMixin, BaseEstimator):
    """Cluster pixel SEDs by shape, choosing the number of clusters per galaxy.

    Parameters
    ----------
    method : {"kmeans", "gmm", "agglomerative", "dbscan", "hdbscan", "spectral"}
    n_clusters : "auto", int or "snr:<target>"
        See :mod:`galclust.pixels.nclusters`.
    normalize : {"none", "l2", "median_sed", "colour", "sum"}
    metric : {"euclidean", "xcorr", "wavelength", "chi2"}
    linkage : {"ward", "complete", "average", "single"}
        Of ``method="agglomerative"``.
    wavelength : array_like, optional
        Band pivots (micron); required by ``metric="wavelength"``.
    k_range : (int, int)
        Smallest and largest k considered by ``"auto"`` and ``"snr:..."``.
    chi2_threshold : float
        Reduced χ² above which the pixels (k = 1) or each cluster are not one
        SED population (see :mod:`~galclust.pixels.nclusters`).
    min_explained : float
        ``"auto"`` with errors: the fraction of the remaining χ² excess one
        more cluster must remove to be taken (default 0.7; see nclusters).
    covariance_type : str
        Of the Gaussian mixture.
    eps, min_samples : float, int, optional
        DBSCAN's (``eps`` default: see above; ``min_samples`` default 10) and
        HDBSCAN's ``min_samples``. Both methods first take the k = 1 test
        of :mod:`~galclust.pixels.nclusters`, then find k >= 2 themselves;
        pixels they call noise stay −1 (flag ``NOISE_PIXELS``).
    min_cluster_size : int, optional
        HDBSCAN's (default ``max(10, n_pixels // 20)``).
    n_init : int
        k-means restarts.
    max_pairwise : int
        Largest number of pixels clustered on a full pairwise matrix.
    memory_budget : int
        Bytes of temporaries per block of a pairwise computation.
    merge_sigma : float
        ``gmm`` with ``"auto"``/``"snr:"``: merge mixture components whose
        means are closer than this many sigma (Mahalanobis; 0: never).
    dtype : {"float64", "float32"}
        Precision of embeddings and distance matrices.
    n_threads : int or None
        BLAS/OpenMP threads while fitting. Default 1: one galaxy is too small
        to gain from threads (on a busy 2-core machine k-means ran 30× slower
        with them); run galaxies in parallel instead. None: library default.
    random_state : int
    """

    def __init__(self, method: str = _defaults.DEFAULT_METHOD, n_clusters: Any = "auto", *,
                 normalize: str = _defaults.DEFAULT_NORMALIZE,
                 metric: str = _defaults.DEFAULT_METRIC, linkage: str = "ward",
                 wavelength: Any = None, k_range: tuple[int, int] = (1, 6),
                 chi2_threshold: float = 1.5, min_explained: float = 0.7,
                 covariance_type: str = "full",
                 eps: float | None = None, min_samples: int | None = None,
                 min_cluster_size: int | None = None, n_init: int = 2,
                 max_pairwise: int = 4000, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 merge_sigma: float = 4.0, dtype: str = "float64",
                 n_threads: int | None = 1,
                 random_state: int = 0) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.normalize = normalize
        self.metric = metric
        self.linkage = linkage
        self.wavelength = wavelength
        self.k_range = k_range
        self.chi2_threshold = chi2_threshold
        self.min_explained = min_explained
        self.covariance_type = covariance_type
        self.eps = eps
        self.min_samples = min_samples
        self.min_cluster_size = min_cluster_size
        self.n_init = n_init
        self.max_pairwise = max_pairwise
        self.memory_budget = memory_budget
        self.merge_sigma = merge_sigma
        self.dtype = dtype
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _validate(self, X: Any, err: Any) -> tuple[np.ndarray, np.ndarray | None, Any]:
        rule = check_options(method=self.method, normalize=self.normalize, metric=self.metric,
                             linkage=self.linkage, n_clusters=self.n_clusters,
                             k_range=self.k_range)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise InputError(f"X must be (n_pixels, n_bands) fluxes; got shape {X.shape}.")
        if err is not None:
            err = np.asarray(err, dtype=np.float64)
            if err.shape != X.shape:
                raise InputError(f"err has shape {err.shape} but X has {X.shape}.")
        if rule.kind == "fixed" and rule.k > X.shape[0]:
            raise InputError(f"n_clusters={rule.k} is larger than the number of pixels "
                             f"({X.shape[0]}); ask for at most {X.shape[0]} or use 'auto'.")
        if err is None and (self.metric == "chi2" or rule.kind == "snr"):
            what = "metric='chi2'" if self.metric == "chi2" else f"n_clusters={self.n_clusters!r}"
            raise InputError(f"{what} needs the pixel errors: call fit(X, err=err).")
        if self.metric == "wavelength":
            if self.wavelength is None or np.shape(self.wavelength) != (X.shape[1],):
                raise InputError(f"metric='wavelength' needs wavelength= with one pivot per "
                                 f"band ({X.shape[1]}); got {self.wavelength!r}.")
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise InputError(f"dtype={self.dtype!r} must be 'float64' or 'float32'.")
        return X, err, rule

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, *, err: Any = None) -> PixelClusterer:
        """Cluster the pixel SEDs ``X``.

        Parameters
        ----------
        X : array_like, (n_pixels, n_bands)
            Fluxes.
        y : ignored
        err : array_like, (n_pixels, n_bands), optional
            1-sigma errors (needed by ``chi2``, ``snr:`` and the χ² test for k = 1).

        Returns
        -------
        self
            With ``labels_`` (n_pixels,), ``n_clusters_``, ``score_`` (mean
            silhouette of the result, NaN for k < 2), ``k_scores_`` (criterion
            per k tried), ``criterion_``, ``chi2_single_`` (reduced χ² against
            one shape), ``valid_`` (rows clustered), ``flags_``.
        """
        with _threadpools().limit(limits=self.n_threads):
            return self._fit(X, err)

    def _fit(self, X: Any, err: Any) -> PixelClusterer:
        X, err, rule = self._validate(X, err)
        self.n_features_in_ = X.shape[1]
        dtype = np.dtype(self.dtype)
        norm = normalize_seds(X, self.normalize, err=err)
        valid = norm.valid if err is None else norm.valid & np.isfinite(err).all(axis=1) & (
            err > 0).all(axis=1)
        self.valid_ = valid
        self.flags_ = PixelFlag(0) if valid.all() else PixelFlag.INVALID_PIXELS
        self.k_scores_, self.chi2_single_, self.score_ = {}, float("nan"), float("nan")
        self.labels_ = np.full(X.shape[0], -1, dtype=np.int64)
        idx = np.flatnonzero(valid)
        n = idx.size
        flux, e = X[idx], None if err is None else err[idx]
        # chi2 is scale-invariant and needs fluxes with their errors; the rest use features
        feats = flux if self.metric == "chi2" else norm.features[idx]
        if e is not None:
            _, self.chi2_single_ = is_single_population(flux, e, chi2_threshold=np.inf)
        if n == 0:
            self.n_clusters_, self.criterion_ = 0, "none"
            return self
        if n < 3 or X.shape[1] < 2:
            self.labels_[idx] = 0
            self.n_clusters_, self.criterion_ = 1, "degenerate"
            if rule.kind == "fixed" and rule.k > 1:
                self.flags_ |= PixelFlag.K_REDUCED
            return self
        self._weights = (trapezoid_weights(np.asarray(self.wavelength, float))
                         if self.metric == "wavelength" else None)
        sample = idx_s = np.arange(n)
        pairwise = self.method == "spectral" or (
            self.method == "agglomerative" and self.linkage != "ward") or (
            self.method in ("dbscan", "hdbscan") and self.metric == "chi2")
        if pairwise and n > self.max_pairwise:
            rng = np.random.default_rng(self.random_state)
            sample = np.sort(rng.choice(n, self.max_pairwise, replace=False))
            self.flags_ |= PixelFlag.SUBSAMPLED
        f_s, e_s = feats[sample], None if e is None else e[sample]
        self._cache: dict[str, Any] = {"merge": rule.kind != "fixed"}
        if pairwise:
            data = pairwise_distances(f_s, metric=self.metric, err=e_s, weights=self._weights,
                                      memory_budget=self.memory_budget, dtype=dtype)
            data = data.astype(np.float64, copy=False)
            data = 0.5 * (data + data.T)
        else:
            data = embed(f_s, metric=self.metric, weights=self._weights, err=e_s).astype(dtype)
        try:
            labels, _ = self._choose(data, pairwise, rule, flux[sample],
                                     None if e is None else e[sample])
            if (labels >= 0).any() and labels.max() >= 1:
                self.score_ = self._silhouette(data, pairwise, labels)
        finally:
            del self._cache
        if sample.size < n:
            rest = np.setdiff1d(idx_s, sample)
            nn = nearest(feats[rest], f_s, metric=self.metric,
                         err=None if e is None else e[rest], err_y=e_s, weights=self._weights,
                         memory_budget=self.memory_budget, dtype=dtype)
            full = np.empty(n, dtype=np.int64)
            full[sample], full[rest] = labels, labels[nn]
            labels = full
        labels = _relabel(labels)
        if self.method in ("dbscan", "hdbscan") and (labels < 0).any():
            self.flags_ |= PixelFlag.NOISE_PIXELS
        self.labels_[idx] = labels
        self.n_clusters_ = int(labels.max() + 1) if (labels >= 0).any() else 0
        return self

    def _silhouette(self, data: np.ndarray, pairwise: bool, labels: np.ndarray) -> float:
        """Mean silhouette against one cached distance matrix (at most SILHOUETTE_SAMPLE px)."""
        cached = self._cache.get("silhouette")
        if cached is None:
            n = data.shape[0]
            pick = np.arange(n) if n <= SILHOUETTE_SAMPLE else np.sort(
                np.random.default_rng(self.random_state).choice(n, SILHOUETTE_SAMPLE,
                                                                replace=False))
            dist = (data[np.ix_(pick, pick)] if pairwise else
                    pairwise_distances(data[pick], memory_budget=self.memory_budget))
            cached = self._cache["silhouette"] = (pick, np.asarray(dist, dtype=np.float64))
        pick, dist = cached
        return silhouette_from_distances(dist, labels[pick])

    def _choose(self, data: np.ndarray, pairwise: bool, rule: Any, flux: np.ndarray,
                err: np.ndarray | None) -> tuple[np.ndarray, int]:
        """Fit for the k given by ``rule``; return (labels, k)."""
        n = data.shape[0]
        density = self.method in ("dbscan", "hdbscan")
        kmin, kmax = (int(v) for v in self.k_range)
        kmax_eff = min(kmax, n - 1)
        if rule.kind == "fixed":
            self.criterion_ = "fixed"
            k = rule.k
            if k > n:
                k = n
                self.flags_ |= PixelFlag.K_REDUCED
            return self._fit_k(data, pairwise, k), k
        if rule.kind == "snr":
            self.criterion_ = "snr"
            for k in range(min(max(kmax_eff, kmin), n), min(kmin, n) - 1, -1):
                labels = self._fit_k(data, pairwise, k)
                snr = cluster_snr(flux, err, labels, k)
                self.k_scores_[k] = float(snr.min())
                if snr.min() >= rule.snr:
                    return labels, k
            self.flags_ |= PixelFlag.SNR_TARGET_UNMET
            return labels, min(kmin, n)
        # auto
        use_bic = self.method == "gmm"
        self.criterion_ = "density" if density else "bic" if use_bic else "silhouette"
        if kmin == 1:
            if err is not None:
                single, _ = is_single_population(flux, err, chi2_threshold=self.chi2_threshold)
            elif use_bic:
                single = self._bic(data, 1) <= self._bic(data, 2)
            else:
                single = gap_prefers_one(self._embedding(data, pairwise),
                                         random_state=self.random_state)
            if single or kmax_eff < 2:
                self.criterion_ = "single"
                return np.zeros(n, dtype=np.int64), 1
        if density:
            labels = self._fit_density(data, pairwise)
            return labels, int(labels.max()) + 1
        if err is not None and not use_bic:
            if max(2, kmin) > max(kmax_eff, 2):  # fewer pixels than kmin asks for
                return np.zeros(n, dtype=np.int64), 1
            self.criterion_ = "chi2"
            return self._choose_chi2(data, pairwise, flux, err, max(2, kmin),
                                     max(kmax_eff, 2))
        best_k, best_labels, best = None, None, None
        for k in range(max(2, kmin), max(kmax_eff, 2) + 1):
            labels = self._fit_k(data, pairwise, k)
            if use_bic:
                score = self._bic(data, k)
            else:
                score = self._silhouette(data, pairwise, labels)
            self.k_scores_[k] = score
            if np.isfinite(score) and (best is None or (score < best if use_bic else score > best)):
                best_k, best_labels, best = k, labels, score
        if best_k is None:
            return np.zeros(n, dtype=np.int64), 1
        return best_labels, best_k

    def _choose_chi2(self, data: np.ndarray, pairwise: bool, flux: np.ndarray,
                     err: np.ndarray, k: int, kmax: int) -> tuple[np.ndarray, int]:
        """Add clusters while each still removes ``min_explained`` of the χ² excess."""
        labels = self._fit_k(data, pairwise, k)
        reduced, sig = clustered_chi2(flux, err, labels)
        self.k_scores_[k] = reduced
        while k < kmax and reduced > self.chi2_threshold and sig > CHI2_SIGMA:
            more = self._fit_k(data, pairwise, k + 1)
            r_more, s_more = clustered_chi2(flux, err, more)
            self.k_scores_[k + 1] = r_more
            if not (reduced - r_more) >= self.min_explained * (reduced - 1.0):
                break
            if np.bincount(more[more >= 0], minlength=k + 1).min() < MIN_SPLIT_PIXELS:
                break  # a cluster of a few outlier pixels (a cosmic ray) is not a population
            k, labels, reduced, sig = k + 1, more, r_more, s_more
        return labels, k

    def _embedding(self, data: np.ndarray, pairwise: bool) -> np.ndarray:
        if not pairwise:
            return data
        # classical MDS of the distance matrix: Euclidean coordinates for the gap test
        d2 = data * data
        j = d2 - d2.mean(0) - d2.mean(1)[:, None] + d2.mean()
        vals, vecs = np.linalg.eigh(-0.5 * j)
        keep = vals > 1e-12 * max(vals.max(), 1e-300)
        return vecs[:, keep] * np.sqrt(vals[keep])

    def _bic(self, data: np.ndarray, k: int) -> float:
        gm = self._cache.get(f"gmm{k}")
        if gm is None:
            gm = GaussianMixture(k, covariance_type=self.covariance_type, n_init=1,
                                 reg_covar=1e-6, random_state=self.random_state).fit(data)
            self._cache[f"gmm{k}"] = gm
        return float(gm.bic(data))

    def _fit_k(self, data: np.ndarray, pairwise: bool, k: int) -> np.ndarray:
        n = data.shape[0]
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        if self.method == "kmeans":
            return KMeans(k, n_init=self.n_init, random_state=self.random_state).fit_predict(data)
        if self.method == "gmm":
            self._bic(data, k)
            gm = self._cache[f"gmm{k}"]
            labels = gm.predict(data)
            if self._cache.get("merge") and self.merge_sigma > 0:
                labels = merge_gaussians(gm, max_distance=self.merge_sigma)[labels]
            return labels
        if self.method == "agglomerative":
            tree = self._cache.get("tree")
            if tree is None:
                tree = (linkage(squareform(data, checks=False), method=self.linkage) if pairwise
                        else linkage(data, method="ward"))
                self._cache["tree"] = tree
            return fcluster(tree, k, criterion="maxclust").astype(np.int64) - 1
        # spectral
        emb = self._cache.get("spectral")
        if emb is None:
            pos = data[np.triu_indices(n, 1)]
            sigma = np.median(pos[pos > 0]) if (pos > 0).any() else 1.0
            affinity = np.exp(-(data * data) / (2.0 * sigma * sigma))
            n_comp = min(int(self.k_range[1]), n - 1)
            emb = spectral_embedding(affinity, n_components=n_comp, drop_first=False,
                                     random_state=self.random_state)
            self._cache["spectral"] = emb
        return KMeans(k, n_init=self.n_init, random_state=self.random_state).fit_predict(
            emb[:, :k])

    def _fit_density(self, data: np.ndarray, pairwise: bool) -> np.ndarray:
        n = data.shape[0]
        metric = "precomputed" if pairwise else "euclidean"
        min_samples = int(self.min_samples) if self.min_samples is not None else 10
        min_samples = max(1, min(min_samples, n - 1))
        if self.method == "dbscan":
            if self.eps is not None:
                return DBSCAN(eps=self.eps, min_samples=min_samples,
                              metric=metric).fit_predict(data)
            if pairwise:
                kd = np.partition(data, min_samples, axis=1)[:, min_samples]
            else:
                nn = NearestNeighbors(n_neighbors=min_samples + 1).fit(data)
                kd = nn.kneighbors(data)[0][:, -1]
            best, best_labels = -np.inf, None
            single, single_cover = None, 0.0
            for factor in DBSCAN_EPS_FACTORS:
                eps = factor * float(np.median(kd)) or 1e-12
                labels = DBSCAN(eps=eps, min_samples=min_samples, metric=metric).fit_predict(data)
                cover = float((labels >= 0).mean())
                sil = self._silhouette(data, pairwise, labels)
                score = sil * cover if np.isfinite(sil) else -np.inf
                self.k_scores_[float(factor)] = score
                if score > best:
                    best, best_labels = score, labels
                if labels.max() == 0 and cover > single_cover:
                    single, single_cover = labels, cover
            if best_labels is not None:
                return best_labels
            # no eps separates two clusters: the widest single cluster (or all noise)
            return single if single is not None else np.full(n, -1, dtype=np.int64)
        size = self.min_cluster_size or max(10, n // 20)
        cls = hdbscan_class()
        kwargs: dict[str, Any] = {"min_cluster_size": max(2, min(int(size), n)),
                                  "min_samples": min_samples, "metric": metric}
        if cls.__module__.startswith("hdbscan"):
            kwargs["core_dist_n_jobs"] = 1
        labels = np.asarray(cls(**kwargs).fit_predict(data.astype(np.float64)), dtype=np.int64)
        if labels.max() < 0:  # no two clusters stand out: let HDBSCAN keep a single one
            labels = np.asarray(cls(**kwargs, allow_single_cluster=True).fit_predict(
                data.astype(np.float64)), dtype=np.int64)
        return labels
