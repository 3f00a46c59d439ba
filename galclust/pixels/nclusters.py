"""Choosing the number of clusters of one galaxy.

The rule (``n_clusters="auto"``, ``k_range=(kmin, kmax)``, default 1..6):

1. **Is k = 1 enough?** (only when ``kmin == 1``). Silhouette cannot score a
   single cluster, so k = 1 is decided by a test for a single SED population:

   - with errors (always the case in :func:`~galclust.pixels.core.cluster_galaxy`):
     the χ² of every pixel against the best common SED shape (the summed SED,
     scaled to each pixel by an inverse-variance least-squares factor),
     :func:`single_population_chi2`. The galaxy holds more than one population
     when the reduced χ² ``R`` exceeds ``chi2_threshold`` (default 1.5: the
     shape scatter is 50 % above the noise) *and* is significant,
     ``(T − D)/sqrt(2D) > 5`` for ``T`` the total χ² on ``D`` degrees of
     freedom. Otherwise k = 1.
   - without errors: for ``gmm``, the BIC of one component against two; for
     the other methods, the gap statistic (Tibshirani, Walther & Hastie 2001)
     with a uniform reference in the principal-axis box of the features:
     k = 1 when ``Gap(1) >= Gap(2) − s_2`` (:func:`gap_prefers_one`).

2. **Otherwise**, k in ``max(2, kmin)..kmax``:

   - with errors, for kmeans, agglomerative and spectral: the smallest k after
     which one more cluster stops paying for itself in χ²
     (:func:`clustered_chi2`: each pixel against its own cluster's common
     shape). Starting at k = 2, k + 1 is taken while the clusters are still
     inconsistent with one SED each (reduced χ² ``R_k`` above
     ``chi2_threshold`` and significant, as in step 1) *and* the extra
     cluster removes at least ``min_explained`` (default 0.7) of the excess
     ``R_k − 1`` (and no cluster has fewer than ``MIN_SPLIT_PIXELS`` = 5
     pixels: a cosmic-ray pixel fits its own shape exactly). A genuinely distinct population removes most of the excess
     (0.8–1.0 on synthetic surveys); splitting one population's scatter or a
     smooth colour gradient removes less (a Gaussian spread split in two:
     2/π ≈ 0.64; a uniform gradient going from 2 to 3 pieces: 0.56).
     On synthetic surveys (seeds 1–2, 1024², 434 multi-component galaxies) this
     finds k for 83 % of 3-component galaxies (silhouette: 22 %) and 99 % of
     2-component ones (silhouette: 92 %).
   - without errors: the highest mean silhouette
     (:func:`silhouette_from_distances`, on the metric's distances), which
     favours the coarsest well-separated split: of three components, two with
     similar SEDs are often merged.
   - gmm: the lowest BIC.

   Density methods (dbscan, hdbscan) find k >= 2 themselves after step 1.

3. **gmm only: merge components that are one population.** In normalised-SED
   space a population is heavy-tailed (faint pixels scatter more than bright
   ones), and BIC fits it with several Gaussians a few sigma apart: a bright
   core and fainter wings of the same SED. Components whose means are closer
   than ``merge_sigma`` (default 4) in Mahalanobis distance are merged
   (:func:`merge_gaussians`); distinct SEDs at useful S/N are tens of sigma
   apart. Not applied to a fixed k.

``n_clusters="snr:<target>"`` instead takes the largest k in the range whose
every cluster's composite S/N (:func:`cluster_snr`) reaches the target (k =
kmin and the ``SNR_TARGET_UNMET`` flag if none does). An integer is used as is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans

__all__ = [
    "clustered_chi2",
    "cluster_snr",
    "gap_prefers_one",
    "is_single_population",
    "merge_gaussians",
    "silhouette_from_distances",
    "single_population_chi2",
]

#: Significance (sigma) the χ² excess must reach to reject a single population.
CHI2_SIGMA = 5.0
#: The χ² rule does not add a cluster that would hold fewer pixels than this:
#: a pixel or two with a cosmic ray fit their own "shape" exactly.
MIN_SPLIT_PIXELS = 5


def single_population_chi2(flux: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """χ² of pixel SEDs against one common shape.

    Parameters
    ----------
    flux, err : ndarray, (n_pixels, n_bands)

    Returns
    -------
    reduced : float
        ``T / D``: total χ² over ``D = n_pixels (n_bands − 1)`` degrees of
        freedom (one scale factor fitted per pixel). NaN with fewer than 2 bands.
    significance : float
        ``(T − D) / sqrt(2 D)``, the excess in units of its standard deviation
        for a single population with correct errors.
    """
    n, n_band = flux.shape
    if n == 0 or n_band < 2:
        return float("nan"), float("nan")
    w = 1.0 / err**2
    shape = flux.sum(axis=0)
    a = (w * flux * shape).sum(axis=1) / (w * shape * shape).sum(axis=1)
    total = float((w * (flux - a[:, None] * shape) ** 2).sum())
    dof = n * (n_band - 1)
    return total / dof, (total - dof) / np.sqrt(2.0 * dof)


def clustered_chi2(flux: np.ndarray, err: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """χ² of pixel SEDs, each against the common shape of its own cluster.

    The sum over clusters of :func:`single_population_chi2`'s total; pixels
    labelled −1 are left out.

    Parameters
    ----------
    flux, err : ndarray, (n_pixels, n_bands)
    labels : ndarray of int, (n_pixels,)

    Returns
    -------
    reduced : float
        Total χ² over its degrees of freedom (one scale per pixel).
    significance : float
        ``(T − D) / sqrt(2 D)``, as in :func:`single_population_chi2`.
    """
    total, dof = 0.0, 0
    for c in np.unique(labels[labels >= 0]):
        m = labels == c
        reduced, _ = single_population_chi2(flux[m], err[m])
        if np.isfinite(reduced):
            d = int(m.sum()) * (flux.shape[1] - 1)
            total += reduced * d
            dof += d
    if dof == 0:
        return float("nan"), float("nan")
    return total / dof, (total - dof) / np.sqrt(2.0 * dof)


def is_single_population(flux: np.ndarray, err: np.ndarray, *,
                         chi2_threshold: float = 1.5) -> tuple[bool, float]:
    """Whether pixel SEDs are consistent with one shape (see the module rule).

    Returns
    -------
    single : bool
    reduced_chi2 : float
    """
    reduced, sig = single_population_chi2(flux, err)
    if not np.isfinite(reduced):
        return True, reduced
    return not (reduced > chi2_threshold and sig > CHI2_SIGMA), reduced


def _log_wk(z: np.ndarray, k: int, random_state: int) -> float:
    if k == 1:
        inertia = float(((z - z.mean(axis=0)) ** 2).sum())
    else:
        inertia = KMeans(k, n_init=2, random_state=random_state).fit(z).inertia_
    return float(np.log(max(inertia, 1e-300)))


def gap_prefers_one(z: np.ndarray, *, n_refs: int = 10, random_state: int = 0) -> bool:
    """Gap-statistic test of one cluster against two.

    Parameters
    ----------
    z : ndarray, (n, n_features)
        Features (Euclidean distances are the metric).
    n_refs : int
        Reference data sets drawn uniformly in the principal-axis bounding box.
    random_state : int

    Returns
    -------
    bool
        True when ``Gap(1) >= Gap(2) − s_2``.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.shape[0] < 3:
        return True
    rng = np.random.default_rng(random_state)
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    rotated = centred @ vt.T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    ref = np.empty((n_refs, 2))
    for b in range(n_refs):
        sample = rng.uniform(lo, hi, size=rotated.shape) @ vt
        ref[b] = [_log_wk(sample, 1, random_state), _log_wk(sample, 2, random_state)]
    gap1 = ref[:, 0].mean() - _log_wk(z, 1, random_state)
    gap2 = ref[:, 1].mean() - _log_wk(z, 2, random_state)
    s2 = ref[:, 1].std() * np.sqrt(1.0 + 1.0 / n_refs)
    return bool(gap1 >= gap2 - s2)


