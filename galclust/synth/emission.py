"""Synthetic galaxies with extended line emission in a medium band, with truth.

:func:`make_emission_galaxy` renders a galaxy in NIRCam-like broad and medium bands
(default :data:`EMISSION_BANDS`): a host whose continuum is a smooth SED
``f_nu = A (lam / lam_m)**beta`` (plus a gentle colour gradient), convolved with a
Gaussian PSF (one FWHM for every band: a PSF-matched cube), and line emission at
the redshift ``z`` injected into every band whose top-hat holds the redshifted line
(the medium band gets the emission map ``E``; a band of width ``W_k`` around it gets
``E W_m / W_k``, the line diluted by the wider band).

Noise is normal with a per-band 1-sigma of 1 (``err`` = 1 everywhere). ``snr`` is the
integrated S/N of the injected emission over its true region in the medium band
(``sum_region E / sqrt(N_region)``, nominal: white noise); ``meta["snr_true"]`` is the
same under the actual noise (about half of ``snr`` for the held-out correlated
noise, whose sums have ~4x the white-noise variance). With ``snr_of="actual"``
``snr`` is the S/N under the actual noise (``meta["snr_white"]`` the nominal one),
so the two families can be compared at equal significance. The true region (``region``) is where the
PSF-convolved emission is at least 20 per cent of its peak.

Families
--------
``"default"``
    Exponential-disc host (``r_e`` 2.5-4 px, axis ratio 0.5-1, central S/N per
    pixel 15-30 in the medium band), slope ``beta`` in [-0.5, 0.5], colour gradient
    ``|d beta / d(r/r_e)| <= 0.1``, white noise. Emission (``extended=True``): one
    elongated Gaussian "cone" (major sigma ``size`` px, axis ratio 0.3-0.6) whose
    centre is ``0.8-1.5 size`` from the nucleus along its major axis at a random
    position angle.
``"heldout"`` (nothing is tuned on it)
    De Vaucouleurs (Sersic n = 4) or disc-plus-clumps hosts, ``beta`` in [-1.5, 1.5]
    with a curvature term, correlated noise (white noise smoothed by a Gaussian of
    sigma 0.6 px, rescaled to unit per-pixel sigma, while ``err`` still says 1), and
    emission shaped as a limb-brightened bubble (a ring of radius ``size``), a
    bipolar pair of cones, or a clumpy cone (3-5 knots along a line).

Controls (``extended=False``) have no extended emission; when ``nuclear`` is true
(by default half of them, from the seed) the medium band holds line emission that
follows the host's continuum (equivalent-width factor 0.3-1), which is real excess
but must not be called extended: its ``region`` is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from galclust.errors import InputError, check_choice
from galclust.structures._continuum import (
    BAND_WIDTHS,
    LINES,
    MEDIUM_BANDS,
    BandSet,
    band_for_redshift,
)

__all__ = ["EMISSION_BANDS", "EMISSION_FAMILIES", "EmissionGalaxy", "make_emission_galaxy"]

EMISSION_FAMILIES = ("default", "heldout")

#: Default bands: NIRCam broad bands plus the medium bands of a JADES-like survey.
EMISSION_BANDS: dict[str, float] = {
    "F090W": 0.901, "F115W": 1.154, "F150W": 1.501, "F182M": 1.845, "F200W": 1.990,
    "F210M": 2.093, "F277W": 2.786, "F300M": 2.996, "F335M": 3.365, "F356W": 3.563,
    "F410M": 4.092, "F444W": 4.421, "F460M": 4.630, "F480M": 4.834,
}
_REGION_FRACTION = 0.2
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass
class EmissionGalaxy:
    """One synthetic galaxy with (or without) extended line emission.

    Attributes
    ----------
    sci, err : ndarray, shape (band, y, x)
    wavelength : ndarray, shape (band,)
        Pivots (micron).
    bands : list of str
    band : int
        Index of the medium band holding the line.
    line : str
    emission : ndarray, shape (y, x)
        True (PSF-convolved, noise-free) extended line emission in the medium band.
    region : ndarray of bool, shape (y, x)
        True extended region (``emission >= 0.2 max``); empty for controls.
    meta : dict
        Everything drawn: family, z, snr, size, shape, offsets, beta, host, noise.
    """

    sci: np.ndarray
    err: np.ndarray
    wavelength: np.ndarray
    bands: list[str]
    band: int
    line: str
    emission: np.ndarray
    region: np.ndarray
    meta: dict = field(default_factory=dict)


def _gauss2d(yy, xx, y0, x0, sa, sb, pa):
    c, s = math.cos(pa), math.sin(pa)
    u = (xx - x0) * c + (yy - y0) * s
    v = -(xx - x0) * s + (yy - y0) * c
    return np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))


def _sersic(yy, xx, y0, x0, re, q, pa, n):
    c, s = math.cos(pa), math.sin(pa)
    u = (xx - x0) * c + (yy - y0) * s
    v = (-(xx - x0) * s + (yy - y0) * c) / q
    r = np.hypot(u, v)
    bn = 2 * n - 1 / 3 + 4 / (405 * n)
    return np.exp(-bn * ((np.maximum(r, 0.3) / re) ** (1 / n) - 1)), r / re


def _host(rng, yy, xx, c, family):
    re = rng.uniform(2.5, 4.0)
    q = rng.uniform(0.5, 1.0)
    pa = rng.uniform(0, np.pi)
    kind = "disc"
    if family == "default":
        prof, rr = _sersic(yy, xx, c[0], c[1], re, q, pa, 1.0)
    else:
        kind = "devauc" if rng.random() < 0.5 else "disc+clumps"
        if kind == "devauc":
            prof, rr = _sersic(yy, xx, c[0], c[1], re, q, pa, 4.0)
        else:
            prof, rr = _sersic(yy, xx, c[0], c[1], re, q, pa, 1.0)
            for _ in range(rng.integers(2, 5)):
                r, t = rng.uniform(0.5, 1.5) * re, rng.uniform(0, 2 * np.pi)
                prof = prof + rng.uniform(0.2, 0.5) * _gauss2d(
                    yy, xx, c[0] + r * math.sin(t), c[1] + r * math.cos(t), 0.8, 0.8, 0.0)
    return prof / prof.max(), rr, dict(host=kind, re=re, host_q=q, host_pa=pa)


def _emission(rng, yy, xx, c, size, family):
    pa = rng.uniform(0, 2 * np.pi)
    q = rng.uniform(0.3, 0.6)
    d = rng.uniform(0.8, 1.5) * size
    ux, uy = math.cos(pa), math.sin(pa)
    if family == "default":
        return _gauss2d(yy, xx, c[0] + d * uy, c[1] + d * ux, size, q * size, pa), dict(
            morphology="cone", offset=d, pa=pa, q=q)
    kind = ("bubble", "bipolar", "clumpy")[rng.integers(3)]
    if kind == "bubble":
        r0 = size
        y0, x0 = c[0] + 1.2 * r0 * uy, c[1] + 1.2 * r0 * ux
        r = np.hypot(yy - y0, xx - x0)
        em = np.exp(-0.5 * ((r - r0) / max(0.35 * r0, 0.8)) ** 2) + 0.3 * (r < r0)
        return em, dict(morphology=kind, offset=1.2 * r0, pa=pa, q=1.0)
    if kind == "bipolar":
        em = _gauss2d(yy, xx, c[0] + d * uy, c[1] + d * ux, size, q * size, pa) + 0.7 * _gauss2d(
            yy, xx, c[0] - d * uy, c[1] - d * ux, size, q * size, pa)
        return em, dict(morphology=kind, offset=d, pa=pa, q=q)
    em = np.zeros_like(yy, dtype=float)
    n = int(rng.integers(3, 6))
    for t in np.linspace(0.5, 2.2, n) * size:
        em += rng.uniform(0.5, 1.0) * _gauss2d(yy, xx, c[0] + t * uy + rng.normal(0, 0.5),
                                               c[1] + t * ux + rng.normal(0, 0.5),
                                               0.5 * size, 0.5 * size, 0.0)
    return em, dict(morphology=kind, offset=1.35 * size, pa=pa, q=np.nan)


def _true_snr(emission, region, family):
    """Integrated S/N of the emission over its region under the actual noise (the
    held-out noise is correlated: the variance of a sum counts the covariances)."""
    if family == "default":
        return float(emission[region].sum() / math.sqrt(region.sum()))
    delta = np.zeros((15, 15))
    delta[7, 7] = 1.0
    g = ndi.gaussian_filter(delta, 0.6)
    acf = ndi.correlate(g, g, mode="constant") / np.sum(g**2)
    r = region.astype(float)
    var = float(np.sum(ndi.convolve(r, acf, mode="constant") * r))
    return float(emission[region].sum() / math.sqrt(var))


def make_emission_galaxy(*, z: float = 5.22, extended: bool = True, family: str = "default",
                         snr: float = 20.0, size: float = 3.0, random_state: int = 0,
                         bands=None, shape: int = 64, psf_fwhm: float = 2.0,
                         nuclear: bool | None = None, noiseless: bool = False,
                         snr_of: str = "white") -> EmissionGalaxy:
    """One synthetic galaxy with extended line emission (or a control).

    Parameters
    ----------
    z : float
        Redshift; the line is the first of Hα, [OIII], Hβ, Paβ that a medium band
        holds at ``z`` (:func:`galclust.structures.emission.band_for_redshift`). The
        default puts Hα in F410M.
    extended : bool
        Inject extended emission (else a control).
    family : {"default", "heldout"}
        See the module docstring.
    snr : float
        Integrated S/N of the emission over its true region in the medium band (against
        white noise, or the actual noise: ``snr_of``).
    size : float
        Emission size (pixels): the cone's major sigma, the bubble's radius.
    random_state : int
        Seed.
    bands : mapping of str to float, optional
        Band name -> pivot (micron); default :data:`EMISSION_BANDS`.
    shape : int
        Stamp side (pixels).
    psf_fwhm : float
        PSF FWHM (pixels), all bands.
    nuclear : bool, optional
        Controls only: add line emission following the continuum (default: half of
        the seeds).
    noiseless : bool
        Return the noise-free model as ``sci`` (the same draws otherwise).
    snr_of : {"white", "actual"}
        What ``snr`` is measured against: ``"white"`` (nominal, ``sum E / sqrt(N)``:
        white noise of the per-pixel sigma) or ``"actual"`` (the noise the image has,
        covariances counted: ``meta["snr_true"] == snr``). The two agree for the
        default family; for the held-out family's correlated noise a ``"white"`` S/N
        is about twice the actual one.

    Returns
    -------
    EmissionGalaxy
    """
    check_choice("family", family, EMISSION_FAMILIES)
    check_choice("snr_of", snr_of, ("white", "actual"))
    if not (snr > 0 and size > 0 and psf_fwhm > 0 and shape >= 16):
        raise InputError("snr, size and psf_fwhm must be positive and shape >= 16")
    bands = dict(EMISSION_BANDS if bands is None else bands)
    names = list(bands)
    lam = np.array([bands[b] for b in names], float)
    bs = BandSet(lam, names)
    m, line = band_for_redshift(z, bs, lam)
    if m is None:
        raise InputError(f"no medium band holds a strong line at z={z}; pick another z")
    lam_obs = LINES[line] * (1 + z)
    rng = np.random.default_rng(random_state)
    yy, xx = np.indices((shape, shape), dtype=float)
    c = (shape - 1) / 2 + rng.uniform(-1, 1, 2)
    prof, rr, meta = _host(rng, yy, xx, c, family)
    beta = rng.uniform(-0.5, 0.5) if family == "default" else rng.uniform(-1.5, 1.5)
    grad = rng.uniform(-0.1, 0.1)
    curv = 0.0 if family == "default" else rng.uniform(-0.6, 0.6)
    peak = rng.uniform(15, 30)
    x = np.log(lam / lam[m])
    slope = beta + grad * np.clip(rr, 0, 3)  # (y, x)
    cont = peak * prof[None] * np.exp(x[:, None, None] * slope[None] + curv * x[:, None, None] ** 2)
    sig = psf_fwhm * _FWHM_TO_SIGMA
    cont = ndi.gaussian_filter(cont, (0, sig, sig))
    emission = np.zeros((shape, shape))
    region = np.zeros((shape, shape), bool)
    if extended:
        em, emeta = _emission(rng, yy, xx, c, size, family)
        em = ndi.gaussian_filter(em, sig)
        region = em >= _REGION_FRACTION * em.max()
        emission = em * snr * math.sqrt(region.sum()) / em[region].sum()
        if snr_of == "actual":      # the S/N under the noise the image has
            emission *= snr / _true_snr(emission, region, family)
        meta.update(emeta)
        nuclear = False
    elif nuclear is None:
        nuclear = bool(rng.random() < 0.5)
    line_map = emission
    if nuclear:
        ew = rng.uniform(0.3, 1.0)
        line_map = ew * cont[m]
        meta["ew_factor"] = ew
    sci = cont.copy()
    widths = bs.width
    for k in range(len(names)):
        if bs.holds(k, lam_obs):
            sci[k] += line_map * (widths[m] / widths[k])
    noise = rng.normal(size=sci.shape)
    if family == "heldout":
        noise = ndi.gaussian_filter(noise, (0, 0.6, 0.6))
        noise /= noise.std(axis=(1, 2), keepdims=True)
    if not noiseless:
        sci = sci + noise
    err = np.ones_like(sci)
    meta["snr_true"] = _true_snr(emission, region, family) if extended else 0.0
    meta["snr_white"] = (float(emission[region].sum() / math.sqrt(region.sum())) if extended
                         else 0.0)
    meta.update(family=family, z=z, snr=snr, size=size, extended=extended, nuclear=bool(nuclear),
                beta=beta, grad=grad, curv=curv, host_peak=peak, psf_fwhm=psf_fwhm,
                centre=(float(c[1]), float(c[0])), line=line, band=names[m],
                medium=[b for b in names if b in MEDIUM_BANDS],
                widths={b: float(BAND_WIDTHS.get(b, 0.25 * bands[b])) for b in names})
    return EmissionGalaxy(sci=sci.astype(np.float32), err=err.astype(np.float32),
                          wavelength=lam, bands=names, band=m, line=line, emission=emission,
                          region=region, meta=meta)
