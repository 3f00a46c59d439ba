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

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from galclust.errors import InputError
from galclust.synth.profiles import convolve_psf, gaussian, sersic
from galclust.synth.profiles import psf_fwhm_px as nircam_fwhm_px
from galclust.synth.seds import (
    FAMILIES,
    NIRCAM_BANDS,
    band_widths,
    canonical_family,
    draw_params,
    sed_fluxes,
    sed_fluxes_batch,
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

#: Spatial layouts of a galaxy's components: ``"mixed"`` (bulge + disk +
#: clumps superposed, :func:`draw_components`) or ``"separated"`` (compact
#: components apart from each other, :func:`draw_separated_components`).
LAYOUTS: tuple[str, ...] = ("mixed", "separated")


@dataclass(frozen=True)
class Component:
    """One spatial component of a galaxy.

    Attributes
    ----------
    kind : str
        ``"bulge"`` (Sersic, n 2.5–4), ``"disk"`` (Sersic, n ≈ 1) or
        ``"clump"`` (Gaussian).
    family : str
        SED family name.
    dy, dx : float
        Offset from the galaxy centre, pixels.
    size : float
        Effective radius (Sersic) or sigma (Gaussian), pixels.
    n : float
        Sersic index (unused for clumps).
    q, theta : float
        Axis ratio and position angle (radians).
    weight : float
        Fraction of the galaxy's band-summed flux.
    sed : numpy.ndarray or None
        ``(band,)`` band fluxes, normalised to a mean of 1 (None until
        evaluated, see :func:`attach_seds`).
    params : dict
        The SED family parameters (:func:`~galclust.synth.seds.sed_fluxes`).
    """

    kind: str
    family: str
    dy: float
    dx: float
    size: float
    n: float
    q: float
    theta: float
    weight: float
    sed: np.ndarray | None = field(repr=False)
    params: dict[str, float] = field(default_factory=dict, repr=False)


def _families_for(rng: np.random.Generator, n_components: int) -> list[str]:
    """Bulge old; disk dusty or star-forming; clumps take what is left (distinct up to 3)."""
    if n_components == 1:
        return [str(rng.choice(FAMILIES))]
    disk = str(rng.choice(["dusty", "starforming"]))
    other = "starforming" if disk == "dusty" else "dusty"
    return ["old", disk, other, "starforming"][:n_components]


def draw_components(rng: np.random.Generator, n_components: int, size: float,
                    wavelengths: np.ndarray, z: float, *,
                    bandwidths: np.ndarray | None = None,
                    families: Sequence[str] | None = None,
                    evaluate: bool = True) -> list[Component]:
    """Draw the spatial layout and SEDs of a galaxy's components.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one).
    n_components : int
        1 (a disk), 2 (bulge + disk), 3 (+ clump) or 4 (+ a second clump).
    size : float
        Disk effective radius in pixels; the other components scale with it.
    wavelengths : numpy.ndarray
        ``(band,)`` pivot wavelengths, micron.
    z : float
        Redshift.
    bandwidths : numpy.ndarray, optional
        ``(band,)`` top-hat widths passed to :func:`sed_fluxes`.
    families : sequence of str, optional
        One SED family per component; default: bulge ``"old"``, disk
        ``"dusty"`` or ``"starforming"``, clumps the remaining family (so
        families are distinct for up to three components).
    evaluate : bool
        Evaluate the SEDs now; if False, ``sed`` is None and
        :func:`attach_seds` evaluates many galaxies' SEDs in one batch.

    Returns
    -------
    list of Component
    """
    fams = ([canonical_family(f) for f in families] if families is not None
            else _families_for(rng, n_components))
    comps: list[Component] = []
    kinds = ["disk"] if n_components == 1 else ["bulge", "disk", "clump", "clump"][:n_components]
    clump_w = rng.uniform(0.1, 0.18, size=2)
    bulge_w = rng.uniform(0.35, 0.5)
    for i, kind in enumerate(kinds):
        params = draw_params(fams[i], rng)
        sed = None
        if evaluate:
            widths = band_widths(wavelengths) if bandwidths is None else bandwidths
            sed = sed_fluxes(fams[i], wavelengths, z, bandwidths=widths, **params)
            sed = sed / max(sed.mean(), 1e-300)
        theta = float(rng.uniform(0.0, np.pi))
        if kind == "bulge":
            dy, dx = rng.uniform(-0.3, 0.3, size=2)
            comp = Component(kind, fams[i], float(dy), float(dx), size * rng.uniform(0.35, 0.55),
                             float(rng.uniform(2.5, 4.0)), float(rng.uniform(0.65, 1.0)), theta,
                             float(bulge_w), sed, params)
        elif kind == "disk":
            n = float(rng.uniform(0.8, 2.0)) if n_components == 1 else float(rng.uniform(0.8, 1.3))
            comp = Component(kind, fams[i], 0.0, 0.0, float(size), n,
                             float(rng.uniform(0.4, 0.9)), theta, 0.0, sed, params)
        else:
            angle = rng.uniform(0.0, 2.0 * np.pi)
            radius = size * rng.uniform(0.8, 1.4)
            comp = Component(kind, fams[i], float(radius * np.sin(angle)),
                             float(radius * np.cos(angle)), max(0.7, 0.25 * size), 0.5,
                             float(rng.uniform(0.7, 1.0)), theta, float(clump_w[i - 2]), sed,
                             params)
        comps.append(comp)
    # the disk takes the flux the others leave
    rest = 1.0 - sum(c.weight for c in comps)
    return [dataclasses.replace(c, weight=rest) if c.kind == "disk" else c for c in comps]


def draw_separated_components(rng: np.random.Generator, n_components: int,
                              wavelengths: np.ndarray, z: float, *, separation: float,
                              bandwidths: np.ndarray | None = None,
                              families: Sequence[str] | None = None,
                              evaluate: bool = True) -> list[Component]:
    """Draw a galaxy whose components do not overlap: compact disks apart, distinct SEDs.

    One component is an exponential-like disk (``kind="disk"``, Sersic
    n 0.8–2, effective radius 1.5–5 px). Two or three components are compact
    disks (Sersic n 0.8–1.5, effective radius 1–2 px), one per SED family (all
    distinct), spaced evenly in angle around the galaxy centre and scaled so
    that the closest pair is ``separation`` to 1.3 ``separation`` apart; their
    flux fractions differ by up to a factor ~2. With ``separation`` >= 2 PSF
    FWHM, the PSF-convolved components meet only in faint pixels, so the
    per-pixel truth (the dominant component) is a region of one SED and its
    boundary runs where little light is.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one).
    n_components : int
        1, 2 or 3 (one per SED family of :data:`~galclust.synth.FAMILIES`).
    wavelengths : numpy.ndarray
        ``(band,)`` pivot wavelengths, micron.
    z : float
        Redshift.
    separation : float
        Smallest distance between two component centres, pixels (> 0).
    bandwidths : numpy.ndarray, optional
        ``(band,)`` top-hat widths passed to :func:`sed_fluxes`.
    families : sequence of str, optional
        One SED family per component; default distinct families in random order.
    evaluate : bool
        Evaluate the SEDs now (else see :func:`attach_seds`).

    Returns
    -------
    list of Component

    Raises
    ------
    InputError
        For ``n_components`` outside 1–3, a non-positive ``separation`` or
        ``families`` of the wrong length.
    """
    if not (isinstance(n_components, int | np.integer) and 1 <= n_components <= len(FAMILIES)):
        raise InputError(f"draw_separated_components: n_components={n_components!r} must be "
                         f"1..{len(FAMILIES)} (one distinct SED family each).")
    if not separation > 0:
        raise InputError(f"draw_separated_components: separation={separation!r} must be "
                         "positive (pixels).")
    if families is not None and len(families) != n_components:
        raise InputError(f"draw_separated_components: families has {len(families)} entries; "
                         f"give one per component ({n_components}).")
    fams = ([canonical_family(f) for f in families] if families is not None
            else [str(f) for f in rng.permutation(FAMILIES)[:n_components]])
    if n_components == 1:
        sizes = np.array([np.exp(rng.uniform(np.log(1.5), np.log(5.0)))])
        index = np.array([rng.uniform(0.8, 2.0)])
        pos = np.zeros((1, 2))
        weights = np.ones(1)
    else:
        sizes = rng.uniform(1.0, 2.0, size=n_components)
        index = rng.uniform(0.8, 1.5, size=n_components)
        step = 2.0 * np.pi / n_components
        angles = rng.uniform(0.0, 2.0 * np.pi) + step * (
            np.arange(n_components) + rng.uniform(-0.1, 0.1, size=n_components))
        pos = np.stack([np.sin(angles), np.cos(angles)], axis=1)
        gaps = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
        closest = gaps[np.triu_indices(n_components, 1)].min()
        pos *= separation * rng.uniform(1.0, 1.3) / closest
        weights = rng.uniform(0.6, 1.4, size=n_components)
        weights /= weights.sum()
    widths = None
    if evaluate:
        widths = band_widths(wavelengths) if bandwidths is None else bandwidths
    comps = []
    for i, fam in enumerate(fams):
        params = draw_params(fam, rng)
        sed = None
        if evaluate:
            sed = sed_fluxes(fam, wavelengths, z, bandwidths=widths, **params)
            sed = sed / max(sed.mean(), 1e-300)
        comps.append(Component("disk", fam, float(pos[i, 0]), float(pos[i, 1]),
                               float(sizes[i]), float(index[i]), float(rng.uniform(0.6, 1.0)),
                               float(rng.uniform(0.0, np.pi)), float(weights[i]), sed, params))
    return comps


def attach_seds(galaxies: Sequence[Sequence[Component]], redshifts: Sequence[float],
                wavelengths: np.ndarray, bandwidths: np.ndarray) -> list[list[Component]]:
    """Evaluate the SEDs of many galaxies' components, one batch per family.

    Parameters
    ----------
    galaxies : sequence of sequence of Component
        Components drawn with ``evaluate=False``.
    redshifts : sequence of float
        One redshift per galaxy.
    wavelengths, bandwidths : numpy.ndarray
        ``(band,)`` pivots and top-hat widths, micron.

    Returns
    -------
    list of list of Component
        The same components with ``sed`` set (mean-normalised), identical to
        what ``evaluate=True`` gives.
    """
    out = [list(g) for g in galaxies]
    for family in FAMILIES:
        where = [(i, j) for i, g in enumerate(out) for j, c in enumerate(g) if c.family == family]
        if not where:
            continue
        comps = [out[i][j] for i, j in where]
        z = np.array([redshifts[i] for i, _ in where], dtype=float)
        params = {k: np.array([c.params[k] for c in comps]) for k in comps[0].params}
        seds = sed_fluxes_batch(family, wavelengths, z, params, bandwidths)
        seds = seds / np.maximum(seds.mean(axis=1, keepdims=True), 1e-300)
        for (i, j), sed in zip(where, seds, strict=True):
            out[i][j] = dataclasses.replace(out[i][j], sed=sed)
    return out


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

