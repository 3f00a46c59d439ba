"""Errors that are right: per-band error scale and correlated noise from empty sky.

Pure numpy/scipy on a stamp: ``sci``/``err`` ``(band, y, x)`` (``err = +inf``:
no coverage) and a boolean ``sky`` mask ``(y, x)`` of pixels outside every
segment (see :func:`sky_from_segmentation`).

* :func:`sky_error_scale` — the factor ``f_b`` by which each band's error map
  must be multiplied so that the sky's ``sci / (f_b err)`` has unit scatter.
  Drizzled error maps leave out the pixel-to-pixel correlation, so their
  per-pixel errors are typically too small; they can also be too large.
* :func:`correlation_alpha` — how the noise of a sum of ``N`` adjacent pixels
  grows faster than ``sqrt(N)``: ``ratio(N) = 1 + alpha log10 N`` (García-Benito
  et al. 2015, A&A 576, A135), the coefficient used by
  :func:`galclust.pixels.binning.bin_seds`.
* :func:`rescale_errors` — the error cube times ``f_b``, with the factors.
* :func:`errors_from_sky` — an error cube for a survey without error maps.

Robust scatter: ``1.4826 * MAD`` about the median, iterated with a clip of
``clip`` sigma (default 4, which biases a Gaussian scatter by < 0.1%) so that
faint sources left in the sky do not inflate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from galclust.errors import InputError
from galclust.pixels.selection import coverage

__all__ = [
    "SkyCorrelation",
    "SkyScale",
    "correlation_alpha",
    "errors_from_sky",
    "rescale_errors",
    "robust_std",
    "sky_error_scale",
    "sky_from_segmentation",
]

_MAD = 1.4826  # Gaussian sigma / MAD
_MAD_SE = 1.166  # relative standard error of the MAD sigma is 1.166 / sqrt(n) (Gaussian)
#: Pixels of the area over which the noise correlation is summarised (a 5 x 5 box:
#: a few PSF FWHM of a critically sampled image).
CORRELATION_AREA = 25


@dataclass(frozen=True)
class SkyScale:
    """Per-band error scale measured on the sky.

    Attributes
    ----------
    scale : ndarray, (band,)
        The factor to apply to ``err``: the measured one, clipped to
        ``limits``; 1.0 where too few sky pixels.
    measured : ndarray, (band,)
        Robust scatter of ``sci / err`` over the sky pixels (NaN if too few).
    n_sky : ndarray of int, (band,)
        Covered sky pixels used.
    reliable : ndarray of bool, (band,)
        False where ``scale`` is a fallback: too few sky pixels (1.0) or a
        measurement outside ``limits`` (the nearest limit).
    reasons : dict of int to str
        Band index -> why it is not reliable.
    """

    scale: np.ndarray
    measured: np.ndarray
    n_sky: np.ndarray
    reliable: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SkyCorrelation:
    """Growth of the noise of pixel sums with their size, measured on the sky.

    Attributes
    ----------
    alpha : ndarray, (band,)
        Best-fitting ``alpha`` of ``ratio = 1 + alpha log10 N``, clipped at 0
        (0 where not reliable).
    alpha_err : ndarray, (band,)
        Its 1-sigma uncertainty (NaN where not reliable).
    sizes : tuple of int
        Box sides; ``N = size**2``.
    ratio : ndarray, (band, size)
        Robust scatter of the box sums over their white-noise prediction
        ``f_b sqrt(sum err**2)`` (NaN where too few boxes).
    n_boxes : ndarray of int, (band, size)
        Boxes wholly in the covered sky (all positions, overlapping).
    reliable : ndarray of bool, (band,)
        False when fewer than two box sizes above 1 had enough boxes.
    reasons : dict of int to str
        Band index -> why it is not reliable.
    """

    alpha: np.ndarray
    alpha_err: np.ndarray
    sizes: tuple[int, ...]
    ratio: np.ndarray
    n_boxes: np.ndarray
    reliable: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)


def robust_std(values: np.ndarray, *, clip: float = 4.0, max_iter: int = 10) -> float:
    """Sigma-clipped ``1.4826 * MAD`` of a 1-d sample.

    Parameters
    ----------
    values : ndarray
        Finite values.
    clip : float
        Values farther than ``clip`` sigma from the median are left out and the
        scatter recomputed, until nothing changes or ``max_iter`` times.
    max_iter : int

    Returns
    -------
    float
        NaN for an empty sample.
    """
    x = np.asarray(values, dtype=float).ravel()
    if not x.size:
        return float("nan")
    keep = x
    sig = float("nan")
    for _ in range(max_iter):
        med = np.median(keep)
        sig = _MAD * float(np.median(np.abs(keep - med)))
        if not sig > 0:
            return sig
        new = x[np.abs(x - med) <= clip * sig]
        if new.size == keep.size:
            break
        keep = new
    return sig


def _check_stamp(sci, err, sky) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sci = np.asarray(sci, dtype=float)
    err = np.asarray(err, dtype=float)
    if sci.ndim != 3 or err.shape != sci.shape:
        raise InputError(f"sci and err must be (band, y, x) cubes of one shape; got "
                         f"{sci.shape} and {err.shape}.")
    sky = np.asarray(sky)
    if sky.shape != sci.shape[1:]:
        raise InputError(f"sky must be a boolean (y, x) = {sci.shape[1:]} mask of empty sky "
                         f"(e.g. sky_from_segmentation(seg)); got shape {sky.shape}.")
    return sci, err, sky.astype(bool)


def sky_from_segmentation(seg: np.ndarray, *, grow: int = 2) -> np.ndarray:
    """Empty sky of a stamp: pixels at least ``grow + 1`` pixels from every segment.

    Parameters
    ----------
    seg : ndarray of int, (y, x)
        Segmentation stamp (0 = sky).
    grow : int
        Segments are grown by this many pixels (8-connected) first, so that
        their faint wings below the detection threshold stay out of the sky.

    Returns
    -------
    ndarray of bool, (y, x)
    """
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise InputError(f"seg must be a (y, x) segmentation stamp; got shape {seg.shape}.")
    if int(grow) < 0:
        raise InputError(f"grow must be >= 0 pixels; got {grow!r}.")
    objects = seg != 0
    if grow and objects.any():
        objects = ndimage.binary_dilation(objects, structure=np.ones((3, 3), bool),
                                          iterations=int(grow))
    return ~objects


def sky_error_scale(sci: np.ndarray, err: np.ndarray, sky: np.ndarray, *,
                    min_pixels: int = 200, clip: float = 4.0,
                    limits: tuple[float, float] = (0.2, 10.0)) -> SkyScale:
    """Per-band factor ``f_b`` that makes the error map match the sky's scatter.

    ``f_b`` is the robust scatter (sigma-clipped ``1.4826 * MAD``) of
    ``sci / err`` over the covered sky pixels of band ``b``; ``err * f_b`` is
    then the per-pixel error the sky shows. Rescaling *down* (``f_b < 1``) is
    allowed, as error maps can be too large too, but a factor outside
    ``limits`` is clipped to the nearest limit and flagged: such a factor
    usually means source light in the sky mask or an error map in other units.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
        Flux and 1-sigma error (``+inf``: no coverage).
    sky : ndarray of bool, (y, x)
        Empty sky (outside every segment).
    min_pixels : int
        Fewest covered sky pixels to measure a band (the MAD scatter of ``n``
        pixels is uncertain by ``1.17 / sqrt(n)``: 8% at 200); with fewer the
        factor is 1.0 and the band is flagged not reliable.
    clip : float
        Sigma clip of the robust scatter.
    limits : (float, float)
        Smallest and largest factor applied.

    Returns
    -------
    SkyScale

    Raises
    ------
    InputError
        For arrays of mismatched shape or invalid ``limits``/``min_pixels``.
    """
    sci, err, sky = _check_stamp(sci, err, sky)
    lo, hi = (float(v) for v in limits)
    if not 0 < lo <= 1 <= hi:
        raise InputError(f"limits must be (low, high) with 0 < low <= 1 <= high, e.g. "
                         f"(0.2, 10); got {limits!r}.")
    if int(min_pixels) < 2:
        raise InputError(f"min_pixels must be >= 2; got {min_pixels!r}.")
    n_band = sci.shape[0]
    cov = coverage(sci, err) & sky[None]
    scale = np.ones(n_band)
    measured = np.full(n_band, np.nan)
    n_sky = cov.reshape(n_band, -1).sum(axis=1)
    reliable = np.zeros(n_band, dtype=bool)
    reasons: dict[int, str] = {}
    for b in range(n_band):
        if n_sky[b] < min_pixels:
            reasons[b] = (f"only {n_sky[b]} covered sky pixels < min_pixels={min_pixels}: "
                          "factor 1.0; use a larger stamp or a smaller grow of the sky mask")
            continue
        f = robust_std(sci[b][cov[b]] / err[b][cov[b]], clip=clip)
        measured[b] = f
        if not np.isfinite(f) or f <= 0:
            reasons[b] = "the sky has no scatter (constant sci): factor 1.0"
        elif f < lo or f > hi:
            scale[b] = float(np.clip(f, lo, hi))
            reasons[b] = (f"measured factor {f:.3g} outside limits [{lo:g}, {hi:g}]: clipped "
                          f"to {scale[b]:g}; check the sky mask for source light and the "
                          "error map's units")
        else:
            scale[b] = f
            reliable[b] = True
    return SkyScale(scale=scale, measured=measured, n_sky=n_sky.astype(np.int64),
                    reliable=reliable, reasons=reasons)


def rescale_errors(sci: np.ndarray, err: np.ndarray, sky: np.ndarray, *,
                   min_pixels: int = 200, limits: tuple[float, float] = (0.2, 10.0)
                   ) -> tuple[np.ndarray, SkyScale]:
    """A galaxy's error cube rescaled per band to the scatter of the sky around it.

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    sky : ndarray of bool, (y, x)
        Empty sky of the stamp.
    min_pixels, limits
        See :func:`sky_error_scale`.

    Returns
    -------
    err_rescaled : ndarray, (band, y, x)
        ``err * scale[b]`` (``+inf`` stays ``+inf``).
    scale : SkyScale
        The factors, with ``reliable`` and the reasons, to record per galaxy.
    """
    sci, err, sky = _check_stamp(sci, err, sky)
    result = sky_error_scale(sci, err, sky, min_pixels=min_pixels, limits=limits)
    return err * result.scale[:, None, None], result


def errors_from_sky(sci: np.ndarray, sky: np.ndarray, *, min_pixels: int = 200,
                    clip: float = 4.0) -> tuple[np.ndarray, SkyScale]:
    """An error cube from the sky alone, for a survey without error maps.

    Each band gets one error for every pixel: the robust scatter of ``sci``
    over the sky (background-limited; the sources' own Poisson noise is left
    out, so errors of bright pixels are underestimated).

    Parameters
    ----------
    sci : ndarray, (band, y, x)
    sky : ndarray of bool, (y, x)
    min_pixels, clip
        See :func:`sky_error_scale`.

    Returns
    -------
    err : ndarray, (band, y, x)
        ``+inf`` where ``sci`` is not finite and for a band with too few sky
        pixels (no usable error: the band is not covered).
    result : SkyScale
        ``measured`` holds the per-band sky rms; ``scale`` is 1.
    """
    sci = np.asarray(sci, dtype=float)
    ones = np.where(np.isfinite(sci), 1.0, np.inf)
    unit = sky_error_scale(sci, ones, sky, min_pixels=min_pixels, clip=clip,
                           limits=(np.finfo(float).tiny, np.inf))
    rms = np.where(unit.reliable, unit.measured, np.inf)
    reasons = {b: r.replace("factor 1.0", "band left uncovered (err = +inf)")
               for b, r in unit.reasons.items()}
    result = SkyScale(scale=np.ones(sci.shape[0]), measured=unit.measured, n_sky=unit.n_sky,
                      reliable=unit.reliable, reasons=reasons)
    return ones * rms[:, None, None], result


def _box_sums(a: np.ndarray, s: int) -> np.ndarray:
    """Sums of ``a`` over every ``s x s`` box (summed-area table), shape (ny-s+1, nx-s+1)."""
    sat = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    sat[1:, 1:] = a.cumsum(axis=0).cumsum(axis=1)
    return sat[s:, s:] - sat[:-s, s:] - sat[s:, :-s] + sat[:-s, :-s]


def correlation_alpha(sci: np.ndarray, err: np.ndarray, sky: np.ndarray, *,
                      sizes: tuple[int, ...] = (1, 2, 3, 4, 6, 8), min_boxes: int = 30,
                      clip: float = 4.0) -> SkyCorrelation:
    """Correlated-noise coefficient ``alpha`` per band, from box sums in the sky.

    For each box side ``s`` (``N = s**2`` pixels) every ``s x s`` box lying
    wholly in the covered sky gives ``t = sum(sci) / sqrt(sum(err**2))``; the
    ratio ``ratio(N) = robust_std(t_N) / robust_std(t_1)`` is 1 for white noise
    and grows with ``N`` when neighbouring pixels are correlated (drizzling,
    resampling). Dividing by ``robust_std(t_1) = f_b`` (:func:`sky_error_scale`)
    compares the box sums with ``f_b sqrt(sum err**2)``. A weighted least-squares
    fit of ``ratio - 1 = alpha log10 N`` over the sizes above 1 gives ``alpha``
    (weights from the MAD's standard error ``1.17 ratio / sqrt(n)``, ``n`` the
    number of independent boxes, ``n_sky_pixels / N``). Use it as
    ``noise_bin = sqrt(sum err**2) * f_b * (1 + alpha log10 N)``
    (García-Benito et al. 2015, A&A 576, A135).

    Parameters
    ----------
    sci, err : ndarray, (band, y, x)
    sky : ndarray of bool, (y, x)
    sizes : tuple of int
        Box sides (≥ 1). The relation saturates for boxes larger than the
        correlation length, so keep them near the bin sizes of interest.
    min_boxes : int
        Fewest independent boxes (``n_sky_pixels / N``) for a size to count.
    clip : float
        Sigma clip of the robust scatter.

    Returns
    -------
    SkyCorrelation
        ``alpha`` clipped at 0; 0 and ``reliable = False`` for a band with
        fewer than two usable sizes above 1.

    Raises
    ------
    InputError
        For arrays of mismatched shape or invalid ``sizes``.
    """
    sci, err, sky = _check_stamp(sci, err, sky)
    sizes = tuple(int(s) for s in sizes)
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise InputError(f"sizes must be distinct box sides >= 1, e.g. (1, 2, 3, 4, 6, 8); "
                         f"got {sizes!r}.")
    if 1 not in sizes:
        sizes = (1, *sizes)
    sizes = tuple(sorted(sizes))
    n_band = sci.shape[0]
    cov = coverage(sci, err) & sky[None]
    ratio = np.full((n_band, len(sizes)), np.nan)
    n_boxes = np.zeros((n_band, len(sizes)), dtype=np.int64)
    alpha = np.zeros(n_band)
    alpha_err = np.full(n_band, np.nan)
    reliable = np.zeros(n_band, dtype=bool)
    reasons: dict[int, str] = {}
    ny, nx = sky.shape
    for b in range(n_band):
        ok = cov[b]
        n_pix = int(ok.sum())
        s_img = np.where(ok, sci[b], 0.0)
        v_img = np.where(ok, err[b], 0.0) ** 2
        c_img = ok.astype(float)
        scatter = np.full(len(sizes), np.nan)
        for i, s in enumerate(sizes):
            if s > min(ny, nx):
                continue
            full = _box_sums(c_img, s) > s * s - 0.5
            n_boxes[b, i] = int(full.sum())
            if n_pix / (s * s) < min_boxes or not full.any():
                continue
            t = _box_sums(s_img, s)[full] / np.sqrt(_box_sums(v_img, s)[full])
            scatter[i] = robust_std(t, clip=clip)
        if not scatter[0] > 0:
            reasons[b] = (f"only {n_pix} covered sky pixels (or no scatter): alpha 0; "
                          "use a larger stamp")
            continue
        ratio[b] = scatter / scatter[0]
        use = np.array([s > 1 for s in sizes]) & np.isfinite(ratio[b])
        if use.sum() < 2:
            reasons[b] = (f"fewer than two box sizes above 1 have {min_boxes} independent "
                          f"boxes in {n_pix} sky pixels: alpha 0; use smaller sizes or a "
                          "larger stamp")
            continue
        n_sq = np.array(sizes, dtype=float)[use] ** 2
        x = np.log10(n_sq)
        y = ratio[b, use] - 1.0
        sigma = _MAD_SE * ratio[b, use] / np.sqrt(n_pix / n_sq)
        w = 1.0 / sigma ** 2
        fit = float(np.sum(w * x * y) / np.sum(w * x * x))
        alpha[b] = max(fit, 0.0)
        alpha_err[b] = float(1.0 / np.sqrt(np.sum(w * x * x)))
        reliable[b] = True
    return SkyCorrelation(alpha=alpha, alpha_err=alpha_err, sizes=sizes, ratio=ratio,
                          n_boxes=n_boxes, reliable=reliable, reasons=reasons)
