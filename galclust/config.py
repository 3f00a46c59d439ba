"""Typed, validated configuration: the survey manifest.

A survey manifest is a TOML file written by the user::

    [survey]
    name = "ceers-p1"
    # psf_matched = true        # the mosaics already share one PSF (else give psf per band)

    [[bands]]
    name = "F150W"
    wavelength = 1.501          # pivot wavelength, micron
    sci = "f150w_sci.fits"      # relative paths are relative to the manifest
    err = "f150w_err.fits"      # or: weight = "f150w_wht.fits" (inverse variance)
    unit = "nJy"                # recommended; see FLUX_UNITS
    psf = "f150w_psf.fits"      # optional: PSF image on the mosaic grid (every band or none)
    # sci_hdu / err_hdu / weight_hdu / psf_hdu: HDU index or name (default: first with data)

    [segmentation]              # the survey's own segmentation map and catalog ...
    path = "seg.fits"

    [catalog]
    path = "catalog.parquet"    # FITS, CSV or parquet
    id = "id"                   # column names (these are the defaults)
    ra = "ra"
    dec = "dec"
    redshift = "z_phot"         # optional

    [labels]                    # optional inspection labels
    path = "labels.csv"
    id = "id"
    reliable = "reliable"
    reason = "reason"

A survey that brings no segmentation map and no catalog leaves out both
``[segmentation]`` and ``[catalog]`` (giving only one of them is an error):
ingest then detects the sources on the cube it writes
(:mod:`galclust.store.ingest_detect`), with the options of an optional
``[detection]`` table (:class:`galclust.options.DetectOptions`). A band
without an error or weight map (or with ``err = "estimate"``) gets errors
estimated from its image (:func:`galclust.sources.estimate_noise`)::

    [[bands]]
    name = "F150W"
    wavelength = 1.501
    sci = "f150w_sci.fits"
    err = "estimate"            # or leave out err and weight: the same

    [detection]                 # optional: nsigma, npixels, deblend, halo
    deblend = "colour"          # "colour", "watershed" or "none"

With a ``psf`` for every band, ingest matches every band to the broadest PSF
(:mod:`galclust.store.psfmatch`); ``psf_matched = true`` declares the mosaics
matched already; with neither, the cube records that the PSFs are unknown
(:mod:`galclust.config_psf`).

Paths may be local or ``s3://bucket/key``. Every key is checked: a misspelt
key raises :class:`~galclust.errors.ManifestError` naming the file, the table
and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from galclust.config_psf import check_psf_keys, psf_matched_flag
from galclust.config_units import FLUX_UNITS, canonical_unit, unit_warning, warn_units
from galclust.errors import ManifestError, did_you_mean
from galclust.paths import is_url, local_path

if TYPE_CHECKING:
    from galclust.options import DetectOptions

__all__ = [
    "FLUX_UNITS",
    "BandSpec",
    "CatalogSpec",
    "ESTIMATE",
    "LabelsSpec",
    "Manifest",
    "SegmentationSpec",
    "canonical_unit",
    "load_manifest",
    "unit_warning",
    "warn_units",
]

#: ``err = "estimate"``: the band's errors are estimated from its image.
ESTIMATE = "estimate"


def _resolve(path: str, base: str) -> str:
    """``path`` resolved against ``base``; ``file://`` stripped from both (a local path)."""
    path, base = local_path(path), local_path(base)
    if is_url(path) or os.path.isabs(path):
        return path
    if is_url(base):
        return base.rstrip("/") + "/" + path
    return os.path.normpath(os.path.join(base, path))


