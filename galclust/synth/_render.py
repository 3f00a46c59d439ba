"""Strip-by-strip rendering of a planned survey into FITS mosaics.

Each source is rendered once, into its own stamp, when the first strip it
overlaps comes up, and dropped after the last one; a strip sums the stamps
that overlap it in catalog-id order, so the data do not depend on the strip
height. Noise comes from one random stream per (band, row), generated in a
background thread while the main thread renders.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from galclust.synth._fitsio import StripImage, wcs_cards
from galclust.synth._plan import Plan, Source
from galclust.synth.artefacts import blob_model, claim_weight, spike_flux_for_visibility, star_model
from galclust.synth.galaxy import DETECT_NSIGMA, galaxy_snr, render_galaxy
from galclust.synth.seds import NIRCAM_BANDS, stellar_fluxes

__all__ = ["noise_file_name", "render_mosaics"]


@dataclass
class _Stamp:
    iy0: int
    ix0: int
    model: np.ndarray          # (band, h, w) float32
    weight: np.ndarray         # (h, w) float32 segmentation ownership weight
    dom: np.ndarray | None     # (h, w) int8 dominant component (galaxies)


def noise_file_name(band: str, kind: str) -> str:
    """``{band}_err.fits`` or ``{band}_wht.fits``."""
    return f"{band}_{'err' if kind == 'err' else 'wht'}.fits"


def _render(src: Source, plan: Plan, fwhm: np.ndarray) -> tuple[_Stamp, np.ndarray, float]:
    """Render one planned source: its stamp, total flux per band and S/N."""
    h = src.half
    iy0, ix0 = int(round(src.y)) - h, int(round(src.x)) - h
    shape = (2 * h, 2 * h)
    cy, cx = src.y - iy0, src.x - ix0
    err = plan.rms * float(plan.coverage.noise_factor(plan.coverage.distance(src.y, src.x)))
    dom = None
    if src.kind == "galaxy":
        model, parts = render_galaxy(src.components, shape, cy, cx, fwhm)
        model *= np.float32(src.snr / galaxy_snr(model, err))
        snr = src.snr
        dom = np.argmax(parts, axis=0).astype(np.int8)
    elif src.kind == "star":
        sed = stellar_fluxes(plan.wavelengths, src.temperature)
        sed = sed / sed.mean()
        if src.spike_length > 0:
            scale = spike_flux_for_visibility(fwhm, sed, err, src.spike_length, h - 1.0)
            model = star_model(shape, cy, cx, fwhm, scale * sed, with_spikes=True,
                               spike_extent=h - 1.0)
            snr = galaxy_snr(model, err)
        else:
            model = star_model(shape, cy, cx, fwhm, sed, with_spikes=False)
            model *= src.snr / galaxy_snr(model, err)
            snr = src.snr
    else:
        model = blob_model(shape, cy, cx, sigma=src.sigma, q=src.q, theta=src.theta,
                           sed=src.sed, fwhm=fwhm)
        model *= src.peak_snr * np.sqrt(np.sum(err**2)) / model.sum(axis=0).max()
        snr = galaxy_snr(model, err)
    if src.claim is not None:
        weight = claim_weight(shape, cy, cx, a=src.claim[0], b=src.claim[1],
                              theta=src.claim[2])
    else:
        weight = model.sum(axis=0).astype(np.float32)
    stamp = _Stamp(iy0, ix0, model.astype(np.float32), weight, dom)
    return stamp, model.sum(axis=(1, 2), dtype=float), float(snr)


def _band_noise(seed: int, band: int, y0: int, y1: int, nx: int) -> np.ndarray:
    """Standard normal noise of rows y0..y1-1 of one band: a stream per (band, row)."""
    out = np.empty((y1 - y0, nx), dtype=np.float32)
    for r in range(y0, y1):
        rng = np.random.default_rng([seed, 1, band, r])
        out[r - y0] = rng.standard_normal(nx, dtype=np.float32)
    return out


def _open_outputs(stack: contextlib.ExitStack, root: str, plan: Plan, names: list[str],
                  fwhm: np.ndarray, kinds: dict[str, str], shape: tuple[int, int],
                  pixel_scale: float, ra0: float, dec0: float
                  ) -> tuple[list[StripImage], list[StripImage], StripImage, StripImage]:
    common: dict[str, Any] = {**wcs_cards(shape, pixel_scale=pixel_scale, ra0=ra0, dec0=dec0),
                              "ORIGIN": "galclust.synth", "PIXAR_A2": pixel_scale**2}
    nircam = all(b in NIRCAM_BANDS for b in names)
    sci_f, noise_f = [], []
    for b, w, fw in zip(names, plan.wavelengths, fwhm, strict=True):
        cards = {**common, "FILTER": b, "PHOTPLAM": float(w) * 1e4,
                 "PSFFWHM": (float(fw) * pixel_scale, "PSF FWHM, arcsec")}
        if nircam:
            cards.update(TELESCOP="JWST", INSTRUME="NIRCAM")
        sci_f.append(stack.enter_context(StripImage(
            os.path.join(root, f"{b}_sci.fits"), shape, np.float32,
            {**cards, "BUNIT": "nJy", "EXTNAME": "SCI"})))
        is_err = kinds[b] == "err"
        noise_f.append(stack.enter_context(StripImage(
            os.path.join(root, noise_file_name(b, kinds[b])), shape, np.float32,
            {**cards, "BUNIT": "nJy" if is_err else "nJy**-2",
             "EXTNAME": "ERR" if is_err else "WHT"})))
    seg_f = stack.enter_context(StripImage(os.path.join(root, "seg.fits"), shape, np.int32,
                                           {**common, "EXTNAME": "SEGM"}))
    tru_f = stack.enter_context(StripImage(os.path.join(root, "truth_components.fits"),
                                           shape, np.int16, {**common, "EXTNAME": "TRUTH"}))
    return sci_f, noise_f, seg_f, tru_f


def _paste(stamps: dict[int, _Stamp], y0: int, y1: int, model: np.ndarray,
           best_w: np.ndarray, best_id: np.ndarray) -> list[tuple]:
    """Add every overlapping stamp into the strip (in id order) and track ownership."""
    nx = model.shape[-1]
    placed = []
    for i in sorted(stamps):
        st = stamps[i]
        sh, sw = st.weight.shape
        a0, a1 = max(y0, st.iy0), min(y1, st.iy0 + sh)
        b0, b1 = max(0, st.ix0), min(nx, st.ix0 + sw)
        if a1 <= a0 or b1 <= b0:
            continue
        ry, rx = slice(a0 - y0, a1 - y0), slice(b0, b1)
        sy, sx = slice(a0 - st.iy0, a1 - st.iy0), slice(b0 - st.ix0, b1 - st.ix0)
        model[:, ry, rx] += st.model[:, sy, sx]
        w, cur, ids = st.weight[sy, sx], best_w[ry, rx], best_id[ry, rx]
        upd = w > cur
        cur[upd] = w[upd]
        ids[upd] = i + 1
        placed.append((i, ry, rx, sy, sx))
    return placed


def render_mosaics(root: str, plan: Plan, names: list[str], fwhm: np.ndarray,
                   kinds: dict[str, str], shape: tuple[int, int], *, seed: int,
                   strip_rows: int, pixel_scale: float, ra0: float, dec0: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write every mosaic of the survey, strip by strip.

    Parameters
    ----------
    root : str
        Output folder.
    plan : Plan
        The planned sources, coverage and noise.
    names : list of str
        Band names.
    fwhm : numpy.ndarray
        ``(band,)`` PSF FWHM in pixels.
    kinds : dict
        Band -> ``"err"`` or ``"weight"``.
    shape : (int, int)
        Mosaic shape.
    seed : int
        Seed of the noise streams.
    strip_rows : int
        Rows per strip (memory only; the data do not depend on it).
    pixel_scale, ra0, dec0 : float
        WCS parameters.

    Returns
    -------
    fluxes : numpy.ndarray
        ``(source, band)`` total model flux.
    snrs : numpy.ndarray
        ``(source,)`` S/N (:func:`~galclust.synth.galaxy.galaxy_snr`).
    npix : numpy.ndarray
        ``(source,)`` segmentation pixels of each source.
    """
    ny, nx = shape
    n, nb = len(plan.sources), len(names)
    sig_d = np.float32(np.sqrt(np.sum(plan.rms**2)) * DETECT_NSIGMA)
    fluxes = np.zeros((n, nb))
    snrs = np.full(n, np.nan)
    counts = np.zeros(n + 1, dtype=np.int64)
    tops = np.array([int(round(s.y)) - s.half for s in plan.sources])
    order = np.argsort(tops, kind="stable")
    stamps: dict[int, _Stamp] = {}
    ptr = 0
    rows = min(strip_rows, ny)
    model_buf = np.empty((nb, rows, nx), dtype=np.float32)  # reused by every strip
    w_buf = np.empty((rows, nx), dtype=np.float32)
    id_buf = np.empty((rows, nx), dtype=np.int32)
    with contextlib.ExitStack() as stack:
        sci_f, noise_f, seg_f, tru_f = _open_outputs(stack, root, plan, names, fwhm, kinds,
                                                     shape, pixel_scale, ra0, dec0)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=2))
        for y0 in range(0, ny, strip_rows):
            y1 = min(ny, y0 + strip_rows)
            h = y1 - y0
            # noise of two bands ahead is generated in the background (numpy releases the GIL)
            jobs: dict[int, Future] = {b: pool.submit(_band_noise, seed, b, y0, y1, nx)
                                       for b in range(min(2, nb))}
            while ptr < n and tops[order[ptr]] < y1:
                i = int(order[ptr])
                ptr += 1
                stamps[i], fluxes[i], snrs[i] = _render(plan.sources[i], plan, fwhm)
            model, best_w, best_id = model_buf[:, :h], w_buf[:h], id_buf[:h]
            model.fill(0.0)
            best_w.fill(0.0)
            best_id.fill(0)
            placed = _paste(stamps, y0, y1, model, best_w, best_id)
            dist = plan.coverage.distance_rows(y0, y1, nx)
            covered = dist >= 0
            factor = plan.coverage.noise_factor(dist).astype(np.float32)
            del dist
            detect = covered & (model.sum(axis=0) > sig_d * factor) & (best_w > 0)
            seg = np.where(detect, best_id, np.int32(0))
            truth = np.full((h, nx), -1, dtype=np.int16)
            for i, ry, rx, sy, sx in placed:
                dom = stamps[i].dom
                if dom is not None:
                    sel = seg[ry, rx] == i + 1
                    truth[ry, rx][sel] = dom[sy, sx][sel]
            counts += np.bincount(seg.ravel(), minlength=n + 1)
            seg_f.write(y0, seg)
            tru_f.write(y0, truth)
            del seg, truth, detect, placed
            for bi, b in enumerate(names):
                noise = jobs.pop(bi).result()
                if bi + 2 < nb:
                    jobs[bi + 2] = pool.submit(_band_noise, seed, bi + 2, y0, y1, nx)
                err = np.float32(plan.rms[bi]) * factor
                noise *= err
                noise += model[bi]  # noise now holds sci
                if kinds[b] == "err":
                    noise[~covered] = np.nan
                    err[~covered] = np.nan
                    noise_f[bi].write(y0, err)
                else:
                    noise[~covered] = 0.0
                    noise_f[bi].write(y0, np.where(covered, 1.0 / err**2, np.float32(0.0)))
                sci_f[bi].write(y0, noise)
            for i in [i for i, st in stamps.items() if st.iy0 + st.weight.shape[0] <= y1]:
                del stamps[i]
    return fluxes, snrs, counts[1:]
