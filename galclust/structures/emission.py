"""Extended emission-line regions in a medium band (outflow candidates).

:func:`emission_regions` finds the structures of a medium band's excess over the
continuum interpolated from its neighbours and measures each against a reference
(continuum) band:

1. **Excess map.** ``excess = f_m - C`` with the continuum ``C`` from the nearest
   bluer and redder bands that do not hold the medium band's pivot (or a strong
   line at ``z``), interpolated in log-lambda (a straight-line fit in (log lam, f)
   with ``n_side > 1``); a neighbour that holds the line (a broad band around the
   medium band) is used only when a side has no other, with its diluted share of the
   line solved for. ``excess`` is a linear combination of the bands, so its error
   ``excess_err`` is exact (``sqrt(err_m^2 + err_C^2)`` for clean neighbours). See
   :mod:`galclust.structures._continuum`.
2. **Pixels.** The excess and its variance are smoothed by Gaussians of FWHM
   ``psf_fwhm`` (the matched filter for a point source) and twice that (``scales``:
   for regions larger than the PSF; chosen on the default synthetic family, where
   regions of 5 px at S/N 7 went from 10 % to 70 % found). With
   ``calibrate_noise`` (default) each S/N map is divided by its robust (MAD)
   standard deviation outside the hosts when it exceeds 1 (correlated noise, or
   an ``err`` that understates the noise), and the errors are scaled up by the
   largest of these (``noise_factor``). Pixels whose smoothed excess S/N ``s``
   (the larger of the scales') exceeds ``nsigma`` (3) are kept.
3. **DBSCAN** (scikit-learn) on ``(x / psf_fwhm, y / psf_fwhm, asinh(s))``:
   positions in PSF units and the excess in noise units (``asinh`` is ``s`` at low
   S/N and logarithmic at high S/N, so a bright region is not cut into iso-S/N
   rings). **Rule, not tuned per field:** ``eps = 1`` (one PSF FWHM, one sigma) and
   ``min_samples = ceil(0.5 pi psf_fwhm^2)`` (half of the pixels within one FWHM: a
   core point sits in a region at least a PSF across; a noise peak of the smoothed
   map, about one PSF in area, rarely reaches it). Both are in PSF and noise units,
   so the same values hold at any depth and PSF size (the tests check this).
   Regions whose total excess significance ``S_excess`` is below
   ``min_significance`` (5) are dropped.
4. **Measurements** per region (``labels == id``):

   - ``flux = sum(excess)``, ``flux_err = sqrt(sum(excess_err^2))``,
     ``S_excess = flux / flux_err``; ``x, y`` the centroid of the positive excess;
   - ``gini, asymmetry, axis_ratio`` (+ ``r20, r50, r80``) by
     :func:`galclust.morphology` (statmorph definitions) on the excess map with the
     regions as segments;
   - ``R_mf, q_mf``: half-light radius (pixels, about the centroid, of the positive
     excess within the region) and second-moment axis ratio b/a of the excess;
   - ``R_rf, q_rf``: the same estimator on the reference band's light over the
     *host*: the connected component of the reference band's PSF-smoothed S/N > 3
     that overlaps the region most (or, if none overlaps, the nearest one). The
     same estimator on both sides makes ``R_mf / R_rf`` a like-for-like extent;
   - ``d_H``: distance (pixels) between the excess centroid and the host's
     reference-band centroid;
   - errors (``*_err``): standard deviation over ``n_resample`` noise resamplings
     (each pixel of the excess and the reference band perturbed by a normal draw of
     its error, everything re-measured; a few resamples, seeded by
     ``random_state``); the noise is counted twice so they err on the large side.
     ``flux_err`` is analytic.

5. **Outflow score** in [0, 1]::

       s_sig = clip((S_excess - 5) / 5, 0, 1)                # significant (full at 10)
       s_ext = clip((R_mf / R_rf - 1) / 0.5, 0, 1)           # extended beyond the continuum
       s_off = clip((d_H / psf_fwhm - 0.5) / 0.5, 0, 1)      # offset (full at one PSF FWHM)
       outflow_score = s_sig * (1 - (1 - s_ext) * (1 - s_off))

   (significance gates; extension or offset, either one, gives the morphology
   evidence); ``candidate = outflow_score >= 0.5``. Line emission that follows the
   continuum (a nucleus, or a continuum mismatch) has ``R_mf <= R_rf`` and
   ``d_H ~ 0``, so it is a region but not a candidate.

The reference band (``reference=None``) is the continuum neighbour in which the
galaxy has the largest total S/N (summed over its pixels with S/N > 3); a tie goes
to the redder one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from galclust.errors import InputError, is_real
from galclust.structures._continuum import (
    LINES,
    MEDIUM_BANDS,
    BandSet,
    band_for_redshift,
    continuum_weights,
    detection_snr,
    host_of,
    hosts,
    shape_moments,
)

__all__ = [
    "COLUMNS",
    "SCALES",
    "LINES",
    "MEDIUM_BANDS",
    "EmissionRegions",
    "band_for_redshift",
    "default_dbscan",
    "emission_regions",
    "excess_map",
    "outflow_score",
]

#: Smoothing scales of the detection map, in PSF FWHM (see ``scales``).
SCALES = (1.0, 2.0)

COLUMNS = ["id", "n_pixels", "flux", "flux_err", "S_excess", "x", "y",
           "gini", "gini_err", "asymmetry", "asymmetry_err", "axis_ratio", "axis_ratio_err",
           "r20", "r50", "r80",
           "R_mf", "R_mf_err", "q_mf", "q_mf_err", "R_rf", "R_rf_err", "q_rf", "q_rf_err",
           "d_H", "d_H_err", "outflow_score", "candidate"]


@dataclass
class EmissionRegions:
    """Emission-line regions of one medium band.

    Attributes
    ----------
    labels : ndarray of int, shape (y, x)
        Region id per pixel, 0 = none.
    table : pandas.DataFrame
        One row per region (columns :data:`COLUMNS`), ids 1..n by decreasing flux.
    excess, excess_err : ndarray, shape (y, x)
        The medium band's excess over the continuum and its 1-sigma error.
    band, reference : int
        Indices of the medium and reference bands.
    line : str or None
        The line the band was chosen for (``band=None``), else None.
    neighbours : list of int
        Continuum bands, blue to red.
    eps, min_samples : float, int
        The DBSCAN parameters used.
    host : ndarray of int, shape (y, x)
        Connected components of the reference band's light (the hosts).
    noise_factor : float
        Factor by which ``err`` was scaled up (1 = the given errors hold).
    """

    labels: np.ndarray
    table: pd.DataFrame
    excess: np.ndarray
    excess_err: np.ndarray
    band: int
    reference: int
    line: str | None
    neighbours: list[int]
    eps: float
    min_samples: int
    host: np.ndarray = field(repr=False)
    noise_factor: float = 1.0

    @property
    def n_regions(self) -> int:
        """Number of regions."""
        return len(self.table)

    @property
    def candidates(self) -> pd.DataFrame:
        """Rows of the table that are outflow candidates."""
        return self.table[self.table["candidate"]]


def default_dbscan(psf_fwhm: float) -> tuple[float, int]:
    """The DBSCAN rule: ``eps = 1`` and ``min_samples = ceil(0.5 pi psf_fwhm^2)`` (>= 3).

    Parameters
    ----------
    psf_fwhm : float
        PSF FWHM (pixels).

    Returns
    -------
    eps : float
    min_samples : int
    """
    return 1.0, max(3, math.ceil(0.5 * math.pi * psf_fwhm**2))


def outflow_score(S_excess, R_mf, R_rf, d_H, psf_fwhm: float) -> np.ndarray:
    """The outflow score of the module docstring (NaN terms count as 0).

    Parameters
    ----------
    S_excess, R_mf, R_rf, d_H : array_like
        Table columns of the regions.
    psf_fwhm : float
        PSF FWHM (pixels).

    Returns
    -------
    ndarray
        Scores in [0, 1].
    """
    S = np.asarray(S_excess, float)
    s_sig = np.clip((S - 5.0) / 5.0, 0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_ext = np.clip((np.asarray(R_mf, float) / np.asarray(R_rf, float) - 1.0) / 0.5, 0, 1)
    s_off = np.clip((np.asarray(d_H, float) / psf_fwhm - 0.5) / 0.5, 0, 1)
    s_ext, s_off = np.nan_to_num(s_ext), np.nan_to_num(s_off)
    return np.nan_to_num(s_sig) * (1.0 - (1.0 - s_ext) * (1.0 - s_off))


def _check_cube(sci, err, wavelength, bands, mask):
    sci = np.asarray(sci)
    err = np.asarray(err)
    if sci.ndim != 3 or not np.issubdtype(sci.dtype, np.number):
        raise InputError(f"sci must be a numeric (band, y, x) array, got shape {sci.shape}; "
                         "stack the bands along the first axis")
    if err.shape != sci.shape:
        raise InputError(f"err has shape {err.shape} but sci has shape {sci.shape}; pass "
                         "per-pixel 1-sigma errors of the same (band, y, x) shape")
    lam = np.asarray(wavelength, dtype=float).ravel()
    if lam.size != sci.shape[0]:
        raise InputError(f"wavelength has {lam.size} values but sci has {sci.shape[0]} bands; "
                         "pass one pivot wavelength (micron) per band")
    if bands is not None and len(bands) != sci.shape[0]:
        raise InputError(f"bands has {len(bands)} names but sci has {sci.shape[0]} bands; pass "
                         "one name per band, in the cube's order")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != sci.shape[1:]:
            raise InputError(f"mask has shape {mask.shape} but the images are {sci.shape[1:]}; "
                             "pass a boolean (y, x) mask of the image shape, or mask=None")
        mask = mask.astype(bool)
    return sci.astype(np.float64), err.astype(np.float64), lam, mask


def excess_map(sci, err, coef):
    """Excess ``sum_k c_k f_k`` and its error ``sqrt(sum_k c_k^2 err_k^2)``.

    Parameters
    ----------
    sci, err : ndarray, shape (band, y, x)
        Fluxes and 1-sigma errors (finite).
    coef : ndarray, shape (band,)
        Coefficients from :func:`galclust.structures._continuum.continuum_weights`.

    Returns
    -------
    excess, excess_err : ndarray, shape (y, x)
    """
    used = np.flatnonzero(coef)
    c = coef[used][:, None, None]
    excess = np.sum(c * sci[used], axis=0)
    var = np.sum(c**2 * err[used] ** 2, axis=0)
    return excess, np.sqrt(var)


def _cluster(snr, sel, psf_fwhm, eps, min_samples):
    from sklearn.cluster import DBSCAN

    labels = np.zeros(snr.shape, dtype=np.int64)
    yy, xx = np.nonzero(sel)
    if yy.size < min_samples:
        return labels
    feats = np.column_stack([xx / psf_fwhm, yy / psf_fwhm, np.arcsinh(snr[yy, xx])])
    lab = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(feats)
    labels[yy, xx] = lab + 1
    return labels


def _measure(excess, ref, labels, ids, host, host_ids):
    mf = shape_moments(excess, labels, ids)
    rf_all = shape_moments(ref, host, np.arange(1, host.max() + 1)) if host.max() > 0 else None
    rf = np.full((len(ids), 4), np.nan)
    for k, h in enumerate(host_ids):
        if h > 0 and rf_all is not None:
            rf[k] = rf_all[h - 1]
    d_h = np.hypot(mf[:, 0] - rf[:, 0], mf[:, 1] - rf[:, 1])
    return mf, rf, d_h


def _morph(excess, excess_err, labels, ids):
    from galclust.sources.nonparametric import morphology

    cols = ["gini", "asymmetry", "axis_ratio", "r20", "r50", "r80"]
    m = morphology(np.nan_to_num(excess), labels, err=excess_err, ids=ids)
    return m.set_index("id").reindex(ids)[cols].to_numpy(dtype=float)


def _pick_reference(sci, err, used, bad):
    best, best_s = used[-1], -np.inf
    for k in sorted(used, reverse=True):  # red first: ties go red
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.where(bad, 0.0, sci[k] / err[k])
        good = np.nan_to_num(snr) > 3
        s = np.nansum(sci[k][good]) / math.sqrt(max(np.nansum(err[k][good] ** 2), 1e-300))
        if s > best_s + 1e-9:
            best, best_s = k, s
    return best


def emission_regions(sci, err, wavelength, band, *, reference=None, z=None,
                     lines: Mapping[str, float] = LINES, psf_fwhm: float = 2.0,
                     nsigma: float = 3.0, min_samples: int | None = None,
                     eps: float | None = None, mask=None, bands=None, widths=None,
                     medium=None, n_side: int = 1, min_significance: float = 5.0,
                     n_resample: int = 3, random_state: int = 0,
                     calibrate_noise: bool = True, scales=SCALES) -> EmissionRegions:
    """Extended emission-line regions of a medium band (see the module docstring).

    Parameters
    ----------
    sci, err : array_like, shape (band, y, x)
        Fluxes (``f_nu``, any one unit) and their 1-sigma errors; non-finite pixels
        are masked.
    wavelength : sequence of float
        Pivot wavelength (micron) of each band.
    band : int, str or None
        The medium band (index, or name when ``bands`` is given); None with ``z``
        given: the band :func:`band_for_redshift` picks.
    reference : int or str, optional
        The continuum band to compare with (default: the continuum neighbour with the
        galaxy's largest S/N).
    z : float, optional
        Redshift: picks the band when ``band`` is None, and continuum neighbours that
        hold another strong line at ``z`` are skipped.
    lines : mapping of str to float
        Rest-frame lines (micron), in order of preference (default :data:`LINES`).
    psf_fwhm : float
        PSF FWHM (pixels) of the medium band.
    nsigma : float
        Threshold on the PSF-smoothed excess S/N for a pixel to be clustered.
    min_samples : int, optional
        DBSCAN ``min_samples`` (default :func:`default_dbscan`).
    eps : float, optional
        DBSCAN ``eps`` in (PSF FWHM, asinh S/N) units (default 1).
    mask : array_like of bool, shape (y, x), optional
        Pixels to ignore.
    bands : sequence of str, optional
        Band names.
    widths : sequence of float or mapping, optional
        Band widths (micron); default from the NIRCam tables, else ``0.25 lam``.
    medium : sequence of str or int, optional
        Which bands are medium (default: :data:`MEDIUM_BANDS` names, or fractional
        width <= 0.15). Only used to choose a band from ``z``.
    n_side : int
        Continuum neighbours per side.
    min_significance : float
        Regions with ``S_excess`` below it are dropped.
    n_resample : int
        Noise resamplings for the ``*_err`` columns (0: NaN errors, faster).
    random_state : int
        Seed of the resamplings.
    calibrate_noise : bool
        Divide each smoothed S/N map (``scales``) by its robust standard deviation
        (MAD) outside the hosts when it exceeds 1 (correlated noise, or an ``err``
        that understates the noise), and scale the errors up by the largest of
        these; see ``noise_factor``.
    scales : sequence of float
        Smoothing FWHMs of the detection maps, in units of ``psf_fwhm`` (default
        :data:`SCALES`, 1 and 2); a pixel is kept when any map's S/N passes.

    Returns
    -------
    EmissionRegions

    Raises
    ------
    galclust.errors.InputError
        Shapes differ; ``wavelength``/``bands`` do not match the bands; the band or
        reference is not in the cube; the medium band lacks a neighbour on a side;
        ``band=None`` without ``z`` or with no medium band holding a line at ``z``;
        a parameter is out of range.
    """
    sci, err, lam, mask = _check_cube(sci, err, wavelength, bands, mask)
    bs = BandSet(lam, bands, widths, medium)
    if not (np.isfinite(psf_fwhm) and psf_fwhm > 0):
        raise InputError(f"psf_fwhm must be a positive number of pixels, got {psf_fwhm!r}")
    if not (np.isfinite(nsigma) and nsigma > 0):
        raise InputError(f"nsigma must be a positive number, got {nsigma!r}")
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise InputError(f"eps must be positive (PSF / noise units, default 1), got {eps!r}")
    if min_samples is not None and (int(min_samples) != min_samples or min_samples < 1):
        raise InputError(f"min_samples must be a positive integer, got {min_samples!r}")
    scales = tuple(scales) if isinstance(scales, list | tuple) else scales
    if not (isinstance(scales, tuple) and scales and all(
            is_real(k) and k > 0 for k in scales)):
        raise InputError(f"scales must be a non-empty sequence of positive numbers (PSF "
                         f"FWHM multiples, default {SCALES}), got {scales!r}")
    if int(n_side) != n_side or n_side < 1:
        raise InputError(f"n_side must be a positive integer, got {n_side!r}")
    if int(n_resample) != n_resample or n_resample < 0:
        raise InputError(f"n_resample must be an integer >= 0, got {n_resample!r}")
    line = None
    if band is None:
        if z is None:
            raise InputError("band=None needs z=<redshift> to choose the medium band; pass "
                             "band=<index or name> or z")
        m, line = band_for_redshift(z, bs, lam, lines=lines)
        if m is None:
            raise InputError(f"no medium band holds {', '.join(lines)} at z={z}; pass band= "
                             f"explicitly or medium=[...] (medium bands: "
                             f"{[bs.label(i) for i in np.flatnonzero(bs.medium)]})")
    else:
        m = bs.index(band, "band")
    if z is not None and not (np.isfinite(z) and z >= 0):
        raise InputError(f"z must be a finite redshift >= 0, got {z!r}")
    scale = np.array([np.nanmedian(e) if np.isfinite(e).any() else 1.0 for e in err])
    coef, used = continuum_weights(bs, m, z=z, lines=lines, n_side=int(n_side),
                                   err_scale=scale)
    bad = ~np.all(np.isfinite(sci[coef != 0]) & np.isfinite(err[coef != 0]), axis=0)
    if mask is not None:
        bad |= mask
    if reference is None:
        r = _pick_reference(sci, err, used, bad)
    else:
        r = bs.index(reference, "reference")
        if r == m:
            raise InputError(f"reference={reference!r} is the medium band itself; pass a "
                             "continuum band (or reference=None)")
    # non-finite pixels are ``bad`` (set to NaN below); finite stand-ins keep the
    # sums from overflowing (nan_to_num's default turns inf into the float maximum)
    excess, excess_err = excess_map(np.nan_to_num(sci, nan=0.0, posinf=0.0, neginf=0.0),
                                    np.nan_to_num(err, nan=1.0, posinf=1.0, neginf=1.0), coef)
    excess[bad] = np.nan
    excess_err[bad] = np.nan

    d_eps, d_min = default_dbscan(psf_fwhm)
    eps = d_eps if eps is None else float(eps)
    min_samples = d_min if min_samples is None else int(min_samples)
    bad_r = bad | ~(np.isfinite(sci[r]) & np.isfinite(err[r]))  # (a reference outside the fit)
    ref = np.where(bad_r, np.nan, sci[r])
    ref_err = np.where(bad_r, np.nan, err[r])
    host, n_host, ref_factor = hosts(np.nan_to_num(ref), np.nan_to_num(ref_err, nan=1.0), bad_r,
                                     psf_fwhm, min_samples, calibrate_noise)
    ref_err = ref_err * ref_factor
    snr, factor = detection_snr(np.nan_to_num(excess), np.nan_to_num(excess_err), bad,
                                ~bad & (host == 0), psf_fwhm, scales, calibrate_noise)
    excess_err = excess_err * factor
    labels = _cluster(snr, (snr > nsigma) & ~bad, psf_fwhm, eps, min_samples)

    ids = np.unique(labels)
    ids = ids[ids > 0]
    e0, v0 = np.nan_to_num(excess), np.nan_to_num(excess_err) ** 2
    flux = ndi.sum_labels(e0, labels, ids) if ids.size else np.zeros(0)
    ferr = np.sqrt(ndi.sum_labels(v0, labels, ids)) if ids.size else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.where(ferr > 0, flux / ferr, 0.0)
    keep = ids[sig >= min_significance]
    order = np.argsort(-flux[np.isin(ids, keep)], kind="stable")
    keep = keep[order]
    new = np.zeros(labels.max() + 1 if labels.size else 1, dtype=np.int64)
    new[keep] = np.arange(1, keep.size + 1)
    labels = new[labels]
    ids = np.arange(1, keep.size + 1)

    table = pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    if ids.size:
        table = _table(excess, excess_err, ref, ref_err, labels, ids, host, n_host, psf_fwhm,
                       int(n_resample), random_state)
    table["id"] = table["id"].astype(np.int64)
    table["n_pixels"] = table["n_pixels"].astype(np.int64)
    table["candidate"] = table["candidate"].astype(bool)
    return EmissionRegions(labels=labels, table=table, excess=excess, excess_err=excess_err,
                           band=m, reference=r, line=line, neighbours=used, eps=eps,
                           min_samples=min_samples, host=host, noise_factor=factor)


def _table(excess, excess_err, ref, ref_err, labels, ids, host, n_host, psf_fwhm, n_resample,
           random_state):
    e0, v0 = np.nan_to_num(excess), np.nan_to_num(excess_err) ** 2
    flux = ndi.sum_labels(e0, labels, ids)
    ferr = np.sqrt(ndi.sum_labels(v0, labels, ids))
    npix = ndi.sum_labels(np.ones_like(e0), labels, ids).astype(np.int64)
    mf, rf, d_h = _measure(e0, np.nan_to_num(ref), labels, ids, host, np.zeros(len(ids), int))
    host_ids = host_of(labels, ids, host, n_host, mf[:, :2])
    mf, rf, d_h = _measure(e0, np.nan_to_num(ref), labels, ids, host, host_ids)
    morph = _morph(excess, excess_err, labels, ids)
    rng = np.random.default_rng(random_state)
    draws = []
    for _ in range(n_resample):
        e1 = e0 + rng.normal(size=e0.shape) * np.nan_to_num(excess_err)
        r1 = np.nan_to_num(ref) + rng.normal(size=e0.shape) * np.nan_to_num(ref_err)
        a, b, c = _measure(e1, r1, labels, ids, host, host_ids)
        mo = _morph(e1, excess_err, labels, ids)
        draws.append(np.column_stack([mo[:, :3], a[:, 2:], b[:, 2:], c]))
    if draws:
        with np.errstate(invalid="ignore"):
            sd = np.nanstd(np.stack(draws), axis=0, ddof=1 if n_resample > 1 else 0)
    else:
        sd = np.full((len(ids), 8), np.nan)
    S = np.where(ferr > 0, flux / np.where(ferr > 0, ferr, 1), 0.0)
    score = outflow_score(S, mf[:, 2], rf[:, 2], d_h, psf_fwhm)
    return pd.DataFrame({
        "id": ids, "n_pixels": npix, "flux": flux, "flux_err": ferr, "S_excess": S,
        "x": mf[:, 0], "y": mf[:, 1],
        "gini": morph[:, 0], "gini_err": sd[:, 0], "asymmetry": morph[:, 1],
        "asymmetry_err": sd[:, 1], "axis_ratio": morph[:, 2], "axis_ratio_err": sd[:, 2],
        "r20": morph[:, 3], "r50": morph[:, 4], "r80": morph[:, 5],
        "R_mf": mf[:, 2], "R_mf_err": sd[:, 3], "q_mf": mf[:, 3], "q_mf_err": sd[:, 4],
        "R_rf": rf[:, 2], "R_rf_err": sd[:, 5], "q_rf": rf[:, 3], "q_rf_err": sd[:, 6],
        "d_H": d_h, "d_H_err": sd[:, 7], "outflow_score": score, "candidate": score >= 0.5,
    })[COLUMNS]
