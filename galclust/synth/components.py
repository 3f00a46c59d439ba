"""The components of a synthetic galaxy: where they are, their profiles, their SEDs.

:func:`draw_components` superposes a disk, a bulge and clumps;
:func:`draw_separated_components` places compact components of distinct SED
families at least two PSF FWHM apart (a partition pixel clustering should
recover); :func:`attach_seds` gives each component its fluxes per band.
Rendering them is :mod:`galclust.synth.galaxy`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from galclust.errors import InputError
from galclust.synth.seds import (
    FAMILIES,
    band_widths,
    canonical_family,
    draw_params,
    sed_fluxes,
    sed_fluxes_batch,
)

__all__ = ["LAYOUTS", "Component", "attach_seds", "draw_components",
           "draw_separated_components"]

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
