"""The number of components tested again on the smoothed stamp.

:func:`~galclust.pixels.unmix.unmix` asks of a new component that it lower
χ² by more than a new component lowers it on noise. Tested pixel by pixel,
that margin grows with the footprint: the new component has a free
abundance in each of ``n`` pixels, noise lets each of them lower χ² by about
one, and the margin is about ``3 sqrt(2 n)`` — about 100 for 500 pixels,
while a 20-pixel component whose colour differs by 0.15 mag at per-pixel
S/N 10 lowers χ² by about 40. On the mixture suite that is why most
overlapping galaxies the unmixing gets wrong are short of a component
(:mod:`galclust.evaluation.mixtures`, ``identifiable``).

A component's light is PSF-convolved, so its abundance map varies no faster
than the PSF. Smoothing the stamp by a Gaussian of ``sigma`` px keeps the
linear mixing model exact (a smoothed mixture is the mixture of the smoothed
abundances) and lowers each pixel's noise about ``2 sqrt(pi) sigma`` times,
so an extended component's χ² gain grows about ``4 pi sigma**2`` times. The
noise of neighbouring smoothed pixels is correlated, so the drop on noise
scatters more: for a sum of squared Gaussians whose correlation is that of
white noise smoothed by ``sigma``, the variance is ``2 D0 A`` with ``A =
2 pi sigma**2`` (the sum of the squared correlations), plus the sky's own
correlation area. The margin is about ``null_sigma sqrt(2 D0 A)``: the drop on
noise then has only ``D0 / A`` independent terms (about 25 at ``sigma`` = 2 px on a
500-pixel galaxy) and a longer tail than a Gaussian's, so the margin is the
upper tail of a scaled χ² of that mean and variance
(:func:`~galclust.pixels.unmix.needed_drop`). The gain over
the margin is then about ``sqrt(2 pi) sigma`` times the pixel-by-pixel
test's for a component much larger than the kernel; a component not much
larger than the kernel gains less, which is why the pixel-by-pixel test
runs first.

``D0`` is measured as :func:`~galclust.pixels.unmix.unmix` measures it (the
k-component model of the smoothed stamp plus noise drawn from the errors
and smoothed the same way, refitted with k and k + 1 components), but:

- averaged over :data:`NULL_DRAWS` draws: one draw of smoothed noise
  scatters as much as the drop it is the reference for;
- where the sky's noise is correlated (drizzled mosaics), the drawn noise
  is white noise through a Gaussian whose 5 x 5 box sums scatter as the
  sky's do (:func:`_sky_kernel`). Smoothing integrates the noise over many
  pixels, so noise drawn white and widened, or with the right correlation
  area but too short a reach, gives too small a drop: on held-out suite
  galaxies of one component (3 x 3 drizzle-like noise) 4 of 54 fresh ones
  came out as two.

:func:`smoothed_k` takes the unmixing's k and tries k + 1, k + 2, … on the
stamp smoothed by each ``sigma`` of :data:`K_SIGMAS` in turn, with the same
rules as the unmixing: the drop must beat the margin, and every component
must dominate :data:`~galclust.pixels.unmix.MIN_COMPONENT_PIXELS` pixels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from galclust.pixels.nmf import _best_fit, _fewer_fit, _fits, weighted_nmf
from galclust.pixels.pooling import smooth_cube
from galclust.pixels.skynoise import CORRELATION_AREA
from galclust.pixels.unmix import (
    MIN_COMPONENT_PIXELS,
    NULL_SIGMA,
    VOLUME,
    _accepted_fit,
    _dof,
    needed_drop,
)

__all__ = ["K_SIGMAS", "smoothed_k", "smoothed_shows"]

#: Gaussian sigmas (px) of the stamps the k test is repeated on, in turn.
K_SIGMAS: tuple[float, ...] = (1.0, 2.0)
#: Noise draws averaged for the drop on noise. One draw scatters as much as the
#: drop it is the reference for (``sqrt(2 D0 A)``, 20-30 % of it at sigma 2 px:
#: the margin itself then moved by 25-50 % between random seeds).
NULL_DRAWS = 4


def _variance_area(sigma: float, correlation: float) -> float:
    """Pixels per independent sample of the χ² drop on the smoothed stamp (module docstring)."""
    return 2.0 * np.pi * sigma**2 + max(correlation, 1.0)


@functools.lru_cache(maxsize=64)
def _kernel_for(correlation: float) -> np.ndarray | None:
    """A 1-D Gaussian kernel of unit sum of squares whose 2-D product correlates white
    noise as the sky's measured ``correlation`` says: sums over
    :data:`~galclust.pixels.skynoise.CORRELATION_AREA` pixels (5 x 5) scatter
    ``sqrt(correlation)`` times more than independent pixels would. None for white noise."""
    if correlation <= 1.05:
        return None
    side = int(round(np.sqrt(CORRELATION_AREA)))
    x = np.arange(-12, 13, dtype=float)
    lags = np.arange(1, side)
    for tau in np.arange(0.05, 4.0, 0.01):
        k = np.exp(-0.5 * (x / tau) ** 2)
        k /= np.sqrt((k**2).sum())
        rho = np.array([np.dot(k[d:], k[:len(k) - d]) for d in lags])
        ratio_1d = 1.0 + 2.0 * np.sum((side - lags) * rho) / side
        if ratio_1d**2 >= correlation:
            return k
    return k


def _sky_kernel(correlation: float) -> np.ndarray | None:
    """:func:`_kernel_for` the measured correlation to 0.01 (the search is the same for
    every galaxy of a survey)."""
    return _kernel_for(round(float(correlation), 2))


def _needed(null: float, sigma: float, correlation: float, null_sigma: float) -> float:
    """The drop a new component must beat, for a mean drop ``null`` on noise."""
    return needed_drop(null, _variance_area(sigma, correlation), null_sigma)


def _beats_null(drop: float, sci_err: np.ndarray, pixels: np.ndarray, keep: np.ndarray,
                a: np.ndarray, s: np.ndarray, err: np.ndarray, sigma: float,
                correlation: float, null_sigma: float, seed: int) -> tuple[bool, float]:
    """Whether ``drop`` beats the margin over the mean χ² drop from k to k + 1 on the
    k-component model plus noise smoothed like the data (:data:`NULL_DRAWS` draws), and
    the drop needed.

    The noise has the sky's measured correlation (white noise through a Gaussian kernel,
    :func:`_sky_kernel`) before the smoothing. Drops on noise are >= 0 and the margin
    grows with their mean, so once the draws so far make the margin exceed ``drop`` the
    rest cannot change the answer: the draws stop there (the needed drop returned is then
    a lower bound)."""
    rng = np.random.default_rng(seed)
    kernel = _sky_kernel(correlation)
    scale = np.where(np.isfinite(sci_err), sci_err, 0.0)
    w = 1.0 / err**2
    total = 0.0
    for draw in range(NULL_DRAWS):
        unit = rng.normal(size=sci_err.shape)
        if kernel is not None:
            unit = ndimage.convolve1d(ndimage.convolve1d(unit, kernel, axis=1), kernel, axis=2)
        smoothed, _ = smooth_cube(unit * scale, sci_err, pixels, sigma)
        sim = a @ s + smoothed[:, pixels].T[keep]
        # the k fit starts from the model's own SEDs (the best start there is); the
        # k + 1 fit is searched as on the data
        base = weighted_nmf(sim, err, s.shape[0], init=s)
        more = _best_fit(sim, err, w, s.shape[0] + 1, base[:2], seed + draw, 0.0)
        total += max(base[2] - more[2], 0.0)
        need = _needed(total / NULL_DRAWS, sigma, correlation, null_sigma)
        if drop <= need:
            return False, need
    return True, need


class _Null:
    """Whether a χ² drop beats :func:`_beats_null`'s margin. The draws are made on the
    first call (the largest drop :func:`~galclust.pixels.unmix._accepted_fit` asks) and
    their needed drop reused when every draw was made (else the answer was no)."""

    def __init__(self, test: Callable[[float], tuple[bool, float]]) -> None:
        self._test = test
        self._full = False
        self.need = float("nan")

    def __call__(self, drop: float) -> bool:
        if self._full:
            return drop > self.need
        self._full, self.need = self._test(drop)
        return self._full


def _smoothed_pixels(sci: np.ndarray, err: np.ndarray, pixels: np.ndarray, sigma: float,
                     correlation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed stamp's pixel SEDs and errors, and which of ``pixels`` they cover."""
    sflux, serr = smooth_cube(sci, err, pixels, sigma, correlation)
    flux, e = sflux[:, pixels].T, serr[:, pixels].T
    keep = np.all(np.isfinite(flux), axis=1) & np.all(np.isfinite(e), axis=1)
    return flux[keep], e[keep], keep


