"""The validation suite of pixel-SED clustering on galaxies whose light mixes.

:func:`run_mixture_suite` draws galaxies with :func:`galclust.synth.make_mixture_galaxy`
over a grid of components × S/N × layout (× family) and scores every rule
for the number of clusters on each; :func:`mixture_table` summarises it by
components × S/N × layout, one column block per rule.

Rules (``RULES``)
-----------------
``"chi2"``
    Today's default: :func:`~galclust.pixels.core.cluster_galaxy` with
    ``n_clusters="auto"`` (the χ² rule of :mod:`galclust.pixels.nclusters`).
``"unmix"``
    ``cluster_galaxy(unmix=True)``: spectral unmixing, k from the bootstrap
    null rule of :func:`galclust.pixels.unmix.unmix`, tested again on the
    smoothed stamp (:mod:`galclust.pixels.smoothk`), labels = the dominant
    component under the minimum-volume SEDs; also fraction maps (SEDs placed
    by the light's profiles, :mod:`galclust.pixels.profilefit`).
``"aic"``, ``"hysime"``
    Unmixing with k from AIC or HySime (Bioucas-Dias & Nascimento 2008).
``"silhouette"``
    k-means on L2-normalised SEDs, k by the highest mean silhouette (no
    errors: what a user without error maps gets).
``"gmm_bic"``
    ``cluster_galaxy(method="gmm")``: the lowest BIC.
``"kmeans_true_k"``
    The research code's reference: k-means on L2-normalised SEDs *given the
    true k*.

Scores
------
``k_right``: the number of clusters equals the number of components.
``ari``: adjusted Rand index between the labels and the dominant component,
over the pixels that one component dominates (> 70 % of the light) and the
rule labels. ``coverage``: the share of those pixels labelled.
``frac_rms``: for the unmixing rules, the light-weighted RMS difference of
the fraction maps over the footprint (weights: the pixel's band-summed flux,
clipped at 0), components matched to the truth by the Hungarian algorithm
(a missing or extra component counts as a map of zeros); ``frac_rms_snr10``
the same unweighted over pixels of band-summed S/N ≥ 10.
``identifiable``: whether the data show all the galaxy's components at all —
the k-component fit started from the *true* SEDs lowers χ² below the best
(k − 1)-component fit by more than the unmixing's null rule asks of a new
component (the upper tail, at ``NULL_SIGMA`` Gaussian standard deviations, of
its drop on the (k − 1) model plus simulated noise, widened by the sky's noise
correlation),
pixel by pixel or on the stamp smoothed as the unmixing's second k test
smooths it (:mod:`galclust.pixels.smoothk`).
Where it does not, no rule that holds single components at k = 1 can be
expected to find k, whatever its method; ``mixture_table`` reports k accuracy
over the identifiable galaxies beside the raw one.

Every galaxy's errors are first rescaled from its sky
(``cluster_galaxy(sky=...)``), as the pixel stage does; where the stamp holds
too little sky (a nested disc that fills it), from the sky beside it
(:func:`suite_errors`), as the pixel stage takes the sky around every stamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from galclust.errors import InputError
from galclust.pixels.core import cluster_galaxy
from galclust.pixels.estimator import PixelClusterer
from galclust.pixels.mixing import rescale_from_sky
from galclust.pixels.nmf import _fewer_fit, weighted_nmf
from galclust.pixels.selection import select_pixels
from galclust.pixels.smoothk import smoothed_shows
from galclust.pixels.unmix import NULL_SIGMA, _null_drop, needed_drop
from galclust.synth.mixtures import make_mixture_galaxy, mixture_sky

__all__ = ["RULES", "fraction_rms", "identifiable", "mixture_table", "run_mixture_suite",
           "score_labels", "suite_errors"]

RULES: tuple[str, ...] = ("chi2", "unmix", "aic", "hysime", "silhouette", "gmm_bic",
                          "kmeans_true_k")


def fraction_rms(true: np.ndarray, pred: np.ndarray | None, where: np.ndarray,
                 weights: np.ndarray | None = None) -> float:
    """RMS difference of fraction maps over ``where``, components matched one-to-one.

    Parameters
    ----------
    true, pred : ndarray, (component, y, x)
        True and recovered fractions (NaN in ``pred`` counts as 0).
    where : ndarray of bool, (y, x)
    weights : ndarray, (y, x), optional

    Returns
    -------
    float
        ``sqrt(sum over matched pairs of mean_w (t - p)^2 / n_true)``; NaN
        when ``pred`` is None or ``where`` is empty.
    """
    if pred is None or not where.any():
        return float("nan")
    kt, kp = len(true), len(pred)
    m = max(kt, kp)
    t = np.zeros((m, int(where.sum())))
    p = np.zeros_like(t)
    t[:kt] = true[:, where]
    p[:kp] = np.nan_to_num(pred[:, where])
    w = np.ones(t.shape[1]) if weights is None else np.asarray(weights)[where]
    if w.sum() <= 0:
        return float("nan")
    cost = np.array([[np.average((t[i] - p[j]) ** 2, weights=w) for j in range(m)]
                     for i in range(m)])
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(cost[r, c].sum() / kt))


def score_labels(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """ARI over pixels both dominated (truth >= 0) and labelled, and their coverage."""
    dom = truth >= 0
    both = dom & (labels >= 0)
    if not both.any():
        return float("nan"), 0.0
    ari = (adjusted_rand_score(truth[both], labels[both])
           if len(np.unique(truth[both])) > 1 else float("nan"))
    return float(ari), float(both.sum() / max(dom.sum(), 1))


def identifiable(g: Any, *, errors: tuple[np.ndarray, float, bool] | None = None) -> bool:
    """Whether a suite galaxy's data show all its components (module docstring).

    Parameters
    ----------
    g : galclust.synth.MixtureGalaxy
    errors : tuple, optional
        :func:`suite_errors` of ``g`` (default: measured).

    Returns
    -------
    bool
        True for a single component; for k >= 2, whether the k-component fit
        started from the true SEDs beats the best (k − 1)-component fit by the
        null rule's margin, on the footprint with sky-rescaled errors, or on
        the footprint smoothed as the unmixing's k test smooths it
        (:func:`~galclust.pixels.smoothk.smoothed_shows`).
    """
    k = int(g.n_components)
    if k < 2:
        return True
    err, corr, _ = suite_errors(g) if errors is None else errors
    flux = g.sci[:, g.mask].T.astype(np.float64)
    e = err[:, g.mask].T.astype(np.float64)
    fewer = _fewer_fit(flux, e, 1.0 / e**2, k)
    truth = weighted_nmf(flux, e, k, init=g.seds)
    null = _null_drop(fewer[0], fewer[1], e, 1)
    if fewer[2] - truth[2] > needed_drop(null, corr, NULL_SIGMA):
        return True
    return smoothed_shows(g.sci.astype(np.float64), err.astype(np.float64), g.mask, g.seds,
                          correlation=corr)


def suite_errors(g: Any, *, seed: int = 0) -> tuple[np.ndarray, float, bool]:
    """A suite galaxy's errors rescaled from empty sky, as the survey's pixel stage does.

    From the stamp's own sky where it is large enough to measure every band's
    scale and the noise correlation; else (a nested disc that fills its stamp)
    from the sky beside the stamp (:func:`~galclust.synth.mixtures.mixture_sky`),
    as the pixel stage takes the sky within
    :data:`~galclust.pixels.rows.SKY_MARGIN` around every stamp.

    Parameters
    ----------
    g : galclust.synth.MixtureGalaxy
    seed : int
        Of the sky beside the stamp (the suite passes the galaxy's seed).

    Returns
    -------
    err : ndarray, (band, y, x)
    correlation : float
        Pixels per independent noise sample, measured on that sky.
    stamp_sky : bool
        Whether the stamp's own sky was used.
    """
    err, _, ok, corr = rescale_from_sky(g.sci, g.err, g.sky, g.bands)
    if ok:  # every band's scale and the noise correlation measured
        return err, corr, True
    sci, delivered = mixture_sky(g, seed=seed)
    _, scale, _, corr = rescale_from_sky(sci, delivered, np.ones(sci.shape[1:], bool), g.bands)
    return g.err * np.array([scale[b] for b in g.bands])[:, None, None], corr, False


def _run(rule: str, g: Any, errors: tuple[np.ndarray, float, bool]
         ) -> tuple[int, np.ndarray, np.ndarray | None]:
    err, corr, stamp_sky = errors
    # the stamp's sky is measured again by cluster_galaxy; a wider sky is given as such
    kw: dict[str, Any] = ({"bands": g.bands, "sky": g.sky} if stamp_sky else
                          {"bands": g.bands, "noise_correlation": corr})
    err = g.err if stamp_sky else err
    if rule in ("chi2", "gmm_bic"):
        r = cluster_galaxy(g.sci, err, g.mask, g.wavelength,
                           method="gmm" if rule == "gmm_bic" else "kmeans", **kw)
        return r.n_clusters, r.labels, None
    if rule in ("unmix", "aic", "hysime"):
        r = cluster_galaxy(g.sci, err, g.mask, g.wavelength,
                           unmix="null" if rule == "unmix" else rule, **kw)
        return r.n_clusters, r.labels, r.fractions
    sel = select_pixels(g.sci, g.err, g.mask).mask
    labels = np.full(g.mask.shape, -1)
    if sel.sum() < 10:
        return 1, np.where(sel, 0, -1), None
    est = PixelClusterer(method="kmeans", normalize="l2", metric="euclidean",
                         n_clusters=g.n_components if rule == "kmeans_true_k" else "auto")
    est.fit(g.sci[:, sel].T)
    labels[sel] = est.labels_
    return int(est.n_clusters_), labels, None


def run_mixture_suite(*, family: str = "default", n_components: Sequence[int] = (1, 2, 3, 4),
                      snrs: Sequence[float] = (15, 30, 100),
                      layouts: Sequence[str] = ("separated", "overlapping", "nested"),
                      seeds: Sequence[int] = (0, 1, 2), rules: Sequence[str] = ("chi2", "unmix"),
                      psf: str = "matched", progress: Any = None) -> pd.DataFrame:
    """Score rules for k on a grid of synthetic mixing galaxies.

    Parameters
    ----------
    family : {"default", "heldout"}
    n_components, snrs, layouts, seeds : sequences
        The grid (one galaxy per combination).
    rules : sequence of str
        Of :data:`RULES`.
    psf : {"matched", "native"}
    progress : callable, optional
        Called with no argument after each galaxy.

    Returns
    -------
    pandas.DataFrame
        One row per galaxy and rule: ``family, layout, n_components, snr,
        seed, rule, k, k_right, identifiable, ari, coverage, frac_rms,
        frac_rms_snr10``;
        ``attrs["skipped"]`` says which galaxies could not be drawn (a layout of
        many components that the stamp cannot hold for that seed).
    """
    bad = [r for r in rules if r not in RULES]
    if bad:
        raise InputError(f"unknown rule(s) {bad}; valid: {', '.join(RULES)}.")
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for seed in seeds:
        for n in n_components:
            for snr in snrs:
                for layout in layouts:
                    try:
                        g = make_mixture_galaxy(int(n), snr=float(snr), layout=layout,
                                                family=family, psf=psf, seed=int(seed))
                    except InputError as exc:  # a layout the stamp cannot hold: say so
                        skipped.append(str(exc))
                        continue
                    light = np.clip(g.sci.sum(axis=0), 0.0, None)
                    errors = suite_errors(g, seed=int(seed))
                    shown = identifiable(g, errors=errors)
                    snr_map = g.sci.sum(axis=0) / np.sqrt((g.err**2).sum(axis=0))
                    for rule in rules:
                        k, labels, frac = _run(rule, g, errors)
                        ari, cov = score_labels(g.labels, labels)
                        rows.append({
                            "family": family, "layout": layout, "n_components": int(n),
                            "snr": float(snr), "seed": int(seed), "rule": rule, "k": int(k),
                            "k_right": bool(k == n), "identifiable": shown, "ari": ari,
                            "coverage": cov,
                            "frac_rms": fraction_rms(g.fractions, frac, g.mask, light),
                            "frac_rms_snr10": fraction_rms(g.fractions, frac,
                                                           g.mask & (snr_map >= 10))})
                    if progress is not None:
                        progress()
    out = pd.DataFrame(rows)
    out.attrs["skipped"] = skipped
    return out


def mixture_table(runs: pd.DataFrame, by: Sequence[str] = ("n_components", "snr", "layout")
                  ) -> pd.DataFrame:
    """Summary of :func:`run_mixture_suite`: per group and rule, k accuracy, ARI, fraction RMS.

    Parameters
    ----------
    runs : pandas.DataFrame
    by : sequence of str
        Grouping columns.

    Returns
    -------
    pandas.DataFrame
        Index ``by``; columns ``(measure, rule)`` for measures ``k_right``
        (fraction), ``k_right_shown`` (fraction over the identifiable
        galaxies), ``ari`` (median, multi-component galaxies), ``frac_rms``
        (median), ``shown`` (the identifiable fraction) and ``n`` (galaxies).
    """
    keys = [*by, "rule"]
    grouped = runs.groupby(keys, sort=True)
    multi = runs[runs["n_components"] >= 2].groupby(keys, sort=True)["ari"].median()
    shown = runs[runs["identifiable"]].groupby(keys, sort=True)["k_right"].mean()
    out = pd.DataFrame({"k_right": grouped["k_right"].mean(), "k_right_shown": shown,
                        "ari": multi, "frac_rms": grouped["frac_rms"].median(),
                        "shown": grouped["identifiable"].mean(), "n": grouped.size()})
    return out.unstack("rule")
