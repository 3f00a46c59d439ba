"""Band tables, redshift-aware band choice, the continuum under a medium band, and
the image helpers of :mod:`galclust.structures.emission` (PSF-smoothed S/N, noise
calibration, hosts, light moments). Pure numpy/scipy; no files.

Bands
-----
A band is described by its pivot wavelength ``lam`` (micron) and its width ``W``
(micron, a top-hat of that width centred on the pivot is assumed). Widths come from
``widths=`` when the caller gives them, else from :data:`BAND_WIDTHS` (JWST NIRCam
broad and medium bands by name), else from the rule ``W = 0.25 lam`` (a broad band).
A band is *medium* when ``medium=`` names it (names or indices), else when its name is
in :data:`MEDIUM_BANDS`, else when its fractional width ``W / lam`` is at most
:data:`MEDIUM_MAX_FRACTIONAL_WIDTH` (0.15; NIRCam medium bands have 0.05-0.12, broad
bands 0.19-0.25).

Continuum
---------
The continuum under the medium band ``m`` is a linear combination of the fluxes of
its neighbours: the ``n_side`` nearest bands on each side (by pivot) whose top-hat
does not hold the medium band's pivot and, when a redshift is known, that hold no
strong line of :data:`LINES`. With one band per side the continuum is the straight
line in (log lam, f) through them evaluated at ``log lam_m`` (log-lambda
interpolation); with more, the weighted least-squares straight line in (log lam, f)
(the first-order expansion of a power law, kept linear in the fluxes so errors
propagate exactly and noisy negative pixels are harmless). When a side has no clean
band, the nearest band on that side that *holds* the medium band's pivot (e.g.
F444W around F410M) is used and its share of the line, ``W_m / W_k`` of the
medium band's line flux density, is solved for exactly: with ``C = sum a_k f_k`` and
``f_k = C_k + d_k (f_m - C)``, ``C = (sum a_k f_k - f_m sum a_k d_k) / (1 - sum a_k d_k)``.
The excess ``f_m - C`` is therefore ``sum_k c_k f_k`` over the medium band and its
neighbours, and its variance ``sum_k c_k^2 err_k^2`` (independent bands); without
line-holding neighbours this is ``err_m^2 + err_cont^2``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.ndimage as ndi

from galclust.errors import InputError, did_you_mean

__all__ = [
    "BAND_WIDTHS",
    "LINES",
    "MEDIUM_BANDS",
    "MEDIUM_MAX_FRACTIONAL_WIDTH",
    "BandSet",
    "band_for_redshift",
    "continuum_weights",
    "detection_snr",
    "host_of",
    "hosts",
    "noise_factor",
    "shape_moments",
    "smoothed_snr",
]

#: Strong rest-frame lines (micron), in order of preference for the band choice.
LINES: dict[str, float] = {
    "halpha": 0.6563,
    "oiii": 0.5007,
    "hbeta": 0.4861,
    "pabeta": 1.2818,
}

#: JWST NIRCam medium bands: name -> (pivot micron, width micron).
MEDIUM_BANDS: dict[str, tuple[float, float]] = {
    "F140M": (1.404, 0.142),
    "F162M": (1.626, 0.168),
    "F182M": (1.845, 0.238),
    "F210M": (2.093, 0.205),
    "F250M": (2.503, 0.181),
    "F300M": (2.996, 0.318),
    "F335M": (3.365, 0.347),
    "F360M": (3.621, 0.372),
    "F410M": (4.092, 0.436),
    "F430M": (4.280, 0.228),
    "F460M": (4.630, 0.228),
    "F480M": (4.834, 0.303),
}

_BROAD: dict[str, tuple[float, float]] = {
    "F070W": (0.704, 0.128),
    "F090W": (0.901, 0.194),
    "F115W": (1.154, 0.225),
    "F150W": (1.501, 0.318),
    "F200W": (1.990, 0.461),
    "F277W": (2.786, 0.672),
    "F356W": (3.563, 0.787),
    "F444W": (4.421, 1.024),
}

#: Widths (micron) of the known NIRCam bands, broad and medium, by name.
BAND_WIDTHS: dict[str, float] = {k: v[1] for k, v in {**_BROAD, **MEDIUM_BANDS}.items()}

#: Bands narrower than this fraction of their pivot are medium (when not named).
MEDIUM_MAX_FRACTIONAL_WIDTH = 0.15
_DEFAULT_FRACTIONAL_WIDTH = 0.25
_HOST_NSIGMA = 3.0
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


class BandSet:
    """Pivots, widths, names and the medium flag of the bands of a cube.

    Parameters
    ----------
    wavelength : sequence of float
        Pivot wavelengths (micron), one per band.
    names : sequence of str, optional
        Band names (for look-ups in :data:`BAND_WIDTHS` and :data:`MEDIUM_BANDS`).
    widths : sequence of float or mapping of name to float, optional
        Band widths (micron); default from the tables, else ``0.25 lam``.
    medium : sequence of str or int, optional
        The bands that are medium; default: named in :data:`MEDIUM_BANDS` or
        fractional width at most :data:`MEDIUM_MAX_FRACTIONAL_WIDTH`.
    """

    def __init__(self, wavelength, names=None, widths=None, medium=None):
        lam = np.asarray(wavelength, dtype=float).ravel()
        if lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
            raise InputError("wavelength must hold one positive pivot wavelength (micron) per "
                             f"band, got {np.asarray(wavelength).tolist()!r}")
        self.lam = lam
        n = lam.size
        if names is not None:
            names = [str(b) for b in names]
            if len(names) != n:
                raise InputError(f"bands has {len(names)} names but wavelength has {n} values; "
                                 "pass one name per band, in the cube's band order")
            if len(set(names)) != n:
                raise InputError(f"bands has repeated names {names!r}; names must be unique")
        self.names = names
        self.width = self._widths(widths)
        self.medium = self._medium(medium)

    def _widths(self, widths) -> np.ndarray:
        n = self.lam.size
        out = _DEFAULT_FRACTIONAL_WIDTH * self.lam
        if self.names is not None:
            for i, b in enumerate(self.names):
                if b.upper() in BAND_WIDTHS:
                    out[i] = BAND_WIDTHS[b.upper()]
        if widths is None:
            return out
        if isinstance(widths, Mapping):
            for key, w in widths.items():
                out[self.index(key, "widths")] = float(w)
        else:
            w = np.asarray(widths, dtype=float).ravel()
            if w.size != n:
                raise InputError(f"widths has {w.size} values but there are {n} bands; pass one "
                                 "width (micron) per band or a mapping of band name to width")
            out = w.copy()
        if not np.all(np.isfinite(out) & (out > 0)):
            raise InputError("widths must be positive numbers (micron)")
        return out

    def _medium(self, medium) -> np.ndarray:
        n = self.lam.size
        if medium is not None:
            flag = np.zeros(n, bool)
            for key in medium:
                flag[self.index(key, "medium")] = True
            return flag
        flag = self.width / self.lam <= MEDIUM_MAX_FRACTIONAL_WIDTH
        if self.names is not None:
            flag |= np.array([b.upper() in MEDIUM_BANDS for b in self.names])
        return flag

    def index(self, key, argument: str = "band") -> int:
        """Index of a band given by index or name; :class:`InputError` if absent."""
        n = self.lam.size
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -n <= int(key) < n:
                raise InputError(f"{argument}={key!r} is not a band index of a cube with {n} "
                                 f"bands; pass 0..{n - 1} or a band name via bands=")
            return int(key) % n
        if isinstance(key, str):
            if self.names is None:
                raise InputError(f"{argument}={key!r} is a name but no band names were given; "
                                 "pass bands=[...] (one name per band) or an integer index")
            if key not in self.names:
                upper = [b.upper() for b in self.names]
                if key.upper() in upper:
                    return upper.index(key.upper())
                raise InputError(f"{argument}={key!r} is not one of the cube's bands "
                                 f"{self.names!r}." + did_you_mean(key, self.names))
            return self.names.index(key)
        raise InputError(f"{argument} must be a band index or name, got {key!r}")

    def label(self, i: int) -> str:
        """Name of band ``i`` (or ``"band i"``)."""
        return self.names[i] if self.names is not None else f"band {i}"

    def holds(self, i: int, lam_obs: float) -> bool:
        """Whether band ``i``'s top-hat holds the observed wavelength ``lam_obs``."""
        return bool(abs(lam_obs - self.lam[i]) <= 0.5 * self.width[i])


