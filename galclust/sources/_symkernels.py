"""Numba kernels of the deblender's symmetry split (:mod:`galclust.sources._symmetry`).

- :func:`_asym`: the antisymmetric residual ``I(x) - I(2c - x)`` of every band,
  ``I`` read from cubic B-spline coefficients as
  ``scipy.ndimage.map_coordinates(order=3, prefilter=False)`` reads them;
- :func:`_resid`: the χ² of that residual minus a Gaussian companion's
  antisymmetric model at its least-squares fluxes;
- :func:`_companion_simplex`: the Nelder-Mead search of the companion's
  centre of symmetry, position and width, step for step the algorithm of
  ``scipy.optimize.minimize(method="Nelder-Mead")`` (standard coefficients,
  ``xatol``, ``fatol``, ``maxfev``, a given initial simplex), run without
  leaving compiled code; vertices of equal cost keep their order (see
  :func:`_sort`), so the result does not depend on the CPU.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _weights(t: float) -> tuple[float, float, float, float]:  # pragma: no cover (jit)
    """Cubic B-spline weights of the taps ``floor(x) - 1 .. floor(x) + 2`` at ``t = x - floor(x)``."""
    u = 1.0 - t
    return (u * u * u / 6.0, (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
            (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0, t * t * t / 6.0)


@numba.njit(cache=True, nogil=True)
def _asym(coef: np.ndarray, nb: int, h: int, w: int, pad: int, img: np.ndarray, gy: np.ndarray,
          gx: np.ndarray, c0: float, c1: float) -> np.ndarray:  # pragma: no cover (jit)
    """``img - I(2c - x)`` at the points ``(gy, gx)`` of every band: (band, point).

    ``I`` is the cubic B-spline of ``coef`` (:func:`_spline`), read at
    ``2c - x`` clipped to ``pad - 1`` pixels beyond the cut-out, as
    ``scipy.ndimage.map_coordinates(order=3, prefilter=False)`` would; the
    weights are computed once per point and shared by the bands.
    """
    n = gy.shape[0]
    stride = w + 2 * pad
    rows, cols = coef.shape
    out = np.empty((nb, n))
    for i in range(n):
        y = min(max(2.0 * c0 - gy[i], 1.0 - pad), h + pad - 2.0) + pad
        x = min(max(2.0 * c1 - gx[i], 1.0 - pad), w + pad - 2.0) + pad
        iy, ix = int(np.floor(y)), int(np.floor(x))
        wy = _weights(y - iy)
        wx = _weights(x - ix)
        inner = iy >= 1 and iy + 2 < rows and ix >= 1 and ix + 2 < stride
        for b in range(nb):
            acc = 0.0
            for u in range(4):
                row = 0.0
                if inner:
                    r = iy - 1 + u
                    for v in range(4):
                        row += wx[v] * coef[r, ix - 1 + v + b * stride]
                else:                                    # a tap past the edge has weight 0
                    r = min(max(iy - 1 + u, 0), rows - 1)
                    for v in range(4):
                        col = min(max(ix - 1 + v, 0), stride - 1) + b * stride
                        row += wx[v] * coef[r, min(col, cols - 1)]
                acc += wy[u] * row
            out[b, i] = img[b, i] - acc
    return out


@numba.njit(cache=True, nogil=True)
def _resid(a: np.ndarray, gy: np.ndarray, gx: np.ndarray, w: np.ndarray, c0: float, c1: float,
           p0: float, p1: float, sg: float) -> float:  # pragma: no cover (jit)
    """Weighted χ² of the antisymmetric residual ``a`` (band, point) minus the companion's
    antisymmetric model ``alpha_b (G_p - G_{2c-p})`` at its least-squares ``alpha_b >= 0``."""
    nb, n = a.shape
    q = np.empty(n)
    qq = 0.0
    q0, q1 = 2.0 * c0 - p0, 2.0 * c1 - p1
    for i in range(n):
        q[i] = (np.exp(-0.5 * ((gy[i] - p0) ** 2 + (gx[i] - p1) ** 2) / sg**2)
                - np.exp(-0.5 * ((gy[i] - q0) ** 2 + (gx[i] - q1) ** 2) / sg**2))
        qq += q[i] * q[i]
    qq = max(qq, 1e-30)
    out = 0.0
    for b in range(nb):
        num = 0.0
        for i in range(n):
            num += a[b, i] * q[i]
        alpha = max(num / qq, 0.0)
        acc = 0.0
        for i in range(n):
            r = (a[b, i] - alpha * q[i]) * w[b]
            acc += r * r
        out += acc
    return out


@numba.njit(cache=True, nogil=True)
def _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, t, comp_sigma):  # pragma: no cover
    sg = comp_sigma * np.exp(min(max(t[4], -0.7), 0.7))
    a = _asym(coef, nb, h, w, pad, img, gy, gx, t[0], t[1])
    return _resid(a, gy, gx, wts, t[0], t[1], t[2], t[3], sg)


@numba.njit(cache=True, nogil=True)
def _sort(sim, fsim):  # pragma: no cover (jit)
    """Order the vertices by value, stably. scipy orders them with ``numpy.argsort``,
    whose SIMD sort does not keep ties in order (and differs between CPUs); ties happen
    where the companion's fluxes all clip to 0 and its position does not matter."""
    n = fsim.shape[0]
    for i in range(1, n):
        j = i
        while j > 0 and fsim[j - 1] > fsim[j]:
            fsim[j - 1], fsim[j] = fsim[j], fsim[j - 1]
            for d in range(sim.shape[1]):
                sim[j - 1, d], sim[j, d] = sim[j, d], sim[j - 1, d]
            j -= 1