@dataclass(frozen=True)
class BandSpec:
    """One band of the survey.

    Parameters
    ----------
    name : str
        Band name, e.g. ``"F150W"``.
    wavelength : float
        Pivot wavelength in micron.
    sci : str
        Science image path or URL.
    err : str, optional
        1-sigma error image (same units as ``sci``), or :data:`ESTIMATE`
        (``"estimate"``): errors estimated from the science image.
    weight : str, optional
        Inverse-variance weight image; converted to an error ``1/sqrt(w)``.
        At most one of ``err`` and ``weight``; with neither, the errors are
        estimated from the science image (as with ``err = "estimate"``).
    unit : str
        Flux unit of ``sci``, one of :data:`FLUX_UNITS` (recorded in the cube;
        "" = not given, which ingest warns about, as about an unknown unit).
    sci_hdu, err_hdu, weight_hdu, psf_hdu : int or str, optional
        HDU holding the image (default: the first HDU with a 2-D array).
    psf : str, optional
        PSF image of the band, sampled on the mosaic's pixel grid and centred
        on a pixel (given for every band or for none).
    """

    name: str
    wavelength: float
    sci: str
    err: str | None = None
    weight: str | None = None
    unit: str = ""
    sci_hdu: int | str | None = None
    err_hdu: int | str | None = None
    weight_hdu: int | str | None = None
    psf: str | None = None
    psf_hdu: int | str | None = None

    @property
    def estimated(self) -> bool:
        """Whether the errors are estimated from the image (no error or weight map)."""
        return self.err == ESTIMATE or (self.err is None and self.weight is None)

    @property
    def noise_path(self) -> str | None:
        """The error or weight path, whichever is given (None when estimated)."""
        if self.estimated:
            return None
        return self.err if self.err is not None else self.weight

    @property
    def noise_kind(self) -> str:
        """``"err"``, ``"weight"`` or ``"estimate"``."""
        if self.estimated:
            return ESTIMATE
        return "err" if self.err is not None else "weight"

    @property
    def noise_hdu(self) -> int | str | None:
        if self.estimated:
            return None
        return self.err_hdu if self.err is not None else self.weight_hdu


@dataclass(frozen=True)
class SegmentationSpec:
    """The segmentation map (integer image, 0 = sky, else the catalog id)."""

    path: str
    hdu: int | str | None = None


@dataclass(frozen=True)
class CatalogSpec:
    """The source catalog and the names of its id / RA / Dec columns."""

    path: str
    id: str = "id"
    ra: str = "ra"
    dec: str = "dec"
    redshift: str | None = None
    hdu: int | str | None = None


@dataclass(frozen=True)
class LabelsSpec:
    """Visual-inspection labels: id, reliable (1) / spurious (0), reason."""

    path: str
    id: str = "id"
    reliable: str = "reliable"
    reason: str = "reason"


