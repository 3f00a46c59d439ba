"""Typed options of the detection, morphology, structures and emission stages.

Declared like every stage's options (:mod:`galclust.options`): each default once,
each value checked on construction, each field a command-line flag. Imported by
:mod:`galclust.options`, so they are registered whenever run settings are made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from galclust.argtypes import number, whole
from galclust.errors import InputError, check_choice
from galclust.option_fields import check_int as _check_int
from galclust.option_fields import opt as _opt
from galclust.option_fields import stage_options
from galclust.sources import defaults as sources_defaults

__all__ = ["DetectOptions", "EmissionOptions", "MorphologyOptions", "StructuresOptions"]

METHODS, BACKGROUNDS, MODES = ("astrolink", "hdbscan", "off"), ("subtract", "keep"), (
    "galaxies", "tile")
HOSTS = ("auto", "keep", "subtract")


@stage_options("detect")
@dataclass(frozen=True)
class DetectOptions:
    """Options of the detection stage (see :func:`galclust.detect`).

    Raises
    ------
    InputError
        On construction, for an unknown deblending method or a value out of range.
    """

    nsigma: float = _opt(sources_defaults.NSIGMA, "--nsigma", "detection threshold in sigma of "
                         "the multi-band detection image", type=number(0, open_low=True))
    npixels: int = _opt(sources_defaults.NPIXELS, "--npixels", "fewest connected pixels of a "
                        "source", type=whole(1))
    deblend: str = _opt(sources_defaults.DEBLEND, "--deblend", "colour (topography and pixel "
                        "SEDs), watershed (the research recipe) or none")
    halo: int = _opt(sources_defaults.HALO, "--halo", "pixels read around each tile: sources "
                     "up to this size crossing a tile edge are detected whole", type=whole(0))

    def __post_init__(self) -> None:
        from galclust.errors import check_choice

        check_choice("deblend", self.deblend, sources_defaults.DEBLENDS)
        _check_int("npixels", self.npixels, 1)
        _check_int("halo", self.halo, 0)
        if not float(self.nsigma) > 0:
            raise InputError(f"nsigma={self.nsigma!r} must be > 0 (e.g. 2).")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`galclust.detect` (``deblend="none"`` is None)."""
        return {"nsigma": float(self.nsigma), "npixels": self.npixels,
                "deblend": None if self.deblend == "none" else self.deblend}


