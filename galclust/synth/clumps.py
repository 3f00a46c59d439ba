"""Clumpy multi-band galaxies with known truth, for validating density structures.

:func:`make_clumpy_galaxy` draws one galaxy stamp: a diffuse host with clumps of
distinct colours (SEDs) on it, convolved with a PSF, plus noise. It returns the
image, its per-pixel error, the true clump-core map and a table of the clumps.

Families
--------
``"default"`` (tune on this one)
    Exponential disc host (Sersic n = 1, axis ratio 0.5-1) with a red power-law
    SED; circular Gaussian clumps (sigma 0.5-1.2 px) whose SEDs are power laws
    ``f_nu ∝ lambda**alpha`` (``alpha`` in -2.5..2.5, at least 0.6 apart from the
    host's and from each other) with an optional line-like excess in one band;
    clumps at least 2.5 PSF FWHM apart; a circular Gaussian PSF of FWHM 2 px in
    every band (a PSF-matched cube); white Gaussian noise.
``"heldout"`` (validate only; no setting of galclust is chosen on it)
    Sersic host of index 2-4; elongated Gaussian (axis ratio 0.4-0.8) or Moffat
    clumps; SEDs are power laws with a smooth break (other shapes than the
    default's); clumps may overlap (at least 1.6 FWHM apart); a Moffat PSF
    whose FWHM grows from 2.0 to 2.4 px with wavelength (not PSF-matched);
    noise correlated by a Gaussian kernel (sigma 0.7 px) and rescaled so that
    ``err`` is its per-pixel RMS.

Truth
-----
The *core* of clump ``k`` is the set of pixels where its noise-free,
PSF-convolved, band-summed model is at least half its peak and larger than
every other clump's model; ``clump_map`` labels cores ``1..n_clumps`` (0
elsewhere). A clump is *colour-distinct* when some adjacent-band colour
differs from the host's by at least 0.25 mag (``colour_distinct`` column).
``snr`` is the S/N of the host's central pixel in each band. A clump's
band-summed peak is ``c * host + f * host_peak`` with ``host`` the host's
band-summed level under it, ``c`` uniform in 0.5-1.5 (0.4-1.5 heldout) and
``f`` in 0.3-0.6 (0.2-0.6 heldout) of the host's central peak: bright
star-forming clumps, local overdensities wherever they sit (a clump on the
host's centre still has a local contrast of at least 0.8, 0.6 heldout).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from galclust.errors import InputError, check_choice
from galclust.synth.profiles import moffat, sersic
from galclust.synth.seds import NIRCAM_BANDS

__all__ = ["CLUMP_FAMILIES", "ClumpyGalaxy", "make_clumpy_galaxy", "score_clumps"]

#: Families understood by :func:`make_clumpy_galaxy`.
CLUMP_FAMILIES: tuple[str, ...] = ("default", "heldout")

_MAG = 2.5 / np.log(10.0)


class ClumpyGalaxy(NamedTuple):
    """A synthetic clumpy galaxy: unpack as ``sci, err, clump_map, clumps``.

    Attributes
    ----------
    sci, err : numpy.ndarray
        ``(band, y, x)`` float32 image and per-pixel 1-sigma error.
    clump_map : numpy.ndarray
        ``(y, x)`` int32 true clump cores, ``1..n_clumps``; 0 elsewhere.
    clumps : pandas.DataFrame
        One row per clump: ``id, x, y, flux, alpha, colour_distinct,
        min_colour_diff`` and ``sed_<band>`` (unit-sum SED). ``clumps.attrs``
        holds ``bands``, ``wavelength``, ``fwhm`` (per band, px), ``family``,
        ``host_map`` ((y, x) bool, host above 1 sigma of the band-summed noise)
        and ``host_sed``.
    """

    sci: np.ndarray
    err: np.ndarray
    clump_map: np.ndarray
    clumps: pd.DataFrame


def _bands(n_bands: int) -> tuple[list[str], np.ndarray]:
    names = list(NIRCAM_BANDS)
    if n_bands <= len(names):
        idx = np.round(np.linspace(0, len(names) - 1, n_bands)).astype(int)
        return [names[i] for i in idx], np.array([NIRCAM_BANDS[names[i]] for i in idx])
    lam = np.geomspace(0.9, 4.4, n_bands)
    return [f"B{i}" for i in range(n_bands)], lam


def _colours(sed: np.ndarray) -> np.ndarray:
    return -_MAG * np.log(sed[:-1] / sed[1:])


def _draw_sed(rng: np.random.Generator, lam: np.ndarray, family: str) -> tuple[np.ndarray, float]:
    alpha = float(rng.uniform(-2.5, 2.5))
    f = (lam / lam.mean()) ** alpha
    if family == "default":
        if rng.random() < 0.4:   # a line-like excess in one band
            f[rng.integers(lam.size)] *= rng.uniform(1.5, 2.5)
    else:
        brk = rng.uniform(lam.min(), lam.max())
        jump = rng.uniform(0.3, 3.0)
        f = f * (1.0 + (jump - 1.0) / (1.0 + np.exp(-(lam - brk) / 0.2)))
    return f / f.sum(), alpha


def _convolve(images: np.ndarray, fwhm: np.ndarray, family: str) -> np.ndarray:
    """Convolve (band, y, x) images band by band with the family's PSF."""
    out = np.empty_like(images)
    for b in range(images.shape[0]):
        if family == "default":
            out[b] = ndimage.gaussian_filter(images[b], fwhm[b] / 2.3548, mode="constant")
        else:
            n = 2 * int(np.ceil(4 * fwhm[b])) + 1
            psf = moffat((n, n), n // 2, n // 2, float(fwhm[b]), beta=2.5)
            out[b] = signal.fftconvolve(images[b], psf / psf.sum(), mode="same")
    return out


def _clump_image(rng, shape, y0, x0, sigma, family):
    yy = np.arange(shape[0])[:, None] - y0
    xx = np.arange(shape[1])[None, :] - x0
    if family == "default":
        img = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    elif rng.random() < 0.5:   # elongated Gaussian
        q, th = rng.uniform(0.4, 0.8), rng.uniform(0, np.pi)
        u = xx * np.cos(th) + yy * np.sin(th)
        v = -xx * np.sin(th) + yy * np.cos(th)
        img = np.exp(-0.5 * (u**2 + (v / q) ** 2) / sigma**2)
    else:                      # Moffat clump
        img = (1.0 + (xx**2 + yy**2) / sigma**2) ** -2.5
    return img / img.sum()


def make_clumpy_galaxy(*, family: str = "default", n_clumps: int = 5, n_bands: int = 5,
                       size: int = 64, snr: float = 30.0, random_state: int = 0
                       ) -> ClumpyGalaxy:
    """Draw one clumpy multi-band galaxy with its truth.

    Parameters
    ----------
    family : {"default", "heldout"}
        Scene family (see the module docstring); tune on ``"default"`` only.
    n_clumps : int
        Number of clumps (1-20).
    n_bands : int
        Number of bands (2-12); up to 8 are NIRCam bands, more are log-spaced.
    size : int
        Stamp side in pixels (>= 32).
    snr : float
        S/N of the host's central pixel in each band (> 0).
    random_state : int
        Seed; the same seed gives the same galaxy.

    Returns
    -------
    ClumpyGalaxy
        ``(sci, err, clump_map, clumps)``.

    Raises
    ------
    galclust.errors.InputError
        If an argument is out of range.
    """
    check_choice("family", family, CLUMP_FAMILIES)
    if not 1 <= int(n_clumps) <= 20:
        raise InputError(f"n_clumps={n_clumps} is out of range: give 1-20 clumps.")
    if not 2 <= int(n_bands) <= 12:
        raise InputError(f"n_bands={n_bands} is out of range: give 2-12 bands.")
    if int(size) < 32:
        raise InputError(f"size={size} is too small: give a stamp of at least 32 pixels.")
    if not snr > 0:
        raise InputError(f"snr={snr} must be positive.")
    rng = np.random.default_rng(random_state)
    shape = (int(size), int(size))
    bands, lam = _bands(int(n_bands))
    nb = lam.size
    heldout = family == "heldout"
    fwhm = np.linspace(2.0, 2.4, nb) if heldout else np.full(nb, 2.0)
    cy, cx = (size - 1) / 2.0 + rng.uniform(-1, 1, 2)
    r_eff = size / rng.uniform(5.0, 7.0)
    q, th = rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
    host = sersic(shape, cy, cx, r_eff=r_eff, n=rng.uniform(2, 4) if heldout else 1.0,
                  q=q, theta=th)
    host = host / host.max()
    host_alpha = float(rng.uniform(0.5, 1.5))
    host_sed = (lam / lam.mean()) ** host_alpha
    host_sed /= host_sed.sum()
    host_col = _colours(host_sed)

    min_sep = (1.6 if heldout else 2.5) * fwhm.max()
    seds, alphas, pos, sigmas = [], [], [], []
    for _ in range(20000):
        if len(pos) == n_clumps:
            break
        r = r_eff * np.sqrt(rng.uniform(0.0, 2.2))
        phi = rng.uniform(0, 2 * np.pi)
        p = (cy + r * np.sin(phi), cx + r * np.cos(phi))
        if not (6 <= p[0] <= size - 7 and 6 <= p[1] <= size - 7):
            continue
        if any(np.hypot(p[0] - o[0], p[1] - o[1]) < min_sep for o in pos):
            continue
        sed, alpha = _draw_sed(rng, lam, family)
        col = _colours(sed)
        if np.abs(col - host_col).max() < 0.3:
            continue
        if any(np.abs(col - _colours(s)).max() < 0.3 for s in seds):
            continue
        pos.append(p)
        seds.append(sed)
        alphas.append(alpha)
        sigmas.append(rng.uniform(0.5, 1.2))
    n_clumps = len(pos)

    # unconvolved band images: host + clumps; clump amplitudes set after convolution
    clump_imgs = np.stack([_clump_image(rng, shape, p[0], p[1], s, family)
                           for p, s in zip(pos, sigmas, strict=True)])
    host_conv = _convolve(np.repeat(host[None], nb, 0), fwhm, family)      # (band, y, x)
    host_bands = host_conv * host_sed[:, None, None] * nb                  # band-sum peak ~ nb*mean
    clump_conv = np.stack([_convolve(np.repeat(c[None], nb, 0), fwhm, family)
                           for c in clump_imgs])                           # (clump, band, y, x)
    sigma_b = host_bands[:, int(round(cy)), int(round(cx))] / snr
    host_sum = host_bands.sum(0)
    local = np.array([host_sum[int(round(p[0])), int(round(p[1]))] for p in pos])
    lo = 0.4 if heldout else 0.5
    amps = (rng.uniform(lo, 1.5, n_clumps) * local
            + rng.uniform(0.2 if heldout else 0.3, 0.6, n_clumps) * host_sum.max())
    clump_models = np.empty_like(clump_conv)
    for k in range(n_clumps):
        summed = clump_conv[k].mean(0)
        clump_models[k] = clump_conv[k] * (amps[k] / summed.max()) * seds[k][:, None, None]
    model = host_bands + clump_models.sum(0)

    noise = rng.normal(size=(nb, *shape))
    if heldout:
        noise = ndimage.gaussian_filter(noise, (0, 0.7, 0.7))
        noise /= noise.std(axis=(1, 2), keepdims=True)
    sci = (model + noise * sigma_b[:, None, None]).astype(np.float32)
    err = np.broadcast_to(sigma_b[:, None, None], sci.shape).astype(np.float32).copy()

    summed = clump_models.sum(1)                                           # (clump, y, x)
    dominant = summed.argmax(0)
    clump_map = np.zeros(shape, dtype=np.int32)
    for k in range(n_clumps):
        core = (summed[k] >= 0.5 * summed[k].max()) & (dominant == k)
        clump_map[core] = k + 1
    host_map = host_bands.sum(0) > np.sqrt((sigma_b**2).sum())

    rows = []
    for k in range(n_clumps):
        col = _colours(seds[k])
        diff = float(np.abs(col - host_col).max())
        rows.append({"id": k + 1, "x": pos[k][1], "y": pos[k][0],
                     "flux": float(clump_models[k].sum()), "alpha": alphas[k],
                     "colour_distinct": diff >= 0.25, "min_colour_diff": diff,
                     **{f"sed_{b}": float(v) for b, v in zip(bands, seds[k], strict=True)}})
    clumps = pd.DataFrame(rows, columns=["id", "x", "y", "flux", "alpha", "colour_distinct",
                                         "min_colour_diff", *[f"sed_{b}" for b in bands]])
    clumps.attrs.update(bands=bands, wavelength=lam, fwhm=fwhm, family=family,
                        host_map=host_map, host_sed=host_sed)
    return ClumpyGalaxy(sci, err, clump_map, clumps)


def score_clumps(labels: np.ndarray, clump_map: np.ndarray, clumps: pd.DataFrame, *,
                 radius: float = 5.0) -> dict:
    """Match a structure label map to the true clumps one-to-one.

    A clump is *found* by a structure when the structure's pixels cover more
    than half of the clump's core and at least half of the structure's pixels
    lie within ``radius`` px of the clump's centre (so a host-sized structure
    that swallows a clump does not count). Matching is one-to-one (largest
    overlaps first). Unmatched structures with pixels are *false*, except the
    host: the unmatched structure with the most pixels on the host outside
    all clump cores (if it has any there).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(y, x)`` int structure ids (<= 0: none).
    clump_map : numpy.ndarray
        ``(y, x)`` true clump cores from :func:`make_clumpy_galaxy`.
    clumps : pandas.DataFrame
        Its clump table (``attrs["host_map"]`` is used).
    radius : float
        Purity radius in pixels (2.5 PSF FWHM of the synthetic galaxies).

    Returns
    -------
    dict
        ``found`` (ids of clumps found), ``n_clumps``, ``n_distinct``,
        ``found_distinct`` (colour-distinct clumps found), ``false`` (count),
        ``host`` (the structure taken as the host, or 0).
    """
    lab = np.asarray(labels)
    ids = [int(s) for s in np.unique(lab) if s > 0]
    yy, xx = np.indices(lab.shape)
    cand = []
    for _, c in clumps.iterrows():
        core = clump_map == int(c["id"])
        near = np.hypot(yy - c["y"], xx - c["x"]) <= radius
        for s in np.unique(lab[core]):
            if s <= 0:
                continue
            pix = lab == s
            cover = (pix & core).sum() / core.sum()
            purity = (pix & near).sum() / pix.sum()
            if cover > 0.5 and purity >= 0.5:
                cand.append((cover, int(c["id"]), int(s)))
    found, used = {}, set()
    for _, k, s in sorted(cand, reverse=True):
        if k not in found and s not in used:
            found[k] = s
            used.add(s)
    host_region = clumps.attrs["host_map"] & (clump_map == 0)
    rest = [s for s in ids if s not in used]
    host = 0
    if rest:
        on_host = [((lab == s) & host_region).sum() for s in rest]
        if max(on_host) > 0:
            host = rest[int(np.argmax(on_host))]
    distinct = set(clumps.loc[clumps["colour_distinct"], "id"].astype(int))
    return {"found": sorted(found), "n_clumps": len(clumps), "n_distinct": len(distinct),
            "found_distinct": len(distinct & set(found)),
            "false": len([s for s in rest if s != host]), "host": host}
