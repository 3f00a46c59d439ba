"""Ingest's block tasks: read one block of every changed input, write whole zarr chunks.

A block is all bands x a row of square tiles (as many chunks as fit in
:data:`TASK_BYTES` of raw input); each task reads only its block from every
FITS file and writes whole chunks, so no two tasks write the same chunk and
memory is bounded by the block, not by the mosaic.

A band without an error or weight map gets its errors estimated from its
science image, block by block (:func:`galclust.sources.noise.estimate_noise`
on the whole block before its chunks are written); each block's estimate
summary is returned in its statistics under ``"noise"``.

A band with a PSF-matching kernel (:mod:`galclust.store.psfmatch`) is read
with a halo of the kernel's radius around the block (clipped at the mosaic's
edge), turned into errors, convolved (:func:`galclust.psf.convolve_matched`)
and cropped back to the block, so its chunks equal those of the whole mosaic
convolved at once. A band whose errors are estimated has them estimated from
its unconvolved pixels (block plus halo), then convolved with it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
from astropy.utils.exceptions import AstropyUserWarning

from galclust.errors import InputError
from galclust.store.cube import _open_group
from galclust.store.fits import ImageInfo, ImageReader, checksum

__all__ = ["TASK_BYTES", "plan_blocks", "run_block_tasks"]

#: Largest number of raw bytes one block task reads (sets chunks per task).
TASK_BYTES = 256 * 2**20
#: Bytes per pixel a band whose errors are estimated costs its block task: its sci
#: and err kept for the whole block (float32) and the peak of estimate_noise's work
#: arrays (~130 bytes/px measured with tracemalloc on a 1024 x 2048 block).
ESTIMATE_PX_BYTES = 8 + 136
#: Bytes per pixel a PSF-matched band keeps for its whole block (sci and err, float32).
PSF_PX_BYTES = 8
#: Peak bytes per pixel of one band's convolution (float64 inputs, weights, three
#: overlap-add convolutions and their outputs), one band at a time.
PSF_PEAK_PX_BYTES = 96


def _what(band: str, kind: str, path: str) -> str:
    return f"band {band} {kind} image ({path})"


@dataclass(frozen=True)
class _BandJob:
    index: int
    sci: ImageInfo
    noise: ImageInfo | None  # None: estimated from the sci image
    noise_kind: str
    what_sci: str
    what_noise: str
    kernel: np.ndarray | None = None  # PSF-matching kernel (odd square), None: not convolved

    @property
    def halo(self) -> int:
        return 0 if self.kernel is None else (self.kernel.shape[0] - 1) // 2


@dataclass(frozen=True)
class _BlockJob:
    url: str
    ys: tuple[int, int]
    xs: list[tuple[int, int]]
    n_bands: int
    bands: tuple[_BandJob, ...]
    seg: ImageInfo | None
    shape: tuple[int, int] = (0, 0)  # the mosaic's (ny, nx): where halos are clipped


def _to_err(sci: np.ndarray, err: np.ndarray, kind: str) -> bool:
    """Turn a noise block into 1-sigma errors and mark no-coverage pixels, in place.

    Weight maps are inverse variances: ``err = 1/sqrt(w)``. Zero or negative
    weight, a non-finite or non-positive error, or a NaN flux all mean "no
    coverage": ``err = +inf`` and ``sci = 0`` there.

    Returns
    -------
    bool
        True when no pixel of the block is covered.
    """
    # In place on freshly read float32 blocks: this runs on every pixel, so it
    # makes as few passes as it can (the machine is memory-bound here).
    covered = err > 0  # False for NaN, zero and negative noise
    covered &= err < np.inf
    covered &= np.isfinite(sci)
    if kind == "weight":
        with np.errstate(divide="ignore", invalid="ignore"):
            np.sqrt(err, out=err)
            np.divide(1.0, err, out=err)
    if covered.all():  # the common case inside a mosaic: nothing to mark
        return False
    uncovered = np.logical_not(covered, out=covered)
    np.copyto(err, np.float32(np.inf), where=uncovered)
    np.copyto(sci, np.float32(0), where=uncovered)
    return bool(uncovered.all())


def _estimate_block(sci: np.ndarray, info: ImageInfo) -> tuple[np.ndarray, dict | None]:
    """1-sigma errors of one band's block estimated from its science pixels.

    NaN pixels, and exact zeros of a float image (the usual "no coverage" fill),
    are left out and get an infinite error; a block without any other pixel has
    no coverage (all +inf, no summary). A block whose coverage is too sparse for
    the tiled estimate (under a quarter of every background tile) gets one
    error, the robust (MAD) standard deviation of its pixels.
    """
    from galclust.sources.noise import estimate_noise

    mask = sci == 0 if int(info.header.get("BITPIX", -32)) < 0 else np.zeros(sci.shape, bool)
    usable = np.isfinite(sci) & ~mask
    if usable.sum() < 2:
        return np.full(sci.shape, np.inf, np.float32), None
    with warnings.catch_warnings():  # sparse coverage: all-NaN tiles, said below
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)
        err, summary = estimate_noise(sci, mask=mask)
    err = np.asarray(err, np.float32)
    if not np.isfinite(err[usable]).any():
        values = sci[usable].astype(np.float64)
        sigma = 1.4826 * float(np.median(np.abs(values - np.median(values))))
        err[usable] = sigma if sigma > 0 else np.inf
        summary = {**summary, "method": "robust standard deviation of the block (coverage "
                   "too sparse for the tiled estimate)", "rms_median": sigma,
                   "correlation_factor": 1.0}
    return err, summary


def _whole_block(job: _BlockJob, bj: _BandJob, rs: ImageReader, rn: ImageReader | None
                 ) -> tuple[np.ndarray, np.ndarray, dict | None, int]:
    """One band's sci and err over the whole block (errors estimated or read; PSF-matched
    with a halo when the band has a kernel), no-coverage marked.

    Returns sci, err, the noise-estimate summary (or None) and the bytes read.
    """
    (y0, y1), bx0, bx1 = job.ys, job.xs[0][0], job.xs[-1][1]
    h = bj.halo
    ny, nx = job.shape if h else (y1, bx1)
    ya, yb, xa, xb = max(0, y0 - h), min(ny, y1 + h), max(0, bx0 - h), min(nx, bx1 + h)
    ys, xs = slice(ya, yb), slice(xa, xb)
    sci = rs.read(ys, xs)
    summary = None
    if rn is None:
        err, summary = _estimate_block(sci, bj.sci)
        nbytes = sci.size * rs.file_itemsize
    else:
        err = rn.read(ys, xs)
        nbytes = sci.size * (rs.file_itemsize + rn.file_itemsize)
    _to_err(sci, err, bj.noise_kind)
    if bj.kernel is not None:
        from galclust.psf import convolve_matched

        sci, err = convolve_matched(sci, err, bj.kernel)
        inner = (slice(y0 - ya, y1 - ya), slice(bx0 - xa, bx1 - xa))
        sci, err = np.ascontiguousarray(sci[inner]), np.ascontiguousarray(err[inner])
    return sci, err, summary, nbytes


def _ingest_block(job: _BlockJob) -> dict[str, Any]:
    """Read one block of every input that changed and write its zarr chunks.

    Works one chunk at a time, each held as one C-contiguous (band, y, x)
    array of exactly the chunk's shape: zarr then encodes it as it is, without
    the fill-and-copy it does for a chunk cut out of a larger array.

    Returns the block's statistics: bytes read, the segmentation ids present
    and, per band index whose errors were estimated, the estimate's summary.
    """
    group = _open_group(job.url, "r+")
    # write_empty_chunks=True skips zarr's per-chunk "all fill value?" pass;
    # chunks with no coverage at all go through the checking array instead, so
    # they are not stored (or a stale one is removed).
    sci_arr, err_arr = group["sci"], group["err"]
    sci_w = sci_arr.with_config({"write_empty_chunks": True})
    err_w = err_arr.with_config({"write_empty_chunks": True})
    y0, y1 = job.ys
    ys = slice(y0, y1)
    nread = 0
    seg_ids: set[int] = set()
    readers = [(bj, ImageReader(bj.sci, what=bj.what_sci),
                ImageReader(bj.noise, what=bj.what_noise) if bj.noise is not None else None)
               for bj in job.bands]
    seg_reader = (ImageReader(job.seg, what=f"segmentation map ({job.seg.path})", dtype=np.int64)
                  if job.seg else None)
    whole = len(readers) == job.n_bands  # every band: whole chunks, no read-modify-write
    band_index = np.array([bj.index for bj, _, _ in readers], dtype=np.intp)
    # raw FITS bytes read per pixel of a chunk, whatever the files' BITPIX
    band_px_bytes = sum(rs.file_itemsize + (rn.file_itemsize if rn else 0)
                        for bj, rs, rn in readers if rn is not None and bj.kernel is None)
    noise: dict[int, dict[str, Any]] = {}
    whole_block: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        bx0 = job.xs[0][0]
        for i, (bj, rs, rn) in enumerate(readers):  # estimated or PSF-matched: whole block
            if rn is None or bj.kernel is not None:
                block, err_block, summary, nbytes = _whole_block(job, bj, rs, rn)
                whole_block[i] = (block, err_block)
                nread += nbytes
                if summary is not None:
                    noise[bj.index] = summary
        for xa, xb in job.xs:
            xs = slice(xa, xb)
            if readers:
                sci = np.empty((len(readers), y1 - y0, xb - xa), np.float32)
                err = np.empty_like(sci)
                empty = True
                for i, (bj, rs, rn) in enumerate(readers):
                    if i in whole_block:  # no-coverage already marked
                        block, err_block = whole_block[i]
                        sci[i] = block[:, xa - bx0:xb - bx0]
                        err[i] = err_block[:, xa - bx0:xb - bx0]
                        empty &= not bool((err[i] < np.inf).any())
                    else:
                        rs.read(ys, xs, out=sci[i])
                        rn.read(ys, xs, out=err[i])
                        empty &= _to_err(sci[i], err[i], bj.noise_kind)
                nread += sci[0].size * band_px_bytes
                if whole:
                    for arr, fast, data in ((sci_arr, sci_w, sci), (err_arr, err_w, err)):
                        (arr if empty else fast)[:, ys, xs] = data
                else:  # the changed bands only: one read-modify-write per chunk
                    sci_arr.oindex[band_index, ys, xs] = sci
                    err_arr.oindex[band_index, ys, xs] = err
                del sci, err
            if seg_reader is not None:
                seg = seg_reader.read(ys, xs)  # int64: ids exactly as in the file
                nread += seg.size * seg_reader.file_itemsize
                lo, hi = int(seg.min()), int(seg.max())
                if lo < 0 or hi > np.iinfo(np.int32).max:
                    raise InputError(
                        f"segmentation map ({job.seg.path}): ids from {lo} to {hi} at rows "
                        f"{y0}:{y1}; galclust stores ids as int32 (0 = sky, 1..2147483647). "
                        "Renumber the segmentation map and the catalog ids.")
                seg_int = seg.astype(np.int32)
                del seg
                group["seg"][ys, xs] = seg_int
                # hash-based unique: O(n), unlike np.unique's sort
                seg_ids.update(pd.unique(seg_int.ravel()).tolist())
    finally:
        for _, rs, rn in readers:
            rs.close()
            if rn is not None:
                rn.close()
        if seg_reader is not None:
            seg_reader.close()
    seg_ids.discard(0)
    return {"bytes": nread, "seg_ids": sorted(seg_ids), "noise": noise}


def plan_blocks(url: str, inputs: Any, tile: int, bands: Sequence[int],
                 write_seg: bool) -> list[_BlockJob]:
    """The block tasks: one per row of tiles, split so each reads at most :data:`TASK_BYTES`.

    ``inputs.psf`` (a :class:`~galclust.store.psfmatch.PsfPlan`, optional) gives
    the PSF-matching kernel of each band; a block's memory then also holds each
    matched band's block plus its halo and one band's convolution at a time.
    """
    ny, nx = inputs.shape
    m = inputs.manifest
    psf = getattr(inputs, "psf", None)
    kernels = psf.kernels if psf is not None else {}
    band_jobs = tuple(
        _BandJob(i, inputs.sci[i], inputs.noise[i], m.bands[i].noise_kind,
                 _what(m.bands[i].name, "sci", inputs.sci[i].path),
                 "" if inputs.noise[i] is None else
                 _what(m.bands[i].name, m.bands[i].noise_kind, inputs.noise[i].path),
                 kernels.get(m.bands[i].name))
        for i in bands
    )
    n_est = sum(bj.noise is None for bj in band_jobs)
    n_psf = sum(bj.kernel is not None for bj in band_jobs)
    halo = max((bj.halo for bj in band_jobs), default=0)
    # a matched band's block plus halo, per pixel of the block (rows of tiles, halo above/below)
    grow = (tile + 2 * halo) / tile
    px_bytes = ((2 * len(band_jobs) + 1) * 4 + n_est * ESTIMATE_PX_BYTES
                + (n_psf * PSF_PX_BYTES + (PSF_PEAK_PX_BYTES if n_psf else 0)) * grow)
    per_chunk = max(1, int(px_bytes * tile * tile))
    chunks_per_task = max(1, TASK_BYTES // per_chunk)
    jobs = []
    for y0 in range(0, ny, tile):
        xs = [(x0, min(x0 + tile, nx)) for x0 in range(0, nx, tile)]
        for k in range(0, len(xs), chunks_per_task):
            jobs.append(_BlockJob(url, (y0, min(y0 + tile, ny)), xs[k:k + chunks_per_task],
                                  len(m.bands), band_jobs, inputs.seg if write_seg else None,
                                  (ny, nx)))
    return jobs


def run_block_tasks(jobs: list[_BlockJob], to_hash: list[str], client: Any,
              progress: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the block tasks and the checksum tasks in one graph; return both results."""
    tasks = [dask.delayed(_ingest_block, pure=False)(job, dask_key_name=f"ingest-block-{i}")
             for i, job in enumerate(jobs)]
    tasks += [dask.delayed(checksum, pure=False)(path, dask_key_name=f"ingest-checksum-{i}")
              for i, path in enumerate(to_hash)]
    if client is not None:
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as dprogress

            dprogress(futures)
        results = client.gather(futures)
    elif progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=1.0):
            results = list(dask.compute(*tasks, scheduler="threads"))
    else:
        results = list(dask.compute(*tasks, scheduler="threads"))
    return results[:len(jobs)], results[len(jobs):]