def _side(bs: BandSet, m: int, sign: int, n_side: int, line_obs: Sequence[float]):
    """Neighbours of band ``m`` on one side: (clean indices, fallback index or None)."""
    order = np.argsort(sign * (bs.lam - bs.lam[m]))
    cand = [int(k) for k in order if k != m and sign * (bs.lam[k] - bs.lam[m]) > 0]
    clean, holding = [], None
    for k in cand:
        if bs.holds(k, bs.lam[m]):
            holding = k if holding is None else holding
            continue
        if any(bs.holds(k, lo) for lo in line_obs) and len(clean) + 1 < len(cand):
            continue  # holds another strong line at this z: skip while others remain
        clean.append(k)
        if len(clean) == n_side:
            break
    return clean, holding


def continuum_weights(bs: BandSet, m: int, *, z: float | None = None,
                      lines: Mapping[str, float] = LINES, n_side: int = 1,
                      err_scale: np.ndarray | None = None):
    """Coefficients ``c`` with ``excess = sum_k c_k f_k`` and ``C = f_m - excess``.

    Parameters
    ----------
    bs : BandSet
        The cube's bands.
    m : int
        Index of the medium band.
    z : float, optional
        Redshift: neighbours holding another strong line at this z are skipped.
    lines : mapping of str to float
        Rest-frame lines (micron).
    n_side : int
        Neighbours per side (1 = log-lambda interpolation; more = straight-line fit
        in (log lam, f)).
    err_scale : ndarray, optional
        A typical error per band, to weight the fit when ``n_side > 1``.

    Returns
    -------
    coef : ndarray, shape (band,)
        Zero for unused bands.
    used : list of int
        The neighbour bands used, blue to red.

    Raises
    ------
    galclust.errors.InputError
        No band on one side of the medium band.
    """
    lam_m = bs.lam[m]
    line_obs = [] if z is None else [lo * (1 + z) for lo in lines.values()
                                     if not bs.holds(m, lo * (1 + z))]
    used = []
    for sign, word in ((-1, "bluer"), (1, "redder")):
        clean, holding = _side(bs, m, sign, n_side, line_obs)
        if not clean and holding is None:
            raise InputError(f"medium band {bs.label(m)} ({lam_m:.3f} um) has no {word} "
                             "neighbour for the continuum; pass a band with bands on both sides "
                             f"(pivots {np.round(bs.lam, 3).tolist()})")
        used += clean if clean else [holding]
    used = sorted(used, key=lambda k: bs.lam[k])
    x = np.log(bs.lam[used]) - np.log(lam_m)
    w = np.ones(len(used)) if err_scale is None else 1.0 / np.maximum(err_scale[used], 1e-30) ** 2
    # Straight line in (log lam, f) evaluated at log lam_m: a = weights of f_k.
    design = np.stack([np.ones_like(x), x], axis=1)
    if len(used) == 2:
        a = np.linalg.solve(design.T, np.array([1.0, 0.0]))
    else:
        gram = design.T @ (w[:, None] * design)
        a = (np.linalg.solve(gram, np.array([1.0, 0.0])) @ design.T) * w
    d = np.array([bs.width[m] / bs.width[k] if bs.holds(k, lam_m) else 0.0 for k in used])
    ad = float(np.sum(a * d))
    coef = np.zeros(bs.lam.size)
    # C = (sum a f - f_m ad) / (1 - ad); excess = f_m - C.
    coef[used] = -a / (1.0 - ad)
    coef[m] = 1.0 + ad / (1.0 - ad)
    return coef, used


