"""Validation of pixel clustering against synthetic truth, as a function of S/N.

Two kinds of synthetic galaxy, both with a per-pixel truth defined the same
way (the component contributing most band-summed flux, inside the footprint)
and the same S/N definition (:func:`galclust.synth.galaxy_snr`: median over
the half-light pixels of the median over bands of model / error):

``"separated"`` (:func:`separated_galaxy`)
    One elliptical exponential light profile cut into 1–3 angular sectors,
    each with a distinct SED family (old, star-forming, dusty; from
    :func:`galclust.synth.sed_fluxes`), smoothed by a band-independent
    Gaussian PSF. Every component spans bright and faint pixels, so a
    brightness gradient runs across all of them: clustering raw fluxes finds
    brightness, clustering SED shapes finds the components.
``"blended"`` (:func:`galclust.synth.make_galaxy`, PSF-matched)
    Bulge + disk (+ clumps) superposed: most clustered pixels are mixtures
    whose SED varies continuously with the bulge fraction, and the truth puts
    the boundary where the fraction crosses 1/2. Shape clustering splits the
    continuum elsewhere, so the ARI is low even without noise; the single-
    component case tests the choice of k = 1. Bands are PSF-matched (one
    FWHM for all), as pixel-SED work requires: with band-dependent PSFs a
    one-component galaxy has real colour gradients and is not one population.

:func:`run_validation` returns one row per galaxy and configuration,
:func:`ari_vs_snr` the summary table (median ARI, fraction of galaxies whose
number of clusters equals the number of components).

Survey level: :func:`survey_ari` compares the label stamps of a survey run
(:func:`galclust.pixels.survey.pixel_tables`, or a published run's
``pixels/stamps`` and ``pixels/galaxies``) with a synthetic survey's
``truth_components.fits`` and ``truth_sources.parquet``
(:func:`galclust.synth.make_survey`), one row per galaxy; :func:`ari_table`
bins it by S/N. The truth is meaningful for ``make_survey(layout="separated")``
(components two PSF FWHM or more apart); with the default ``"mixed"`` layout
(concentric bulge + disk) the truth boundary is a 50 % mixture that no shape
clustering is expected to find.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.metrics import adjusted_rand_score

from galclust.errors import InputError, check_choice
from galclust.pixels.core import cluster_galaxy

__all__ = [
    "DEFAULT_CONFIGS",
    "GALAXY_KINDS",
    "SNR_BINS",
    "ValidationGalaxy",
    "ari_table",
    "ari_vs_snr",
    "evaluate",
    "run_validation",
    "separated_galaxy",
    "survey_ari",
]

GALAXY_KINDS: tuple[str, ...] = ("separated", "blended")
#: (method, normalize, metric) triples compared by default.
DEFAULT_CONFIGS: tuple[tuple[str, str, str], ...] = (
    ("kmeans", "l2", "euclidean"),
    ("kmeans", "median_sed", "euclidean"),
    ("gmm", "l2", "xcorr"),
    ("agglomerative", "sum", "wavelength"),
    ("kmeans", "none", "euclidean"),
)
_FAMILIES = ("old", "starforming", "dusty")
#: S/N bin edges (left-closed) of :func:`survey_ari` and :func:`ari_table`.
SNR_BINS: tuple[float, ...] = (0.0, 10.0, 20.0, 40.0, np.inf)


@dataclass(frozen=True)
class ValidationGalaxy:
    """A synthetic stamp with truth (the attributes :func:`evaluate` reads)."""

    sci: np.ndarray
    err: np.ndarray
    mask: np.ndarray
    wavelength: np.ndarray
    truth: np.ndarray
    n_components: int
    families: list[str]


def separated_galaxy(*, n_components: int = 2, snr: float = 20.0,
                     shape: tuple[int, int] = (41, 41), wavelengths: Any = None,
                     redshift: float = 2.0, psf_sigma: float = 1.0,
                     seed: int = 0) -> ValidationGalaxy:
    """An exponential disk cut into angular sectors of distinct SED families.

    Parameters
    ----------
    n_components : {1, 2, 3}
    snr : float
        Target S/N (as :func:`galclust.synth.galaxy_snr`).
    shape : (int, int)
    wavelengths : array_like, optional
        Pivots in micron (default: the NIRCam bands of :mod:`galclust.synth`).
    redshift : float
    psf_sigma : float
        Gaussian PSF sigma in pixels, the same in every band.
    seed : int

    Returns
    -------
    ValidationGalaxy
    """
    from galclust.synth import NIRCAM_BANDS, footprint, galaxy_snr, sed_fluxes

    if n_components not in (1, 2, 3):
        raise InputError(f"n_components={n_components!r} must be 1, 2 or 3 (one family each).")
    rng = np.random.default_rng(seed)
    lam = np.asarray(list(NIRCAM_BANDS.values()) if wavelengths is None else wavelengths, float)
    fams = [str(f) for f in rng.permutation(_FAMILIES)[:n_components]]
    seds = np.stack([sed_fluxes(f, lam, redshift, rng=rng) for f in fams])
    seds /= seds.mean(axis=1, keepdims=True)
    ny, nx = shape
    cy, cx = (ny - 1) / 2 + rng.uniform(-0.5, 0.5), (nx - 1) / 2 + rng.uniform(-0.5, 0.5)
    yy, xx = np.mgrid[:ny, :nx]
    theta, q = rng.uniform(0, np.pi), rng.uniform(0.6, 1.0)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / q
    light = np.exp(-np.hypot(u, v) / (min(ny, nx) / 8.0))
    sector = np.floor(((np.arctan2(dy, dx) - rng.uniform(0, 2 * np.pi)) % (2 * np.pi))
                      / (2 * np.pi / n_components)).astype(int)
    parts = np.stack([ndimage.gaussian_filter(light * (sector == c), psf_sigma)
                      for c in range(n_components)])
    model = np.einsum("cb,cyx->byx", seds, parts) * (1000.0 / light.sum())
    depth = rng.uniform(0.7, 1.4, size=lam.size)
    err_b = depth * galaxy_snr(model, depth) / snr
    mask = footprint(model, err_b)
    truth = np.where(mask, np.argmax(parts, axis=0), -1)
    err = np.broadcast_to(err_b[:, None, None], model.shape).astype(np.float32)
    sci = (model + err_b[:, None, None] * rng.standard_normal(model.shape)).astype(np.float32)
    return ValidationGalaxy(sci, err, mask, lam, truth, n_components, fams)


def _make(kind: str, n_components: int, snr: float, seed: int, psf_fwhm_px: float) -> Any:
    if kind == "separated":
        return separated_galaxy(n_components=n_components, snr=snr, seed=seed,
                                psf_sigma=psf_fwhm_px / 2.3548)
    from galclust.synth import make_galaxy

    return make_galaxy(n_components=n_components, snr=snr, seed=seed, psf_fwhm_px=psf_fwhm_px)


def evaluate(galaxy: Any, result: Any) -> dict[str, float]:
    """Compare a :class:`~galclust.pixels.core.PixelResult` with a galaxy's truth.

    Returns
    -------
    dict
        ``ari``: adjusted Rand index over pixels both clustered and in the
        truth footprint (NaN if none); ``coverage``: fraction of truth pixels
        clustered; ``k_correct``: 1.0 if the number of clusters equals the
        number of components.
    """
    truth = np.asarray(galaxy.truth)
    both = (result.labels >= 0) & (truth >= 0)
    ari = adjusted_rand_score(truth[both], result.labels[both]) if both.any() else np.nan
    return {"ari": float(ari), "coverage": float(both.sum() / max((truth >= 0).sum(), 1)),
            "k_correct": float(result.n_clusters == galaxy.n_components)}


def run_validation(*, kind: str = "separated", snrs: Sequence[float] = (5, 10, 20, 40),
                   configs: Iterable[tuple[str, str, str]] = DEFAULT_CONFIGS,
                   n_components: Sequence[int] = (1, 2, 3), n_galaxies: int = 4,
                   psf_fwhm_px: float = 2.0, seed: int = 0,
                   **cluster_kwargs: Any) -> pd.DataFrame:
    """Cluster synthetic galaxies with every configuration; one row per galaxy and configuration.

    Parameters
    ----------
    kind : {"separated", "blended"}
    snrs : sequence of float
        Target S/N values.
    configs : iterable of (method, normalize, metric)
    n_components : sequence of int
        Components per galaxy (``n_galaxies`` galaxies each).
    n_galaxies : int
    psf_fwhm_px : float
        Band-independent PSF FWHM in pixels.
    seed : int
        Galaxy ``i`` uses seed ``seed + i``.
    **cluster_kwargs
        Passed to :func:`~galclust.pixels.core.cluster_galaxy`.

    Returns
    -------
    pandas.DataFrame
        ``kind, snr, n_components, seed, method, normalize, metric, n_clusters,
        ari, coverage, k_correct, flags``.
    """
    check_choice("kind", kind, GALAXY_KINDS)
    configs = list(configs)
    rows = []
    for snr in snrs:
        for nc in n_components:
            for i in range(n_galaxies):
                g = _make(kind, int(nc), float(snr), seed + i, psf_fwhm_px)
                for method, normalize, metric in configs:
                    res = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, method=method,
                                         normalize=normalize, metric=metric, **cluster_kwargs)
                    rows.append({"kind": kind, "snr": float(snr), "n_components": int(nc),
                                 "seed": seed + i, "method": method, "normalize": normalize,
                                 "metric": metric, "n_clusters": res.n_clusters,
                                 **evaluate(g, res), "flags": int(res.flags)})
    return pd.DataFrame(rows)


def ari_vs_snr(runs: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
    """Median ARI and fraction of correct k per S/N and configuration.

    Parameters
    ----------
    runs : pandas.DataFrame, optional
        Output of :func:`run_validation` (computed from ``kwargs`` if omitted).
    **kwargs
        Passed to :func:`run_validation`.

    Returns
    -------
    pandas.DataFrame
        One row per ``kind, snr, method, normalize, metric``: ``median_ari``
        (over galaxies with two or more components), ``frac_k_correct`` (all
        galaxies), ``frac_single_k1`` (one-component galaxies given k = 1),
        ``median_coverage``, ``n_galaxies``.
    """
    if runs is None:
        runs = run_validation(**kwargs)
    keys = ["kind", "snr", "method", "normalize", "metric"]
    multi = runs[runs["n_components"] >= 2].groupby(keys, sort=False)["ari"].median()
    single = runs[runs["n_components"] == 1].groupby(keys, sort=False)["k_correct"].mean()
    grouped = runs.groupby(keys, sort=False)
    out = pd.DataFrame({"median_ari": multi, "frac_k_correct": grouped["k_correct"].mean(),
                        "frac_single_k1": single,
                        "median_coverage": grouped["coverage"].median(),
                        "n_galaxies": grouped.size()})
    return out.reset_index()


# --------------------------------------------------------------------------- survey level
def _require(table: Any, name: str, columns: Sequence[str]) -> None:
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{name} must be a pandas DataFrame; got {type(table).__name__} "
                         "(compute a Dask table first).")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{name} lacks column(s) {missing}; it needs {list(columns)}.")


def _check_bins(bins: Sequence[float]) -> list[float]:
    edges = [float(b) for b in bins]
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InputError(f"bins={tuple(bins)!r} must be at least two increasing S/N edges, "
                         "e.g. (0, 10, 20, 40, inf).")
    return edges


def _snr_bins(snr: pd.Series, bins: Sequence[float]) -> pd.Series:
    """Left-closed S/N bins as an ordered categorical of labels like ``"[10, 20)"``."""
    edges = _check_bins(bins)
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return pd.cut(snr, edges, right=False, labels=labels)


def survey_ari(stamps: pd.DataFrame, galaxies: pd.DataFrame, truth_components: np.ndarray,
               truth_sources: pd.DataFrame, *, bins: Sequence[float] = SNR_BINS,
               min_pixels: int = 10) -> pd.DataFrame:
    """Per-galaxy agreement of a survey's pixel-cluster labels with the synthetic truth.

    Parameters
    ----------
    stamps : pandas.DataFrame
        ``id, y0, x0, ny, nx, labels``: one label stamp per clustered galaxy
        (:data:`galclust.pixels.survey.STAMPS_SCHEMA`: int16 little-endian,
        row-major, -1 = not clustered).
    galaxies : pandas.DataFrame
        ``id, n_clusters`` (:data:`galclust.pixels.survey.GALAXIES_SCHEMA`).
    truth_components : numpy.ndarray
        ``(y, x)`` mosaic of the dominant component index, -1 outside galaxies
        (``truth_components.fits``).
    truth_sources : pandas.DataFrame
        ``id, kind, n_components, snr`` (``truth_sources.parquet``).
    bins : sequence of float
        S/N bin edges (left-closed) of the ``snr_bin`` column.
    min_pixels : int
        Fewest pixels both clustered and in the truth for an ARI.

    Returns
    -------
    pandas.DataFrame
        One row per true galaxy present in ``galaxies``: ``id, snr``,
        ``snr_bin`` (ordered categorical of labels like ``"[10, 20)"``),
        ``n_components`` (true), ``n_clusters`` (found; 0 for a flagged galaxy
        with no clustering), ``k_correct`` (bool), ``n_compared`` (pixels
        clustered with a truth label) and ``ari`` (adjusted Rand index over
        those pixels; NaN below ``min_pixels`` or without a stamp). Stars and
        artefacts are left out.

    Raises
    ------
    InputError
        For a missing column, a non-2-D truth map, bad bins, or a stamp that
        does not fit inside the truth map.
    """
    from galclust.pixels.survey import decode_labels  # STAMPS_SCHEMA's format (imports dask)

    _require(stamps, "stamps", ("id", "y0", "x0", "ny", "nx", "labels"))
    _require(galaxies, "galaxies", ("id", "n_clusters"))
    _require(truth_sources, "truth_sources", ("id", "kind", "n_components", "snr"))
    truth_map = np.asarray(truth_components)
    if truth_map.ndim != 2:
        raise InputError(f"truth_components must be the (y, x) truth mosaic; got shape "
                         f"{truth_map.shape}.")
    _check_bins(bins)
    ny_t, nx_t = truth_map.shape
    bad = ((stamps["y0"] < 0) | (stamps["x0"] < 0) | (stamps["y0"] + stamps["ny"] > ny_t)
           | (stamps["x0"] + stamps["nx"] > nx_t))
    if bad.any():
        raise InputError(f"stamps of ids {stamps.loc[bad, 'id'].head(5).tolist()} reach outside "
                         f"the {ny_t}x{nx_t} truth map; pass the truth of the same survey.")
    truth = truth_sources[truth_sources["kind"] == "galaxy"][["id", "snr", "n_components"]]
    per = truth.merge(galaxies[["id", "n_clusters"]], on="id", how="inner")
    by_id = stamps.set_index("id")
    n_compared, ari = [], []
    for gid in per["id"].to_numpy():
        if gid not in by_id.index:
            n_compared.append(0)
            ari.append(np.nan)
            continue
        st = by_id.loc[gid]
        labels = decode_labels(st["labels"], st["ny"], st["nx"])
        y0, x0 = int(st["y0"]), int(st["x0"])
        ref = truth_map[y0:y0 + labels.shape[0], x0:x0 + labels.shape[1]]
        both = (labels >= 0) & (ref >= 0)
        n_compared.append(int(both.sum()))
        ari.append(float(adjusted_rand_score(ref[both], labels[both]))
                   if both.sum() >= min_pixels else np.nan)
    per["n_clusters"] = per["n_clusters"].astype("int64")
    per["n_components"] = per["n_components"].astype("int64")
    per["k_correct"] = per["n_clusters"] == per["n_components"]
    per["n_compared"] = np.asarray(n_compared, dtype=np.int64)
    per["ari"] = np.asarray(ari, dtype=float)
    per["snr_bin"] = _snr_bins(per["snr"], bins)
    cols = ["id", "snr", "snr_bin", "n_components", "n_clusters", "k_correct", "n_compared",
            "ari"]
    return per[cols].sort_values("id").reset_index(drop=True)


def ari_table(per_galaxy: pd.DataFrame, bins: Sequence[float] | None = None, *,
              by_components: bool = False) -> pd.DataFrame:
    """S/N-binned summary of :func:`survey_ari`.

    Parameters
    ----------
    per_galaxy : pandas.DataFrame
        Output of :func:`survey_ari`.
    bins : sequence of float, optional
        S/N bin edges (left-closed); default: the ``snr_bin`` column already there.
    by_components : bool
        One row per true number of components (two or more) and S/N bin,
        without the one-component columns.

    Returns
    -------
    pandas.DataFrame
        One row per S/N bin (empty bins included): ``snr_bin``; over galaxies
        with two or more true components: ``galaxies`` (count),
        ``median_ari`` (over those with an ARI), ``k_correct`` (fraction whose
        number of clusters equals the number of components); over
        one-component galaxies: ``single`` (count) and ``single_k1``
        (fraction given one cluster).
    """
    _require(per_galaxy, "per_galaxy", ("snr", "n_components", "n_clusters", "k_correct",
                                        "ari"))
    per = per_galaxy.copy()
    if bins is not None or "snr_bin" not in per.columns:
        per["snr_bin"] = _snr_bins(per["snr"], SNR_BINS if bins is None else bins)
    multi = per[(per["n_components"] >= 2)]
    single = per[per["n_components"] == 1]
    if by_components:
        grouped = multi.groupby(["n_components", "snr_bin"], observed=True)
        out = pd.DataFrame({"galaxies": grouped.size(), "median_ari": grouped["ari"].median(),
                            "k_correct": grouped["k_correct"].mean()})
        out = out.reset_index()
        out["snr_bin"] = out["snr_bin"].astype(str)
        return out
    grouped = multi.groupby("snr_bin", observed=False)
    out = pd.DataFrame({
        "galaxies": grouped.size(),
        "median_ari": grouped["ari"].median(),
        "k_correct": grouped["k_correct"].mean(),
        "single": single.groupby("snr_bin", observed=False).size(),
        "single_k1": (single["n_clusters"] == 1).groupby(single["snr_bin"],
                                                         observed=False).mean(),
    })
    out["galaxies"] = out["galaxies"].astype("int64")
    out["single"] = out["single"].astype("int64")
    out.index = out.index.astype(str)  # the bin labels, in order
    return out.rename_axis("snr_bin").reset_index()
