"""Per-pixel errors estimated from the image itself.

:func:`estimate_noise` measures the background RMS of one band in tiles
(sigma-clipped, with sources masked by an iterated clip-and-dilate detection
mask), interpolates the tile values to a smooth per-pixel RMS map (like
photutils' ``Background2D``, in numpy/scipy/astropy.stats), then corrects it
for correlated noise with randomly placed empty apertures: the standard
deviation of the sums in apertures of radius ``r`` that avoid every detected
pixel is compared to the ``sqrt(sum sigma_pixel**2)`` it would be for white
noise. The ratio at the typical source radius scales the map, so the errors
of sums over source-sized apertures are right (a per-pixel error of
correlated noise is then conservative for single pixels). This is the
empty-aperture method of e.g. Labbé et al. (2003), Quadri et al. (2007) and
Whitaker et al. (2011).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from astropy.stats import sigma_clipped_stats
from scipy import ndimage, signal
from scipy.interpolate import RegularGridInterpolator

from galclust.errors import InputError

__all__ = ["estimate_noise"]

log = logging.getLogger(__name__)


def _clip_bias(clip: float) -> float:
    """Std of a unit normal truncated at +-clip (sigma clipping shrinks the std by it)."""
    phi = math.exp(-0.5 * clip**2) / math.sqrt(2 * math.pi)
    mass = math.erf(clip / math.sqrt(2))
    return math.sqrt(max(1.0 - 2.0 * clip * phi / mass, 1e-6))


def _disk(radius: float) -> np.ndarray:
    r = int(math.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx**2 + yy**2 <= radius**2 + 1e-9).astype(float)


def _mesh(img: np.ndarray, bad: np.ndarray, tile: int, clip: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped (median, std) per tile; NaN where < 25 % of a tile is usable."""
    ny, nx = img.shape
    ty, tx = max(1, round(ny / tile)), max(1, round(nx / tile))
    ey = np.linspace(0, ny, ty + 1).astype(int)
    ex = np.linspace(0, nx, tx + 1).astype(int)
    med = np.full((ty, tx), np.nan)
    std = np.full((ty, tx), np.nan)
    for i in range(ty):          # a loop per tile (a few dozen), not per pixel
        for j in range(tx):
            block = img[ey[i]:ey[i + 1], ex[j]:ex[j + 1]]
            ok = ~bad[ey[i]:ey[i + 1], ex[j]:ex[j + 1]]
            if ok.sum() < max(16, 0.25 * ok.size):
                continue
            m, _, s = sigma_clipped_stats(block[ok], sigma=clip, maxiters=10)
            med[i, j], std[i, j] = m, s / _clip_bias(clip)
    return med, std, ey, ex


def _fill_and_smooth(mesh: np.ndarray) -> np.ndarray:
    """Fill empty tiles with the nearest good one, then a 3x3 median filter."""
    bad = ~np.isfinite(mesh)
    if bad.all():
        return mesh
    if bad.any():
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        mesh = mesh[tuple(idx)]
    if min(mesh.shape) >= 3:
        mesh = ndimage.median_filter(mesh, size=3, mode="nearest")
    return mesh


def _interp(mesh: np.ndarray, ey: np.ndarray, ex: np.ndarray, shape) -> np.ndarray:
    """Bilinear interpolation of tile values (at tile centres) to every pixel."""
    cy = 0.5 * (ey[:-1] + ey[1:]) - 0.5
    cx = 0.5 * (ex[:-1] + ex[1:]) - 0.5
    if mesh.size == 1:
        return np.full(shape, float(mesh.ravel()[0]))
    if len(cy) == 1:
        cy, mesh = np.array([cy[0] - 1, cy[0] + 1]), np.vstack([mesh, mesh])
    if len(cx) == 1:
        cx, mesh = np.array([cx[0] - 1, cx[0] + 1]), np.hstack([mesh, mesh])
    f = RegularGridInterpolator((cy, cx), mesh, method="linear")
    yy = np.clip(np.arange(shape[0], dtype=float), cy[0], cy[-1])
    xx = np.clip(np.arange(shape[1], dtype=float), cx[0], cx[-1])
    gy, gx = np.meshgrid(yy, xx, indexing="ij")
    return f(np.stack([gy.ravel(), gx.ravel()], axis=1)).reshape(shape)


