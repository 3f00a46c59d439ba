"""Distances between pixel SEDs: pairwise (blockwise, vectorised) and as embeddings.

Metrics (``X`` rows are normalised pixel SEDs, see :mod:`~galclust.pixels.normalize`):

``"euclidean"``
    ``||x − y||``.
``"xcorr"``
    The cross-correlation shape distance
    ``b12 = sqrt(Σ (f1 − a12 f2)² / Σ f1²)`` with ``a12 = Σ f1 f2 / Σ f2²``.
    Although written asymmetrically, it is symmetric: expanding the square,
    ``b12² = 1 − (Σ f1 f2)² / (Σ f1² Σ f2²) = sin² θ12 = b21²``, where θ12 is
    the angle between the SEDs; :func:`shape_distance` evaluates the formula
    as written and the tests check ``b12 == b21``. So no symmetrisation is
    needed. It is scale-invariant (same for ``none``, ``l2``, ``sum``).
    Embedding: with unit SEDs ``u``, the map
    ``φ(u) = (u_k² for k; √2 u_k u_l for k < l) / √2`` gives
    ``||φ(u) − φ(v)|| = |sin θ| = b`` *exactly*, so k-means, GMM and Ward
    cluster on ``φ`` with the xcorr metric. (For non-negative SEDs b is also
    the monotone function ``d·sqrt(1 − d²/4)`` of the Euclidean distance ``d``
    between L2-normalised SEDs.)
``"wavelength"``
    ``sqrt(Σ w_k (x_k − y_k)²)`` with trapezoid weights ``w`` over the band
    pivots (:func:`trapezoid_weights`, mean 1); embedding ``x·sqrt(w)``.
``"chi2"``
    Error-weighted χ² shape distance. Both SEDs are put in units of their own
    L2 norm (``u = f/||f||``, ``τ = σ/||f||``); the scale ``a`` of ``v`` to
    ``u`` is fitted with inverse-variance weights ``w_k = 1/(τ_uk² + τ_vk²)``
    (the variance of ``u − a v`` at ``a ≈ 1``), giving
    ``χ²(u|v) = Σ w u² − (Σ w u v)² / Σ w v²``. ``χ²(u|v) ≠ χ²(v|u)``; the
    symmetric distance used is ``sqrt(mean(χ²(u|v), χ²(v|u)) / (n_bands − 1))``
    (a reduced χ²). Its embedding is approximate: the xcorr embedding of the
    fluxes whitened by each band's median error. It keeps the band weighting
    but not each pixel's S/N, which the pairwise form uses (a noisy pixel is
    close to every shape); precomputed-distance methods use the exact form.

Pairwise matrices are computed in row blocks whose temporaries stay within
``memory_budget`` bytes, optionally in float32.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from galclust.errors import InputError, check_choice
from galclust.pixels.options import METRICS

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "chi2_distance",
    "embed",
    "iter_pairwise",
    "nearest",
    "pairwise_distances",
    "rows_per_block",
    "shape_distance",
    "trapezoid_weights",
    "xcorr_embedding",
]

#: Bytes of temporaries one block of a pairwise computation may use (256 MiB).
DEFAULT_MEMORY_BUDGET = 256 * 2**20


def trapezoid_weights(wavelength: np.ndarray) -> np.ndarray:
    """Trapezoid-rule weights over band pivot wavelengths, scaled to mean 1.

    ``w_k = (λ_{k+1} − λ_{k−1}) / 2`` in wavelength order (half-intervals at
    the ends), so ``Σ w_k g(λ_k)`` approximates ``∫ g dλ`` over the bands.

    Parameters
    ----------
    wavelength : ndarray, (n_bands,)
        Pivot wavelengths (any order, distinct).

    Returns
    -------
    ndarray, (n_bands,)
    """
    lam = np.asarray(wavelength, dtype=np.float64)
    if lam.size == 1:
        return np.ones(1)
    order = np.argsort(lam)
    s = lam[order]
    if np.any(np.diff(s) <= 0):
        raise InputError("wavelength values must be distinct for trapezoid weights.")
    w_sorted = np.empty_like(s)
    w_sorted[1:-1] = (s[2:] - s[:-2]) / 2
    w_sorted[0] = (s[1] - s[0]) / 2
    w_sorted[-1] = (s[-1] - s[-2]) / 2
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return w / w.mean()


def shape_distance(f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """Cross-correlation shape distance ``b12`` evaluated as written (reference form).

    ``b12 = sqrt(Σ (f1 − a12 f2)² / Σ f1²)``, ``a12 = Σ f1 f2 / Σ f2²``;
    broadcasts over leading axes, sums over the last (bands).
    """
    f1 = np.asarray(f1, dtype=np.float64)
    f2 = np.asarray(f2, dtype=np.float64)
    a12 = (f1 * f2).sum(-1) / (f2 * f2).sum(-1)
    return np.sqrt(((f1 - a12[..., None] * f2) ** 2).sum(-1) / (f1 * f1).sum(-1))


def chi2_distance(f1: np.ndarray, e1: np.ndarray, f2: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Symmetric reduced-χ² shape distance (reference form, broadcasting over pairs).

    See the module docstring; :func:`pairwise_distances` with ``metric="chi2"``
    computes the same numbers blockwise.
    """
    n1 = np.sqrt((f1 * f1).sum(-1, keepdims=True))
    n2 = np.sqrt((f2 * f2).sum(-1, keepdims=True))
    u, v, t1, t2 = f1 / n1, f2 / n2, e1 / n1, e2 / n2
    w = 1.0 / (t1 * t1 + t2 * t2)
    suu, svv, suv = (w * u * u).sum(-1), (w * v * v).sum(-1), (w * u * v).sum(-1)
    chi = 0.5 * ((suu - suv * suv / svv) + (svv - suv * suv / suu))
    return np.sqrt(np.maximum(chi, 0.0) / max(np.shape(f1)[-1] - 1, 1))


