"""PSF matching: kernels that give every band the broadest band's PSF, and a
convolution of one image block that propagates the variance and respects coverage.

Pixel SEDs only mean something when every band has the same PSF: with the
native PSFs (JWST's FWHM grows ~5x from F090W to F444W) a compact source's red
halo reddens its surroundings. Ingest (:mod:`galclust.store.psfmatch`) reads a
PSF image per band, builds the kernels here and convolves each band block by
block with :func:`convolve_matched`.

Arrays in, arrays out: numpy and scipy only, no I/O.

The kernel is the Fourier ratio of the target and source PSFs with a taper
(window) on the high frequencies, as photutils' ``create_matching_kernel`` /
``make_kernel`` computes it (Aniano et al. 2011, PASP 123, 1218, describe why
the taper is needed):

.. math:: K = \\mathcal{F}^{-1}[W \\cdot T / S] \\quad (|S| > \\lambda \\max|S|,
          \\text{else } 0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage, signal

from galclust.errors import InputError

__all__ = [
    "DEFAULT_WINDOW_ALPHA",
    "KERNEL_FRACTION",
    "MIN_WEIGHT",
    "convolve_matched",
    "crop_kernel",
    "kernel_radius",
    "matching_kernel",
    "matching_kernels",
    "psf_fwhm",
    "tukey_window",
]

#: Taper width of the default Tukey window (fraction of the Nyquist radius that
#: is tapered; the inner ``1 - alpha`` is kept whole; photutils'
#: ``TukeyWindow(alpha)``). A trade-off: matching a Moffat (beta 2.5) of FWHM
#: 1 px to one of 3.5 px leaves residuals of 0.08% of the peak without a window,
#: 0.6% with alpha 0.2, 1.6% with 0.4 (the matched PSF 1.5% too broad); a measured
#: PSF's noise at high frequencies needs some taper.
DEFAULT_WINDOW_ALPHA = 0.25
#: Fraction of the kernel's absolute sum the cropped kernel keeps (see :func:`kernel_radius`).
KERNEL_FRACTION = 0.999
#: Least kernel weight on covered input pixels for an output pixel to be covered
#: (see :func:`convolve_matched`).
MIN_WEIGHT = 0.5
#: Largest offset (px) of a PSF's centroid from a pixel centre that can be centred.
_CENTRE_TOLERANCE = 0.25


# --------------------------------------------------------------------------- checks
def _check_psf(psf: Any, name: str = "psf") -> np.ndarray:
    """``psf`` as float64, normalised to unit sum, re-centred on an odd square stamp.

    The stamp is padded (never cropped) so that the pixel nearest the flux
    centroid is its central pixel.
    """
    arr = np.asarray(psf, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name}: a PSF must be a 2-D image, got an array of shape "
                         f"{arr.shape}.")
    if min(arr.shape) < 3:
        raise InputError(f"{name}: the PSF image is {arr.shape[1]}x{arr.shape[0]} px; give "
                         "a stamp of at least 3x3 px (e.g. 41x41) sampled on the mosaic grid.")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: the PSF image holds {int((~np.isfinite(arr)).sum())} "
                         "NaN or infinite pixels; give a PSF with a finite value in every pixel.")
    total = float(arr.sum())
    if not total > 0 or not float(arr.max()) > 0:
        raise InputError(f"{name}: the PSF image sums to {total:.3g}; it must hold a positive "
                         "peak (an all-zero or negative image is not a PSF).")
    arr = arr / total
    # centroid of the core (pixels above half the peak): wings and spikes do not pull it
    core = np.where(arr >= 0.5 * arr.max(), arr, 0.0)
    yy, xx = np.indices(arr.shape)
    cy, cx = float((core * yy).sum() / core.sum()), float((core * xx).sum() / core.sum())
    iy, ix = int(round(cy)), int(round(cx))
    off = max(abs(cy - iy), abs(cx - ix))
    if off > _CENTRE_TOLERANCE:
        raise InputError(
            f"{name}: the PSF's centre ({cx:.2f}, {cy:.2f}) (x, y, px) lies between pixels "
            f"({off:.2f} px from the nearest pixel centre), so it cannot be centred on a pixel "
            f"(an even-sized {arr.shape[1]}x{arr.shape[0]} stamp centred on a pixel corner?). "
            "Give an odd-sized stamp with the PSF centred on its central pixel.")
    ny, nx = arr.shape
    half = max(iy, ny - 1 - iy, ix, nx - 1 - ix)
    out = np.zeros((2 * half + 1, 2 * half + 1))
    out[half - iy:half - iy + ny, half - ix:half - ix + nx] = arr
    return out


def _pad_to(psf: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a centred odd square stamp to ``size`` x ``size`` (odd), keeping the centre."""
    pad = (size - psf.shape[0]) // 2
    return np.pad(psf, pad) if pad else psf