def _source_mask(img, bad, tile, clip, n_iter=3):
    """Iterate: background mesh -> detect > 3 sigma on a smoothed image -> dilate."""
    det = np.zeros(img.shape, bool)
    for _ in range(n_iter):
        med, std, ey, ex = _mesh(img, bad | det, tile, clip)
        bkg = _interp(_fill_and_smooth(med), ey, ex, img.shape)
        rms = _interp(_fill_and_smooth(std), ey, ex, img.shape)
        res = np.where(bad, 0.0, img - bkg)
        sm = ndimage.gaussian_filter(res, 1.0)
        # noise of the smoothed image: sigma / (2 sqrt(pi) s) for white noise, s = 1;
        # measured directly to stay right for correlated noise too
        _, _, s_sm = sigma_clipped_stats(sm[~(bad | det)], sigma=clip, maxiters=10)
        s_sm = s_sm / _clip_bias(clip)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = ((sm > 3.0 * s_sm * rms / np.nanmedian(rms)) | (res > clip * rms)) & ~bad
        new = ndimage.binary_opening(new)              # drop single-pixel noise peaks
        new = ndimage.binary_dilation(new, iterations=2)
        if np.array_equal(new, det):
            break
        det = new
    return det, bkg, rms


def _aperture_ratios(res, rms, masked, radii, n_ap, rng):
    ratios, counts = [], []
    for r in radii:
        k = _disk(r)
        rr = k.shape[0] // 2
        forbidden = ndimage.binary_dilation(masked, structure=k.astype(bool))
        forbidden[:rr] = forbidden[-rr:] = True
        forbidden[:, :rr] = forbidden[:, -rr:] = True
        ys, xs = np.nonzero(~forbidden)
        if len(ys) < 20:
            ratios.append(float("nan"))
            counts.append(0)
            continue
        pick = rng.choice(len(ys), size=min(n_ap, len(ys)), replace=False)
        ys, xs = ys[pick], xs[pick]
        sums = signal.fftconvolve(res, k, mode="same")[ys, xs]
        pred = np.sqrt(signal.fftconvolve(rms**2, k, mode="same")[ys, xs].clip(1e-30))
        _, _, s = sigma_clipped_stats(sums / pred, sigma=4.0, maxiters=5)
        ratios.append(float(s / _clip_bias(4.0)))
        counts.append(len(ys))
    return np.array(ratios), counts


def _one_band(img, mask, tile, clip, radii, n_ap, rng, source_radius):
    bad = ~np.isfinite(img) | mask
    if bad.all():
        raise InputError("estimate_noise: the image has no finite unmasked pixel; "
                         "pass a band with data or drop it.")
    det, bkg, rms = _source_mask(np.where(bad, 0.0, img), bad, tile, clip)
    res = np.where(bad | det, 0.0, img - bkg)
    ratios, counts = _aperture_ratios(res, rms, bad | det, radii, n_ap, rng)
    if source_radius is None:
        lab, n = ndimage.label(det)
        if n:
            areas = np.bincount(lab.ravel())[1:]
            source_radius = float(np.sqrt(np.median(areas) / np.pi))
        else:
            source_radius = float(np.median(radii))
    good = np.isfinite(ratios)
    if good.any():
        lr = np.log(np.asarray(radii, float)[good])
        raw = float(np.interp(np.log(max(source_radius, 1e-3)), lr, ratios[good]))
        # resampled / smoothed noise is positively correlated: a measured ratio below 1 is
        # the scatter of a finite number of apertures, not anti-correlation
        factor = max(raw, 1.0)
        method = "tiled sigma-clipped RMS x empty-aperture correlation factor"
    else:
        raw = factor = 1.0
        method = "tiled sigma-clipped RMS (too few empty apertures: no correlation factor)"
    err = rms * factor
    err[bad] = np.nan
    info = {
        "method": method,
        "rms_median": float(np.nanmedian(rms)),
        "correlation_factor": factor,
        "correlation_factor_measured": raw,
        "aperture_radii": [float(r) for r in radii],
        "aperture_ratio": [float(x) for x in ratios],
        "n_apertures": counts,
        "source_radius": float(source_radius),
        "tile": int(tile),
        "clip": float(clip),
        "background_median": float(np.nanmedian(bkg)),
        "masked_fraction": float((det & ~bad).mean()),
    }
    return err.astype(np.float32), info