def xcorr_embedding(x: np.ndarray) -> np.ndarray:
    """``φ(u)``: Euclidean distances between rows equal the xcorr distance ``b``.

    Parameters
    ----------
    x : ndarray, (n, n_bands)
        SEDs (any scale; rows are L2-normalised first, zero rows map to 0).

    Returns
    -------
    ndarray, (n, n_bands (n_bands + 1) / 2)
    """
    x = np.asarray(x)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    u = x / np.where(norm > 0, norm, 1.0)[:, None]
    iu, ju = np.triu_indices(x.shape[1])
    factor = np.where(iu == ju, 1.0, np.sqrt(2.0)) / np.sqrt(2.0)
    return (u[:, iu] * u[:, ju] * factor).astype(x.dtype, copy=False)


def embed(x: np.ndarray, *, metric: str = "euclidean", weights: np.ndarray | None = None,
          err: np.ndarray | None = None) -> np.ndarray:
    """Features on which Euclidean distance equals (or approximates) ``metric``.

    Exact for ``euclidean`` (identity), ``wavelength`` (``x·sqrt(w)``) and
    ``xcorr`` (:func:`xcorr_embedding`); approximate for ``chi2`` (xcorr
    embedding of ``x / median(err)`` per band).

    Parameters
    ----------
    x : ndarray, (n, n_bands)
    metric : str
    weights : ndarray, (n_bands,), optional
        Band weights of ``"wavelength"`` (required there).
    err : ndarray, (n, n_bands), optional
        Errors of ``"chi2"`` (required there).

    Returns
    -------
    ndarray, (n, n_features)
    """
    check_choice("metric", metric, METRICS)
    if metric == "euclidean":
        return x
    if metric == "wavelength":
        if weights is None:
            raise InputError("metric='wavelength' needs band weights: pass the wavelengths.")
        return x * np.sqrt(np.asarray(weights, dtype=x.dtype))
    if metric == "xcorr":
        return xcorr_embedding(x)
    if err is None:
        raise InputError("metric='chi2' needs per-pixel errors (err).")
    typical = np.median(np.asarray(err), axis=0)
    return xcorr_embedding(x / np.where(typical > 0, typical, 1.0))


