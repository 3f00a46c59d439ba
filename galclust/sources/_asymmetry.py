"""Rotational asymmetry, its centre, the sky box and smoothness on one cutout.

Helpers of :mod:`galclust.sources.nonparametric`, following statmorph
(Rodriguez-Gomez et al. 2019) and Conselice (2003) / Lotz et al. (2004).
The 180-degree rotation about a sub-pixel centre is the sum of four shifted
views of the flipped, zero-padded cutout (bilinear interpolation, zeros
outside; nearest neighbour for the mask), which is what
``skimage.transform.rotate(image, 180, center=...)`` computes, at a fraction of
its cost.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import scipy.optimize as opt

from galclust.sources._petrosian import soft_weight

__all__ = ["Asymmetry", "find_skybox", "sky_terms", "smoothness"]

_XTOL = 1e-2  # centre tolerance of the Nelder-Mead search (px); statmorph uses 1e-6


class Asymmetry:
    """The CAS asymmetry of a cutout as a function of the rotation centre.

    Parameters
    ----------
    image : numpy.ndarray
        Cutout with masked pixels set to zero (background kept).
    mask : numpy.ndarray of bool
        Masked pixels of the cutout (other segments, NaN, outliers, user mask).
    radius : float
        Aperture radius (statmorph: 1.5 times the circular Petrosian radius about
        the centroid).
    sky_asym : float
        Background asymmetry per pixel (NaN: no correction).

    Notes
    -----
    Each evaluation only touches a window of ``radius + 2`` pixels about the
    centre: the cutout is zero-padded once, so that the window and its
    180-degree image are views (pixels outside the cutout are zero, unmasked,
    and do not count in the area, as photutils' ``area_overlap``).
    """

    def __init__(self, image: np.ndarray, mask: np.ndarray, radius: float,
                 sky_asym: float) -> None:
        self.shape, self.radius, self.sky_asym = image.shape, radius, sky_asym
        self.half = h = int(np.ceil(radius)) + 2  # window: 2h + 2 pixels a side
        self.pad = p = h + 2
        self.img = np.pad(image.astype(np.float64), p)
        self.absimg = np.abs(self.img)
        self.mask = np.pad(mask.astype(bool), p)
        # masked, or outside the cutout: such pixels never count (photutils' overlap)
        self.excluded = np.pad(mask.astype(bool), p, constant_values=True)
        self.offsets = np.arange(-h, h + 2, dtype=np.float64)
        self.do_sky = bool(np.isfinite(sky_asym))
        self.hit_bounds = False

    def _flip(self, a: np.ndarray, ys: int, xs: int, y0: int, x0: int) -> np.ndarray:
        """``a[ys - y, xs - x]`` for y, x over the window from ``(y0, x0)`` (padded)."""
        n = 2 * self.half + 2
        return a[ys - y0 - n + 1:ys - y0 + 1, xs - x0 - n + 1:xs - x0 + 1][::-1, ::-1]

    def __call__(self, center: np.ndarray) -> float:
        xc, yc = float(center[0]), float(center[1])
        ny, nx = self.shape
        if xc < 0 or xc >= nx or yc < 0 or yc >= ny:
            self.hit_bounds = True
            return 100.0
        p, h = self.pad, self.half
        n = 2 * h + 2
        fyc, fxc = int(yc), int(xc)  # floor: the centre is inside the cutout
        y0, x0 = fyc - h + p, fxc - h + p  # window origin in padded coordinates
        win = np.s_[y0:y0 + n, x0:x0 + n]
        img = self.img[win]
        # bilinear 180-degree rotation about (xc, yc), as skimage.transform.rotate
        ty, tx = 2 * yc + 2 * p, 2 * xc + 2 * p
        iy, ix = int(ty), int(tx)
        fy, fx = ty - iy, tx - ix
        rot = ((1 - fy) * (1 - fx)) * self._flip(self.img, iy, ix, y0, x0)
        if fy > 0:
            rot += (fy * (1 - fx)) * self._flip(self.img, iy + 1, ix, y0, x0)
        if fx > 0:
            rot += ((1 - fy) * fx) * self._flip(self.img, iy, ix + 1, y0, x0)
        if fy > 0 and fx > 0:
            rot += (fy * fx) * self._flip(self.img, iy + 1, ix + 1, y0, x0)
        ry, rx = int(np.round(2 * yc)) + 2 * p, int(np.round(2 * xc)) + 2 * p
        drop = self.excluded[win] | self._flip(self.mask, ry, rx, y0, x0)
        dy = self.offsets - (yc - fyc)
        dx = self.offsets - (xc - fxc)
        w = (self.radius + 0.5) - np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
        np.clip(w, 0.0, 1.0, out=w)
        w[drop] = 0.0
        abs_sum = float(np.einsum("ij,ij->", w, self.absimg[win]))
        if abs_sum == 0.0:
            return 100.0
        rot -= img
        diff = float(np.einsum("ij,ij->", w, np.abs(rot, out=rot)))
        if self.do_sky:
            return (diff - float(w.sum()) * self.sky_asym) / abs_sum
        return diff / abs_sum

    def minimise(self, centroid: np.ndarray, brightest: np.ndarray,
                 max_drift: float) -> tuple[np.ndarray, int, str]:
        """Statmorph's centre search: Nelder-Mead from the centroid, then from the
        brightest pixel if it drifted more than ``max_drift``, else the centroid.

        Returns
        -------
        center, flag, reason
        """
        c = opt.fmin(self, centroid, xtol=_XTOL, disp=False)
        flag, reason = 0, ""
        if np.linalg.norm(c - centroid) > max_drift:
            flag, reason = 1, "asymmetry centre drifted"
            c = opt.fmin(self, brightest, xtol=_XTOL, disp=False)
            if np.linalg.norm(c - brightest) > max_drift:
                flag, reason = 2, "asymmetry centre drifted; centroid used"
                c = np.asarray(centroid, dtype=float)
        if self.hit_bounds and flag == 0:
            flag = 1
        return c, flag, reason


def find_skybox(bad: np.ndarray, size: int = 32) -> tuple[slice, slice] | None:
    """The first (raster order) ``size``-square box of the cutout free of sources and
    of masked pixels, halving ``size`` down to 2 as statmorph does; None if none."""
    ny, nx = bad.shape
    integral = np.zeros((ny + 1, nx + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(bad, axis=0), axis=1)
    while size >= 2:
        ni, nj = ny - size, nx - size
        if ni > 0 and nj > 0:
            s = (integral[size:size + ni, size:size + nj] - integral[:ni, size:size + nj]
                 - integral[size:size + ni, :nj] + integral[:ni, :nj])
            free = np.flatnonzero(s.ravel() == 0)
            if free.size:
                i, j = divmod(int(free[0]), nj)
                return slice(i, i + size), slice(j, j + size)
        if size <= 2:
            break
        size //= 2
    return None


def sky_terms(bkg: np.ndarray, boxcar: int) -> tuple[float, float, float, float]:
    """Mean, std, asymmetry and smoothness per pixel of a sky box (statmorph)."""
    n = float(bkg.size)
    asym = float(np.sum(np.abs(bkg[::-1, ::-1] - bkg)) / n)
    diff = bkg - ndi.uniform_filter(bkg, size=boxcar)
    smooth = float(np.sum(np.clip(diff, 0.0, None)) / n)
    return float(np.mean(bkg)), float(np.std(bkg)), asym, smooth


def sky_terms_from_sigma(sigma: float, boxcar: int) -> tuple[float, float]:
    """Expected background asymmetry and smoothness per pixel of white noise.

    ``E|n1 - n2| = 2 sigma / sqrt(pi)``; ``n - boxcar(n)`` has standard deviation
    ``sigma sqrt(1 - 1/k^2)`` and the mean of its positive part is that over
    ``sqrt(2 pi)``. Used when no sky box exists in the cutout.
    """
    asym = 2.0 * sigma / np.sqrt(np.pi)
    k2 = float(max(boxcar, 1)) ** 2
    smooth = sigma * np.sqrt(1.0 - 1.0 / k2) / np.sqrt(2.0 * np.pi)
    return asym, smooth


def smoothness(image: np.ndarray, xc: float, yc: float, rpetro: float,
               sky_smooth: float) -> float:
    """Smoothness (clumpiness) of Lotz et al. (2004) eq. 11 with statmorph's choices:
    boxcar of ``int(0.25 r_petro)``, annulus 0.25-1.5 r_petro about the asymmetry
    centre, background term subtracted; NaN when the annulus flux is not positive."""
    boxcar = int(0.25 * rpetro)
    diff = np.clip(image - ndi.uniform_filter(image, size=boxcar), 0.0, None)
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    d = np.hypot(xx - xc, yy - yc)
    r_in, r_out = 0.25 * rpetro, 1.5 * rpetro
    w = soft_weight(d, r_out) - soft_weight(d, r_in)
    flux = float(np.sum(w * image))
    if not flux > 0:
        return np.nan
    s = float(np.sum(w * diff))
    if np.isfinite(sky_smooth):
        s -= np.pi * (r_out**2 - r_in**2) * sky_smooth
    return s / flux