def smoothed_shows(sci: np.ndarray, err: np.ndarray, pixels: np.ndarray, seds: np.ndarray, *,
                   correlation: float = 1.0, sigmas: tuple[float, ...] = K_SIGMAS) -> bool:
    """Whether a smoothed stamp shows every one of the given component SEDs.

    The k-component fit started from ``seds`` must lower χ² below the best
    (k − 1)-component fit (from k-means, and from the best k − 2 fit plus its
    worst residuals) by :func:`smoothed_k`'s margin, at some ``sigma``. The
    validation suite asks it of the true SEDs (``identifiable``).

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    pixels : ndarray of bool, (y, x)
    seds : ndarray, (k, band)
        k >= 2 component SEDs.
    correlation : float
    sigmas : tuple of float

    Returns
    -------
    bool
    """
    k = len(seds)
    for sigma in sigmas:
        flux, e, keep = _smoothed_pixels(sci, err, pixels, sigma, correlation)
        if len(flux) < MIN_COMPONENT_PIXELS * k:
            continue
        fewer = _fewer_fit(flux, e, 1.0 / e**2, k)
        truth = weighted_nmf(flux, e, k, init=seds)
        if _beats_null(fewer[2] - truth[2], err, pixels, keep, fewer[0], fewer[1], e, sigma,
                       correlation, NULL_SIGMA, 1)[0]:
            return True
    return False