def rows_per_block(n_cols: int, n_bands: int, *, metric: str, itemsize: int,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Rows of a pairwise block whose temporaries fit in ``memory_budget`` bytes."""
    per_pair = itemsize * ((3 * n_bands + 6) if metric == "chi2" else 4)
    return max(1, int(memory_budget // max(1, n_cols * per_pair)))


def _prepare(x: np.ndarray, err: np.ndarray | None, metric: str, weights: np.ndarray | None,
             dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    x = np.asarray(x, dtype=dtype)
    if metric == "wavelength":
        if weights is None:
            raise InputError("metric='wavelength' needs band weights: pass the wavelengths.")
        xw = x * np.sqrt(np.asarray(weights, dtype=dtype))
        return xw, None, np.einsum("ij,ij->i", xw, xw)
    if metric in ("xcorr", "chi2"):
        norm = np.sqrt(np.einsum("ij,ij->i", x, x))
        safe = np.where(norm > 0, norm, 1.0)
        u = x / safe[:, None]
        if metric == "xcorr":
            return u, None, None
        if err is None:
            raise InputError("metric='chi2' needs per-pixel errors (err).")
        t = np.asarray(err, dtype=dtype) / safe[:, None]
        return u, t * t, None
    return x, None, np.einsum("ij,ij->i", x, x)


def _block(metric: str, a: np.ndarray, b: np.ndarray, va: np.ndarray | None,
           vb: np.ndarray | None, sa: np.ndarray | None, sb: np.ndarray | None) -> np.ndarray:
    if metric == "xcorr":
        c = a @ b.T  # in place from here: one (rows, m) temporary
        np.multiply(c, c, out=c)
        np.subtract(1.0, c, out=c)
        np.maximum(c, 0.0, out=c)
        return np.sqrt(c, out=c)
    if metric == "chi2":
        w = 1.0 / (va[:, None, :] + vb[None, :, :])
        wa = w * a[:, None, :]
        suv = np.einsum("rmk,mk->rm", wa, b)
        suu = np.einsum("rmk,rk->rm", wa, a)
        svv = np.einsum("rmk,mk->rm", w * b[None, :, :], b)
        chi = 0.5 * ((suu - suv * suv / svv) + (svv - suv * suv / suu))
        return np.sqrt(np.maximum(chi, 0.0) / max(a.shape[1] - 1, 1))
    d2 = a @ b.T
    d2 *= -2.0
    d2 += sa[:, None]
    d2 += sb[None, :]
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2, out=d2)


def iter_pairwise(x: np.ndarray, y: np.ndarray | None = None, *, metric: str = "euclidean",
                  err: np.ndarray | None = None, err_y: np.ndarray | None = None,
                  weights: np.ndarray | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  dtype: np.dtype | str = np.float64) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, D[start:stop])`` row blocks of the pairwise distance matrix.

    Parameters are those of :func:`pairwise_distances`; a caller that reduces
    each block (e.g. :func:`nearest`) never holds the full matrix.
    """
    check_choice("metric", metric, METRICS)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype={dtype} must be float32 or float64.")
    a, va, sa = _prepare(x, err, metric, weights, dtype)
    if y is None:
        b, vb, sb = a, va, sa
    else:
        b, vb, sb = _prepare(y, err_y if err_y is not None else None, metric, weights, dtype)
        if b.shape[1] != a.shape[1]:
            raise InputError(f"x has {a.shape[1]} bands but y has {b.shape[1]}.")
    rows = rows_per_block(b.shape[0], a.shape[1], metric=metric, itemsize=dtype.itemsize,
                          memory_budget=memory_budget)
    for start in range(0, a.shape[0], rows):
        stop = min(start + rows, a.shape[0])
        sl = slice(start, stop)
        block = _block(metric, a[sl], b, None if va is None else va[sl], vb,
                       None if sa is None else sa[sl], sb)
        yield start, stop, block.astype(dtype, copy=False)


def pairwise_distances(x: np.ndarray, y: np.ndarray | None = None, *,
                       metric: str = "euclidean", err: np.ndarray | None = None,
                       err_y: np.ndarray | None = None, weights: np.ndarray | None = None,
                       memory_budget: int = DEFAULT_MEMORY_BUDGET,
                       dtype: np.dtype | str = np.float64) -> np.ndarray:
    """Pairwise distance matrix between rows of ``x`` (and ``y``), vectorised and blockwise.

    Parameters
    ----------
    x : ndarray, (n, n_bands)
        Normalised pixel SEDs (for ``chi2``: fluxes in a per-pixel scaling).
    y : ndarray, (m, n_bands), optional
        Second set (default ``x``).
    metric : {"euclidean", "xcorr", "wavelength", "chi2"}
    err, err_y : ndarray, optional
        1-sigma errors of ``x`` and ``y`` in the same scaling (``chi2`` only).
    weights : ndarray, (n_bands,), optional
        Band weights (``wavelength`` only; see :func:`trapezoid_weights`).
    memory_budget : int
        Bytes of temporaries per row block (the result itself is ``n·m``).
    dtype : {float64, float32}
        Precision of the computation and the result.

    Returns
    -------
    ndarray, (n, m)
    """
    x = np.asarray(x)
    m = x.shape[0] if y is None else np.asarray(y).shape[0]
    out = np.empty((x.shape[0], m), dtype=np.dtype(dtype))
    for start, stop, block in iter_pairwise(x, y, metric=metric, err=err, err_y=err_y,
                                            weights=weights, memory_budget=memory_budget,
                                            dtype=dtype):
        out[start:stop] = block
    if y is None:
        np.fill_diagonal(out, 0.0)
    return out


def nearest(x: np.ndarray, y: np.ndarray, *, metric: str = "euclidean",
            err: np.ndarray | None = None, err_y: np.ndarray | None = None,
            weights: np.ndarray | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
            dtype: np.dtype | str = np.float64) -> np.ndarray:
    """Index of the nearest row of ``y`` for every row of ``x`` (blockwise, bounded memory)."""
    out = np.empty(np.asarray(x).shape[0], dtype=np.int64)
    for start, stop, block in iter_pairwise(x, y, metric=metric, err=err, err_y=err_y,
                                            weights=weights, memory_budget=memory_budget,
                                            dtype=dtype):
        out[start:stop] = np.argmin(block, axis=1)
    return out
