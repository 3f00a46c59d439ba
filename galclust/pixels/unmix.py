"""Spectral unmixing of a galaxy's pixel SEDs: component fractions and SEDs.

A pixel's SED is, to the noise, a non-negative mixture of a few component
SEDs — the linear mixing model of hyperspectral imaging::

    flux[i, b] = sum_c A[i, c] * S[c, b] + noise,    A >= 0, S >= 0,

with ``S[c]`` normalised to sum 1 over the bands, so ``A[i, c]`` is the
band-summed flux component ``c`` gives pixel ``i`` and
``A[i, c] / sum_c A[i, c]`` its *fraction*.

:func:`weighted_nmf` (:mod:`galclust.pixels.nmf`) fits the model for a given
number of components by minimising χ² = Σ ((flux − A S) / err)²
(non-negative factorisation with errors, by weighted HALS).

:func:`unmix` chooses the number of components (``n_components="auto"``):
it fits k = 1, 2, … and takes one more component while the fit improves
significantly — by more than adding a component to a model of pure noise
improves it. That reference is measured, not assumed: the k-component model
plus noise drawn from the errors is refitted with k and k + 1 components
(a parametric bootstrap), and ``k + 1`` is accepted when its χ² drop ``D``
on the data exceeds the drop ``D0`` on the simulated data by about
``3 sqrt(2 D0)`` (the upper tail of a scaled χ² of that mean and variance at
3 Gaussian sigma, :func:`needed_drop`). An information criterion charges a
component for all its ``n_pixels + n_bands − 1`` parameters (AIC: ``D > 2 p``); but a
non-negative abundance that noise cannot use stays at zero, and the measured
``D0`` is 0.85–1.2 ``n_pixels``, so AIC needs about twice the evidence
the data give a real component that dominates only a few dozen pixels
(on the default suite: 69 % against 81 % of 3-component galaxies right).
:func:`hysime` is the noise-whitened subspace identification of
Bioucas-Dias & Nascimento (2008), for comparison.

The fit of the chosen k adds a *minimum-volume* term: each SED is pulled
towards its projection on the span of the others with a weight ``v`` times
the χ² curvature in it, ``v`` the largest of 1, 0.3, 0.1, … (at most
``volume``) whose fit's χ² exceeds the plain fit's by no more than
``sqrt(2 dof)`` or 10 % of the plain χ² (``VOLUME_TOLERANCE``), whichever is
larger — as tight as the
noise allows (the discrepancy principle). A non-negative factorisation is not
unique — any cone that contains the pixel SEDs fits them — and plain χ²
drifts to the widest (SEDs with zeros, fractions near 0.5 and 1); the
tightest cone is the one whose edges are the data's purest pixels
(Miao & Qi 2007, MVC-NMF). The k test uses plain χ² fits.

A new component must also *own* pixels: dominate at least
``MIN_COMPONENT_PIXELS`` of them (a spike or a hot pixel fits its own SED
exactly and lowers χ² without being a component). Because the plain fit's
cone is not unique, that is asked of the plain fit or, failing it, of its
tightest cone: of two fits with the same χ² the plain one may put a real
component's SED far outside the data, where it dominates no pixel. On the
held-out family this was the cause of most misses among galaxies whose data
show every component (k right 0.84 → 1.00 of them on seeds 136–141).
Failing both, the fits of k + 1 from the other start and from
:data:`OWNING_STARTS` more k-means starts are asked, lowest χ² first, and the
χ² drop the null rule tests is that of the first whose components all own
pixels (:func:`_accepted_fit`): the start from the worst residuals can end a
few tens of χ² below the fits that split the galaxy's colours, with a
component that explains scattered residual light and dominates no pixel.
On the default family's overlapping galaxies that showed every component,
this was the cause of most misses (k right of them 0.90 → 0.98 on seeds
136–141).

Component SED errors are the square roots of the diagonal of the inverse
Fisher matrix of ``S`` with ``A`` fixed, per band.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from galclust.errors import InputError
from galclust.pixels.nmf import _best_fit, _chi2, _Fit, _fits, weighted_nmf
from galclust.pixels.subspace import check_seds as _check
from galclust.pixels.subspace import hysime

__all__ = ["Unmixing", "hysime", "unmix", "weighted_nmf"]

#: A component must hold at least this many pixels' worth of dominance to be
#: kept (a spike fits its own SED exactly).
MIN_COMPONENT_PIXELS = 5
#: Rules for ``unmix(n_components="auto")``: the bootstrap null (default) or
#: an information criterion.
PENALTIES = ("null", "aic", "bic")
#: The null rule: k + 1 must drop χ² by more than the drop on noise's upper tail at
#: the one-sided probability of this many Gaussian standard deviations (about this
#: many ``sqrt(2 drop)`` above the mean drop; :func:`needed_drop`).
NULL_SIGMA = 3.0
#: Largest weight of the minimum-volume term, relative to the χ² curvature.
VOLUME = 1.0


@dataclass
class Unmixing:
    """The unmixing of one galaxy's pixels.

    Attributes
    ----------
    abundances : ndarray, (pixel, component)
        Band-summed flux of each component in each pixel (>= 0).
    fractions : ndarray, (pixel, component)
        ``abundances`` over their sum (NaN where the sum is 0).
    seds, sed_err : ndarray, (component, band)
        Component SEDs normalised to sum 1, and their 1-sigma errors.
    labels : ndarray of int, (pixel,)
        The dominant component of each pixel.
    n_components : int
    chi2 : float
        Reduced χ² of the chosen fit.
    criterion : str
        ``"null"``, ``"aic"``, ``"bic"``, ``"hysime"``, ``"fixed"`` or
        ``"degenerate"``.
    k_scores : dict of int to float
        Reduced χ² of the fit with each k tried.
    """

    abundances: np.ndarray
    fractions: np.ndarray
    seds: np.ndarray
    sed_err: np.ndarray
    labels: np.ndarray
    n_components: int
    chi2: float
    criterion: str
    k_scores: dict[int, float] = field(default_factory=dict)


def _null_drop(a: np.ndarray, s: np.ndarray, err: np.ndarray, seed: int) -> float:
    """χ² drop from k to k + 1 components on the k-component model plus simulated noise."""
    rng = np.random.default_rng(seed)
    sim = a @ s + rng.normal(0.0, 1.0, a.shape[:1] + s.shape[1:]) * np.where(
        np.isfinite(err), err, 0.0)
    w = 1.0 / err**2
    base = _best_fit(sim, err, w, s.shape[0], None, seed, 0.0)
    more = _best_fit(sim, err, w, s.shape[0] + 1, base[:2], seed, 0.0)
    return max(base[2] - more[2], 0.0)


def needed_drop(null: float, area: float, null_sigma: float = NULL_SIGMA) -> float:
    """The χ² drop a new component must beat, for a mean drop ``null`` on noise.

    The drop on noise is a sum of squares of correlated Gaussian terms, taken as a
    scaled χ² with its mean ``null`` and variance ``2 null area`` (Satterthwaite):
    ``area`` pixels per independent term (1 for independent pixels; more where the
    noise is correlated or the stamp smoothed), so ``null / area`` degrees of
    freedom. The margin is its upper tail at the one-sided probability of
    ``null_sigma`` Gaussian standard deviations. With many degrees of freedom that is
    ``null + null_sigma sqrt(2 null area)``; with few (the stamp smoothed by 2 px:
    about 25 on a 500-pixel galaxy) the drop's tail is longer, and the Gaussian
    margin split 3 of 54 single components of fresh default suite seeds.

    Parameters
    ----------
    null : float
        Mean χ² drop from k to k + 1 components on the k-component model plus noise.
    area : float
        Pixels per independent term of the drop (>= 1).
    null_sigma : float

    Returns
    -------
    float
    """
    if not null > 0:
        return 0.0
    area = max(float(area), 1.0)
    return float(area * stats.chi2.isf(stats.norm.sf(null_sigma), null / area))


#: The tightened fit may raise χ² by this fraction (or sqrt(2 dof) if larger).
VOLUME_TOLERANCE = 0.1
#: The minimum-volume weights tried, largest first (see :func:`_tighten`).
VOLUME_LADDER = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)


def _tighten(flux: np.ndarray, err: np.ndarray, a: np.ndarray, s: np.ndarray, chi2: float,
             dof: int, volume: float) -> tuple[np.ndarray, np.ndarray]:
    """The tightest cone the noise allows: the largest minimum-volume weight (at most
    ``volume``) whose fit's χ² exceeds the plain fit's by no more than ``sqrt(2 dof)``
    or :data:`VOLUME_TOLERANCE` of it."""
    if volume <= 0 or s.shape[0] < 2:
        return a, s
    for v in (x for x in VOLUME_LADDER if x <= volume):
        a2, s2, chi = weighted_nmf(flux, err, s.shape[0], init=s, volume=v)
        if chi - chi2 <= max(np.sqrt(2.0 * dof), VOLUME_TOLERANCE * chi2):
            return a2, s2
    return a, s


def _owns(flux: np.ndarray, err: np.ndarray, a: np.ndarray, s: np.ndarray, chi2: float,
          dof: int, volume: float) -> bool:
    """Whether every component dominates :data:`MIN_COMPONENT_PIXELS` pixels, in the plain
    fit or, failing that, in its tightest cone (a fit of the same χ² may place a real
    component's SED far outside the data, where it dominates no pixel)."""
    if np.bincount(a.argmax(axis=1), minlength=s.shape[0]).min() >= MIN_COMPONENT_PIXELS:
        return True
    a2, _ = _tighten(flux, err, a, s, chi2, dof, volume)
    return np.bincount(a2.argmax(axis=1), minlength=s.shape[0]).min() >= MIN_COMPONENT_PIXELS


#: k-means starts (seeds after the unmixing's own) also fitted when the best k + 1 fit
#: has a component that owns too few pixels (:func:`_accepted_fit`).
OWNING_STARTS = 3


class _Margin:
    """``drop > needed drop``, the needed drop (the null's draws) made on the first call."""

    def __init__(self, make: Callable[[], float]) -> None:
        self._make = make
        self.need: float | None = None

    def __call__(self, drop: float) -> bool:
        if self.need is None:
            self.need = self._make()
        return drop > self.need


def _accepted_fit(flux: np.ndarray, err: np.ndarray, fits: list[_Fit], chi: float, seed: int,
                  dof: int, volume: float, beats: Callable[[float], bool]
                  ) -> tuple[_Fit | None, float, bool]:
    """The k + 1 fit the k test accepts over a k-fit of χ² ``chi``, or None.

    A fit is accepted when every one of its components owns pixels (:func:`_owns`)
    and its χ² drop ``beats`` the null. The best of ``fits`` (:func:`_fits`) is asked
    first. If a component of it owns too few pixels, the other start's fit and
    :data:`OWNING_STARTS` more k-means starts are asked, lowest χ² first, and the drop
    tested is that of the first whose components all own pixels. A non-negative
    factorisation has many local optima of about the same χ²: the start from the
    worst residuals can end with a component that explains scattered residual light
    at a χ² a few tens below fits that split the galaxy's colours, while a hot pixel
    or a spike is fitted well only by a component of its own. That search runs only
    when the best fit's drop beats the null (no other fit's drop is larger), so it
    changes no answer where it cannot.

    Returns
    -------
    fit : tuple or None
    drop : float
        The χ² drop last tested.
    owned : bool
        Whether some fit's components all owned pixels.
    """
    best = min(fits, key=lambda f: f[2])
    if _owns(flux, err, *best, dof, volume):
        return (best if beats(chi - best[2]) else None), chi - best[2], True
    if not beats(chi - best[2]):
        return None, chi - best[2], False
    k = best[1].shape[0]
    more = [weighted_nmf(flux, err, k, random_state=seed + i) for i in range(1, OWNING_STARTS + 1)]
    for fit in sorted([f for f in fits if f is not best] + more, key=lambda f: f[2]):
        if _owns(flux, err, *fit, dof, volume):
            return (fit if beats(chi - fit[2]) else None), chi - fit[2], True
    return None, chi - best[2], False


def _sed_errors(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    k, nb = a.shape[1], w.shape[1]
    out = np.full((k, nb), np.nan)
    for b in range(nb):
        fisher = (a * w[:, b : b + 1]).T @ a
        try:
            out[:, b] = np.sqrt(np.clip(np.diag(np.linalg.pinv(fisher)), 0.0, None))
        except np.linalg.LinAlgError:
            pass
    return out


def _result(a: np.ndarray, s: np.ndarray, chi2: float, dof: int, w: np.ndarray,
            criterion: str, scores: dict[int, float]) -> Unmixing:
    tot = a.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(tot > 0, a / tot, np.nan)
    tot_s = s.sum(axis=1)
    return Unmixing(abundances=a, fractions=frac, seds=s,
                    sed_err=_sed_errors(a, w) / np.where(tot_s > 0, tot_s, 1.0)[:, None],
                    labels=a.argmax(axis=1).astype(np.int64), n_components=s.shape[0],
                    chi2=chi2 / max(dof, 1), criterion=criterion, k_scores=scores)


def _dof(n: int, nb: int, k: int) -> int:
    return max(n * nb - n * k - k * (nb - 1), 1)


def unmix(flux: Any, err: Any, *, n_components: Any = "auto", k_range: tuple[int, int] = (1, 6),
          penalty: str = "null", null_sigma: float = NULL_SIGMA, volume: float = VOLUME,
          correlation: float = 1.0, init: np.ndarray | None = None,
          random_state: int = 0) -> Unmixing:
    """Unmix pixel SEDs into component fractions and SEDs, choosing their number.

    Parameters
    ----------
    flux, err : array_like, (pixel, band)
        Pixel fluxes and 1-sigma errors (``err = inf``: band missing there).
    n_components : "auto", "hysime" or int
        ``"auto"``: the rule ``penalty`` on the χ² of non-negative fits with
        k = kmin, kmin + 1, … (module docstring);
        ``"hysime"``: :func:`hysime`'s subspace dimension; an integer: that many.
    k_range : (int, int)
        Smallest and largest k tried by ``"auto"``.
    penalty : {"null", "aic", "bic"}
        One more component is taken while it lowers χ² by more than: its drop
        ``D0`` on the k-component model plus simulated noise, by about
        ``null_sigma * sqrt(2 D0)`` (``"null"``, :func:`needed_drop`); or, with ``p = n_pixels +
        n_bands − 1`` new parameters, ``2 p`` (AIC) or ``p ln(n)`` (BIC, ``n``
        the number of measurements).
    null_sigma : float
        Margin of the ``"null"`` rule.
    correlation : float
        Pixels per independent noise sample (1: independent pixels). The
        bootstrap draws independent noise; with spatially correlated noise
        the drop on the data scatters ``sqrt(correlation)`` times more, so
        the margin is about ``null_sigma * sqrt(2 D0 correlation)``.
    volume : float
        Largest weight of the minimum-volume term of the final fit (0: plain χ²).
    init : ndarray, (n_components, band), optional
        Starting SEDs for an integer ``n_components``.
    random_state : int

    Returns
    -------
    Unmixing

    Raises
    ------
    InputError
        For arrays that disagree or hold non-finite fluxes, or a bad option.
    """
    flux, err = _check(flux, err)
    n, nb = flux.shape
    w = 1.0 / err**2
    kmin, kmax = (int(v) for v in k_range)
    if not 1 <= kmin <= kmax:
        raise InputError(f"k_range={k_range!r} must be (kmin, kmax) with 1 <= kmin <= kmax.")
    if isinstance(n_components, str) and n_components not in ("auto", "hysime"):
        raise InputError(f"n_components={n_components!r} must be 'auto', 'hysime' or an "
                         "integer.")
    if penalty not in PENALTIES:
        raise InputError(f"penalty={penalty!r} must be one of {', '.join(PENALTIES)}.")
    kmax = max(min(kmax, nb, n // MIN_COMPONENT_PIXELS), 1)

    def final(k: int, criterion: str, scores: dict[int, float],
              start: np.ndarray | None = None) -> Unmixing:
        a, s, chi = weighted_nmf(flux, err, k, init=start, random_state=random_state)
        scores = scores or {k: chi / _dof(n, nb, k)}
        a, s = _tighten(flux, err, a, s, chi, _dof(n, nb, k), volume)
        return _result(a, s, _chi2(flux, w, a, s), _dof(n, nb, k), w, criterion, scores)

    if n < 2 * MIN_COMPONENT_PIXELS or nb < 2:
        return final(1, "degenerate", {})
    if not isinstance(n_components, str):
        k = min(int(n_components), n)
        return final(k, "fixed", {}, init if init is not None and len(init) == k else None)
    if n_components == "hysime":
        return final(int(np.clip(hysime(flux, err), min(kmin, kmax), kmax)), "hysime", {})
    kmin = min(kmin, kmax)
    def needed(a: np.ndarray, s: np.ndarray, k: int) -> float:
        if penalty == "aic":
            return 2.0 * (n + nb - 1)
        if penalty == "bic":
            return (n + nb - 1) * np.log(n * nb)
        null = _null_drop(a, s, err, random_state + k)
        return needed_drop(null, correlation, null_sigma)

    a, s, chi = _best_fit(flux, err, w, kmin, None, random_state, 0.0)
    scores = {kmin: chi / _dof(n, nb, kmin)}
    k = kmin
    while k < kmax:
        dof = _dof(n, nb, k + 1)
        fits = _fits(flux, err, w, k + 1, (a, s), random_state, 0.0)
        scores[k + 1] = min(f[2] for f in fits) / dof
        beats = _Margin(functools.partial(needed, a, s, k))
        fit = _accepted_fit(flux, err, fits, chi, random_state, dof, volume, beats)[0]
        if fit is None:
            break
        (a, s, chi), k = fit, k + 1
    return final(k, penalty, scores, s)
