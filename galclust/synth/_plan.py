"""Where every synthetic source goes and what it is, before any pixel is drawn.

The plan is small (a few hundred bytes per source): positions, kinds, SED and
shape parameters. Stamps are rendered later, strip by strip, from it
(:mod:`galclust.synth.survey`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from galclust.errors import InputError
from galclust.synth.artefacts import REASONS, Coverage
from galclust.synth.galaxy import (
    Component,
    attach_seds,
    draw_components,
    draw_separated_components,
)
from galclust.synth.profiles import SPIKE_ANGLES
from galclust.synth.seds import stellar_fluxes

__all__ = ["Plan", "Source", "plan_survey"]

_REACH = {"disk": 5.0, "bulge": 8.0, "clump": 4.0}  # stamp reach in units of component size
_GALAXY_MARGIN = 24.0
_MIN_CELL = 16.0  # px: closest grid spacing of galaxies  # px between a galaxy centre and the coverage edge
# quantised stamp half-sizes: 2 * half is 2,3,5,7-smooth (fast FFTs, reused PSF transforms)
_HALVES = (12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64)
#: layout="separated": closest component centres, in PSF FWHM (of the reddest band).
SEPARATION_FWHM = 2.0
#: layout="separated": probabilities of 1, 2, 3 components (3 = every SED family once).
_SEPARATED_NCOMP = (0.25, 0.4, 0.35)


@dataclass
class Source:
    """One planned source (see :func:`plan_survey`)."""

    kind: str                      # "galaxy" | "star" | "artefact"
    y: float
    x: float
    half: int                      # stamp: 2 half square from round(y, x) - half
    artefact: str = ""             # one of REASONS for artefacts
    z_true: float = float("nan")
    z_cat: float = float("nan")
    snr: float = float("nan")      # target S/N (galaxies, faint stars)
    components: list[Component] | None = None
    temperature: float = float("nan")
    spike_length: float = 0.0      # > 0: bright star with spikes visible to this length
    sigma: float = 0.0             # knot / blob shape
    q: float = 1.0
    theta: float = 0.0
    sed: np.ndarray | None = field(default=None, repr=False)
    peak_snr: float = 0.0          # knot / blob peak detection S/N
    claim: tuple[float, float, float] | None = None  # (a, b, theta) of a shredded fragment
    parent: int = -1               # plan index of the parent (fragments), -1 if none


@dataclass
class Plan:
    """Every source of a survey, sorted by (y, x); catalog id = index + 1."""

    sources: list[Source]
    coverage: Coverage
    rms: np.ndarray                # (band,) 1-sigma per pixel far from edges
    wavelengths: np.ndarray        # (band,) pivots, micron
    n_faint_stars: int
    n_bright_stars: int


def _quantise(half: float) -> int:
    for h in _HALVES:
        if half <= h:
            return h
    return _HALVES[-1]


def _extent(components: list[Component], layout: str) -> float:
    """Size that sets how far from a galaxy its shredded fragments sit."""
    if layout == "separated":  # outside the ring of components, not on one of them
        return max(float(np.hypot(c.dy, c.dx)) + c.size for c in components)
    return max(c.size for c in components if c.kind != "clump")


def _galaxy_positions(shape: tuple[int, int], n: int, cov: Coverage,
                      rng: np.random.Generator) -> np.ndarray:
    """``n`` jittered-grid positions ``(y, x)`` well inside the coverage."""
    ny, nx = shape
    cell = math.sqrt(ny * nx / max(n, 1))
    while cell >= _MIN_CELL:
        gy, gx = np.mgrid[cell / 2: ny: cell, cell / 2: nx: cell]
        pts = np.stack([gy.ravel(), gx.ravel()], axis=1)
        pts = pts + rng.uniform(-0.3 * cell, 0.3 * cell, size=pts.shape)
        ok = cov.distance(pts[:, 0], pts[:, 1]) >= _GALAXY_MARGIN
        pts = pts[ok]
        if len(pts) >= n:
            return pts[np.sort(rng.choice(len(pts), size=n, replace=False))]
        cell *= 0.93
    raise InputError(f"make_survey: n_galaxies={n} do not fit in a {shape[0]}x{shape[1]} px "
                     "image with a sane spacing; ask for fewer or a larger shape.")


class _Taken:
    """Positions already used: a k-d tree of the galaxies plus a short list of others."""

    def __init__(self, base: np.ndarray) -> None:
        self._tree = cKDTree(base) if len(base) else None
        self._extra: list[np.ndarray] = []

    def distance(self, p: np.ndarray) -> float:
        d = float(self._tree.query(p)[0]) if self._tree is not None else np.inf
        if self._extra:
            d = min(d, float(np.min(np.hypot(*(np.array(self._extra) - p).T))))
        return d

    def append(self, p: np.ndarray) -> None:
        self._extra.append(p)


def _free_point(rng: np.random.Generator, cov: Coverage, taken: _Taken, min_dist: float,
                min_edge: float, sampler, tries: int = 200) -> np.ndarray | None:
    """A point from ``sampler()`` far enough from the coverage edge and from ``taken``."""
    for _ in range(tries):
        p = sampler()
        if cov.distance(p[0], p[1]) < min_edge or taken.distance(p) < min_dist:
            continue
        return p
    return None


def plan_survey(shape: tuple[int, int], wavelengths: np.ndarray, widths: np.ndarray,
                fwhm: np.ndarray, rms: np.ndarray, *, n_galaxies: int, n_stars: int,
                spurious_fraction: float, snr_range: tuple[float, float],
                rng: np.random.Generator, layout: str = "mixed") -> Plan:
    """Plan galaxies, stars and spurious detections for a survey image.

    Parameters
    ----------
    shape : (int, int)
        Image shape.
    wavelengths, widths, fwhm, rms : numpy.ndarray
        ``(band,)`` pivots (micron), top-hat widths, PSF FWHM (px) and 1-sigma
        pixel noise.
    n_galaxies, n_stars : int
        Real galaxies and faint stars; bright stars are added as the spike
        artefacts need them (at most 3 knots per star).
    spurious_fraction : float
        Target fraction of spurious catalog rows; at least one of each class
        is made when it is positive.
    snr_range : (float, float)
        Log-uniform range of galaxy and faint-star S/N.
    rng : numpy.random.Generator
        The planning random stream.
    layout : {"mixed", "separated"}
        Galaxy components superposed (bulge + disk + clumps,
        :func:`~galclust.synth.galaxy.draw_components`) or 1–3 compact
        components at least ``SEPARATION_FWHM`` times the largest FWHM apart,
        with distinct SED families
        (:func:`~galclust.synth.galaxy.draw_separated_components`).

    Returns
    -------
    Plan
    """
    cov = Coverage.random(shape, rng)
    fmax = float(np.max(fwhm))
    snr_log = (np.log(snr_range[0]), np.log(snr_range[1]))
    sources = _plan_galaxies(shape, wavelengths, widths, n_galaxies, layout, cov, fmax,
                             snr_log, rng)
    per_class, n_bright = _artefact_counts(n_galaxies, n_stars, spurious_fraction)
    taken = _Taken(np.array([[s.y, s.x] for s in sources]).reshape(-1, 2))
    stars = _plan_stars(shape, n_stars, n_bright, cov, taken, snr_log, rng)
    sources += stars
    _plan_spike_knots(sources, per_class[0], wavelengths, cov, taken, fmax, rng)
    _plan_edge_blobs(sources, per_class[1], shape, len(wavelengths), cov, taken, rng)
    _plan_shreds(sources, per_class[2], layout, rng)
    order = sorted(range(len(sources)), key=lambda i: (sources[i].y, sources[i].x, i))
    new_index = {old: new for new, old in enumerate(order)}
    for s in sources:
        if s.parent >= 0:
            s.parent = new_index[s.parent]
    return Plan(sources=[sources[i] for i in order], coverage=cov, rms=np.asarray(rms),
                wavelengths=np.asarray(wavelengths),
                n_faint_stars=sum(1 for s in stars if s.spike_length == 0),
                n_bright_stars=sum(1 for s in stars if s.spike_length > 0))


def _plan_galaxies(shape: tuple[int, int], wavelengths: np.ndarray, widths: np.ndarray,
                   n_galaxies: int, layout: str, cov: Coverage, fmax: float,
                   snr_log: tuple[float, float], rng: np.random.Generator) -> list[Source]:
    """The galaxies: positions, components (with SEDs), redshifts, S/N."""
    lo, hi = snr_log
    sources: list[Source] = []

    for y, x in _galaxy_positions(shape, n_galaxies, cov, rng):
        z = float(rng.uniform(0.5, 7.0))
        if layout == "separated":
            ncomp = int(rng.choice([1, 2, 3], p=_SEPARATED_NCOMP))
            comps = draw_separated_components(rng, ncomp, wavelengths, z,
                                              separation=SEPARATION_FWHM * fmax,
                                              bandwidths=widths, evaluate=False)
        else:  # the default's random stream must stay exactly as it was
            ncomp = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]))
            size = float(np.exp(rng.uniform(np.log(1.5), np.log(5.0))))
            comps = draw_components(rng, ncomp, size, wavelengths, z, bandwidths=widths,
                                    evaluate=False)
        reach = max(np.hypot(c.dy, c.dx) + _REACH[c.kind] * c.size for c in comps)
        sources.append(Source("galaxy", float(y), float(x), _quantise(reach + 2.5 * fmax),
                              z_true=z, z_cat=z, snr=float(np.exp(rng.uniform(lo, hi))),
                              components=comps))
    with_sed = attach_seds([s.components for s in sources], [s.z_true for s in sources],
                           wavelengths, widths)
    for s, comps in zip(sources, with_sed, strict=True):
        s.components = comps
    return sources


def _artefact_counts(n_galaxies: int, n_stars: int, spurious_fraction: float
                     ) -> tuple[list[int], int]:
    """Artefacts per reason (spike knots, edge blobs, shreds) and bright stars needed."""
    n_bright = 0
    for _ in range(2):  # bright stars are real rows too: one fixed-point step
        n_real = n_galaxies + n_stars + n_bright
        n_art = 0
        if spurious_fraction > 0:
            n_art = max(3, round(spurious_fraction * n_real / (1.0 - spurious_fraction)))
        per_class = [n_art // 3 + (i < n_art % 3) for i in range(3)]
        n_bright = math.ceil(per_class[0] / 3)
    return per_class, n_bright


def _plan_stars(shape: tuple[int, int], n_stars: int, n_bright: int, cov: Coverage,
                taken: _Taken, snr_log: tuple[float, float],
                rng: np.random.Generator) -> list[Source]:
    """Faint stars, then bright stars with diffraction spikes."""
    ny, nx = shape
    lo, hi = snr_log


    def anywhere() -> np.ndarray:
        return np.array([rng.uniform(0, ny - 1), rng.uniform(0, nx - 1)])

    stars: list[Source] = []
    for i in range(n_stars + n_bright):
        bright = i >= n_stars
        length = float(rng.uniform(40.0, 80.0)) if bright else 0.0
        p = _free_point(rng, cov, taken, 14.0, 30.0 if bright else 16.0, anywhere)
        if p is None:
            continue
        taken.append(p)
        star = Source("star", float(p[0]), float(p[1]),
                      int(2 * length + 12) if bright else 16, z_true=0.0, z_cat=0.0,
                      snr=float(np.exp(rng.uniform(lo, hi))),
                      temperature=float(rng.uniform(3000.0, 9000.0)), spike_length=length)
        stars.append(star)

    return stars


def _plan_spike_knots(sources: list[Source], n: int, wavelengths: np.ndarray,
                      cov: Coverage, taken: _Taken, fmax: float,
                      rng: np.random.Generator) -> None:
    # (a) knots on the spikes of bright stars
    bright_idx = [i for i, s in enumerate(sources) if s.spike_length > 0]
    for k in range(n):
        if not bright_idx:
            break
        si = bright_idx[k % len(bright_idx)]
        star = sources[si]
        t_min = max(10.0, 4.0 * fmax)

        def on_spike(star: Source = star, t_min: float = t_min) -> np.ndarray:
            ang = np.radians(SPIKE_ANGLES[int(rng.integers(0, 6))])
            t = rng.uniform(t_min, 0.85 * star.spike_length)
            return np.array([star.y + t * np.sin(ang), star.x + t * np.cos(ang)])

        p = _free_point(rng, cov, taken, 10.0, 12.0, on_spike, tries=50)
        if p is None:
            continue
        taken.append(p)
        ang = np.arctan2(p[0] - star.y, p[1] - star.x)
        sed = stellar_fluxes(wavelengths, star.temperature)
        sources.append(Source("artefact", float(p[0]), float(p[1]), 12,
                              artefact=REASONS[0], z_cat=float(rng.uniform(0.5, 7.0)),
                              sigma=float(rng.uniform(1.0, 1.4)), q=0.6, theta=float(ang),
                              sed=sed / sed.mean(), peak_snr=float(rng.uniform(3.0, 6.0)),
                              claim=(5.0, 2.5, float(ang)), parent=si))



def _plan_edge_blobs(sources: list[Source], n: int, shape: tuple[int, int], n_bands: int,
                     cov: Coverage, taken: _Taken, rng: np.random.Generator) -> None:
    ny, nx = shape
    # (b) noise-like blobs straddling the coverage edge
    centre = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])

    def on_edge() -> np.ndarray:
        p = cov.boundary_points(1, rng, shape)[0]
        inward = (centre - p) / np.linalg.norm(centre - p)
        return p + inward * rng.uniform(1.0, 3.0)

    for _ in range(n):
        p = _free_point(rng, cov, taken, 24.0, 0.5, on_edge)
        if p is None:
            continue
        taken.append(p)
        normal = cov.normals[np.argmin(cov.offsets - cov.normals @ p[::-1])]
        along = float(np.arctan2(normal[0], -normal[1]))  # edge direction, (x, y) order
        sed = rng.uniform(0.2, 1.8, size=n_bands)
        sources.append(Source("artefact", float(p[0]), float(p[1]), 16,
                              artefact=REASONS[1], z_cat=float(rng.uniform(0.5, 7.0)),
                              sigma=float(rng.uniform(2.0, 3.5)),
                              q=float(rng.uniform(0.35, 0.6)), theta=along,
                              sed=sed / sed.mean(), peak_snr=float(rng.uniform(5.0, 10.0))))



def _plan_shreds(sources: list[Source], n: int, layout: str,
                 rng: np.random.Generator) -> None:
    # (c) fragments shredded from bright extended galaxies
    gal_idx = [i for i, s in enumerate(sources) if s.kind == "galaxy"]
    disk_size = {i: _extent(sources[i].components, layout) for i in gal_idx}
    parents = sorted(gal_idx, key=lambda i: -sources[i].snr * disk_size[i] ** 2)
    for k in range(n):
        if not parents:
            break
        gi = parents[k % len(parents)]
        gal = sources[gi]
        size = disk_size[gi]
        sigma = float(rng.uniform(0.9, 1.3))
        radius = max(2.5, 2.5 * sigma)
        dist = max(float(rng.uniform(1.8, 2.4)) * size, radius + 4.0)
        ang = rng.uniform(0.0, 2.0 * np.pi)
        p = np.array([gal.y + dist * np.sin(ang), gal.x + dist * np.cos(ang)])
        disk = next(c for c in gal.components if c.kind == "disk")
        sources.append(Source("artefact", float(p[0]), float(p[1]), 12,
                              artefact=REASONS[2],
                              z_cat=float(gal.z_true + rng.normal(0.0, 0.05)),
                              sigma=sigma, q=1.0, theta=0.0, sed=disk.sed,
                              peak_snr=float(rng.uniform(3.0, 5.0)),
                              claim=(radius, radius, 0.0), parent=gi))