def band_for_redshift(z: float, bands: Sequence[str] | None, wavelength: Sequence[float], *,
                      widths=None, medium=None, lines: Mapping[str, float] = LINES):
    """The medium band that holds a strong line at redshift ``z``.

    For each line of ``lines`` in order (Hα, [OIII], Hβ, Paβ by default), the
    candidates are the medium bands whose top-hat holds ``lam_rest (1 + z)`` and that
    have bands on both sides (so a continuum can be interpolated across the line);
    the first line with a candidate wins and, among its candidates, the band whose
    pivot is nearest the redshifted line in units of its width.

    Parameters
    ----------
    z : float
        Redshift (>= 0).
    bands : sequence of str or None
        Band names (for the width and medium tables), or None.
    wavelength : sequence of float
        Pivot wavelengths (micron), one per band.
    widths, medium : optional
        As :func:`galclust.structures.emission.emission_regions`.
    lines : mapping of str to float
        Rest-frame lines (micron), in order of preference.

    Returns
    -------
    index : int or None
        The band index, or None when no medium band holds any line at ``z``.
    line : str or None
        The line's name.
    """
    if not (np.isfinite(z) and z >= 0):
        raise InputError(f"z must be a finite redshift >= 0, got {z!r}")
    bs = bands if isinstance(bands, BandSet) else BandSet(wavelength, bands, widths, medium)
    lo, hi = bs.lam.min(), bs.lam.max()
    for name, lam_rest in lines.items():
        lam_obs = lam_rest * (1 + z)
        best, best_d = None, np.inf
        for i in np.flatnonzero(bs.medium):
            if not bs.holds(i, lam_obs) or not (lo < bs.lam[i] < hi):
                continue
            d = abs(lam_obs - bs.lam[i]) / bs.width[i]
            if d < best_d:
                best, best_d = int(i), d
        if best is not None:
            return best, name
    return None, None


