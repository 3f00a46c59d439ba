"""Remove brightness from pixel SEDs, keeping their shape.

Input is a pixel-SED matrix ``flux`` of shape ``(n_pixels, n_bands)``. Each
normalisation returns features of the same shape:

``"none"``
    The raw fluxes: clusters then follow brightness, not SED shape (useful as
    a control; see :mod:`galclust.evaluation.pixels`).
``"l2"``
    ``u = f / ||f||``: the unit vector of the SED.
``"sum"``
    ``f / Σ f``: fractions of the pixel's total flux (pixels with ``Σ f <= 0``
    are invalid).
``"median_sed"``
    Subtract the galaxy's median SED ``m`` scaled to each pixel by the
    least-squares factor ``a = Σ f·m / Σ m²``, in units of the pixel's norm:
    ``(f − a·m) / ||f||``. This equals ``u − (u·m̂) m̂``, the part of the
    pixel's unit SED orthogonal to the median shape ``m̂`` (the median, over
    pixels, of the unit SEDs, renormalised), and its length is the
    cross-correlation distance ``b`` between the pixel and the median SED.
``"colour"``
    Colours against a reference band, ``−2.5 log10(f / f_ref)``, computed
    with asinh magnitudes (Lupton et al. 1999) softened by each band's median
    error, so that faint or negative fluxes stay finite; for ``f ≫ err`` the
    value equals the logarithmic colour. The reference band (default: the one
    with the highest median S/N) has a constant zero column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galclust.errors import InputError, check_choice
from galclust.pixels.options import NORMALIZATIONS

__all__ = ["Normalized", "asinh_magnitude", "normalize_seds", "unit_seds"]

_POGSON = 2.5 / np.log(10.0)


@dataclass(frozen=True)
class Normalized:
    """Normalised pixel SEDs.

    Attributes
    ----------
    features : ndarray, (n_pixels, n_bands)
        The normalised SEDs (0 in invalid rows).
    valid : ndarray of bool, (n_pixels,)
        Rows that could be normalised (finite, non-zero norm, positive sum, ...).
    scale : ndarray, (n_pixels,)
        For per-pixel scalings (``none``, ``l2``, ``sum``) the factor with
        ``features = flux / scale``; NaN for the other normalisations.
    reference : ndarray or None
        ``median_sed``: the unit median SED; ``colour``: the reference band index.
    """

    features: np.ndarray
    valid: np.ndarray
    scale: np.ndarray
    reference: np.ndarray | None = None


def unit_seds(flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalise rows; return ``(unit, norm)`` with zero rows left at 0."""
    norm = np.sqrt(np.einsum("ij,ij->i", flux, flux))
    safe = np.where(norm > 0, norm, 1.0)
    return flux / safe[:, None], norm


def asinh_magnitude(flux: np.ndarray, softening: np.ndarray) -> np.ndarray:
    """Asinh magnitude ``−2.5/ln10 · (asinh(f / 2b) + ln b)`` (zero point 0).

    Equals ``−2.5 log10 f`` for ``f ≫ b`` and stays finite for ``f <= 0``.

    Parameters
    ----------
    flux : ndarray, (..., n_bands)
    softening : ndarray, (n_bands,)
        Positive softening ``b`` per band (e.g. the typical 1-sigma error).
    """
    b = np.asarray(softening, dtype=float)
    return -_POGSON * (np.arcsinh(flux / (2.0 * b)) + np.log(b))


def normalize_seds(flux: np.ndarray, method: str = "l2", *, err: np.ndarray | None = None,
                   ref_band: int | None = None) -> Normalized:
    """Normalise pixel SEDs (rows of ``flux``) by ``method``.

    Parameters
    ----------
    flux : ndarray, (n_pixels, n_bands)
    method : str
        One of ``"none"``, ``"l2"``, ``"median_sed"``, ``"colour"``, ``"sum"``.
    err : ndarray, (n_pixels, n_bands), optional
        1-sigma errors; ``"colour"`` uses each band's median error as the
        asinh softening (without errors it uses 1e-3 of the band's median
        absolute flux).
    ref_band : int, optional
        Reference band (column) of ``"colour"``; default: highest median S/N
        (or the brightest band without errors).

    Returns
    -------
    Normalized

    Raises
    ------
    InputError
        Unknown ``method`` or a bad ``flux`` shape.
    """
    check_choice("normalize", method, NORMALIZATIONS)
    flux = np.asarray(flux, dtype=np.float64)
    if flux.ndim != 2:
        raise InputError(f"flux must be (n_pixels, n_bands); got shape {flux.shape}.")
    n, n_band = flux.shape
    finite = np.isfinite(flux).all(axis=1)
    f = np.where(finite[:, None], flux, 0.0)
    nan = np.full(n, np.nan)
    if method == "none":
        return Normalized(f, finite, np.ones(n))
    if method == "l2":
        unit, norm = unit_seds(f)
        return Normalized(unit, finite & (norm > 0), norm)
    if method == "sum":
        total = f.sum(axis=1)
        valid = finite & (total > 0)
        return Normalized(np.where(valid[:, None], f / np.where(valid, total, 1.0)[:, None], 0.0),
                          valid, np.where(valid, total, np.nan))
    if method == "median_sed":
        unit, norm = unit_seds(f)
        valid = finite & (norm > 0)
        if not valid.any():
            return Normalized(np.zeros_like(f), valid, nan)
        m = np.median(unit[valid], axis=0)
        m_norm = np.linalg.norm(m)
        m_hat = m / m_norm if m_norm > 0 else np.full(n_band, 1.0 / np.sqrt(n_band))
        features = unit - (unit @ m_hat)[:, None] * m_hat[None, :]
        return Normalized(np.where(valid[:, None], features, 0.0), valid, nan, m_hat)
    # colour
    if err is not None:
        e = np.asarray(err, dtype=np.float64)
        if e.shape != flux.shape:
            raise InputError(f"err has shape {e.shape} but flux has {flux.shape}.")
        good = np.isfinite(e) & (e > 0)
        soft = np.array([np.median(e[good[:, j], j]) if good[:, j].any() else np.nan
                         for j in range(n_band)])
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.nanmedian(np.where(good, f / np.where(good, e, 1.0), np.nan), axis=0)
    else:
        soft = 1e-3 * np.median(np.abs(f[finite]), axis=0) if finite.any() else np.ones(n_band)
        snr = np.median(f[finite], axis=0) if finite.any() else np.zeros(n_band)
    soft = np.where(np.isfinite(soft) & (soft > 0), soft, 1.0)
    if ref_band is None:
        ref = int(np.nanargmax(snr)) if np.isfinite(snr).any() else 0
    else:
        ref = int(ref_band)
        if not 0 <= ref < n_band:
            raise InputError(f"ref_band={ref_band} is out of range for {n_band} bands.")
    mag = asinh_magnitude(f, soft)
    colours = mag - mag[:, [ref]]
    return Normalized(np.where(finite[:, None], colours, 0.0), finite, nan, np.array(ref))
