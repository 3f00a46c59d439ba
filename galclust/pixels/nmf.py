"""Non-negative factorisation of pixel SEDs with errors (weighted NMF).

Pixel SEDs are fitted as ``flux ≈ A @ S`` with ``A >= 0`` (band-summed flux of
each component in each pixel) and ``S >= 0`` (component SEDs normalised to sum
1 over the bands) by minimising χ² = Σ ((flux − A S) / err)². The solver is
hierarchical alternating least squares (HALS; Cichocki & Phan 2009) in its
weighted form: every column of ``A`` and row of ``S`` in turn is the exact
non-negative minimiser of χ² with the others held fixed, so χ² never rises.
Pixels with negative flux (noise in faint outskirts) are allowed: no
multiplicative update is used. An optional minimum-volume term pulls each SED
towards its projection on the span of the others (MVC-NMF, Miao & Qi 2007).

:func:`weighted_nmf` is one fit; ``_fits`` / ``_best_fit`` the fits from the
starts the unmixing's k test uses (k-means of the normalised SEDs, and a
(k − 1)-fit plus the SED of its worst residuals). The choice of k, ownership
and the tightest cone are in :mod:`galclust.pixels.unmix`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numba
import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from galclust.errors import InputError
from galclust.pixels.subspace import check_seds as _check

__all__ = ["weighted_nmf"]


def _normalise(a: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tot = s.sum(axis=1)
    tot = np.where(tot > 0, tot, 1.0)
    return a * tot[None, :], s / tot[:, None]


def _chi2(flux: np.ndarray, w: np.ndarray, a: np.ndarray, s: np.ndarray) -> float:
    return float((w * (flux - a @ s) ** 2).sum())


@numba.njit(cache=True, nogil=True)
def _hals_kernel(flux: np.ndarray, w: np.ndarray, a: np.ndarray, s: np.ndarray, max_iter: int,
                 tol: float, fix_s: bool, volume: float) -> float:  # pragma: no cover (jit)
    """Weighted HALS iterations in place on ``a`` (pixel, k) and ``s`` (k, band); returns χ²."""
    n, nb = flux.shape
    k = s.shape[0]
    resid = flux - a @ s
    prev = 0.0
    for i in range(n):
        for b in range(nb):
            prev += w[i, b] * resid[i, b] ** 2
    num_s = np.empty(nb)
    den_s = np.empty(nb)
    for _ in range(max_iter):
        for c in range(k):
            # abundances of component c: exact non-negative minimiser, pixel by pixel
            for i in range(n):
                num = 0.0
                den = 0.0
                for b in range(nb):
                    wb = w[i, b] * s[c, b]
                    num += wb * (resid[i, b] + a[i, c] * s[c, b])
                    den += wb * s[c, b]
                new = num / den if den > 0 else 0.0
                if new < 0:
                    new = 0.0
                d = a[i, c] - new
                if d != 0.0:
                    for b in range(nb):
                        resid[i, b] += d * s[c, b]
                    a[i, c] = new
            if fix_s:
                continue
            for b in range(nb):
                num_s[b] = 0.0
                den_s[b] = 0.0
            for i in range(n):
                aic = a[i, c]
                if aic == 0.0:
                    continue
                for b in range(nb):
                    wa = w[i, b] * aic
                    num_s[b] += wa * (resid[i, b] + aic * s[c, b])
                    den_s[b] += wa * aic
            new_s = np.empty(nb)
            if volume > 0 and k > 1:  # pull towards s_c's projection on the others' span
                others = np.empty((k - 1, nb))
                j = 0
                for o in range(k):
                    if o != c:
                        others[j] = s[o]
                        j += 1
                coef = np.linalg.pinv(others @ others.T) @ (others @ s[c])
                pull = others.T @ coef
                mu = volume * den_s.mean()
                for b in range(nb):
                    v = (num_s[b] + mu * pull[b]) / (den_s[b] + mu) if den_s[b] + mu > 0 else 0.0
                    new_s[b] = v if v > 0 else 0.0
            else:
                for b in range(nb):
                    v = num_s[b] / den_s[b] if den_s[b] > 0 else s[c, b]
                    new_s[b] = v if v > 0 else 0.0
            tot = new_s.sum()
            if tot <= 0:
                continue
            for b in range(nb):
                new_s[b] /= tot
            for i in range(n):
                old = a[i, c]
                if old == 0.0:
                    continue
                a[i, c] = old * tot
                for b in range(nb):
                    resid[i, b] += old * s[c, b] - a[i, c] * new_s[b]
            for b in range(nb):
                s[c, b] = new_s[b]
        cur = 0.0
        for i in range(n):
            for b in range(nb):
                cur += w[i, b] * resid[i, b] ** 2
        if abs(prev - cur) <= tol * max(prev, 1e-300):
            return cur
        prev = cur
    return prev


def _hals(flux: np.ndarray, w: np.ndarray, a: np.ndarray, s: np.ndarray, *, max_iter: int,
          tol: float, fix_s: bool = False, volume: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray, float]:
    a, s = _normalise(np.ascontiguousarray(a, dtype=np.float64),
                      np.ascontiguousarray(s, dtype=np.float64))
    # a band left out (err = inf) has weight 0 and any finite flux
    _hals_kernel(np.ascontiguousarray(flux), np.ascontiguousarray(w), a, s, int(max_iter),
                 float(tol), bool(fix_s), float(volume))
    a, s = _normalise(a, s)
    return a, s, _chi2(flux, w, a, s)


def _nnls_abundances(flux: np.ndarray, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    a0 = np.maximum((w * flux) @ s.T / np.maximum(w @ (s * s).T, 1e-300), 0.0) / s.shape[0]
    a, _, _ = _hals(flux, w, a0, s.copy(), max_iter=50, tol=1e-6, fix_s=True)
    return a


def _kmeans_init(flux: np.ndarray, err: np.ndarray, k: int, seed: int) -> np.ndarray:
    snr = np.nansum(flux / err * np.isfinite(err), axis=1)
    bright = snr >= np.quantile(snr, 0.3) if flux.shape[0] > 5 * k else np.ones(len(snr), bool)
    x = np.maximum(flux[bright], 0.0)
    x = x / np.maximum(x.sum(axis=1, keepdims=True), 1e-300)
    with warnings.catch_warnings():  # identical SEDs (a flat or empty galaxy): fewer centres
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    s = np.maximum(km.cluster_centers_, 1e-6)
    return s / s.sum(axis=1, keepdims=True)


def _residual_init(flux: np.ndarray, w: np.ndarray, a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Component SEDs of a k-fit plus the SED of the worst-fitting pixels' residuals."""
    resid = flux - a @ s
    chi = (w * resid * resid).sum(axis=1)
    worst = np.argsort(chi)[::-1][: max(5, flux.shape[0] // 50)]
    new = np.maximum(resid[worst].sum(axis=0), 0.0)
    if new.sum() <= 0:
        new = np.maximum(flux[worst].sum(axis=0), 1e-6)
    new = new / new.sum()
    return np.vstack([s, new[None, :]])


def weighted_nmf(flux: Any, err: Any, n_components: int, *, init: np.ndarray | None = None,
                 max_iter: int = 500, tol: float = 1e-6, volume: float = 0.0,
                 random_state: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Non-negative factorisation of pixel SEDs with errors: ``flux ≈ A @ S``.

    Parameters
    ----------
    flux, err : array_like, (pixel, band)
        Fluxes and 1-sigma errors (``err = inf`` leaves a value out).
    n_components : int
    init : ndarray, (n_components, band), optional
        Starting SEDs (default: k-means centroids of the brighter pixels'
        normalised SEDs).
    max_iter : int
    tol : float
        Stop when an iteration lowers χ² by less than this fraction.
    random_state : int

    Returns
    -------
    A : ndarray, (pixel, n_components)
        Band-summed flux of each component in each pixel.
    S : ndarray, (n_components, band)
        SEDs, normalised to sum 1.
    chi2 : float
        Total χ².
    """
    flux, err = _check(flux, err)
    k = int(n_components)
    if not 1 <= k <= flux.shape[0]:
        raise InputError(f"n_components={n_components!r} must be 1 to the number of pixels "
                         f"({flux.shape[0]}).")
    w = 1.0 / err**2
    s = (_kmeans_init(flux, err, k, random_state) if init is None
         else np.array(init, dtype=np.float64))
    a = _nnls_abundances(flux, w, s)
    return _hals(flux, w, a, s, max_iter=max_iter, tol=tol, volume=volume)


_Fit = tuple[np.ndarray, np.ndarray, float]


def _fits(flux: np.ndarray, err: np.ndarray, w: np.ndarray, k: int,
          previous: tuple[np.ndarray, np.ndarray] | None, seed: int, volume: float
          ) -> list[_Fit]:
    """``k``-component fits from k-means and, given a (k − 1)-fit, from its worst residuals."""
    fits = [weighted_nmf(flux, err, k, random_state=seed, volume=volume)]
    if previous is not None:
        fits.append(weighted_nmf(flux, err, k, init=_residual_init(flux, w, *previous),
                                 random_state=seed, volume=volume))
    return fits


def _best_fit(flux: np.ndarray, err: np.ndarray, w: np.ndarray, k: int,
              previous: tuple[np.ndarray, np.ndarray] | None, seed: int, volume: float
              ) -> _Fit:
    return min(_fits(flux, err, w, k, previous, seed, volume), key=lambda f: f[2])


def _fewer_fit(flux: np.ndarray, err: np.ndarray, w: np.ndarray, k: int) -> _Fit:
    """The best fit of ``k − 1`` components (from k-means and, for k > 2, from the best
    ``k − 2`` fit plus its worst residuals, as :func:`~galclust.pixels.unmix.unmix`
    reaches it): the model ``k`` given SEDs must beat to show every component."""
    fewer = _best_fit(flux, err, w, k - 1, None, 0, 0.0)
    if k > 2:
        start = _best_fit(flux, err, w, k - 2, None, 0, 0.0)[:2]
        fewer = min(fewer, _best_fit(flux, err, w, k - 1, start, 0, 0.0), key=lambda f: f[2])
    return fewer