def smoothed_snr(img, err, bad, psf_fwhm):
    """S/N of ``img`` smoothed by a Gaussian PSF of FWHM ``psf_fwhm`` (the variance is
    smoothed by the squared kernel: exact for independent pixels); 0 on ``bad``."""
    sig = psf_fwhm * _FWHM_TO_SIGMA
    radius = max(1, int(math.ceil(3 * sig)))
    ax = np.arange(-radius, radius + 1)
    g1 = np.exp(-0.5 * (ax / sig) ** 2)
    g1 /= g1.sum()
    v = np.where(bad, 0.0, img)
    var = np.where(bad, 0.0, err**2)
    s = ndi.convolve1d(ndi.convolve1d(v, g1, axis=0, mode="constant"), g1, axis=1,
                       mode="constant")
    sv = ndi.convolve1d(ndi.convolve1d(var, g1**2, axis=0, mode="constant"), g1**2, axis=1,
                        mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(sv > 0, s / np.sqrt(sv), 0.0)
    snr[bad] = 0.0
    return snr


def noise_factor(snr, valid):
    """``max(1, robust sigma)`` of a PSF-smoothed S/N map over ``valid`` pixels."""
    v = snr[valid]
    if v.size < 50:
        return 1.0
    med = np.median(v)
    return max(1.0, 1.4826 * float(np.median(np.abs(v - med))))


def shape_moments(img, labels, ids):
    """Centroid, half-light radius and axis ratio of the positive light of each label."""
    out = np.full((len(ids), 4), np.nan)  # x, y, R, q
    yy, xx = np.indices(img.shape)
    for k, i in enumerate(ids):
        sel = labels == i
        f = np.clip(np.nan_to_num(img[sel]), 0, None)
        tot = f.sum()
        if tot <= 0:
            continue
        x, y = xx[sel], yy[sel]
        xc, yc = (f * x).sum() / tot, (f * y).sum() / tot
        dx, dy = x - xc, y - yc
        r = np.hypot(dx, dy)
        order = np.argsort(r)
        cum = np.cumsum(f[order])
        j = int(np.searchsorted(cum, 0.5 * tot))
        # interpolate between the radii around the half-light point (pixel-area corrected)
        r_half = r[order][j]
        if j > 0:
            c0, c1 = cum[j - 1], cum[j]
            t = (0.5 * tot - c0) / max(c1 - c0, 1e-300)
            r_half = r[order][j - 1] + t * (r[order][j] - r[order][j - 1])
        cxx, cyy, cxy = ((f * dx * dx).sum() / tot, (f * dy * dy).sum() / tot,
                         (f * dx * dy).sum() / tot)
        tr, det = cxx + cyy, cxx * cyy - cxy**2
        disc = math.sqrt(max(tr**2 / 4 - det, 0.0))
        lmax, lmin = tr / 2 + disc, max(tr / 2 - disc, 0.0)
        q = math.sqrt(lmin / lmax) if lmax > 0 else np.nan
        out[k] = xc, yc, max(r_half, 0.5), q
    return out


def hosts(ref, ref_err, bad, psf_fwhm, min_area, calibrate):
    """Connected components of the reference band's PSF-smoothed S/N > 3 (noise-
    calibrated when ``calibrate``) with at least ``min_area`` pixels: (map, n, factor)."""
    snr = smoothed_snr(ref, ref_err, bad, psf_fwhm)
    factor = 1.0
    if calibrate:
        factor = noise_factor(snr, ~bad & (np.abs(snr) < 5.0))
    host, n = ndi.label(snr / factor > _HOST_NSIGMA)
    if n:
        area = ndi.sum_labels(np.ones_like(snr), host, np.arange(1, n + 1))
        keep = np.flatnonzero(area >= min_area) + 1
        lut = np.zeros(n + 1, dtype=np.int64)
        lut[keep] = np.arange(1, keep.size + 1)
        host, n = lut[host], keep.size
    return host, n, factor


def host_of(labels, ids, host, n_host, reg_xy):
    """Host of each region: the component holding most of its pixels, else the one
    whose centroid is nearest the region's (0 when there is no host)."""
    out = np.zeros(len(ids), dtype=np.int64)
    if n_host == 0:
        return out
    cen = np.array(ndi.center_of_mass(np.ones_like(host), host, np.arange(1, n_host + 1)))
    for k, i in enumerate(ids):
        h = host[labels == i]
        h = h[h > 0]
        if h.size:
            out[k] = np.bincount(h).argmax()
        elif np.all(np.isfinite(reg_xy[k])):
            d = np.hypot(cen[:, 1] - reg_xy[k, 0], cen[:, 0] - reg_xy[k, 1])
            out[k] = int(np.argmin(d)) + 1
    return out


def detection_snr(excess, excess_err, bad, sky, psf_fwhm, scales, calibrate):
    """Excess S/N smoothed at each scale (PSF FWHM multiples), each calibrated on ``sky``;
    the largest per pixel, and the largest calibration factor (for the sums' errors)."""
    best, factor = None, 1.0
    for k in scales:
        snr = smoothed_snr(excess, excess_err, bad, psf_fwhm * float(k))
        f = noise_factor(snr, sky) if calibrate else 1.0
        snr /= f
        factor = max(factor, f)
        best = snr if best is None else np.maximum(best, snr)
    return best, factor