@stage_options("morphology")
@dataclass(frozen=True)
class MorphologyOptions:
    """Options of the morphology stage (see :func:`galclust.morphology`).

    Raises
    ------
    InputError
        On construction, for an unknown level or a value out of range.
    """

    band: str | None = _opt(None, "--morph-band", "band morphology is measured in (default: "
                            "the reddest)", metavar="BAND", own="--band")
    levels: str = _opt(",".join(sources_defaults.LEVELS), "--levels", "comma-separated: "
                       "galaxies (the segmentation map), detections (the detect stage's map), "
                       "clusters (each SED cluster of the pixel stage)")
    margin: int = _opt(sources_defaults.MARGIN, "--morph-margin", "pixels read around each "
                       "segment (its Petrosian and asymmetry regions reach past it)",
                       type=whole(0), own="--margin")

    def __post_init__(self) -> None:
        bad = [v for v in self.level_names if v not in sources_defaults.LEVELS]
        if bad or not self.level_names:
            raise InputError(f"levels={self.levels!r}: give a comma-separated list of "
                             f"{', '.join(sources_defaults.LEVELS)}.")
        _check_int("margin", self.margin, 0)

    @property
    def level_names(self) -> list[str]:
        return [v.strip() for v in self.levels.split(",") if v.strip()]

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@stage_options("structures")
@dataclass(frozen=True)
class StructuresOptions:
    """Options of the density-structures stage (see :func:`galclust.find_structures`).

    Raises
    ------
    InputError
        On construction, for an unknown method, background or mode, or a value out of
        range.
    """

    method: str = _opt("off", "--structure-method", "astrolink, hdbscan, or off (the "
                       "default in nightly runs: the stage is costly; galclust structures "
                       "uses astrolink)", own="--method")
    k_den: int = _opt(50, "--k-den", "density neighbours (AstroLink k_den; HDBSCAN "
                      "min_cluster_size)", type=whole(2))
    significance: float = _opt(5.0, "--significance", "AstroLink S: significance of a "
                               "structure against density noise, in sigma",
                               type=number(0, open_low=True))
    n_samples: int = _opt(0, "--samples", "points sampled per footprint (0: per pixel above "
                          "the background cut, AstroLink 400, HDBSCAN 10; 2,000 to 2x10^5)",
                          type=whole(0))
    background: str = _opt("subtract", "--background", "subtract a background cut from the "
                           "luminosity, or keep every positive pixel (faint structures)")
    psf_fwhm: float = _opt(2.0, "--psf-fwhm", "PSF FWHM in pixels (positions are scaled in "
                           "PSF widths)", type=number(0, open_low=True))
    host: str = _opt("auto", "--host", "subtract each galaxy's smooth light (a 1.5 PSF FWHM "
                     "unsharp mask: its clumps, even near a concentrated centre), or keep it "
                     "(the galaxies are structures themselves); auto: subtract per galaxy, "
                     "keep in tile mode")
    min_snr: float = _opt(5.0, "--min-snr", "image S/N a structure's light needs against the "
                          "image's own (calibrated) noise; 0 keeps every structure",
                          type=number(0))
    mode: str = _opt("galaxies", "--structures-mode", "galaxies (each catalog footprint) or "
                     "tile (the whole cube by tiles: a deep field)", own="--mode")
    random_state: int = _opt(0, "--seed", "random seed", type=whole(0))

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("background", self.background, BACKGROUNDS)
        check_choice("mode", self.mode, MODES)
        check_choice("host", self.host, HOSTS)
        _check_int("k_den", self.k_den, 2)
        _check_int("n_samples", self.n_samples, 0)
        _check_int("random_state", self.random_state, 0)
        if not float(self.significance) > 0 or not float(self.psf_fwhm) > 0:
            raise InputError(f"significance={self.significance!r} and psf_fwhm="
                             f"{self.psf_fwhm!r} must be > 0.")
        if not float(self.min_snr) >= 0:
            raise InputError(f"min_snr={self.min_snr!r} must be >= 0 (0 keeps every "
                             "structure).")

    @property
    def resolved_host(self) -> str:
        """``host`` with ``"auto"`` resolved: ``"subtract"`` per galaxy (the structures of
        interest are inside a known footprint), ``"keep"`` in tile mode (the galaxies of a
        deep field are structures themselves)."""
        if self.host != "auto":
            return self.host
        return "subtract" if self.mode == "galaxies" else "keep"

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`galclust.find_structures`."""
        return {"method": self.method, "k_den": self.k_den, "S": float(self.significance),
                "n_samples": self.n_samples or None, "background": self.background,
                "psf_fwhm": float(self.psf_fwhm), "host": self.resolved_host,
                "min_snr": float(self.min_snr), "random_state": self.random_state}


@stage_options("emission")
@dataclass(frozen=True)
class EmissionOptions:
    """Options of the emission-regions stage (see :func:`galclust.emission_regions`).

    Raises
    ------
    InputError
        On construction, for a value out of range.
    """

    band: str | None = _opt(None, "--emission-band", "the medium band for every galaxy "
                            "(default: the one holding Halpha, [OIII]+Hbeta or Pabeta at each "
                            "galaxy's catalog redshift)", metavar="BAND", own="--band")
    nsigma: float = _opt(3.0, "--excess-nsigma", "threshold on the PSF-smoothed excess S/N "
                         "of a pixel", type=number(0, open_low=True), own="--nsigma")
    psf_fwhm: float = _opt(2.0, "--psf-fwhm", "PSF FWHM in pixels (positions are scaled in "
                           "PSF widths)", type=number(0, open_low=True))
    margin: int = _opt(16, "--emission-margin", "pixels around each galaxy's box",
                       type=whole(0), own="--margin")

    def __post_init__(self) -> None:
        _check_int("margin", self.margin, 0)
        if not float(self.nsigma) > 0 or not float(self.psf_fwhm) > 0:
            raise InputError(f"nsigma={self.nsigma!r} and psf_fwhm={self.psf_fwhm!r} must "
                             "be > 0.")

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