def estimate_noise(image: np.ndarray, *, mask: np.ndarray | None = None, tile: int = 64,
                   clip: float = 3.0, aperture_radii: Sequence[float] = (1, 2, 4, 8),
                   n_apertures: int = 300, random_state: int = 0,
                   source_radius: float | None = None):
    """Per-pixel 1-sigma error map of an image, from its own background.

    Parameters
    ----------
    image : numpy.ndarray
        ``(y, x)`` one band, or ``(band, y, x)`` (each band independently).
        NaN pixels are ignored and get a NaN error.
    mask : numpy.ndarray of bool, optional
        ``True`` for pixels to ignore; same shape as ``image`` or ``(y, x)``.
    tile : int
        Side of the background tiles in pixels (the RMS is smooth on this scale).
    clip : float
        Sigma-clipping threshold of the tile statistics and of the iterated
        source mask.
    aperture_radii : sequence of float
        Radii (pixels) of the empty apertures measuring the noise correlation.
    n_apertures : int
        Number of random empty apertures per radius.
    random_state : int
        Seed of the aperture positions (the result is deterministic).
    source_radius : float, optional
        Radius (pixels) at which the correlation factor is taken (log-linear
        interpolation between ``aperture_radii``); default the radius of a
        circle of the median area of the masked (detected) regions.

    Returns
    -------
    err : numpy.ndarray
        ``(y, x)`` float32 error map (``(band, y, x)`` for a 3-D input): the
        smooth background RMS times ``info["correlation_factor"]``.
    info : dict or list of dict
        ``method``, ``rms_median`` (per-pixel RMS before correction),
        ``correlation_factor`` (the factor used: the measured ratio at
        ``source_radius``, at least 1), ``correlation_factor_measured``,
        ``aperture_radii``,
        ``aperture_ratio`` (measured / white-noise aperture std per radius,
        NaN where too few empty apertures fit), ``n_apertures`` (per radius),
        ``source_radius``, ``tile``, ``clip``, ``background_median``,
        ``masked_fraction``. A list of one dict per band for a 3-D input.

    Raises
    ------
    InputError
        If ``image`` is not 2-D or 3-D, ``mask`` has another shape, ``tile``
        < 8, ``n_apertures`` < 20, or a band has no finite unmasked pixel.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim not in (2, 3):
        raise InputError(f"estimate_noise: image has shape {img.shape}; pass (y, x) or "
                         "(band, y, x).")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape not in (img.shape, img.shape[-2:]):
            raise InputError(f"estimate_noise: mask has shape {mask.shape} but image has "
                             f"{img.shape}; pass a mask of shape {img.shape[-2:]} or "
                             f"{img.shape}.")
    if int(tile) < 8:
        raise InputError(f"estimate_noise: tile={tile!r} must be >= 8 pixels.")
    if int(n_apertures) < 20:
        raise InputError(f"estimate_noise: n_apertures={n_apertures!r} must be >= 20.")
    radii = sorted(float(r) for r in aperture_radii)
    if not radii or radii[0] <= 0:
        raise InputError("estimate_noise: aperture_radii must be positive pixel radii.")
    if img.ndim == 2:
        m = np.zeros(img.shape, bool) if mask is None else mask
        return _one_band(img, m, int(tile), float(clip), radii, int(n_apertures),
                         np.random.default_rng(random_state), source_radius)
    errs, infos = [], []
    for b in range(img.shape[0]):
        m = (np.zeros(img.shape[1:], bool) if mask is None
             else (mask[b] if mask.ndim == 3 else mask))
        try:
            e, i = _one_band(img[b], m, int(tile), float(clip), radii, int(n_apertures),
                             np.random.default_rng([random_state, b]), source_radius)
        except InputError as exc:
            raise InputError(f"estimate_noise: band {b}: {exc}") from None
        errs.append(e)
        infos.append(i)
    return np.stack(errs), infos
