"""PSF matching at ingest: read each band's PSF image once, plan the kernels and halos.

A manifest that names a PSF image per band has every band matched to the
broadest PSF (largest FWHM, :func:`galclust.psf.matching_kernels`). The PSFs
are read and the kernels built before any pixel of a mosaic; each block task
then reads its block with a halo of its kernel's radius (clipped at the
mosaic's edge), convolves with :func:`galclust.psf.convolve_matched` and
writes only the block's own chunks, so the cube equals the convolution of the
whole mosaic, without seams (:mod:`galclust.store.blocks`).

The cube's ``psf`` attribute records what was done::

    {"status": "matched", "target_band": "F444W",
     "fwhm_px": {"F150W": 1.6, ...},        # each band's native PSF
     "kernel_radius": {"F150W": 18, ..., "F444W": 0},
     "method": "...", "window_alpha": 0.25, "kernel_fraction": 0.999, "min_weight": 0.5}

or ``{"status": "declared"}`` (``psf_matched = true``) or ``{"status": "none"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from galclust.config import Manifest
from galclust.errors import InputError
from galclust.psf import (
    DEFAULT_WINDOW_ALPHA,
    KERNEL_FRACTION,
    MIN_WEIGHT,
    matching_kernels,
    psf_fwhm,
)
from galclust.store.fits import ImageReader, image_info

__all__ = ["METHOD", "PsfPlan", "plan_psf", "read_psf"]

#: Names the kernel construction in the band part keys: changing how kernels
#: are made (window, regularization, crop) must change this, so cubes re-ingest.
METHOD = (f"galclust.psf.matching_kernels:tukey{DEFAULT_WINDOW_ALPHA}:"
          f"frac{KERNEL_FRACTION}:minw{MIN_WEIGHT}")
#: Largest PSF image side galclust reads (a bigger image is a mosaic given by mistake).
MAX_PSF_SIDE = 1025
#: Relative tolerance of a PSF header's pixel scale (``PIXELSCL``) against the mosaic's.
_SCALE_TOLERANCE = 0.02


@dataclass(frozen=True)
class PsfPlan:
    """What ingest does about the bands' PSFs.

    Attributes
    ----------
    status : {"matched", "declared", "none"}
    target_band : str or None
        The band with the broadest PSF (``"matched"`` only).
    fwhm : dict
        Band -> native PSF FWHM in pixels.
    kernels : dict
        Band -> cropped matching kernel, None for the target band.
    """

    status: str
    target_band: str | None = None
    fwhm: dict[str, float] = field(default_factory=dict)
    kernels: dict[str, np.ndarray | None] = field(default_factory=dict)

    def radius(self, band: str) -> int:
        """The halo the band's block reads need (0: not convolved)."""
        k = self.kernels.get(band)
        return 0 if k is None else (k.shape[0] - 1) // 2

    def attrs(self) -> dict[str, Any]:
        """The cube's ``psf`` attribute (see the module docstring)."""
        if self.status != "matched":
            return {"status": self.status}
        return {"status": "matched", "target_band": self.target_band,
                "fwhm_px": {b: round(f, 4) for b, f in self.fwhm.items()},
                "kernel_radius": {b: self.radius(b) for b in self.kernels},
                "method": METHOD, "window_alpha": DEFAULT_WINDOW_ALPHA,
                "kernel_fraction": KERNEL_FRACTION, "min_weight": MIN_WEIGHT}


def read_psf(path: str, hdu: int | str | None, *, band: str,
             pixel_scale: float | None = None) -> np.ndarray:
    """Read one band's PSF image (float64), checking its size and pixel scale.

    Parameters
    ----------
    path : str
        The PSF FITS file (local or URL).
    hdu : int or str, optional
        Its HDU (default: the first 2-D image).
    band : str
        The band, for messages.
    pixel_scale : float, optional
        The mosaic's arcsec per pixel; a header ``PIXELSCL`` (WebbPSF) that
        differs by more than 2% is refused.

    Raises
    ------
    MissingInputError, InputError
        The file is missing, unreadable, not 2-D, too large to be a PSF stamp,
        or sampled on another pixel scale.
    """
    what = f"band {band} PSF image"
    info = image_info(path, hdu, what=what)
    ny, nx = info.shape
    if max(ny, nx) > MAX_PSF_SIDE:
        raise InputError(f"{what} {path}: {nx}x{ny} px is larger than a PSF stamp (at most "
                         f"{MAX_PSF_SIDE} px a side); is it a mosaic? Give the band's PSF "
                         "image, e.g. a 41x41 px stamp on the mosaic's pixel grid.")
    scale = info.header.get("PIXELSCL")
    if pixel_scale and isinstance(scale, int | float) and scale > 0 \
            and abs(float(scale) / pixel_scale - 1.0) > _SCALE_TOLERANCE:
        raise InputError(f"{what} {path}: PIXELSCL = {scale} arcsec but the mosaic's pixels "
                         f"are {pixel_scale:.4g} arcsec; give the PSF sampled on the mosaic's "
                         "pixel grid (e.g. WebbPSF's detector-sampled extension, or resample "
                         "it).")
    with ImageReader(info, what=f"{what} ({path})", dtype=np.float64) as reader:
        return reader.read(slice(0, ny), slice(0, nx))


def plan_psf(manifest: Manifest, *, pixel_scale: float | None = None) -> PsfPlan:
    """Read the manifest's PSF images (if any) and build the matching kernels.

    Parameters
    ----------
    manifest : Manifest
    pixel_scale : float, optional
        The mosaic's arcsec per pixel (checked against PSF headers).

    Returns
    -------
    PsfPlan

    Raises
    ------
    InputError
        A PSF image that cannot be used, naming its band and file.
    """
    status = manifest.psf_status
    if status != "matched":
        return PsfPlan(status)
    psfs = {}
    for b in manifest.bands:
        psfs[b.name] = read_psf(b.psf, b.psf_hdu, band=b.name, pixel_scale=pixel_scale)
    try:
        target, kernels = matching_kernels(psfs)
    except InputError as exc:
        paths = {b.name: b.psf for b in manifest.bands}
        band = next((n for n in paths if f"band {n} " in str(exc)), None)
        where = f" ({paths[band]})" if band else ""
        raise InputError(f"{exc}{where}") from None
    fwhm = {band: psf_fwhm(p) for band, p in psfs.items()}
    return PsfPlan("matched", target, fwhm, kernels)


def band_psf_key(band: str, plan: PsfPlan, prov_checksum: Any) -> str:
    """The suffix of a band's part key under PSF matching (see ``ingest_parts._parts``).

    The target band's pixels are the unconvolved ones (no suffix: they are the
    same whether the PSFs are matched, declared or unknown); another band's
    depend on its PSF, the target's PSF and :data:`METHOD`.
    """
    if plan.status != "matched" or band == plan.target_band:
        return ""
    return (f"|psf:{prov_checksum(f'{band}.psf')}|target:{plan.target_band}:"
            f"{prov_checksum(f'{plan.target_band}.psf')}|{METHOD}")
