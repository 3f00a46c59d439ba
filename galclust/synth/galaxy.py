"""Synthetic multi-component galaxies with known per-pixel truth.

A galaxy is 1–4 spatial components — a Sersic bulge, an exponential disk and
Gaussian star-forming clumps — each with its own SED family
(:mod:`galclust.synth.seds`), convolved band by band with a NIRCam-like PSF.
The per-pixel truth is the component contributing most band-summed,
PSF-convolved flux. With the native chromatic PSF (FWHM ~1 px at F090W to
3.5 px at F444W) a compact component's red halo reddens its neighbours, so
pixel colours mix across truth boundaries; a single ``psf_fwhm_px`` (a
PSF-matched stamp) keeps each truth region's colours close to its
component's SED.

Two spatial layouts (:data:`LAYOUTS`): ``"mixed"`` superposes the components
(a bulge inside its disk, clumps on it; :func:`draw_components`), so most
pixels are mixtures and the truth boundary is where a smooth mixture crosses
1/2; ``"separated"`` places 1–3 compact components of distinct SED families
at least a given distance apart (:func:`draw_separated_components`), so each
truth region holds one SED and pixel clustering can be held to it.

Footprint and S/N definitions (used everywhere in :mod:`galclust.synth`)
-----------------------------------------------------------------------
For a noise-free model ``m`` (band, y, x) of one source and its 1-sigma
errors ``e``:

- the *footprint* (``mask``, and a source's segment before deblending) is
  the set of pixels whose detection sum exceeds ``DETECT_NSIGMA`` (= 1) times
  its noise: ``sum_b m_b > DETECT_NSIGMA * sqrt(sum_b e_b**2)``;
- the *per-pixel S/N* is the median over bands of ``m_b / e_b``;
- the source's ``snr`` is the median of the per-pixel S/N over its
  *half-light pixels*: the fewest brightest pixels (by ``sum_b m_b``) that
  hold half of its band-summed flux.

The half-light region, not the 1-sigma footprint, is used for ``snr``
because a median over a threshold footprint grows only as ~peak**0.3 (the
footprint spreads into the faint outskirts as the source brightens) and
depends on the stamp size; the half-light median is linear in flux, so
``snr`` = 5 means the pixels carrying the light have S/N ~ 5 per band.
:func:`make_galaxy` reaches a requested ``snr`` exactly by scaling the error
map; :func:`galclust.synth.make_survey` by scaling each galaxy's flux
against the local error of the mosaic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from galclust.errors import InputError
from galclust.synth.components import (
    LAYOUTS,
    Component,
    attach_seds,
    draw_components,
    draw_separated_components,
)
from galclust.synth.profiles import convolve_psf, gaussian, sersic
from galclust.synth.profiles import psf_fwhm_px as nircam_fwhm_px
from galclust.synth.seds import (
    NIRCAM_BANDS,
    band_widths,
)

__all__ = [
    "DETECT_NSIGMA",
    "Component",
    "SyntheticGalaxy",
    "LAYOUTS",
    "attach_seds",
    "draw_components",
    "draw_separated_components",
    "footprint",
    "galaxy_snr",
    "half_light_mask",
    "make_galaxy",
    "render_galaxy",
]

#: Detection threshold of footprints and segmentation maps, in sigma of the
#: detection (band-summed) image.
DETECT_NSIGMA = 1.0

def render_galaxy(components: Sequence[Component], shape: tuple[int, int], y0: float,
                  x0: float, fwhm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSF-convolved image of a galaxy in every band, and of each component.

    Parameters
    ----------
    components : sequence of Component
        From :func:`draw_components`.
    shape : (int, int)
        Stamp shape.
    y0, x0 : float
        Galaxy centre in stamp pixels.
    fwhm : numpy.ndarray
        ``(band,)`` PSF FWHM in pixels.

    Returns
    -------
    model : numpy.ndarray
        ``(band, ny, nx)`` float32; band ``b`` sums to
        ``sum_c weight_c * sed_c[b]`` (flux inside the stamp).
    parts : numpy.ndarray
        ``(component, ny, nx)`` float32 band-summed image of each component
        (its argmax is the per-pixel truth).
    """
    imgs = []
    for c in components:
        yc, xc = y0 + c.dy, x0 + c.dx
        if c.kind == "clump":
            imgs.append(gaussian(shape, yc, xc, sigma=c.size, q=c.q, theta=c.theta))
        else:
            imgs.append(sersic(shape, yc, xc, r_eff=c.size, n=c.n, q=c.q, theta=c.theta))
    coeffs = np.stack([c.weight * c.sed for c in components])  # (component, band)
    return convolve_psf(np.stack(imgs), fwhm, coeffs)