# --------------------------------------------------------------------------- FWHM
def psf_fwhm(psf: Any) -> float:
    """FWHM of a PSF image, in pixels, from its azimuthally averaged profile.

    The profile around the core's centroid (the flux-weighted centre of the
    pixels above half the peak) is averaged in rings 0.5 px wide; the FWHM is
    twice the radius where it first falls below half the peak pixel, linearly
    interpolated between rings. An undersampled PSF (FWHM ~ 1 px) is measured
    as its pixels show it.

    Parameters
    ----------
    psf : array_like, (ny, nx)
        A PSF image (any normalisation; a star's cutout on a zero background
        works too).

    Returns
    -------
    float
        FWHM in pixels.

    Raises
    ------
    InputError
        If ``psf`` is not 2-D, or has no positive finite peak.
    """
    arr = np.asarray(psf, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"psf_fwhm: a PSF must be a 2-D image, got shape {arr.shape}.")
    arr = np.where(np.isfinite(arr), arr, 0.0)
    peak = float(arr.max())
    if not peak > 0:
        raise InputError("psf_fwhm: the image has no positive peak.")
    half = 0.5 * peak
    iy, ix = np.unravel_index(int(np.argmax(arr)), arr.shape)
    yy, xx = np.indices(arr.shape)
    # the connected core around the peak: a neighbour above half max is not counted
    core = arr >= half
    lab, _ = ndimage.label(core)
    core &= lab == lab[iy, ix]
    w = np.where(core, arr, 0.0)
    cy, cx = float((w * yy).sum() / w.sum()), float((w * xx).sum() / w.sum())
    r = np.hypot(yy - cy, xx - cx).ravel()
    ring = (r / 0.5).astype(np.intp)
    n = np.bincount(ring)
    ok = n > 0
    prof = np.bincount(ring, arr.ravel())[ok] / n[ok]
    rad = np.bincount(ring, r)[ok] / n[ok]
    below = np.nonzero(prof < half)[0]
    if below.size == 0 or below[0] == 0:
        return float(2.0 * rad[below[0]]) if below.size else float(2.0 * rad[-1])
    i = int(below[0])
    p0, p1, r0, r1 = prof[i - 1], prof[i], rad[i - 1], rad[i]
    r_half = r0 + (p0 - half) / (p0 - p1) * (r1 - r0)
    return float(2.0 * r_half)


