"""Image significance of density structures, and pruning of those below a cut.

AstroLink's ``S`` measures a structure against the *density* noise of its point
cloud, and that noise falls as more points are drawn from the same pixels: the
points know nothing of the image's noise. A noise peak of the sampled image (most
of all in an unsharp-masked image with correlated noise) can therefore pass
``S = 5``. The cut here asks the image the same question: is the structure's
sampled light significant against the image's own noise?

``snr = sum(L) / (f * sqrt(sum(var L)))`` over the structure's pixels, its
descendants' included, where ``L`` is the band-summed, sky-subtracted image the
points were drawn from, ``var L`` the sum of the bands' variances, and ``f`` the
robust (MAD) standard deviation of ``L``'s PSF-smoothed S/N map over the pixels
around the footprint (or every finite pixel) when it exceeds 1: correlated noise,
or errors that understate the noise, widen every sum's error by about that factor
(the same calibration as the emission stage's ``calibrate_noise``).
"""

from __future__ import annotations

import numpy as np

from galclust.structures._continuum import noise_factor, smoothed_snr

__all__ = ["image_snr", "luminosity_noise_factor", "prune"]


def luminosity_noise_factor(lum: np.ndarray, lum_err: np.ndarray, finite: np.ndarray,
                            sky: np.ndarray, psf_fwhm: float) -> float:
    """``max(1, robust sigma)`` of the PSF-smoothed S/N of ``lum`` over ``sky`` pixels.

    Parameters
    ----------
    lum, lum_err : numpy.ndarray
        ``(y, x)`` band-summed luminosity and its 1-sigma error.
    finite : numpy.ndarray
        ``(y, x)`` bool, pixels with data (the others do not enter the smoothing).
    sky : numpy.ndarray
        ``(y, x)`` bool, pixels whose spread measures the noise: those around a
        footprint when there are enough, else every finite pixel (sources are a
        minority there, and the MAD ignores them).
    psf_fwhm : float
        PSF FWHM in pixels (the smoothing).

    Returns
    -------
    float
    """
    lum0 = np.where(finite, lum, 0.0)
    err0 = np.where(finite, lum_err, 0.0)
    return noise_factor(smoothed_snr(lum0, err0, ~finite, psf_fwhm), sky & finite)


def image_snr(labels: np.ndarray, lum: np.ndarray, lum_var: np.ndarray,
              parent: np.ndarray, factor: float) -> np.ndarray:
    """Image S/N of each structure, its descendants' pixels included.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(y, x)`` int leaf labels, ``1..n`` (<= 0: none).
    lum, lum_var : numpy.ndarray
        ``(y, x)`` luminosity and its variance (finite where labelled).
    parent : numpy.ndarray
        ``(n,)`` parent id of each structure (0 for a root); parents precede
        their children.
    factor : float
        Noise calibration factor (see :func:`luminosity_noise_factor`).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` S/N (0 for a structure without pixels).
    """
    n = len(parent)
    flat = labels.ravel()
    good = flat > 0
    flux = np.bincount(flat[good], weights=lum.ravel()[good], minlength=n + 1)[1:n + 1]
    var = np.bincount(flat[good], weights=lum_var.ravel()[good], minlength=n + 1)[1:n + 1]
    for i in range(n - 1, -1, -1):              # children before their parents
        if parent[i] > 0:
            flux[parent[i] - 1] += flux[i]
            var[parent[i] - 1] += var[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, flux / (factor * np.sqrt(var)), 0.0)


def prune(labels: np.ndarray, parent: np.ndarray, keep: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop the structures not kept: their pixels go to the nearest kept ancestor.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(y, x)`` int leaf labels ``1..n`` (0 none, -1 masked: unchanged).
    parent : numpy.ndarray
        ``(n,)`` parent ids (0 root), parents before children.
    keep : numpy.ndarray
        ``(n,)`` bool.

    Returns
    -------
    labels : numpy.ndarray
        Relabelled ``1..m`` in the old order.
    parent : numpy.ndarray
        ``(m,)`` parent of each kept structure: its nearest kept ancestor.
    index : numpy.ndarray
        ``(m,)`` old 0-based index of each kept structure.
    """
    n = len(parent)
    new_id = np.zeros(n + 1, dtype=np.int64)
    new_id[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    target = np.zeros(n + 1, dtype=np.int64)    # old id -> its own or an ancestor's new id
    for i in range(n):
        target[i + 1] = new_id[i + 1] if keep[i] else target[parent[i]]
    index = np.flatnonzero(keep)
    new_parent = target[parent[index]]
    out = np.where(labels > 0, target[np.clip(labels, 0, n)], labels)
    return out.astype(labels.dtype), new_parent.astype(np.int64), index