def footprint(model: np.ndarray, err: np.ndarray, *,
              nsigma: float = DETECT_NSIGMA) -> np.ndarray:
    """Pixels whose detection sum exceeds ``nsigma`` times its noise.

    Parameters
    ----------
    model : numpy.ndarray
        ``(band, y, x)`` noise-free flux.
    err : numpy.ndarray
        ``(band,)`` or ``(band, y, x)`` 1-sigma errors.
    nsigma : float
        Threshold.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` bool: ``sum_b model_b > nsigma * sqrt(sum_b err_b**2)``.
    """
    m = np.asarray(model, dtype=float)
    e = np.asarray(err, dtype=float)
    if e.ndim == 1:
        e = e[:, None, None]
    return m.sum(axis=0) > nsigma * np.sqrt((e**2).sum(axis=0))


def half_light_mask(model: np.ndarray) -> np.ndarray:
    """The fewest brightest pixels holding half of the band-summed model flux.

    Parameters
    ----------
    model : numpy.ndarray
        ``(band, y, x)`` noise-free flux (non-negative).

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` bool: pixels at least as bright as the one at which the
        cumulative (brightest-first) flux reaches half (ties all included).
    """
    det = np.asarray(model, dtype=float).sum(axis=0)
    desc = np.sort(det, axis=None)[::-1]
    cum = np.cumsum(desc)
    k = int(np.searchsorted(cum, 0.5 * cum[-1]))
    return det >= desc[min(k, desc.size - 1)]


def galaxy_snr(model: np.ndarray, err: np.ndarray) -> float:
    """The S/N of a source as defined in the module docstring.

    Parameters
    ----------
    model : numpy.ndarray
        ``(band, y, x)`` noise-free flux of the source alone.
    err : numpy.ndarray
        ``(band,)`` or ``(band, y, x)`` 1-sigma errors (> 0).

    Returns
    -------
    float
        Median, over the half-light pixels, of the median over bands of
        ``model / err``. Linear in the model's amplitude.
    """
    m = np.asarray(model, dtype=float)
    e = np.asarray(err, dtype=float)
    hl = half_light_mask(m)
    ratio = m[:, hl] / (e[:, None] if e.ndim == 1 else e[:, hl])
    return float(np.median(_band_median(ratio)))


def _band_median(x: np.ndarray) -> np.ndarray:
    """Median over axis 0 (a sort of a few bands beats ``np.median``'s overhead)."""
    s = np.sort(x, axis=0)
    n = s.shape[0]
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


@dataclass
class SyntheticGalaxy:
    """A synthetic galaxy stamp with its truth.

    Attributes
    ----------
    sci : numpy.ndarray
        ``(band, y, x)`` float32 noisy flux (``model + err * N(0, 1)``).
    err : numpy.ndarray
        ``(band, y, x)`` float32 1-sigma errors (constant per band).
    mask : numpy.ndarray
        ``(y, x)`` bool footprint (module docstring).
    wavelength : numpy.ndarray
        ``(band,)`` pivot wavelengths, micron.
    truth : numpy.ndarray
        ``(y, x)`` int: index of the component contributing most band-summed
        flux, inside ``mask``; -1 outside.
    families : list of str
        SED family of each component.
    n_components : int
        Number of components.
    model : numpy.ndarray
        ``(band, y, x)`` float32 noise-free flux.
    seds : numpy.ndarray
        ``(component, band)`` true SED of each component (mean-normalised).
    snr : float
        Achieved S/N (module docstring), computed on ``model`` and ``err``.
    redshift : float
        Redshift.
    psf_fwhm : numpy.ndarray
        ``(band,)`` PSF FWHM in pixels.
    components : list of Component
        The full component parameters.
    """

    sci: np.ndarray
    err: np.ndarray
    mask: np.ndarray
    wavelength: np.ndarray
    truth: np.ndarray
    families: list[str]
    n_components: int
    model: np.ndarray
    seds: np.ndarray
    snr: float
    redshift: float
    psf_fwhm: np.ndarray
    components: list[Component]


