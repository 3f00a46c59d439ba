"""Interpretable per-source features for spurious-source flagging (numpy/scipy).

Two families:

- from the cutouts alone (:func:`stamp_features`): the zero-weight fraction
  (edge of the data), the azimuthal m=2 / m=6 structure (a ridge through the
  source: a diffraction spike), the brightest off-centre structure relative to
  the source (a bright neighbour in the stamp), and the central S/N;
- from the catalog geometry (:func:`neighbour_features`,
  :func:`spike_features`): distance and flux ratio to the nearest brighter
  source (KD-tree), and a diffraction-spike score — how well the source lines
  up with the 60-degree spike pattern of a bright neighbour, weighted by that
  neighbour's brightness relative to the source and its distance.

:func:`feature_matrix` turns them into finite, comparably scaled columns for a
mixture model or a classifier.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial import cKDTree

from galclust.errors import InputError

__all__ = [
    "CATALOG_FEATURES",
    "STAMP_FEATURES",
    "estimate_spike_angle",
    "feature_matrix",
    "neighbour_features",
    "spike_features",
    "stamp_features",
]

STAMP_FEATURES = ("zero_fraction", "ridge_m2", "ridge_m6", "stamp_neighbour", "centre_snr")
CATALOG_FEATURES = ("brighter_distance", "brighter_ratio", "spike_score")


def _polar(size_y: int, size_x: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size_y, :size_x].astype(np.float64)
    yy -= size_y // 2
    xx -= size_x // 2
    return np.hypot(yy, xx), np.arctan2(yy, xx)


def stamp_features(scaled: np.ndarray, *, zero_fraction: np.ndarray | None = None,
                   inner: float = 3.0) -> dict[str, np.ndarray]:
    """Features measured on asinh-scaled stamps.

    Parameters
    ----------
    scaled : ndarray, shape (n, band, y, x)
        Stamps after :func:`galclust.catalog.scaling.asinh_scale` (noise units,
        compressed); exact zeros mark missing data.
    zero_fraction : ndarray, shape (n,), optional
        Fraction of pixels without coverage; default: the fraction of exact
        zeros in ``scaled``.
    inner : float
        Radius (pixels) of the central aperture.

    Returns
    -------
    dict of str -> ndarray (n,) float32
        ``zero_fraction``; ``ridge_m2`` and ``ridge_m6``: amplitude of the m=2
        and m=6 azimuthal harmonics of the positive signal outside ``inner``
        relative to its total (0 for round or empty surroundings, up to 1 for a
        single ridge); ``stamp_neighbour``: brightest off-centre pixel minus the
        central pixel (scaled units; > 0 when a brighter structure shares the
        stamp); ``centre_snr``: mean scaled value in the central aperture.
    """
    scaled = np.asarray(scaled, dtype=np.float32)
    if scaled.ndim != 4:
        raise InputError(f"cutouts must be (source, band, y, x); got shape {scaled.shape}.")
    n, _, ny, nx = scaled.shape
    if zero_fraction is None:
        zero_fraction = (scaled == 0).mean(axis=(1, 2, 3)) if n else np.zeros(0)
    img = scaled.mean(axis=1)  # (n, y, x): all bands together
    r, phi = _polar(ny, nx)
    centre = r <= inner
    outer = (r > inner) & (r <= min(ny, nx) // 2)
    pos = np.clip(img[:, outer], 0, None).astype(np.float64)  # (n, npix)
    total = pos.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    m2 = np.abs(pos @ np.exp(2j * phi[outer])) / safe
    m6 = np.abs(pos @ np.exp(6j * phi[outer])) / safe
    cval = img[:, centre].mean(axis=1) if n else np.zeros(0)
    oval = img[:, outer].max(axis=1) if n else np.zeros(0)
    return {
        "zero_fraction": np.asarray(zero_fraction, dtype=np.float32),
        "ridge_m2": np.where(total > 0, m2, 0).astype(np.float32),
        "ridge_m6": np.where(total > 0, m6, 0).astype(np.float32),
        "stamp_neighbour": (oval - img[:, ny // 2, nx // 2]).astype(np.float32),
        "centre_snr": np.asarray(cval, dtype=np.float32),
    }


def _check_xyf(x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    flux = np.asarray(flux, dtype=np.float64).reshape(-1)
    if not (len(x) == len(y) == len(flux)):
        raise InputError(f"x, y and flux must have the same length; got {len(x)}, {len(y)}, "
                         f"{len(flux)}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InputError("x and y must be finite pixel positions for every source.")
    return x, y, np.where(np.isfinite(flux), flux, 0.0)


def neighbour_features(x: np.ndarray, y: np.ndarray, flux: np.ndarray, *,
                       k: int = 16) -> dict[str, np.ndarray]:
    """Distance and flux ratio to the nearest brighter source (KD-tree).

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Pixel positions.
    flux : ndarray, shape (n,)
        Source fluxes (any consistent unit; non-finite counts as 0).
    k : int
        Neighbours examined per round; sources whose ``k`` nearest are all
        fainter are re-queried with ``4 k`` until resolved.

    Returns
    -------
    dict
        ``brighter_distance`` (pixels; +inf for the brightest source) and
        ``brighter_ratio`` (flux of that neighbour / own flux, >= 1; 1 if none),
        both float64 arrays of shape (n,).
    """
    x, y, flux = _check_xyf(x, y, flux)
    n = len(x)
    dist = np.full(n, np.inf)
    ratio = np.ones(n)
    if n < 2:
        return {"brighter_distance": dist, "brighter_ratio": ratio}
    tree = cKDTree(np.column_stack([x, y]))
    todo = np.arange(n)
    kk = min(k + 1, n)
    while len(todo):
        d, j = tree.query(np.column_stack([x[todo], y[todo]]), k=kk)
        d, j = np.atleast_2d(d), np.atleast_2d(j)
        brighter = flux[j] > flux[todo][:, None]
        hit = brighter.any(axis=1)
        first = np.argmax(brighter, axis=1)
        rows = todo[hit]
        dist[rows] = d[hit, first[hit]]
        own = np.where(flux[rows] > 0, flux[rows], np.nan)
        ratio[rows] = np.nan_to_num(flux[j[hit, first[hit]]] / own, nan=1e6)
        if kk >= n:
            break
        todo = todo[~hit]
        kk = min(4 * kk, n)
    return {"brighter_distance": dist, "brighter_ratio": np.maximum(ratio, 1.0)}


def _fold(theta: np.ndarray, spike_angle: float, period: float) -> np.ndarray:
    """Angle (radians) to the nearest spike of a pattern repeating every ``period``."""
    return (theta - spike_angle + period / 2) % period - period / 2


def estimate_spike_angle(x: np.ndarray, y: np.ndarray, flux: np.ndarray, *,
                         n_bright: int = 50, radius: float = 150.0,
                         period_deg: float = 60.0) -> float:
    """Orientation of the spike pattern from where faint neighbours of bright sources sit.

    Detections on diffraction spikes line up at fixed position angles around
    bright sources; ordinary neighbours are isotropic. The phase of the
    ``360 / period``-fold harmonic of the neighbours' position angles, weighted
    by the bright source's flux relative to the neighbour's, gives the pattern's
    orientation; it is refined on the pairs within 10 degrees of it.

    Parameters
    ----------
    x, y, flux : ndarray, shape (n,)
    n_bright : int
        Number of brightest sources used.
    radius : float
        Neighbourhood radius in pixels.
    period_deg : float
        Angle between spikes (60 for JWST).

    Returns
    -------
    float
        Angle in degrees from +x of one spike, in ``[0, period_deg)``.
    """
    x, y, flux = _check_xyf(x, y, flux)
    m = 360.0 / period_deg
    bright = np.argsort(-flux)[:n_bright]
    tree = cKDTree(np.column_stack([x, y]))
    thetas, weights = [], []
    for j, near in zip(bright, tree.query_ball_point(np.column_stack([x[bright], y[bright]]),
                                                     r=radius), strict=True):
        near = np.asarray([i for i in near if i != j and flux[i] < flux[j]], dtype=int)
        if len(near) == 0:
            continue
        thetas.append(np.arctan2(y[near] - y[j], x[near] - x[j]))
        weights.append(np.log10(np.clip(flux[j] / np.clip(flux[near], 1e-30, None), 1.0, 1e12)))
    if not thetas:
        return 90.0 % period_deg
    theta, w = np.concatenate(thetas), np.concatenate(weights)
    phase = np.angle(np.sum(w * np.exp(1j * m * theta)))
    # refine on the pairs within 10 degrees of the current pattern (trims the
    # isotropic neighbours that dilute the harmonic)
    for _ in range(3):
        near = np.abs(_fold(m * theta, phase, 2 * np.pi)) < np.radians(10 * m)
        if not near.any():
            break
        phase = np.angle(np.sum(w[near] * np.exp(1j * m * theta[near])))
    return float(np.degrees(phase) / m % period_deg)


def spike_features(x: np.ndarray, y: np.ndarray, flux: np.ndarray, *,
                   spike_angle: float | None = None, period_deg: float = 60.0,
                   n_bright: int = 200, radius: float = 200.0, width: float = 2.5,
                   length: float = 20.0) -> dict[str, np.ndarray]:
    """Diffraction-spike score of each source.

    For each of the ``n_bright`` brightest sources ``j`` within ``radius`` of
    source ``i`` (and brighter than it), with ``r`` the distance and ``d`` the
    perpendicular distance of ``i`` from the nearest spike of ``j``'s pattern,

    ``s_ij = (F_j / F_i) * exp(-d^2 / (2 width^2)) / (1 + r / length)^2``

    (a spike's surface brightness falls roughly as ``(1 + r/L)^-2``), and
    ``spike_score_i = log10(1 + max_j s_ij)``.

    Parameters
    ----------
    x, y, flux : ndarray, shape (n,)
    spike_angle : float, optional
        Orientation of one spike in degrees from +x; default estimated with
        :func:`estimate_spike_angle`.
    period_deg : float
        Angle between spikes.
    n_bright, radius, width, length : float
        Bright sources considered, search radius (px), spike half-width (px)
        and brightness fall-off length (px).

    Returns
    -------
    dict
        ``spike_score`` (n,) float64 and ``spike_angle`` (the angle used, float).
    """
    x, y, flux = _check_xyf(x, y, flux)
    if spike_angle is None:
        spike_angle = estimate_spike_angle(x, y, flux, period_deg=period_deg)
    n = len(x)
    score = np.zeros(n)
    if n < 2:
        return {"spike_score": score, "spike_angle": float(spike_angle)}
    period = np.radians(period_deg)
    a0 = np.radians(spike_angle)
    own = np.where(flux > 0, flux, np.nan)
    bright = np.argsort(-flux)[:n_bright]
    tree = cKDTree(np.column_stack([x, y]))
    for j, near in zip(bright, tree.query_ball_point(np.column_stack([x[bright], y[bright]]),
                                                     r=radius), strict=True):
        near = np.asarray(near, dtype=int)
        near = near[(near != j) & (flux[near] < flux[j])]
        if len(near) == 0:
            continue
        dx, dy = x[near] - x[j], y[near] - y[j]
        r = np.hypot(dx, dy)
        d = r * np.abs(np.sin(_fold(np.arctan2(dy, dx), a0, period)))
        s = np.nan_to_num(flux[j] / own[near], nan=1e6) * np.exp(-0.5 * (d / width) ** 2)
        s /= (1.0 + r / length) ** 2
        score[near] = np.maximum(score[near], s)
    return {"spike_score": np.log10(1.0 + score), "spike_angle": float(spike_angle)}


def feature_matrix(features: Mapping[str, np.ndarray], *,
                   columns: tuple[str, ...] | None = None) -> tuple[np.ndarray, list[str]]:
    """Finite, comparably scaled feature columns (before standardisation).

    Distances and ratios become ``log10`` (distances clipped to [0.5, 1000] px,
    so "no brighter source" is 1000 px), the central S/N ``asinh``-compressed;
    the rest pass through.

    Parameters
    ----------
    features : mapping of str -> (n,) arrays
        Any of :data:`STAMP_FEATURES` and :data:`CATALOG_FEATURES`.
    columns : tuple of str, optional
        Which to use (default: every known feature present, in a fixed order).

    Returns
    -------
    X : ndarray, shape (n, n_features), float64
    names : list of str
    """
    known = STAMP_FEATURES + CATALOG_FEATURES
    if columns is None:
        columns = tuple(c for c in known if c in features)
    missing = [c for c in columns if c not in features]
    if missing:
        raise InputError(f"features {missing} are missing; have {sorted(features)}.")
    out = []
    for name in columns:
        v = np.asarray(features[name], dtype=np.float64)
        if name == "brighter_distance":
            v = np.log10(np.clip(np.nan_to_num(v, nan=1000.0, posinf=1000.0), 0.5, 1000.0))
        elif name == "brighter_ratio":
            v = np.log10(np.clip(np.nan_to_num(v, nan=1.0, posinf=1e6), 1.0, 1e6))
        elif name == "centre_snr":
            v = np.arcsinh(np.nan_to_num(v))
        out.append(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0))
    n = len(out[0]) if out else 0
    return (np.column_stack(out) if out else np.zeros((n, 0))), list(columns)