@dataclass(frozen=True)
class Manifest:
    """A validated survey manifest (see the module docstring for the format).

    ``segmentation`` and ``catalog`` are both given or both None (galclust
    detects the sources, with ``detection``: None = the default options).
    ``psf_matched`` is ``[survey].psf_matched`` (never True with band PSFs).
    """

    name: str
    bands: tuple[BandSpec, ...]
    segmentation: SegmentationSpec | None = None
    catalog: CatalogSpec | None = None
    labels: LabelsSpec | None = None
    source: str = "<memory>"
    extra: dict[str, Any] = field(default_factory=dict)
    detection: DetectOptions | None = None
    psf_matched: bool = False

    @property
    def psf_status(self) -> str:
        """``"matched"`` (a PSF image per band: ingest matches them), ``"declared"``
        (``psf_matched = true``) or ``"none"`` (the PSFs are unknown)."""
        if any(b.psf is not None for b in self.bands):
            return "matched"
        return "declared" if self.psf_matched else "none"

    @property
    def detects(self) -> bool:
        """Whether ingest detects the sources (no segmentation map and catalog given)."""
        return self.segmentation is None

    @property
    def detect_options(self) -> DetectOptions:
        """The ``[detection]`` options, defaults filled in."""
        from galclust.options import DetectOptions

        return self.detection if self.detection is not None else DetectOptions()

    @property
    def estimated_bands(self) -> list[str]:
        """The bands whose errors are estimated from the image."""
        return [b.name for b in self.bands if b.estimated]

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def wavelengths(self) -> list[float]:
        return [b.wavelength for b in self.bands]

    def input_paths(self) -> dict[str, str]:
        """Every input file, keyed by what it is (``"F150W.sci"``, ``"seg"``, ...);
        what is absent (an estimated error, a segmentation map galclust makes) is left out."""
        paths: dict[str, str] = {}
        for b in self.bands:
            paths[f"{b.name}.sci"] = b.sci
            if b.noise_path is not None:
                paths[f"{b.name}.{b.noise_kind}"] = b.noise_path
            if b.psf is not None:
                paths[f"{b.name}.psf"] = b.psf
        if self.segmentation is not None:
            paths["seg"] = self.segmentation.path
        if self.catalog is not None:
            paths["catalog"] = self.catalog.path
        if self.labels is not None:
            paths["labels"] = self.labels.path
        return paths

    def to_dict(self) -> dict[str, Any]:
        """A TOML-ready dict (paths as given after resolution)."""

        def clean(obj: Any) -> dict[str, Any]:
            return {k: v for k, v in dataclasses.asdict(obj).items() if v is not None}

        out: dict[str, Any] = {"survey": {"name": self.name, **self.extra}}
        if self.psf_matched:
            out["survey"]["psf_matched"] = True
        out["bands"] = [clean(b) for b in self.bands]
        if self.segmentation is not None:
            out["segmentation"] = clean(self.segmentation)
        if self.catalog is not None:
            out["catalog"] = clean(self.catalog)
        if self.detection is not None:
            out["detection"] = dataclasses.asdict(self.detection)
        if self.labels is not None:
            out["labels"] = clean(self.labels)
        return out


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _build(cls: type, table: Any, where: str, source: str, base: str,
           path_keys: tuple[str, ...]) -> Any:
    if not isinstance(table, dict):
        raise ManifestError(f"{source}: [{where}] must be a table, got {type(table).__name__}.")
    known = _fields(cls)
    for key in table:
        if key not in known:
            raise ManifestError(
                f"{source}: unknown key {key!r} in [{where}]."
                + did_you_mean(key, known)
                + f" Valid keys: {', '.join(sorted(known))}."
            )
    for name, f in known.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in table:
            raise ManifestError(f"{source}: [{where}] is missing the required key {name!r}.")
    values = dict(table)
    for key in path_keys:
        if values.get(key) is not None:
            if not isinstance(values[key], str):
                raise ManifestError(f"{source}: [{where}].{key} must be a path string.")
            values[key] = _resolve(values[key], base)
    return cls(**values)


_TOP = {"survey", "bands", "segmentation", "catalog", "labels", "detection"}