def _wavelengths(wavelengths: Mapping[str, float] | Sequence[float] | np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    if wavelengths is None:
        wavelengths = NIRCAM_BANDS
    if isinstance(wavelengths, Mapping):
        lam = np.asarray(list(wavelengths.values()), dtype=float)
        return lam, band_widths(lam, list(wavelengths))
    lam = np.atleast_1d(np.asarray(wavelengths, dtype=float))
    return lam, band_widths(lam)


def make_galaxy(*, n_components: int = 2, snr: float = 20.0,
                shape: tuple[int, int] = (41, 41),
                wavelengths: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
                redshift: float = 2.0, seed: int = 0,
                psf_fwhm_px: float | Sequence[float] | np.ndarray | None = None,
                pixel_scale: float = 0.04, size: float | None = None,
                families: Sequence[str] | None = None) -> SyntheticGalaxy:
    """A synthetic galaxy stamp whose S/N and per-pixel component truth are known.

    Parameters
    ----------
    n_components : int
        1–4 spatial components (disk; bulge + disk; + clump; + clump).
    snr : float
        Target S/N (module docstring); reached by scaling the error map.
    shape : (int, int)
        Stamp shape, at least 9 x 9; the galaxy sits at the centre.
    wavelengths : mapping or array-like, optional
        Pivot wavelengths (micron), or a ``{band: micron}`` mapping; default
        :data:`~galclust.synth.NIRCAM_BANDS`.
    redshift : float
        Redshift (0.5–7 is where the families are most distinct).
    seed : int
        Seed; the result is a deterministic function of all arguments.
    psf_fwhm_px : float or array-like, optional
        PSF FWHM in pixels, one value or one per band; default NIRCam-like
        from the wavelengths and ``pixel_scale``.
    pixel_scale : float
        Arcsec per pixel (only used for the default PSF).
    size : float, optional
        Disk effective radius in pixels; default ``min(shape) / 10``.
    families : sequence of str, optional
        SED family per component (see :func:`draw_components`).

    Returns
    -------
    SyntheticGalaxy

    Raises
    ------
    InputError
        For ``n_components`` outside 1–4, a non-positive ``snr``, a too-small
        ``shape``, or ``families`` / ``psf_fwhm_px`` of the wrong length.
    """
    if not (isinstance(n_components, int | np.integer) and 1 <= n_components <= 4):
        raise InputError(f"make_galaxy: n_components={n_components!r} must be 1, 2, 3 or 4.")
    if not snr > 0:
        raise InputError(f"make_galaxy: snr={snr!r} must be positive.")
    ny, nx = (int(s) for s in shape)
    if ny < 9 or nx < 9:
        raise InputError(f"make_galaxy: shape={shape!r} must be at least (9, 9).")
    if families is not None and len(families) != n_components:
        raise InputError(f"make_galaxy: families has {len(families)} entries; give one per "
                         f"component ({n_components}).")
    lam, widths = _wavelengths(wavelengths)
    if psf_fwhm_px is None:
        fwhm = nircam_fwhm_px(lam, pixel_scale)
    else:
        fwhm = np.asarray(psf_fwhm_px, dtype=float)
        if fwhm.ndim > 1 or fwhm.size not in (1, lam.size) or not np.all(fwhm > 0):
            raise InputError(f"make_galaxy: psf_fwhm_px must be one positive FWHM (pixels) or "
                             f"one per band ({lam.size}); got {psf_fwhm_px!r}.")
        fwhm = np.broadcast_to(fwhm.reshape(-1), lam.shape).copy()
    rng = np.random.default_rng(seed)
    size = float(min(ny, nx) / 10.0 if size is None else size)
    comps = draw_components(rng, n_components, size, lam, redshift, bandwidths=widths,
                            families=families)
    cy = (ny - 1) / 2.0 + rng.uniform(-0.5, 0.5)
    cx = (nx - 1) / 2.0 + rng.uniform(-0.5, 0.5)
    model, parts = render_galaxy(comps, (ny, nx), cy, cx, fwhm)
    model = model.astype(float) * 1000.0  # band-summed flux 1000
    depth = rng.uniform(0.7, 1.4, size=lam.size)  # relative 1-sigma per band
    err_b = depth * galaxy_snr(model, depth) / snr
    achieved = galaxy_snr(model, err_b)
    mask = footprint(model, err_b)
    truth = np.where(mask, np.argmax(parts, axis=0), -1)
    err = np.broadcast_to(err_b[:, None, None], model.shape).astype(np.float32)
    noise = rng.standard_normal(model.shape)
    sci = (model + err_b[:, None, None] * noise).astype(np.float32)
    return SyntheticGalaxy(
        sci=sci, err=err, mask=mask, wavelength=lam, truth=truth.astype(int),
        families=[c.family for c in comps], n_components=n_components,
        model=model.astype(np.float32), seds=np.stack([c.sed for c in comps]),
        snr=achieved, redshift=float(redshift), psf_fwhm=fwhm, components=comps,
    )

