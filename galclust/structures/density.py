"""Density structures of a multi-band image: AstroLink (or HDBSCAN) on a point cloud
sampled in proportion to luminosity.

The method (issue 13, after the research's JWST deep-field study):

1. Per band, a sky level and RMS (3-sigma-clipped median and MAD of the finite
   pixels outside ``mask`` if there are at least 50, else of all finite pixels;
   ``err`` gives the per-pixel noise if present). Luminosity = band-summed
   sky-subtracted flux.
2. Background: ``"subtract"`` removes a cut (default 2 sigma of the luminosity's
   per-pixel noise, or ``background_level``) and samples what is left;
   ``"keep"`` samples every pixel of positive luminosity, so faint structures
   keep their points (and so does sky noise).
3. ``n_samples`` points drawn in proportion to the luminosity, continuously:
   the density sampled is the bilinear interpolant of the pixel weights (a pixel
   drawn by weight plus a tent-distributed offset), not a step per pixel.
   **Sample-count rule** (``n_samples=None``): ``points_per_pixel`` points per
   pixel above the cut (AstroLink 400, HDBSCAN 10), at least 2,000 and at most
   2x10^5 per call. AstroLink's significance of a structure grows with its number
   of points: on the synthetic clumpy galaxies (64^2 px), 10 per pixel found ~15 %
   of the clumps at S = 5, 30 per pixel ~78 %, 100 per pixel 93-95 %, 400 per
   pixel 99 % (see ``_sampling.POINTS_PER_PIXEL``); but on 128^2 px galaxies
   2.8-5.3x10^5 points gave 5 false structures (the host's smooth sub-structure
   passing S = 5) against 0-1 at 2x10^5, hence the cap. The research's 10^6 (a
   whole deep field) is reachable with ``n_samples``.
4. Features: ``x, y`` in units of the PSF FWHM (``psf_fwhm`` px), then the
   adjacent-band colours of asinh magnitudes (softening = the band's sky RMS)
   of the image smoothed by a Gaussian of ``colour_smoothing`` (1) PSF sigmas
   (below the resolution, so no structure is lost, but the colour noise drops
   ~2.4x), bilinearly interpolated at each point, each divided by the *colour
   noise*: the luminosity-weighted median of the per-pixel colour error over the
   sampled pixels (propagated from ``err``, or the sky RMS, and divided by the
   smoothing kernel's effective ``sqrt(4 pi sigma^2)``). **Scaling rule**: one
   PSF FWHM of distance counts as much as ``1 / colour_weight`` sigma of colour
   noise (``colour_weight=0.5``: 2 sigma) — a change smaller than the resolution
   or than the noise does not separate points. ``colour_weight=0`` clusters
   positions only: with the host kept, at 100 points per pixel, 50 % of the
   synthetic clumps against 97 % (with it subtracted, positions alone find the
   default family's clumps too); chosen on the ``default`` synthetic family only.
5. ``AstroLink(P, k_den, adaptive=0, S, workers=1)`` (or HDBSCAN with
   ``min_cluster_size=k_den`` on the same points: flat, no hierarchy); each pixel
   takes the deepest (leaf) structure most of its points fall in (fewer than
   ``min_pixel_points`` points, or a tie, gives 0).
6. ``host="subtract"`` draws the points from each band minus its Gaussian smoothing
   of ``host_scale`` PSF FWHM, so a concentrated host does not swallow clumps near
   its centre (the default keeps the host, itself a structure then). A structure is
   kept when its sampled light (descendants included) has an image S/N of at least
   ``min_snr`` (5) against the image's own calibrated noise, not the point cloud's;
   a kept structure's own pixels are labelled only when they reach it alone.

Tiles: run per galaxy footprint where possible; otherwise run per tile and
merge with :func:`merge_tile_structures` (structures whose pixels touch across
a tile edge and whose SED shapes agree become one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from galclust.errors import InputError, check_choice, is_real
from galclust.structures._merge import merge_tile_structures
from galclust.structures._sampling import (
    POINTS_PER_PIXEL,
    background_stats,
    sample_points,
    unsharp,
)
from galclust.structures._significance import image_snr, luminosity_noise_factor, prune

__all__ = ["HOSTS", "HOST_SCALE", "METHODS", "MIN_SNR", "Structures", "find_structures",
           "merge_tile_structures", "warm_astrolink"]

#: Methods understood by :func:`find_structures`.
METHODS: tuple[str, ...] = ("astrolink", "hdbscan")
_BACKGROUNDS = ("subtract", "keep")
_SAMPLINGS = ("bilinear", "pixel")


@dataclass
class Structures:
    """Density structures of an image.

    Attributes
    ----------
    labels : numpy.ndarray
        ``(y, x)`` int32: the leaf structure id of each pixel; 0 where there is
        no structure, -1 where the pixel was masked or not finite.
    table : pandas.DataFrame
        One row per structure: ``id, parent`` (0 for a root), ``significance``
        (sigma for AstroLink, persistence for HDBSCAN), ``snr`` (image S/N of
        the sampled light, descendants included; see ``min_snr``), ``n_points``
        (its points, descendants included), ``n_pixels`` (pixels of its own
        label), ``x, y`` (mean of its points, px), ``level`` (1 for a root),
        then ``flux_<band>`` and ``flux_err_<band>`` (sum over its own pixels).
    method : str
        ``"astrolink"`` or ``"hdbscan"``.
    options : dict
        ``n_samples`` used, ``psf_fwhm``, ``colour_scale`` (mag per colour),
        ``colour_weight``, ``colour_smoothing``, ``points_per_pixel``, ``host``,
        ``host_scale``, ``min_snr``, ``noise_factor`` (of the ``snr`` errors),
        ``background``, ``background_level``, ``k_den``, ``S``, ``sampling``,
        ``sky``, ``rms``, ``seconds`` (clustering only), ``random_state``.
    """

    labels: np.ndarray
    table: pd.DataFrame
    method: str
    options: dict = field(default_factory=dict)


def warm_astrolink() -> float:
    """Compile AstroLink's numba kernels in this process on a tiny point cloud.

    Returns
    -------
    float
        Seconds spent (40-60 s in a fresh process, ~0 once compiled).
    """
    from astrolink import AstroLink

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    pts = np.vstack([rng.normal(size=(300, 3)), 0.2 * rng.normal(size=(100, 3)) + 2.0])
    AstroLink(pts.astype(np.float64), k_den=20, adaptive=0, S=5.0, workers=1).run()
    return time.perf_counter() - t0


def _check(sci, mask, err, method, background, sampling, psf_fwhm, n_samples, k_den):
    check_choice("method", method, METHODS)
    check_choice("background", background, _BACKGROUNDS)
    check_choice("sampling", sampling, _SAMPLINGS)
    sci = np.asarray(sci, dtype=np.float64)
    if sci.ndim == 2:
        sci = sci[None]
    if sci.ndim != 3:
        raise InputError(f"sci has shape {sci.shape}: give a (band, y, x) cube or a (y, x) image.")
    if err is not None:
        err = np.asarray(err, dtype=np.float64)
        if err.ndim == 2:
            err = err[None]
        if err.shape != sci.shape:
            raise InputError(f"err has shape {err.shape} but sci has {sci.shape}: give one "
                             "error plane per band of sci (the band counts must match).")
    valid = np.isfinite(sci).all(0)
    if err is not None:
        valid &= np.isfinite(err).all(0) & (err > 0).all(0)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != sci.shape[1:]:
            raise InputError(f"mask has shape {mask.shape} but sci's pixels are "
                             f"{sci.shape[1:]}: give a (y, x) bool footprint of the same size.")
        valid &= mask.astype(bool)
    if not valid.any():
        raise InputError("sci has no finite pixel inside mask (and err > 0): give finite "
                         "data, or a mask that selects some.")
    if not psf_fwhm > 0:
        raise InputError(f"psf_fwhm={psf_fwhm} must be a positive FWHM in pixels.")
    if n_samples is not None and int(n_samples) <= int(k_den):
        raise InputError(f"n_samples={n_samples} must exceed k_den={k_den}: sample more "
                         "points or pass n_samples=None for the automatic count.")
    return sci, err, valid


def _run_astrolink(features, k_den, S):
    from astrolink import AstroLink

    al = AstroLink(features, k_den=int(k_den), adaptive=0, S=float(S), workers=1)
    al.run()
    clusters = np.asarray(al.clusters, dtype=np.int64)[1:]        # drop the root
    ids = [str(i) for i in al.ids[1:]]
    index = {s: i + 1 for i, s in enumerate(ids)}
    parent = np.array([index.get(s.rsplit("-", 1)[0], 0) for s in ids], dtype=np.int64)
    sig = np.asarray(al.significances, dtype=float)[1:]
    # leaf structure of each point: paint intervals in order (parents before children)
    pos_label = np.zeros(features.shape[0], dtype=np.int64)
    for i, (a, b) in enumerate(clusters):
        pos_label[a:b] = i + 1
    point_label = np.empty_like(pos_label)
    point_label[np.asarray(al.ordering, dtype=np.int64)] = pos_label
    members = [np.asarray(al.ordering[a:b], dtype=np.int64) for a, b in clusters]
    return point_label, parent, sig, members


def _run_hdbscan(features, k_den):
    import hdbscan

    model = hdbscan.HDBSCAN(min_cluster_size=int(k_den), core_dist_n_jobs=1)
    lab = model.fit_predict(features)
    n = int(lab.max()) + 1
    point_label = np.where(lab >= 0, lab + 1, 0).astype(np.int64)
    sig = np.asarray(model.cluster_persistence_, dtype=float)[:n]
    members = [np.flatnonzero(point_label == i + 1) for i in range(n)]
    return point_label, np.zeros(n, dtype=np.int64), sig, members


def _pixel_labels(pixel, point_label, n_pix, min_points):
    """Majority leaf label per pixel; ties or fewer than ``min_points`` points give 0."""
    out = np.zeros(n_pix, dtype=np.int64)
    if pixel.size == 0:
        return out
    nl = int(point_label.max()) + 1
    key = pixel * nl + point_label
    uk, cnt = np.unique(key, return_counts=True)
    pix, lab = np.divmod(uk, nl)
    order = np.lexsort((-cnt, pix))
    pix, lab, cnt = pix[order], lab[order], cnt[order]
    first = np.r_[True, pix[1:] != pix[:-1]]
    second = np.r_[~first[1:], False] & first          # pixel has a runner-up
    runner = np.zeros_like(cnt)
    runner[second] = cnt[np.flatnonzero(second) + 1]
    ok = first & (cnt >= min_points) & (cnt > runner)
    out[pix[ok]] = lab[ok]
    return out


#: ``host`` choices of :func:`find_structures`.
HOSTS = ("keep", "subtract")
#: Sigma of the host's smoothing for ``host="subtract"``, in PSF FWHM (1.5: 3 px at
#: the synthetic galaxies' 2 px FWHM; chosen a priori, not tuned). Colour-distinct
#: clumps found / false structures per scene, with ``min_snr=5`` and the default
#: points per pixel (benchmarks/_structures_clumps.py): default family (seeds 0-29)
#: AstroLink 98.7 % / 0.33 kept -> 99.3 % / 0.20 subtracted, HDBSCAN 82 % -> 100 % /
#: 0.07; held-out family (never tuned on, seeds 700-759) AstroLink 85 % / 0.07 ->
#: 96 % / 0.20, HDBSCAN 80 % / 0.15 -> 93 % / 0.07. Not this function's default:
#: structures larger than the smoothing (a smooth galaxy itself, in a deep field)
#: vanish from the residual; the per-galaxy stage subtracts (``--host auto``), tile
#: mode keeps.
HOST_SCALE = 1.5
#: Default ``min_snr`` of :func:`find_structures`: the image S/N a structure needs,
#: the same 5 sigma as AstroLink's ``S``, chosen a priori (not tuned). It leaves the
#: clumps found unchanged on the benchmark's scenes of both families (on held-out seeds
#: 400-414 at 400 points per pixel it cost 2 of 75 clumps) and cuts AstroLink's false structures per
#: scene, the more so at more points: at 100 points per pixel, default family 0.47 ->
#: 0.07 (host kept), 0.20 -> 0.07 (subtracted), held-out (seeds 400-459) 1.00 -> 0.05
#: (kept), 1.68 -> 0.20 (subtracted); at 400 per pixel (the default), host subtracted,
#: default 22.2 -> 0.20, held-out (seeds 700-759) 16.9 -> 0.20.
MIN_SNR = 5.0


def find_structures(sci, mask=None, *, err=None, method: str = "astrolink",
                    n_samples: int | None = None, k_den: int = 50, S: float = 5.0,
                    background: str = "subtract", background_level: float | None = None,
                    psf_fwhm: float = 2.0, colour_weight: float = 0.5,
                    sampling: str = "bilinear", min_pixel_points: int = 2,
                    n_components: int | None = None, points_per_pixel: float | None = None,
                    colour_smoothing: float = 1.0, host: str = "keep",
                    host_scale: float = HOST_SCALE, min_snr: float | None = MIN_SNR,
                    bands=None, random_state: int = 0) -> Structures:
    """Find hierarchical density structures in a multi-band image.

    Parameters
    ----------
    sci : array-like
        ``(band, y, x)`` image (a ``(y, x)`` image is one band, positions only).
    mask : array-like, optional
        ``(y, x)`` bool: pixels to use (a galaxy footprint); default all finite.
    err : array-like, optional
        ``(band, y, x)`` 1-sigma errors; default the clipped sky RMS of each band.
    method : {"astrolink", "hdbscan"}
        Clustering of the point cloud.
    n_samples : int, optional
        Number of points; None: ``points_per_pixel`` per pixel above the
        background cut, in [2,000, 200,000].
    k_den : int
        AstroLink's density neighbours; HDBSCAN's ``min_cluster_size``.
    S : float
        AstroLink's significance threshold (sigma above density noise).
    background : {"subtract", "keep"}
        Remove a background cut from the luminosity, or keep every positive pixel.
    background_level : float, optional
        The cut in band-summed flux units (default 2 sigma of the per-pixel
        luminosity noise).
    psf_fwhm : float
        PSF FWHM in pixels: the unit of positions.
    colour_weight : float
        Factor on the noise-scaled colours (0.5: two colour sigma = one FWHM;
        0: positions only).
    sampling : {"bilinear", "pixel"}
        Continuous bilinear sampling, or uniform jitter within pixels (the
        research's; colours then step at pixel edges).
    min_pixel_points : int
        A pixel needs this many points of its majority structure to be labelled.
    n_components : int, optional
        Keep only this many principal axes of the scaled colours (default all).
    points_per_pixel : float, optional
        The automatic sample count per pixel above the cut; None: the method's
        (AstroLink 400, HDBSCAN 10; see ``_sampling.POINTS_PER_PIXEL``).
    colour_smoothing : float
        Gaussian smoothing of the colour maps, in PSF sigmas (0: per-pixel colours).
    host : {"keep", "subtract"}
        ``"subtract"`` samples the points (luminosity and colours) from the image
        minus its own Gaussian smoothing of ``host_scale`` PSF FWHM per band (an
        unsharp mask): a concentrated host's smooth light no longer swallows
        clumps a few pixels from its centre, and the clumps' colours are their
        own rather than mixed with the host's. The table's fluxes stay those of
        the image. See :data:`HOST_SCALE` for what it measured.
    host_scale : float
        Sigma of the host's smoothing, in PSF FWHM (> 0).
    min_snr : float or None
        Keep only structures whose sampled light is significant against the
        image's own noise: the table's ``snr`` (see
        :mod:`galclust.structures._significance`) at least ``min_snr``; the
        pixels of a structure below it go to its nearest kept ancestor (or to
        none), and a kept structure's own pixels (those no child claims) are
        labelled only when their own S/N reaches ``min_snr`` (a parent of two
        clumps stays in the table, its pixels between them are not labelled).
        None or 0 keeps every structure and pixel. See :data:`MIN_SNR`.
    bands : sequence of str, optional
        Band names for the flux columns (default ``b0, b1, ...``).
    random_state : int
        Seed of the sampling; the same seed gives the same result.

    Returns
    -------
    Structures
        Label map, structure table, method and options.

    Raises
    ------
    galclust.errors.InputError
        Before any compute, for an unknown method, background or sampling, a
        mask or err of the wrong shape, no finite pixel, or a bad ``psf_fwhm``,
        ``host_scale``, ``min_snr`` or ``points_per_pixel``.
    """
    sci, err, valid = _check(sci, mask, err, method, background, sampling, psf_fwhm,
                             n_samples, k_den)
    check_choice("host", host, HOSTS)
    if not (is_real(host_scale) and host_scale > 0):
        raise InputError(f"host_scale={host_scale!r} must be a number > 0 (PSF FWHM).")
    if min_snr is not None and not (is_real(min_snr) and min_snr >= 0):
        raise InputError(f"min_snr={min_snr!r} must be a number >= 0 (image S/N of a "
                         "structure), or None to keep every structure.")
    if points_per_pixel is None:
        points_per_pixel = POINTS_PER_PIXEL[method]
    elif not (is_real(points_per_pixel) and points_per_pixel > 0):
        raise InputError(f"points_per_pixel={points_per_pixel!r} must be a number > 0, or "
                         "None for the method's default.")
    nb, ny, nx = sci.shape
    bands = [f"b{i}" for i in range(nb)] if bands is None else [str(b) for b in bands]
    if len(bands) != nb:
        raise InputError(f"bands has {len(bands)} names but sci has {nb} bands.")
    finite = np.isfinite(sci).all(0)
    outside = finite & ~valid
    # sky from the pixels around a footprint when there are enough, else from all finite ones
    sky_pixels = outside if outside.sum() >= 50 else finite
    sky, rms = background_stats(sci, sky_pixels)
    if err is None:
        err = np.broadcast_to(rms[:, None, None], sci.shape)
    rng = np.random.default_rng(random_state)
    pts, pts_sky, pts_rms = sci, sky, rms
    if host == "subtract":
        pts = unsharp(sci, finite, host_scale * float(psf_fwhm))
        pts_sky, pts_rms = background_stats(pts, sky_pixels)
    cloud = sample_points(pts, err, valid, pts_sky, pts_rms, n_samples=n_samples,
                          background=background, background_level=background_level,
                          psf_fwhm=float(psf_fwhm), colour_weight=float(colour_weight),
                          sampling=sampling, rng=rng, n_components=n_components,
                          points_per_pixel=points_per_pixel, smooth=colour_smoothing)
    n = cloud.features.shape[0]
    t0 = time.perf_counter()
    if n <= k_den:
        point_label, parent, sig, members = (np.zeros(n, np.int64), np.zeros(0, np.int64),
                                             np.zeros(0), [])
    elif method == "astrolink":
        point_label, parent, sig, members = _run_astrolink(cloud.features, k_den, S)
    else:
        point_label, parent, sig, members = _run_hdbscan(cloud.features, k_den)
    seconds = time.perf_counter() - t0
    flat = _pixel_labels(cloud.pixel, point_label, ny * nx, int(min_pixel_points))
    labels = np.where(valid.ravel(), flat, -1).reshape(ny, nx).astype(np.int32)
    lum = np.nansum(pts - pts_sky[:, None, None], axis=0)
    lum_var = np.sum(np.where(np.isfinite(err), err, 0.0) ** 2, axis=0)
    factor = luminosity_noise_factor(lum, np.sqrt(lum_var), finite, sky_pixels,
                                     float(psf_fwhm))
    snr = image_snr(labels, lum, lum_var, parent, factor)
    if min_snr:
        labels, parent, index = prune(labels, parent, snr >= float(min_snr))
        sig, snr, members = sig[index], snr[index], [members[i] for i in index]
        own = image_snr(labels, lum, lum_var, np.zeros_like(parent), factor)
        faint = np.flatnonzero(own < float(min_snr)) + 1   # own pixels not significant alone
        labels = np.where(np.isin(labels, faint), 0, labels).astype(np.int32)
    table = _table(labels, sci - sky[:, None, None], err, parent, sig, members, cloud.xy, bands)
    table.insert(3, "snr", snr)
    options = {"n_samples": int(n), "psf_fwhm": float(psf_fwhm),
               "colour_scale": cloud.colour_scale.tolist(), "colour_weight": float(colour_weight),
               "background": background, "background_level": background_level,
               "colour_smoothing": float(colour_smoothing), "host": host,
               "host_scale": float(host_scale), "min_snr": min_snr,
               "noise_factor": float(factor),
               "points_per_pixel": float(points_per_pixel),
               "k_den": int(k_den), "S": float(S), "sampling": sampling,
               "sky": sky.tolist(), "rms": rms.tolist(), "seconds": seconds,
               "random_state": random_state}
    return Structures(labels, table, method, options)


def _table(labels, flux, err, parent, sig, members, xy, bands):
    n = len(members)
    level = np.ones(n, dtype=np.int64)
    for i in range(n):                    # parents precede children (AstroLink order)
        if parent[i] > 0:
            level[i] = level[parent[i] - 1] + 1
    flat = labels.ravel()
    good = flat > 0
    npix = np.bincount(flat[good], minlength=n + 1)[1:]
    fl = flux.reshape(flux.shape[0], -1)[:, good]
    ev = (err.reshape(err.shape[0], -1)[:, good]) ** 2
    sums = np.stack([np.bincount(flat[good], weights=fl[b], minlength=n + 1)[1:]
                     for b in range(len(bands))], axis=1) if n else np.zeros((0, len(bands)))
    errs = np.sqrt(np.stack([np.bincount(flat[good], weights=ev[b], minlength=n + 1)[1:]
                             for b in range(len(bands))], axis=1)) if n else sums
    cen = np.array([xy[m].mean(0) for m in members]) if n else np.zeros((0, 2))
    data = {"id": np.arange(1, n + 1), "parent": parent, "significance": sig,
            "n_points": np.array([m.size for m in members], dtype=np.int64),
            "n_pixels": npix.astype(np.int64), "x": cen[:, 0], "y": cen[:, 1], "level": level}
    for j, b in enumerate(bands):
        data[f"flux_{b}"] = sums[:, j]
    for j, b in enumerate(bands):
        data[f"flux_err_{b}"] = errs[:, j]
    return pd.DataFrame(data)