def manifest_from_dict(data: dict[str, Any], *, source: str = "<memory>",
                       base: str = ".") -> Manifest:
    """Validate a manifest given as a dict (the parsed TOML).

    Parameters
    ----------
    data : dict
        The parsed manifest.
    source : str
        Where it came from, used in error messages.
    base : str
        Directory (or URL prefix) that relative paths are resolved against.

    Returns
    -------
    Manifest

    Raises
    ------
    ManifestError
        On an unknown or missing key, a bad value, duplicate band names, only
        one of ``[segmentation]`` and ``[catalog]``, a bad ``[detection]`` option, or
        PSF keys that contradict each other (:func:`galclust.config_psf.check_psf_keys`).
    """
    for key in data:
        if key not in _TOP:
            raise ManifestError(
                f"{source}: unknown top-level table [{key}]." + did_you_mean(key, _TOP)
                + f" Valid tables: {', '.join(sorted(_TOP))}."
            )
    if "bands" not in data:
        raise ManifestError(f"{source}: the manifest has no [bands] table; add one.")
    if ("segmentation" in data) != ("catalog" in data):
        given, absent = (("segmentation", "catalog") if "segmentation" in data
                         else ("catalog", "segmentation"))
        raise ManifestError(
            f"{source}: the manifest has a [{given}] table but no [{absent}]; give both (the "
            "survey's segmentation map and the catalog of its sources) or neither (galclust "
            "then detects the sources, with the options of an optional [detection] table).")
    survey = dict(data.get("survey", {}))
    name = survey.pop("name", None)
    psf_matched = psf_matched_flag(survey, source)
    if not name:
        name = os.path.splitext(os.path.basename(source))[0] or "survey"
    bands_raw = data["bands"]
    if not isinstance(bands_raw, list) or not bands_raw:
        raise ManifestError(f"{source}: [[bands]] must list at least one band.")
    bands = []
    for i, b in enumerate(bands_raw):
        where = f"bands][{i}"
        estimate = isinstance(b, dict) and b.get("err") == ESTIMATE
        spec = _build(BandSpec, b, where, source, base,
                      ("sci", "weight", "psf") if estimate else ("sci", "err", "weight", "psf"))
        if spec.err is not None and spec.weight is not None:
            raise ManifestError(
                f"{source}: band {spec.name!r} must give exactly one of 'err' (1-sigma "
                "error image) or 'weight' (inverse-variance image), or neither (or "
                f"err = {ESTIMATE!r}) to have the errors estimated from the science image."
            )
        try:
            wl = float(spec.wavelength)
        except (TypeError, ValueError):
            raise ManifestError(
                f"{source}: band {spec.name!r} wavelength={spec.wavelength!r} is not a number "
                "(pivot wavelength in micron)."
            ) from None
        if not (math.isfinite(wl) and wl > 0):
            raise ManifestError(
                f"{source}: band {spec.name!r} wavelength={wl} must be a positive, finite pivot "
                "wavelength in micron (e.g. 1.501 for F150W)."
            )
        bands.append(dataclasses.replace(spec, wavelength=wl))
    names = [b.name for b in bands]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ManifestError(f"{source}: band names must be unique; repeated: {dupes}.")
    check_psf_keys(bands, psf_matched, source)
    seg = cat = None
    if "segmentation" in data:
        seg = _build(SegmentationSpec, data["segmentation"], "segmentation", source, base,
                     ("path",))
        cat = _build(CatalogSpec, data["catalog"], "catalog", source, base, ("path",))
    detection = _detection(data["detection"], source, seg is not None) \
        if "detection" in data else None
    labels = None
    if "labels" in data:
        labels = _build(LabelsSpec, data["labels"], "labels", source, base, ("path",))
    return Manifest(name=str(name), bands=tuple(bands), segmentation=seg, catalog=cat,
                    labels=labels, source=source, extra=survey, detection=detection,
                    psf_matched=psf_matched)


def _detection(table: Any, source: str, has_segmentation: bool) -> DetectOptions:
    """The ``[detection]`` table as :class:`~galclust.options.DetectOptions`."""
    from galclust.errors import InputError
    from galclust.options import DetectOptions

    if not isinstance(table, dict):
        raise ManifestError(f"{source}: [detection] must be a table, got "
                            f"{type(table).__name__}.")
    if has_segmentation:
        raise ManifestError(
            f"{source}: [detection] sets how galclust detects sources, but the manifest gives "
            "a [segmentation] map and a [catalog], so ingest detects nothing; remove "
            "[detection], or remove [segmentation] and [catalog] to have galclust detect.")
    known = [f.name for f in dataclasses.fields(DetectOptions)]
    for key in table:
        if key not in known:
            raise ManifestError(f"{source}: unknown key {key!r} in [detection]."
                                + did_you_mean(key, known) + f" Valid keys: {', '.join(known)}.")
    nsigma = table.get("nsigma", 1.0)
    if isinstance(nsigma, bool) or not isinstance(nsigma, int | float):
        raise ManifestError(f"{source}: [detection] nsigma={nsigma!r} must be a number > 0 "
                            "(the threshold in sigma, e.g. 2.5).")
    try:
        return DetectOptions(**table)
    except (InputError, TypeError, ValueError) as exc:
        raise ManifestError(f"{source}: [detection]: {exc}") from None


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a survey manifest (TOML), local (``file://`` too) or ``s3://``.

    Parameters
    ----------
    path : str or path-like
        The manifest file.

    Returns
    -------
    Manifest
        With every relative path resolved against the manifest's folder.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    ManifestError
        If it is not valid TOML or not a valid manifest.
    """
    from galclust.store.urls import read_bytes  # only store/ opens files

    path = local_path(os.fspath(path))
    raw = read_bytes(path, what="survey manifest")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc}).") from None
    base = path.rsplit("/", 1)[0] if is_url(path) else os.path.dirname(os.path.abspath(path))
    return manifest_from_dict(data, source=path, base=base)