# --------------------------------------------------------------------------- kernels
def tukey_window(shape: tuple[int, int], alpha: float = DEFAULT_WINDOW_ALPHA) -> np.ndarray:
    """A circular Tukey (split cosine bell) taper over a centred frequency grid.

    1 inside the radius ``(1 - alpha) * R``, a cosine fall to 0 at ``R``, 0
    beyond, where ``R = (min(shape) - 1) / 2`` (the Nyquist radius); as
    photutils' ``TukeyWindow(alpha)``.

    Parameters
    ----------
    shape : (int, int)
        Shape of the (centred, ``fftshift``-ed) frequency grid.
    alpha : float
        Tapered fraction of ``R``, in [0, 1].

    Returns
    -------
    numpy.ndarray
        ``shape`` float64 in [0, 1], centred on ``(shape - 1) / 2``.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"tukey_window: alpha={alpha!r} must be in [0, 1].")
    yy, xx = np.indices(shape, dtype=np.float64)
    dist = np.hypot(yy - (shape[0] - 1) / 2.0, xx - (shape[1] - 1) / 2.0)
    rmax = (min(shape) - 1.0) / 2.0
    r_in, width = (1.0 - alpha) * rmax, alpha * rmax
    if width > 0:
        out = 0.5 * (1.0 + np.cos(np.pi * np.clip(dist - r_in, 0.0, width) / width))
    else:
        out = np.ones(shape)
    out[dist < r_in] = 1.0
    out[dist > r_in + width] = 0.0
    return out


def matching_kernel(source_psf: Any, target_psf: Any, *,
                    window: Callable[[tuple[int, int]], np.ndarray] | float | None
                    = DEFAULT_WINDOW_ALPHA,
                    regularization: float = 1e-4) -> np.ndarray:
    """The kernel that turns ``source_psf`` into ``target_psf``: ``source * K = target``.

    Both PSFs are normalised to unit sum, re-centred on the central pixel of
    odd square stamps and zero-padded to a common size; the kernel is the
    inverse FFT of ``W * T / S`` (0 where ``|S| <= regularization * max|S|``),
    normalised to unit sum (photutils ``make_kernel``, the successor of
    ``create_matching_kernel``, computes the same).

    Parameters
    ----------
    source_psf, target_psf : array_like, 2-D
        The narrower (source) and the broader (target) PSF, sampled on the same
        pixel grid (the mosaic's).
    window : callable, float or None
        The taper ``W``: a function of the frequency-grid shape returning a
        centred array in [0, 1]; a float is the ``alpha`` of
        :func:`tukey_window` (default :data:`DEFAULT_WINDOW_ALPHA`); None: no
        taper (noise in a measured PSF is then amplified).
    regularization : float
        In [0, 1): the OTF threshold relative to its peak.

    Returns
    -------
    numpy.ndarray
        Odd square float64 kernel, summing to 1, centred on its central pixel
        (crop it with :func:`crop_kernel`).

    Raises
    ------
    InputError
        For a PSF that is not a usable 2-D image (see :func:`matching_kernels`),
        a bad ``regularization``, or a source broader than the target
        (matching would deconvolve).
    """
    src = _check_psf(source_psf, "source PSF")
    tgt = _check_psf(target_psf, "target PSF")
    if not 0.0 <= float(regularization) < 1.0:
        raise InputError(f"matching_kernel: regularization={regularization!r} must be in "
                         "[0, 1) (e.g. 1e-4).")
    f_src, f_tgt = psf_fwhm(src), psf_fwhm(tgt)
    if f_src > 1.02 * f_tgt:
        raise InputError(
            f"matching_kernel: the source PSF (FWHM {f_src:.2f} px) is broader than the target "
            f"(FWHM {f_tgt:.2f} px); matching would deconvolve. Match every band to the "
            "broadest PSF (matching_kernels does).")
    size = max(src.shape[0], tgt.shape[0])
    src, tgt = _pad_to(src, size), _pad_to(tgt, size)
    s_otf, t_otf = np.fft.fft2(src), np.fft.fft2(tgt)
    amp = np.abs(s_otf)
    keep = amp > float(regularization) * amp.max()
    ratio = np.zeros_like(s_otf)
    ratio[keep] = t_otf[keep] / s_otf[keep]
    if window is not None:
        w = tukey_window(ratio.shape, float(window)) if isinstance(window, int | float) \
            else np.asarray(window(ratio.shape), dtype=np.float64)
        if w.shape != ratio.shape or not (np.all(w >= 0) and np.all(w <= 1)):
            raise InputError(f"matching_kernel: the window returned an array of shape "
                             f"{w.shape} (values {w.min():.3g}..{w.max():.3g}); it must be "
                             f"{ratio.shape} with values in [0, 1].")
        ratio *= np.fft.ifftshift(w)
    kernel = np.real(np.fft.fftshift(np.fft.ifft2(ratio)))
    total = float(kernel.sum())
    if not total > 1e-12:
        raise InputError("matching_kernel: the kernel sums to ~0; lower regularization or "
                         "use a wider window.")
    return kernel / total


def kernel_radius(kernel: Any, frac: float = KERNEL_FRACTION) -> int:
    """Half-size of the smallest centred square holding ``frac`` of ``sum |kernel|``.

    The kernel cropped to ``(2 r + 1)`` px square (:func:`crop_kernel`) keeps
    ``frac`` of its absolute weight, and ``r`` is the halo a block needs
    around it for a seamless block-by-block convolution.

    Parameters
    ----------
    kernel : array_like, odd square 2-D
        Centred on its central pixel.
    frac : float
        In (0, 1].

    Returns
    -------
    int
        ``r`` in pixels (0 for a delta function).
    """
    k = np.abs(np.asarray(kernel, dtype=np.float64))
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise InputError(f"kernel_radius: the kernel must be an odd square 2-D array, got "
                         f"shape {k.shape}.")
    if not 0.0 < float(frac) <= 1.0:
        raise InputError(f"kernel_radius: frac={frac!r} must be in (0, 1].")
    c = k.shape[0] // 2
    yy, xx = np.indices(k.shape)
    cheb = np.maximum(np.abs(yy - c), np.abs(xx - c)).ravel()
    enclosed = np.cumsum(np.bincount(cheb, k.ravel(), minlength=c + 1))
    total = enclosed[-1]
    return int(np.searchsorted(enclosed, float(frac) * total * (1 - 1e-12)))


def crop_kernel(kernel: Any, radius: int) -> np.ndarray:
    """The central ``(2 radius + 1)`` px square of ``kernel``, renormalised to unit sum."""
    k = np.asarray(kernel, dtype=np.float64)
    c = k.shape[0] // 2
    r = min(int(radius), c)
    out = k[c - r:c + r + 1, c - r:c + r + 1]
    return out / out.sum()


def matching_kernels(psfs: Mapping[str, Any], *,
                     window: Callable[[tuple[int, int]], np.ndarray] | float | None
                     = DEFAULT_WINDOW_ALPHA,
                     regularization: float = 1e-4, frac: float = KERNEL_FRACTION,
                     ) -> tuple[str, dict[str, np.ndarray | None]]:
    """Kernels matching every band's PSF to the broadest one (largest FWHM).

    Parameters
    ----------
    psfs : mapping of str to array_like
        Band name -> PSF image (2-D, on the mosaic's pixel grid, centred on a pixel).
    window, regularization
        As for :func:`matching_kernel`.
    frac : float
        Each kernel is cropped to :func:`kernel_radius` at this fraction and
        renormalised to unit sum.

    Returns
    -------
    target : str
        The band with the broadest PSF.
    kernels : dict
        Band -> cropped kernel (odd square, unit sum; its halo is
        ``(size - 1) // 2``), None for the target band.

    Raises
    ------
    InputError
        A PSF that is not a 2-D image, is all zero or non-finite, or is centred
        between pixels (an even-sized stamp), named by its band.
    """
    if not psfs:
        raise InputError("matching_kernels: give at least one band's PSF.")
    checked = {}
    for band, psf in psfs.items():
        checked[band] = _check_psf(psf, f"band {band} PSF")
    fwhm = {band: psf_fwhm(p) for band, p in checked.items()}
    target = max(fwhm, key=lambda b: fwhm[b])
    kernels: dict[str, np.ndarray | None] = {}
    for band, p in checked.items():
        if band == target:
            kernels[band] = None
            continue
        k = matching_kernel(p, checked[target], window=window, regularization=regularization)
        kernels[band] = crop_kernel(k, kernel_radius(k, frac))
    return target, kernels


# --------------------------------------------------------------------------- convolution
def convolve_matched(sci: Any, err: Any, kernel: Any, *, min_weight: float = MIN_WEIGHT
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Convolve one 2-D block with a matching kernel, propagating the variance.

    Normalised convolution over the covered pixels (``w = 1`` where ``err`` is
    finite and positive and ``sci`` finite, else 0)::

        W   = (w) * K
        sci' = (w sci) * K / W
        var' = (w err**2) * K**2 / W**2

    (``*`` is convolution), which is the plain convolution where the whole
    kernel lies on covered pixels (``W = 1``) and the variance of a weighted
    sum of independent pixels. An output pixel is uncovered (``sci' = 0``,
    ``err' = +inf``) where its input pixel was, or where less than
    ``min_weight`` of the kernel lies on covered pixels (near a coverage edge
    or the block's border), so a no-coverage region neither poisons its
    neighbours nor grows by more than about half the kernel's core.

    Zero padding outside the block is the same as no coverage: a block read
    with a halo of the kernel's radius (clipped at the mosaic's edge) gives, on
    its interior, exactly the convolution of the whole mosaic.

    Parameters
    ----------
    sci, err : array_like, (ny, nx)
        Flux and 1-sigma error (``+inf``, NaN or <= 0: no coverage).
    kernel : array_like, odd square 2-D
        Unit-sum matching kernel centred on its central pixel.
    min_weight : float
        Least covered kernel weight ``W`` of a covered output pixel
        (default :data:`MIN_WEIGHT` = 0.5).

    Returns
    -------
    sci, err : numpy.ndarray
        float32 ``(ny, nx)``.

    Notes
    -----
    The input pixels are taken as independent: a drizzled mosaic's correlated
    noise makes the propagated error too small by the same factor as its
    error map already is.
    """
    sci = np.asarray(sci)
    err = np.asarray(err)
    k = np.asarray(kernel, dtype=np.float64)
    if sci.ndim != 2 or sci.shape != err.shape:
        raise InputError(f"convolve_matched: sci {sci.shape} and err {err.shape} must be "
                         "2-D arrays of one shape.")
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise InputError(f"convolve_matched: the kernel must be an odd square 2-D array, got "
                         f"shape {k.shape}.")
    with np.errstate(invalid="ignore"):
        covered = np.isfinite(sci) & np.isfinite(err) & (err > 0)
    if k.shape[0] == 1 or not covered.any():
        return (np.where(covered, sci, 0).astype(np.float32),
                np.where(covered, err, np.inf).astype(np.float32))
    w = covered.astype(np.float64)
    s = np.where(covered, sci, 0.0).astype(np.float64)
    v = np.where(covered, err, 0.0).astype(np.float64) ** 2
    weight = signal.oaconvolve(w, k, mode="same")
    flux = signal.oaconvolve(s, k, mode="same")
    var = signal.oaconvolve(v, k * k, mode="same")
    del s, v, w
    good = covered & (weight >= float(min_weight))
    with np.errstate(divide="ignore", invalid="ignore"):
        out_sci = np.where(good, flux / weight, 0.0).astype(np.float32)
        out_err = np.where(good, np.sqrt(np.maximum(var, 0.0)) / weight, np.inf)
    return out_sci, out_err.astype(np.float32)
