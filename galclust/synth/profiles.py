"""Surface-brightness profiles and NIRCam-like point-spread functions.

Everything here evaluates on a pixel grid with numpy broadcasting (no Python
loops over pixels). Pixel ``(i, j)`` of an array is centred at ``y = i``,
``x = j``; a source at ``(y0, x0)`` may sit between pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.fft

__all__ = [
    "convolve_psf",
    "gaussian",
    "moffat",
    "psf_fwhm_px",
    "sersic",
    "spike_taper",
    "spikes",
]

_FWHM_PER_MICRON = 0.0318  # arcsec per micron: NIRCam PSF FWHM ≈ 0.032" x lambda/µm
_MOFFAT_BETA = 2.5


def psf_fwhm_px(wavelengths: Sequence[float] | np.ndarray, pixel_scale: float = 0.04,
                *, minimum: float = 1.0) -> np.ndarray:
    """NIRCam-like PSF FWHM in pixels: ``0.0318" * lambda / pixel_scale``.

    Parameters
    ----------
    wavelengths : array-like
        ``(band,)`` pivot wavelengths in micron.
    pixel_scale : float
        Arcsec per pixel.
    minimum : float
        Floor in pixels (undersampled blue bands are broadened by the pixel).

    Returns
    -------
    numpy.ndarray
        ``(band,)`` FWHM in pixels (≈ 1.0 for F090W to 3.5 for F444W at 0.04").
    """
    lam = np.asarray(wavelengths, dtype=float)
    return np.maximum(_FWHM_PER_MICRON * lam / pixel_scale, minimum)


def _radius(shape: tuple[int, int], y0: float, x0: float, q: float = 1.0,
            theta: float = 0.0) -> np.ndarray:
    """Elliptical radius (major-axis units) of every pixel of ``shape``."""
    yy = np.arange(shape[0], dtype=float)[:, None] - y0
    xx = np.arange(shape[1], dtype=float)[None, :] - x0
    c, s = np.cos(theta), np.sin(theta)
    u = xx * c + yy * s
    v = -xx * s + yy * c
    return np.sqrt(u**2 + (v / q) ** 2)


def _sersic_b(n: float) -> float:
    """Ciotti & Bertin (1999) approximation of ``b_n``."""
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)


def sersic(shape: tuple[int, int], y0: float, x0: float, *, r_eff: float, n: float = 1.0,
           q: float = 1.0, theta: float = 0.0) -> np.ndarray:
    """Sersic profile normalised to unit sum over ``shape``.

    ``I(r) ∝ exp(-b_n [(r / r_eff)^(1/n) - 1])`` with the elliptical radius
    softened by half a pixel (``r -> sqrt(r² + 0.25)``) so the cusp of a small
    high-``n`` bulge is not aliased by point sampling.

    Parameters
    ----------
    shape : (int, int)
        Output shape ``(ny, nx)``.
    y0, x0 : float
        Centre in pixels.
    r_eff : float
        Effective (half-light) radius along the major axis, pixels.
    n : float
        Sersic index (1 exponential disk, 4 de Vaucouleurs bulge).
    q : float
        Axis ratio b/a in (0, 1].
    theta : float
        Position angle of the major axis, radians from +x towards +y.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64, sums to 1.
    """
    r = np.sqrt(_radius(shape, y0, x0, q, theta) ** 2 + 0.25)
    img = np.exp(-_sersic_b(n) * ((r / r_eff) ** (1.0 / n) - 1.0))
    return img / img.sum()


def gaussian(shape: tuple[int, int], y0: float, x0: float, *, sigma: float,
             q: float = 1.0, theta: float = 0.0) -> np.ndarray:
    """Elliptical Gaussian normalised to unit sum over ``shape``.

    Parameters
    ----------
    shape : (int, int)
        Output shape.
    y0, x0 : float
        Centre in pixels.
    sigma : float
        Major-axis standard deviation, pixels.
    q, theta : float
        Axis ratio and position angle (radians).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64, sums to 1.
    """
    r = _radius(shape, y0, x0, q, theta)
    img = np.exp(-0.5 * (r / sigma) ** 2)
    return img / img.sum()


def moffat(shape: tuple[int, int], y0: float, x0: float, fwhm: float | np.ndarray, *,
           beta: float = _MOFFAT_BETA) -> np.ndarray:
    """Circular Moffat PSF(s), each normalised to unit integral over the plane.

    Parameters
    ----------
    shape : (int, int)
        Output shape.
    y0, x0 : float
        Centre in pixels.
    fwhm : float or array-like
        FWHM in pixels; an array ``(band,)`` gives one image per band.
    beta : float
        Moffat power index.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` or ``(band, ny, nx)`` float64. Normalised analytically
        (not by the sum), so a PSF truncated by a stamp loses its wings.
    """
    fw = np.asarray(fwhm, dtype=float)
    alpha = fw / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    r2 = _radius(shape, y0, x0) ** 2
    a2 = alpha[..., None, None] ** 2
    return (beta - 1.0) / (np.pi * a2) * (1.0 + r2 / a2) ** -beta


@lru_cache(maxsize=64)
def _otf(shape: tuple[int, int], fwhm: tuple[float, ...]) -> np.ndarray:
    """Real FFT (complex64) of the pixel-centred Moffat PSF of each band, origin at (0, 0)."""
    cy, cx = shape[0] // 2, shape[1] // 2
    psf = moffat(shape, cy, cx, np.asarray(fwhm))
    psf /= psf.sum(axis=(-2, -1), keepdims=True)
    psf = np.fft.ifftshift(psf, axes=(-2, -1))
    return scipy.fft.rfft2(psf.astype(np.float32), axes=(-2, -1))


def convolve_psf(images: np.ndarray, fwhm: Sequence[float] | np.ndarray,
                 coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSF-convolved band images and per-image detection sums of a linear mixture.

    With ``P_b`` the Moffat PSF of band ``b`` and ``I_c`` the images, returns
    ``model_b = sum_c coeffs[c, b] * (I_c * P_b)`` and
    ``parts_c = sum_b coeffs[c, b] * (I_c * P_b)`` using ``B + C`` inverse
    FFTs instead of ``B * C`` (the convolution is linear). Computed in float32.

    Parameters
    ----------
    images : numpy.ndarray
        ``(component, ny, nx)`` unconvolved images.
    fwhm : array-like
        ``(band,)`` PSF FWHM in pixels.
    coeffs : numpy.ndarray
        ``(component, band)`` flux of each image in each band.

    Returns
    -------
    model : numpy.ndarray
        ``(band, ny, nx)`` float32.
    parts : numpy.ndarray
        ``(component, ny, nx)`` float32 band-summed image of each component.

    Notes
    -----
    The convolution is circular: give stamps a margin of a few PSF widths.
    """
    imgs = np.asarray(images, dtype=np.float32)
    shape = (int(imgs.shape[-2]), int(imgs.shape[-1]))
    otf = _otf(shape, tuple(float(f) for f in np.atleast_1d(fwhm)))  # (band, ny, nx//2+1)
    spec = scipy.fft.rfft2(imgs, axes=(-2, -1))                     # (component, ...)
    k = np.asarray(coeffs, dtype=np.float32)
    # small explicit sums over components (<= 4): no BLAS threads, cheap
    mix = k[0, :, None, None] * spec[0]
    for c in range(1, k.shape[0]):
        mix += k[c, :, None, None] * spec[c]
    band_spec = mix * otf
    part_spec = np.empty_like(spec)
    for c in range(k.shape[0]):
        part_spec[c] = spec[c] * (k[c, :, None, None] * otf).sum(axis=0)
    out = scipy.fft.irfft2(np.concatenate([band_spec, part_spec]), s=shape, axes=(-2, -1))
    return out[: otf.shape[0]], out[otf.shape[0]:]


#: JWST-like spike position angles (degrees from +x): six strong spikes every
#: 60 degrees starting at the vertical, plus two faint horizontal strut spikes.
SPIKE_ANGLES = (90.0, 150.0, 210.0, 270.0, 330.0, 30.0, 0.0, 180.0)
SPIKE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.25, 0.25)


def spike_taper(t: np.ndarray, extent: float) -> np.ndarray:
    """Smooth fade of a spike to zero at ``extent`` px: ``clip(1 - (t / extent)^4, 0, 1)``."""
    return np.clip(1.0 - (np.asarray(t, dtype=float) / extent) ** 4, 0.0, 1.0)


def spikes(shape: tuple[int, int], y0: float, x0: float, fwhm: Sequence[float] | np.ndarray,
           *, fraction: float = 0.1, extent: float | None = None) -> np.ndarray:
    """JWST-like diffraction spikes of a unit-flux point source, per band.

    Each spike is a narrow ridge (Gaussian cross-section of ``0.5 * fwhm``)
    whose brightness falls as ``(1 + t / L)^-2`` along its length, with
    ``L = 4 * fwhm`` (spikes grow with wavelength), faded to zero at
    ``extent`` by :func:`spike_taper`.

    Parameters
    ----------
    shape : (int, int)
        Output shape.
    y0, x0 : float
        Position of the star, pixels.
    fwhm : array-like
        ``(band,)`` PSF FWHM in pixels.
    fraction : float
        Total flux of all spikes (before the taper) as a fraction of the
        star's flux.
    extent : float, optional
        Length (px) at which spikes fade out; default half the smaller side
        of ``shape``.

    Returns
    -------
    numpy.ndarray
        ``(band, ny, nx)`` float64.
    """
    fw = np.asarray(fwhm, dtype=float)[:, None]
    yy = np.arange(shape[0], dtype=float)[:, None] - y0
    xx = np.arange(shape[1], dtype=float)[None, :] - x0
    width = 0.5 * fw
    length = 4.0 * fw
    weights = np.asarray(SPIKE_WEIGHTS)
    # one spike integrates to width*sqrt(2pi) * length (t from 0 to infinity)
    amp = fraction / (weights.sum() * width * np.sqrt(2.0 * np.pi) * length)
    extent = min(shape) / 2.0 if extent is None else float(extent)
    reach = 6.0 * float(width.max())
    out = np.zeros((fw.shape[0], *shape))
    for angle, w in zip(SPIKE_ANGLES, SPIKE_WEIGHTS, strict=True):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        t = xx * c + yy * s
        u = -xx * s + yy * c
        iy, ix = np.nonzero((t > 0) & (np.abs(u) < reach))  # only pixels near the ridge
        tp, up = t[iy, ix], u[iy, ix]
        along = (1.0 + tp / length) ** -2 * spike_taper(tp, extent)
        out[:, iy, ix] += w * amp * along * np.exp(-0.5 * (up / width) ** 2)
    return out