def smoothed_k(sci: np.ndarray, err: np.ndarray, pixels: np.ndarray, k: int,
               seds: np.ndarray, *, k_max: int = 6, correlation: float = 1.0,
               sigmas: tuple[float, ...] = K_SIGMAS, null_sigma: float = NULL_SIGMA,
               random_state: int = 0) -> tuple[int, np.ndarray, dict[float, list[float]]]:
    """Raise an unmixing's number of components while the smoothed stamp shows more.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
        The stamp over the bands unmixed, with sky-rescaled errors.
    pixels : ndarray of bool, (y, x)
        The unmixed pixels.
    k : int
        The number of components the pixel-by-pixel test chose.
    seds : ndarray, (k, band)
        Its component SEDs (a start for the smoothed fits).
    k_max : int
        Largest number of components.
    correlation : float
        Pixels per independent noise sample of the stamp.
    sigmas : tuple of float
        Smoothing sigmas (px), tried in turn.
    null_sigma : float
        Margin in standard deviations of the drop on noise.
    random_state : int

    Returns
    -------
    k : int
        The number of components (at least the given ``k``).
    seds : ndarray, (k, band)
        The component SEDs of the last accepted smoothed fit (the given
        ``seds`` if none was accepted).
    drops : dict of float to list of float
        Per sigma, the χ² drop and the drop needed of each k + 1 tried, in
        turn (``[drop, needed, drop, needed, …]``; for the record). The
        needed drop is NaN where a component owned too few pixels, and a
        lower bound where the null's draws stopped early
        (:func:`_beats_null`).
    """
    nb = sci.shape[0]
    k_max = min(k_max, nb, int(pixels.sum()) // MIN_COMPONENT_PIXELS)
    drops: dict[float, list[float]] = {}
    for sigma in sigmas:
        if k >= k_max:
            break
        flux, e, keep = _smoothed_pixels(sci, err, pixels, sigma, correlation)
        n = len(flux)
        if n < MIN_COMPONENT_PIXELS * (k + 1):
            continue
        w = 1.0 / e**2
        fits = [_best_fit(flux, e, w, k, None, random_state, 0.0),
                weighted_nmf(flux, e, k, init=seds)]
        a, s, chi = min(fits, key=lambda f: f[2])
        tried = drops.setdefault(float(sigma), [])
        while k < k_max:
            fits = _fits(flux, e, w, k + 1, (a, s), random_state, 0.0)
            beats = _Null(functools.partial(
                _beats_null, sci_err=err, pixels=pixels, keep=keep, a=a, s=s, err=e,
                sigma=sigma, correlation=correlation, null_sigma=null_sigma,
                seed=random_state + k))
            fit, drop, owned = _accepted_fit(flux, e, fits, chi, random_state,
                                             _dof(n, nb, k + 1), VOLUME, beats)
            tried += [float(drop), beats.need if owned else float("nan")]
            if fit is None:
                break
            (a, s, chi), k = fit, k + 1
            seds = s
    return k, seds, drops