@numba.njit(cache=True, nogil=True)
def _companion_simplex(coef, nb, h, w, pad, img, gy, gx, wts, simplex, comp_sigma, maxfev,
                       xatol, fatol):  # pragma: no cover (jit)
    """Nelder-Mead minimum of :func:`_companion_cost` from ``simplex`` (N + 1, N)."""
    sim = simplex.copy()
    npt, n = sim.shape
    fsim = np.empty(npt)
    calls = 0
    for k in range(npt):
        fsim[k] = _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, sim[k], comp_sigma)
        calls += 1
    _sort(sim, fsim)
    xbar = np.empty(n)
    while calls < maxfev:
        dx = 0.0
        df = 0.0
        for j in range(1, npt):
            for d in range(n):
                dx = max(dx, abs(sim[j, d] - sim[0, d]))
            df = max(df, abs(fsim[0] - fsim[j]))
        if dx <= xatol and df <= fatol:
            break
        for d in range(n):
            acc = sim[0, d]
            for j in range(1, npt - 1):
                acc += sim[j, d]
            xbar[d] = acc / n
        xr = 2.0 * xbar - 1.0 * sim[-1]
        fxr = _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, xr, comp_sigma)
        calls += 1
        shrink = False
        if fxr < fsim[0]:
            if calls >= maxfev:
                _sort(sim, fsim)
                break
            xe = 3.0 * xbar - 2.0 * sim[-1]
            fxe = _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, xe, comp_sigma)
            calls += 1
            if fxe < fxr:
                sim[-1] = xe
                fsim[-1] = fxe
            else:
                sim[-1] = xr
                fsim[-1] = fxr
        elif fxr < fsim[-2]:
            sim[-1] = xr
            fsim[-1] = fxr
        else:
            if calls >= maxfev:
                _sort(sim, fsim)
                break
            if fxr < fsim[-1]:
                xc = 1.5 * xbar - 0.5 * sim[-1]
                fxc = _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, xc, comp_sigma)
                calls += 1
                if fxc <= fxr:
                    sim[-1] = xc
                    fsim[-1] = fxc
                else:
                    shrink = True
            else:
                xcc = 0.5 * xbar + 0.5 * sim[-1]
                fxcc = _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, xcc, comp_sigma)
                calls += 1
                if fxcc < fsim[-1]:
                    sim[-1] = xcc
                    fsim[-1] = fxcc
                else:
                    shrink = True
            if shrink:
                for j in range(1, npt):
                    sim[j] = sim[0] + 0.5 * (sim[j] - sim[0])
                    if calls >= maxfev:      # scipy moves the vertex, then stops unevaluated
                        break
                    fsim[j] = _companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, sim[j],
                                              comp_sigma)
                    calls += 1
        _sort(sim, fsim)
    return sim[0].copy()