def silhouette_from_distances(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from a square distance matrix, vectorised (one matmul per call).

    Same value as :func:`sklearn.metrics.silhouette_score` with
    ``metric="precomputed"`` (pixels labelled −1 left out; NaN unless
    2 <= clusters <= n − 1); used to score many labellings of the same
    pixels against one distance matrix.
    """
    keep = labels >= 0
    if not keep.all():
        dist, labels = dist[np.ix_(keep, keep)], labels[keep]
    ids, lab = np.unique(labels, return_inverse=True)
    n, k = lab.size, ids.size
    if not 2 <= k <= n - 1:
        return float("nan")
    onehot = np.zeros((n, k))
    onehot[np.arange(n), lab] = 1.0
    sums = dist @ onehot  # (n, k): summed distance of each pixel to each cluster
    counts = onehot.sum(axis=0)
    own = counts[lab]
    a = sums[np.arange(n), lab] / np.maximum(own - 1, 1)
    mean_other = sums / counts[None, :]
    mean_other[np.arange(n), lab] = np.inf
    b = mean_other.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(np.nan_to_num(s).mean())


def _full_covariances(gm: Any) -> np.ndarray:
    k, d = gm.means_.shape
    cov = np.asarray(gm.covariances_)
    if gm.covariance_type == "full":
        return cov
    if gm.covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if gm.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)[None]


def merge_gaussians(gm: Any, *, max_distance: float = 4.0) -> np.ndarray:
    """Merge mixture components whose means are close in units of their spread.

    Repeatedly merges the two components with the smallest Mahalanobis
    distance between their means, ``sqrt(Δμᵀ ((Σ_a + Σ_b)/2)⁻¹ Δμ)``, while it
    is below ``max_distance``; a merged component takes the weighted mean and
    the moment-matched covariance of its parts. Components a few sigma apart
    model one heavy-tailed population (a bright core and fainter, more
    scattered pixels of the same SED), not two SEDs.

    Parameters
    ----------
    gm : sklearn.mixture.GaussianMixture
        A fitted mixture.
    max_distance : float
        Merge while the closest pair is nearer than this (0: never merge).

    Returns
    -------
    ndarray of int, (n_components,)
        The merged cluster of each component, numbered 0..k'−1.
    """
    weights = list(np.asarray(gm.weights_, dtype=float))
    means = list(np.asarray(gm.means_, dtype=float))
    covs = list(_full_covariances(gm).astype(float))
    groups = [[i] for i in range(len(weights))]
    while len(groups) > 1:
        best, pair = np.inf, None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                diff = means[i] - means[j]
                pooled = 0.5 * (covs[i] + covs[j])
                dist = float(np.sqrt(max(diff @ np.linalg.lstsq(pooled, diff, rcond=None)[0],
                                         0.0)))
                if dist < best:
                    best, pair = dist, (i, j)
        if pair is None or best >= max_distance:
            break
        i, j = pair
        w = weights[i] + weights[j]
        mu = (weights[i] * means[i] + weights[j] * means[j]) / w
        cov = sum(weights[m] * (covs[m] + np.outer(means[m] - mu, means[m] - mu))
                  for m in (i, j)) / w
        weights[i], means[i], covs[i], groups[i] = w, mu, cov, groups[i] + groups[j]
        for lst in (weights, means, covs, groups):
            del lst[j]
    mapping = np.empty(len(gm.weights_), dtype=np.int64)
    for new, members in enumerate(groups):
        mapping[members] = new
    return mapping


def cluster_snr(flux: np.ndarray, err: np.ndarray, labels: np.ndarray,
                n_clusters: int) -> np.ndarray:
    """Composite S/N of each cluster: median over bands of ``Σ f / sqrt(Σ σ²)``.

    Parameters
    ----------
    flux, err : ndarray, (n_pixels, n_bands)
    labels : ndarray of int, (n_pixels,)
        Cluster of each pixel (−1 ignored).
    n_clusters : int

    Returns
    -------
    ndarray, (n_clusters,)
        0 for an empty cluster.
    """
    keep = labels >= 0
    onehot = np.zeros((n_clusters, labels.size))
    onehot[labels[keep], np.flatnonzero(keep)] = 1.0
    total = onehot @ flux
    noise = np.sqrt(onehot @ (err * err))
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, total / noise, 0.0)
    return np.median(snr, axis=1)
