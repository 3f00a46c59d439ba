"""Galaxies whose components' light mixes, with the true per-pixel fractions.

The validation suite of pixel-SED clustering and unmixing is not one
generator: :func:`make_mixture_galaxy` draws a galaxy of 1–5 components, each
with its own SED and light profile, in one of three *layouts* and two
*families*, and returns the noisy stamp with the true share of every pixel's
light that each component gives (``fractions``).

Layouts
-------
``"separated"``
    Compact components whose centres are at least two PSF FWHM plus 1.5 times
    their summed effective radii apart: the partition clustering should
    recover (the layout of the project's own demo survey; one case of the
    suite, not its headline).
``"overlapping"``
    Components whose centres are 0.4–1.2 times their summed effective radii
    apart: their light mixes over most of the galaxy.
``"nested"``
    One extended component (a disc) with the others inside it, as bulges,
    bars and clumps sit in a disc: every other component is on top of the
    first one's light.

Families
--------
``"default"``
    Sérsic components (index 0.5–2.5, axis ratio 0.4–1); SEDs are power laws
    ``f_nu ∝ lambda**beta`` (beta in −2..1.5) with, at random, a break (flux
    below a random wavelength divided by 1.5–4) and an emission line
    (one random band times 1.5–3); a circular Moffat PSF of FWHM 2 px in
    every band unless ``psf="native"``; white Gaussian noise whose level
    differs per band (0.6–1.6 of the median).
``"heldout"`` (validate only; no setting of galclust is chosen on it)
    Components are Sérsic of index 1–4, lopsided exponentials (a second,
    offset exponential of 30–60 % of the flux) or Moffat clumps; SEDs are
    smooth random curves (a cubic in log wavelength) reddened by a
    Calzetti-like attenuation ``exp(-tau (lambda/0.55)**-0.7)`` with lines in
    up to two random bands; noise correlated by a drizzle-like 3 x 3 kernel,
    its per-pixel RMS given as ``err`` times ``err_scale`` (0.7–0.9: the error
    map is too small, as drizzled error maps are).

A component is *countable* when it gives more than half the light of at least
8 footprint pixels; a galaxy whose drawn components are not all countable is
drawn again (up to 200 times). Component SEDs differ pairwise by at least
0.15 mag RMS in colour (after their mean is removed).

Truth
-----
``fractions[c, y, x]`` is component ``c``'s share of the noise-free,
PSF-convolved, band-summed flux of pixel (y, x); ``seds[c]`` its SED
normalised to sum 1 over bands, so the noise-free stamp is
``sum_c A_c(y, x) seds[c, b]`` with ``A_c = fractions[c] * total`` in the
PSF-matched case. ``labels`` is the dominant component where its fraction
exceeds ``dominant`` (0.7), else −1. The footprint ``mask`` is the pixels
whose noise-free band-summed S/N is at least 2 (the connected regions that
hold a component's centre); ``sky`` the pixels at least 4 px outside any
light above half the noise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage, signal

from galclust.errors import InputError, check_choice
from galclust.synth.profiles import moffat, sersic
from galclust.synth.seds import NIRCAM_BANDS

__all__ = ["MIXTURE_FAMILIES", "MIXTURE_LAYOUTS", "MixtureGalaxy", "make_mixture_galaxy",
           "mixture_sky"]

#: Families and layouts understood by :func:`make_mixture_galaxy`.
MIXTURE_FAMILIES: tuple[str, ...] = ("default", "heldout")
MIXTURE_LAYOUTS: tuple[str, ...] = ("separated", "overlapping", "nested")

_MAG = 2.5 / np.log(10.0)
_MIN_COLOUR_RMS = 0.15     # mag: the least colour difference of two components' SEDs
_MIN_DOMINANT_PIXELS = 8   # a countable component dominates this many footprint pixels
_PSF_FWHM = 2.0            # px, the matched PSF
_NATIVE_FWHM = (1.2, 4.0)  # px, bluest and reddest band of psf="native"
_ATTEMPTS = 200            # draws before giving up on a layout


class MixtureGalaxy(NamedTuple):
    """A synthetic galaxy of mixing components with its truth.

    Attributes
    ----------
    sci, err : ndarray, (band, y, x)
        Flux and the 1-sigma error map delivered with it (``err * err_scale``
        is the true per-pixel noise).
    mask, sky : ndarray of bool, (y, x)
        The footprint and the empty sky around it.
    wavelength : ndarray, (band,)
    bands : list of str
    fractions : ndarray, (component, y, x)
    seds : ndarray, (component, band)
        Normalised to sum 1.
    labels : ndarray of int, (y, x)
        The dominant component (fraction > ``dominant``), −1 elsewhere.
    n_components : int
    snr : float
        Median over bands of the peak pixel's S/N.
    layout, family, psf : str
    err_scale : ndarray, (band,)
        True noise over delivered error.
    """

    sci: np.ndarray
    err: np.ndarray
    mask: np.ndarray
    sky: np.ndarray
    wavelength: np.ndarray
    bands: list[str]
    fractions: np.ndarray
    seds: np.ndarray
    labels: np.ndarray
    n_components: int
    snr: float
    layout: str
    family: str
    psf: str
    err_scale: np.ndarray


def _bands(n_bands: int) -> tuple[list[str], np.ndarray]:
    names = list(NIRCAM_BANDS)
    idx = np.round(np.linspace(0, len(names) - 1, n_bands)).astype(int)
    return [names[i] for i in idx], np.array([NIRCAM_BANDS[names[i]] for i in idx])


def _sed(rng: np.random.Generator, lam: np.ndarray, family: str) -> np.ndarray:
    x = np.log(lam / lam.mean())
    if family == "default":
        f = np.exp(rng.uniform(-2.0, 1.5) * x)
        if rng.random() < 0.5:
            f = np.where(lam < rng.uniform(lam.min(), lam.max()), f / rng.uniform(1.5, 4.0), f)
        if rng.random() < 0.4:
            f[rng.integers(lam.size)] *= rng.uniform(1.5, 3.0)
    else:
        coef = rng.normal(0.0, [0.0, 1.2, 0.8, 0.5])
        f = np.exp(np.polynomial.polynomial.polyval(x, coef))
        f *= np.exp(-rng.uniform(0.0, 2.0) * (lam / 0.55) ** -0.7)
        for _ in range(rng.integers(0, 3)):
            f[rng.integers(lam.size)] *= rng.uniform(1.3, 2.5)
    return f / f.sum()


def _colour_rms(a: np.ndarray, b: np.ndarray) -> float:
    d = _MAG * np.log(a / b)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def _seds(rng: np.random.Generator, lam: np.ndarray, n: int, family: str) -> np.ndarray:
    out: list[np.ndarray] = []
    while len(out) < n:
        s = _sed(rng, lam, family)
        if all(_colour_rms(s, t) >= _MIN_COLOUR_RMS for t in out):
            out.append(s)
    return np.array(out)


def _centres(rng: np.random.Generator, r_eff: np.ndarray, layout: str, c: float,
             fwhm: float) -> np.ndarray:
    n = r_eff.size
    pos = np.zeros((n, 2))
    pos[0] = c + rng.normal(0.0, 0.5, 2)
    for i in range(1, n):
        for _ in range(500):
            if layout == "nested":
                d = rng.uniform(0.0, 1.0) * r_eff[0]
                anchor = pos[0]
            else:
                j = int(rng.integers(i))
                anchor = pos[j]
                if layout == "separated":
                    d = 2.0 * fwhm + 1.5 * (r_eff[i] + r_eff[j]) + rng.uniform(0.0, 2.0)
                else:
                    d = rng.uniform(0.4, 1.2) * (r_eff[i] + r_eff[j])
            ang = rng.uniform(0.0, 2.0 * np.pi)
            p = anchor + d * np.array([np.sin(ang), np.cos(ang)])
            sep = np.hypot(*(pos[:i] - p).T)
            need = (2.0 * fwhm + 1.5 * (r_eff[:i] + r_eff[i]) if layout == "separated"
                    else 0.8 * fwhm + 0.0 * r_eff[:i])
            if np.all(sep >= need) and np.all(np.abs(p - c) < c - 8):
                pos[i] = p
                break
        else:
            return np.empty((0, 2))
    return pos


def _profile(rng: np.random.Generator, shape: tuple[int, int], y0: float, x0: float,
             r_eff: float, family: str) -> np.ndarray:
    q, th = rng.uniform(0.4, 1.0), rng.uniform(0.0, np.pi)
    if family == "default":
        return sersic(shape, y0, x0, r_eff=r_eff, n=rng.uniform(0.5, 2.5), q=q, theta=th)
    kind = rng.integers(3)
    if kind == 0:
        return sersic(shape, y0, x0, r_eff=r_eff, n=rng.uniform(1.0, 4.0), q=q, theta=th)
    if kind == 1:   # lopsided: an offset second exponential
        off = rng.uniform(0.5, 1.0) * r_eff
        ang = rng.uniform(0.0, 2.0 * np.pi)
        w = rng.uniform(0.3, 0.6)
        img = (1 - w) * sersic(shape, y0, x0, r_eff=r_eff, n=1.0, q=q, theta=th)
        return img + w * sersic(shape, y0 + off * np.sin(ang), x0 + off * np.cos(ang),
                                r_eff=0.7 * r_eff, n=1.0, q=q, theta=th)
    img = moffat(shape, y0, x0, 2.0 * r_eff, beta=rng.uniform(2.0, 4.0))
    return img / img.sum()


def _convolve(images: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    out = np.empty_like(images)
    for b in range(images.shape[0]):
        n = 2 * int(np.ceil(5 * fwhm[b])) + 1
        psf = moffat((n, n), n // 2, n // 2, float(fwhm[b]), beta=3.0)
        out[b] = signal.fftconvolve(images[b], psf / psf.sum(), mode="same")
    return out


def _noise(rng: np.random.Generator, shape: tuple[int, ...], family: str) -> np.ndarray:
    if family == "default":
        return rng.normal(0.0, 1.0, shape)
    k = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    raw = rng.normal(0.0, 1.0, (shape[0], shape[1] + 2, shape[2] + 2))
    out = np.stack([signal.convolve2d(r, k, mode="valid") for r in raw])
    return out / np.sqrt((k**2).sum())


def make_mixture_galaxy(n_components: int, *, snr: float = 30.0, layout: str = "overlapping",
                        family: str = "default", psf: str = "matched", n_bands: int = 6,
                        size: int = 64, dominant: float = 0.7, seed: int = 0) -> MixtureGalaxy:
    """Draw one galaxy of mixing components (see the module docstring).

    Parameters
    ----------
    n_components : int
        1 to 5.
    snr : float
        Median over bands of the peak pixel's S/N (> 0).
    layout : {"separated", "overlapping", "nested"}
    family : {"default", "heldout"}
    psf : {"matched", "native"}
        One PSF in every band, or a FWHM growing from 1.2 to 4 px with
        wavelength (mosaics that were not PSF-matched).
    n_bands : int
        2 to 14 NIRCam bands spread over 0.9–4.4 micron.
    size : int
        Stamp side (>= 48).
    dominant : float
        Fraction above which a pixel is labelled with its dominant component.
    seed : int

    Returns
    -------
    MixtureGalaxy

    Raises
    ------
    InputError
        For an argument out of range.
    """
    check_choice("layout", layout, MIXTURE_LAYOUTS)
    check_choice("family", family, MIXTURE_FAMILIES)
    check_choice("psf", psf, ("matched", "native"))
    if not 1 <= int(n_components) <= 5:
        raise InputError(f"n_components={n_components!r} must be 1 to 5.")
    if not (np.isfinite(snr) and snr > 0):
        raise InputError(f"snr={snr!r} must be a positive number.")
    if not 2 <= int(n_bands) <= len(NIRCAM_BANDS):
        raise InputError(f"n_bands={n_bands!r} must be 2 to {len(NIRCAM_BANDS)}.")
    if int(size) < 48:
        raise InputError(f"size={size!r} must be at least 48 px.")
    if not 0.5 <= dominant < 1:
        raise InputError(f"dominant={dominant!r} must be in [0.5, 1).")
    n, size = int(n_components), int(size)
    names, lam = _bands(int(n_bands))
    fwhm = (np.full(lam.size, _PSF_FWHM) if psf == "matched" else
            np.interp(lam, [lam.min(), lam.max()], _NATIVE_FWHM))
    rng = np.random.default_rng([seed, n, int(round(snr)), MIXTURE_LAYOUTS.index(layout),
                                 MIXTURE_FAMILIES.index(family)])
    shape, c = (size, size), (size - 1) / 2.0
    for _ in range(_ATTEMPTS):
        big = layout == "nested"
        r_eff = rng.uniform(1.5, 4.0, n) if layout == "separated" else rng.uniform(2.0, 5.0, n)
        if big:
            r_eff[0] = rng.uniform(6.0, 9.0)
        pos = _centres(rng, r_eff, layout, c, float(fwhm.max()))
        if not len(pos):
            continue
        seds = _seds(rng, lam, n, family)
        flux = rng.uniform(0.3, 1.0, n)
        flux[0] = 3.0 if big else 1.0
        images = np.stack([_profile(rng, shape, pos[i, 0], pos[i, 1], r_eff[i], family)
                           for i in range(n)]) * flux[:, None, None]
        # per band and component: PSF differs per band, so convolve each band's mix
        comp = np.stack([_convolve(np.repeat(images[i][None], lam.size, 0), fwhm)
                         * seds[i][:, None, None] for i in range(n)])  # (c, band, y, x)
        model = comp.sum(axis=0)
        parts = comp.sum(axis=1)                                       # (c, y, x)
        sigma_rel = rng.uniform(0.6, 1.6, lam.size)
        peak = model.reshape(lam.size, -1).max(axis=1)
        sigma = float(np.median(peak / sigma_rel)) / snr * sigma_rel
        total = parts.sum(axis=0)
        mask = total >= 2.0 * np.sqrt((sigma**2).sum())
        mask = ndimage.binary_fill_holes(ndimage.binary_opening(mask))
        lab, _ = ndimage.label(mask)
        held = {int(lab[int(round(y)), int(round(x))]) for y, x in pos} - {0}
        mask = np.isin(lab, sorted(held))  # the islands holding a component's centre
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(total > 0, parts / np.where(total > 0, total, 1.0), 0.0)
        top = frac.argmax(axis=0)
        owned = [int(((top == i) & (frac[i] > 0.5) & mask).sum()) for i in range(n)]
        if min(owned) >= _MIN_DOMINANT_PIXELS and mask[0].sum() + mask[-1].sum() == 0:
            break
    else:
        raise InputError(f"could not draw a {n}-component {layout} galaxy whose components "
                         f"are all countable in a {size} px stamp (seed={seed}); use a larger "
                         "size or another seed.")
    err_scale = (np.ones(lam.size) if family == "default"
                 else rng.uniform(1 / 0.9, 1 / 0.7, lam.size))
    noise = _noise(rng, model.shape, family) * sigma[:, None, None]
    sci = model + noise
    err = np.broadcast_to((sigma / err_scale)[:, None, None], sci.shape).copy()
    sky = ~ndimage.binary_dilation(total >= 0.5 * np.sqrt((sigma**2).sum()), iterations=4)
    labels = np.where(mask & (frac.max(axis=0) > dominant), top, -1)
    return MixtureGalaxy(sci=sci, err=err, mask=mask, sky=sky, wavelength=lam, bands=names,
                         fractions=frac * mask, seds=seds, labels=labels.astype(np.int64),
                         n_components=n, snr=float(snr), layout=layout, family=family,
                         psf=psf, err_scale=err_scale)


def mixture_sky(g: MixtureGalaxy, *, size: int = 64, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Empty sky beside a galaxy's stamp: its noise, drawn as the galaxy's was.

    A nested galaxy's disc can fill its stamp, leaving fewer empty-sky pixels
    than the error rescaling needs; the survey's pixel stage then has the sky
    within :data:`~galclust.pixels.rows.SKY_MARGIN` around the stamp. This is
    that sky: the family's noise (white, or drizzle-like correlated) at the
    galaxy's per-band level, with the same delivered error map.

    Parameters
    ----------
    g : MixtureGalaxy
    size : int
        Side of the patch (px).
    seed : int

    Returns
    -------
    sci, err : ndarray, (band, size, size)
    """
    rng = np.random.default_rng([seed, int(size), int(g.n_components), int(round(g.snr)),
                                 MIXTURE_LAYOUTS.index(g.layout),
                                 MIXTURE_FAMILIES.index(g.family), 7])
    delivered = g.err[:, 0, 0]
    sci = _noise(rng, (delivered.size, int(size), int(size)), g.family) * (
        delivered * g.err_scale)[:, None, None]
    return sci, np.broadcast_to(delivered[:, None, None], sci.shape).copy()
