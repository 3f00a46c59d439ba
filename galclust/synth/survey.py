"""Synthetic survey mosaics with known truth, delivered as files.

:func:`make_survey` writes what a survey team hands over — per-band science
and error (or weight) FITS mosaics with a TAN WCS, a segmentation map, a
source catalog, a visual-inspection label table and a ``survey.toml``
manifest — plus the truth behind them. Mosaics are rendered and written in
strips of rows, so the image size is limited by disk, not memory.

Files (in ``path``)
-------------------
``{band}_sci.fits``
    float32 flux in nJy per pixel (``BUNIT``, ``FILTER``, ``PHOTPLAM`` in Å,
    TAN WCS: ``CRVAL = (ra0, dec0)`` at the central pixel, ``CD`` =
    ``pixel_scale`` arcsec, north up, east left).
``{band}_err.fits`` / ``{band}_wht.fits``
    float32 1-sigma error (nJy) or inverse-variance weight (nJy**-2).
    *No coverage* is encoded as real JWST/HST products do: in ``err`` files
    both sci and err are NaN; in ``weight`` files the weight is 0 and sci is
    0. (Ingest maps both to the cube convention ``err = +inf``.)
``seg.fits``
    int32; 0 sky, else the catalog id. Pixels inside the coverage whose
    noise-free detection image ``sum_b model_b`` (already PSF-smoothed)
    exceeds ``DETECT_NSIGMA * sqrt(sum_b err_b**2)`` are assigned to the
    source contributing most band-summed flux there, except that shredded
    fragments claim a small ellipse (as a deblender splits a spike or a
    bright galaxy's outskirts).
``catalog.parquet``
    id (int64 from 1, sorted by y then x), ra, dec (deg, from the WCS), x, y
    (0-based pixel), z (redshift; random for artefacts), flux_<band> (total
    noise-free model flux, nJy). Stars and artefacts are rows too.
``labels.csv``
    id, reliable (1/0), reason ("" when reliable, else one of
    :data:`~galclust.synth.artefacts.REASONS`) for a deterministic
    ``label_fraction`` subset of ids. (Read with ``keep_default_na=False`` to
    keep "" rather than NaN.)
``{band}_psf.fits``
    With ``write_psfs=True`` only: float32 image of the band's PSF (the Moffat
    the mosaics were rendered with, pixel-centred on an odd square stamp of
    at least 41 px and 6 FWHM of the broadest band either side, unit sum),
    named by ``psf`` in each band of the manifest.
``survey.toml``
    The manifest (:mod:`galclust.config` format), with relative paths; with
    ``psf_matched=True`` (and no PSF files) its ``[survey]`` declares
    ``psf_matched = true``.
``truth_components.fits``
    int16: in a galaxy's segment, the index of its component contributing
    most band-summed flux; -1 elsewhere. With ``layout="mixed"`` (default)
    components are superposed (a bulge inside its disk), so this map draws a
    boundary where a smooth mixture crosses 1/2 and no clustering of pixel
    SEDs can be expected to reproduce it; with ``layout="separated"`` every
    component is a compact region of its own SED family, two PSF FWHM or more
    from the others, and the map is the partition pixel clustering should find.
``truth_sources.parquet``
    id, kind ("galaxy"/"star"/"artefact"), artefact ("" or a reason),
    spurious, n_components (1 for stars, 0 for artefacts), families
    (comma-joined; "star" for stars, "" for artefacts),
    snr (:mod:`galclust.synth.galaxy` definition, on the source's isolated
    model with the local error), z (NaN for artefacts), x, y, parent (id of
    the star/galaxy a fragment was shredded from, else 0).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import tomli_w
from astropy.wcs import WCS

from galclust.config import manifest_from_dict
from galclust.errors import InputError, check_choice
from galclust.synth._fitsio import StripImage, wcs_cards
from galclust.synth._plan import Plan, plan_survey
from galclust.synth._render import noise_file_name, render_mosaics
from galclust.synth.artefacts import REASONS
from galclust.synth.galaxy import LAYOUTS
from galclust.synth.profiles import moffat, psf_fwhm_px
from galclust.synth.seds import NIRCAM_BANDS, band_widths

__all__ = ["SyntheticSurvey", "make_survey"]

#: Marker file of a folder written by :func:`make_survey` (only such a folder is rewritten).
SYNTH_MARKER = "galclust-synth.json"

#: Typical 1-sigma pixel noise (nJy at 0.04"/px) of the NIRCam bands.
_NIRCAM_RMS = {"F090W": 8.0, "F115W": 7.0, "F150W": 6.0, "F200W": 5.5, "F277W": 4.5,
               "F356W": 4.5, "F410M": 7.5, "F444W": 6.0}


@dataclass
class SyntheticSurvey:
    """What :func:`make_survey` wrote (paths are absolute) and how much of it.

    Attributes
    ----------
    path, manifest_path, seg_path, catalog_path, labels_path : str
        The survey folder and its files (``labels_path`` is None when
        ``label_fraction`` is 0).
    truth_components_path, truth_sources_path : str
        Truth files.
    sci_paths, noise_paths : dict
        Band -> science file; band -> error or weight file.
    noise_kinds : dict
        Band -> ``"err"`` or ``"weight"``.
    bands : dict
        Band -> pivot wavelength (micron).
    shape : (int, int)
        Mosaic shape.
    pixel_scale : float
        Arcsec per pixel.
    seed : int
        The seed.
    n_sources, n_galaxies, n_stars, n_spurious, n_labelled : int
        Catalog rows; real galaxies; stars (faint and bright); spurious rows;
        labelled rows.
    n_artefacts : dict
        Reason -> number of spurious rows.
    n_undetected : int
        Planned sources left without a single segmentation pixel (not in the
        catalog; their light is still in the images).
    layout : str
        The galaxies' component layout (``"mixed"`` or ``"separated"``).
    psf_paths : dict
        Band -> PSF image (``write_psfs=True``), else empty.
    psf_fwhm : dict
        Band -> FWHM (px) of the PSF the band was rendered with.
    """

    path: str
    manifest_path: str
    sci_paths: dict[str, str]
    noise_paths: dict[str, str]
    noise_kinds: dict[str, str]
    seg_path: str
    catalog_path: str
    labels_path: str | None
    truth_components_path: str
    truth_sources_path: str
    bands: dict[str, float]
    shape: tuple[int, int]
    pixel_scale: float
    seed: int
    n_sources: int
    n_galaxies: int
    n_stars: int
    n_spurious: int
    n_labelled: int
    n_artefacts: dict[str, int]
    n_undetected: int
    layout: str = "mixed"
    psf_paths: dict[str, str] = field(default_factory=dict)
    psf_fwhm: dict[str, float] = field(default_factory=dict)


def psf_file_name(band: str) -> str:
    """``{band}_psf.fits``."""
    return f"{band}_psf.fits"


def _write_psfs(root: str, names: list[str], fwhm: np.ndarray) -> dict[str, str]:
    """Write each band's rendering PSF as ``{band}_psf.fits`` (see the module docstring)."""
    half = max(20, int(np.ceil(6.0 * float(np.max(fwhm)))))
    paths = {}
    for b, fw in zip(names, fwhm, strict=True):
        psf = moffat((2 * half + 1, 2 * half + 1), half, half, float(fw))
        psf = (psf / psf.sum()).astype(np.float32)
        paths[b] = os.path.join(root, psf_file_name(b))
        with StripImage(paths[b], psf.shape, np.float32,
                        {"FILTER": b, "FWHM_PX": float(fw),
                         "COMMENT": "PSF the synthetic mosaic was rendered with"}) as img:
            img.write(0, psf)
    return paths


def _bands(bands: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    if bands is None:
        return dict(NIRCAM_BANDS)
    if isinstance(bands, Mapping):
        out = {str(k): float(v) for k, v in bands.items()}
    else:
        for name in bands:
            check_choice("bands", name, NIRCAM_BANDS)
        out = {str(k): NIRCAM_BANDS[k] for k in bands}
    if not out or not all(v > 0 for v in out.values()):
        raise InputError("make_survey: bands must name at least one band with a positive "
                         "pivot wavelength in micron, e.g. {'F150W': 1.501}.")
    return out


def _check(shape: tuple[int, int], noise: str, spurious_fraction: float,
           label_fraction: float, snr_range: tuple[float, float], strip_rows: int,
           n_galaxies: int | None, n_stars: int | None, pixel_scale: float,
           layout: str) -> None:
    check_choice("noise", noise, ("err", "weight", "mixed"))
    check_choice("layout", layout, LAYOUTS)
    if len(shape) != 2 or min(shape) < 128:
        raise InputError(f"make_survey: shape={shape!r} must be (ny, nx) with both >= 128.")
    if not 0 <= spurious_fraction < 0.5:
        raise InputError(f"make_survey: spurious_fraction={spurious_fraction!r} must be in "
                         "[0, 0.5).")
    if not 0 <= label_fraction <= 1:
        raise InputError(f"make_survey: label_fraction={label_fraction!r} must be in [0, 1].")
    if not (len(snr_range) == 2 and 0 < snr_range[0] <= snr_range[1]):
        raise InputError(f"make_survey: snr_range={snr_range!r} must be (low, high) with "
                         "0 < low <= high.")
    if strip_rows < 1:
        raise InputError(f"make_survey: strip_rows={strip_rows!r} must be >= 1.")
    for name, n in (("n_galaxies", n_galaxies), ("n_stars", n_stars)):
        if n is not None and n < 0:
            raise InputError(f"make_survey: {name}={n!r} must be >= 0 (or None).")
    if not pixel_scale > 0:
        raise InputError(f"make_survey: pixel_scale={pixel_scale!r} must be positive.")


def make_survey(path: str | os.PathLike[str], *, shape: tuple[int, int] = (1024, 1024),
                n_galaxies: int | None = None,
                bands: Mapping[str, float] | Sequence[str] | None = None, seed: int = 0,
                pixel_scale: float = 0.04, spurious_fraction: float = 0.04,
                label_fraction: float = 1.0, noise: str = "err", n_stars: int | None = None,
                strip_rows: int = 512, snr_range: tuple[float, float] = (5.0, 100.0),
                ra0: float = 214.9, dec0: float = 52.9, name: str | None = None,
                psf_matched: bool = False, layout: str = "mixed",
                write_psfs: bool = False) -> SyntheticSurvey:
    """Write a synthetic multi-band survey with known truth (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        Output folder (created; existing files of the same names are replaced).
    shape : (int, int)
        Mosaic shape ``(ny, nx)``, each >= 128.
    n_galaxies : int, optional
        Real galaxies; default one per 60 x 60 px (``ny * nx / 3600``).
    bands : mapping or sequence of str, optional
        ``{name: pivot micron}``, or NIRCam band names; default all of
        :data:`~galclust.synth.NIRCAM_BANDS`.
    seed : int
        Seed: the files' data are a deterministic function of all arguments
        (``strip_rows`` included only in memory use, never in the data).
    pixel_scale : float
        Arcsec per pixel (PSF FWHM in pixels follows NIRCam).
    spurious_fraction : float
        Target fraction of spurious catalog rows, split evenly over the three
        reasons (at least one each when positive).
    label_fraction : float
        Fraction of catalog ids with inspection labels.
    noise : {"err", "weight", "mixed"}
        Write 1-sigma error maps, inverse-variance weight maps, or alternate
        (even band index err, odd weight).
    n_stars : int, optional
        Faint stars (default ~2 per 1000 x 1000 px, at least 1); bright stars
        with spikes are added as the spike artefacts need them.
    strip_rows : int
        Rows rendered and written at a time (memory ~ 40 bytes x bands x
        strip_rows x nx).
    snr_range : (float, float)
        Galaxy and faint-star S/N drawn log-uniformly in this range.
    ra0, dec0 : float
        Sky position of the mosaic centre, degrees.
    name : str, optional
        Survey name in the manifest; default the folder name.
    psf_matched : bool
        Deliver PSF-matched mosaics: every band gets the PSF of the reddest
        band (as survey teams ship for photometry). With the native NIRCam
        PSF (default) a compact component's red-band halo reddens its
        surroundings, so pixel colours mix more than the truth map suggests.
        The manifest then declares ``psf_matched = true`` (unless ``write_psfs``).
    layout : {"mixed", "separated"}
        Galaxy components: ``"mixed"`` — 1–4 superposed components (disk;
        bulge + disk; + 1–2 clumps), as in
        :func:`~galclust.synth.galaxy.draw_components`; ``"separated"`` — 1–3
        compact components, each of a distinct SED family, whose centres are
        at least 2 FWHM of the reddest band's PSF apart
        (:func:`~galclust.synth.galaxy.draw_separated_components`), so
        ``truth_components.fits`` is the partition pixel clustering should
        recover. The default's files are unchanged by this option.
    write_psfs : bool
        Also write each band's PSF image (``{band}_psf.fits``) and name it as
        the band's ``psf`` in the manifest, so ingest matches the PSFs. The
        mosaics are the same as without it.

    Returns
    -------
    SyntheticSurvey

    Raises
    ------
    InputError
        For an invalid argument (before anything is written).
    """
    _check(shape, noise, spurious_fraction, label_fraction, snr_range, strip_rows,
           n_galaxies, n_stars, pixel_scale, layout)
    band_map = _bands(bands)
    names, lam = list(band_map), np.array(list(band_map.values()))
    ny, nx = int(shape[0]), int(shape[1])
    root = os.path.abspath(os.fspath(path))
    rng = np.random.default_rng([seed, 0])
    fwhm = psf_fwhm_px(lam, pixel_scale)
    if psf_matched:
        fwhm = np.full_like(fwhm, fwhm.max())
    rms = np.array([_NIRCAM_RMS.get(b, 6.0 * rng.uniform(0.75, 1.3)) for b in names])
    n_gal = max(1, round(ny * nx / 3600)) if n_galaxies is None else int(n_galaxies)
    n_st = max(1, round(2e-6 * ny * nx)) if n_stars is None else int(n_stars)
    plan = plan_survey((ny, nx), lam, band_widths(lam, names), fwhm, rms, n_galaxies=n_gal,
                       n_stars=n_st, spurious_fraction=spurious_fraction,
                       snr_range=tuple(snr_range), rng=rng, layout=layout)
    kinds = {b: ("weight" if noise == "weight" or (noise == "mixed" and i % 2) else "err")
             for i, b in enumerate(names)}
    marker = os.path.join(root, SYNTH_MARKER)
    if os.path.isdir(root) and os.listdir(root) and not os.path.exists(marker):
        shown = ", ".join(sorted(os.listdir(root))[:5])
        raise InputError(f"{root} already holds files that are not a synthetic survey of "
                         f"galclust's ({shown}); give a new or empty folder (it writes and "
                         "replaces catalog, labels and FITS files there).")
    os.makedirs(root, exist_ok=True)  # only now: every argument has been checked
    with open(marker, "w") as fh:  # this folder is galclust's: a rerun may replace its files
        fh.write('{"galclust_store": "synthetic survey"}\n')
    for b in names:  # a previous run's other-kind noise file would be a stale delivery
        stale = os.path.join(root, noise_file_name(b, "weight" if kinds[b] == "err" else "err"))
        if os.path.exists(stale):
            os.remove(stale)
    for b in names:  # a previous run's PSF files would be a stale delivery
        stale = os.path.join(root, psf_file_name(b))
        if os.path.exists(stale):
            os.remove(stale)
    psf_paths = _write_psfs(root, names, fwhm) if write_psfs else {}
    fluxes, snrs, counts = render_mosaics(root, plan, names, fwhm, kinds, (ny, nx), seed=seed,
                                          strip_rows=strip_rows, pixel_scale=pixel_scale,
                                          ra0=ra0, dec0=dec0)
    survey = _write_tables(root, plan, names, lam, kinds, fluxes, snrs, counts, (ny, nx),
                           seed, pixel_scale, ra0, dec0, label_fraction,
                           name or os.path.basename(root) or "synth",
                           psfs=bool(psf_paths), declare_matched=psf_matched and not psf_paths)
    survey.layout = layout
    survey.psf_paths = psf_paths
    survey.psf_fwhm = {b: float(f) for b, f in zip(names, fwhm, strict=True)}
    return survey


def _write_tables(root: str, plan: Plan, names: list[str], lam: np.ndarray,
                  kinds: dict[str, str], fluxes: np.ndarray, snrs: np.ndarray,
                  counts: np.ndarray, shape: tuple[int, int], seed: int, pixel_scale: float,
                  ra0: float, dec0: float, label_fraction: float,
                  name: str, *, psfs: bool = False,
                  declare_matched: bool = False) -> SyntheticSurvey:
    """Write catalog, labels, truth table and manifest; build the summary."""
    src = plan.sources
    detected = counts > 0
    ids = np.arange(1, len(src) + 1, dtype=np.int64)
    x = np.array([s.x for s in src])
    y = np.array([s.y for s in src])
    wcs = WCS(wcs_cards(shape, pixel_scale=pixel_scale, ra0=ra0, dec0=dec0))
    ra, dec = wcs.all_pix2world(x, y, 0)
    cat = pd.DataFrame({"id": ids, "ra": ra, "dec": dec, "x": x, "y": y,
                        "z": np.array([s.z_cat for s in src])})
    for bi, b in enumerate(names):
        cat[f"flux_{b}"] = fluxes[:, bi]
    cat = cat[detected].reset_index(drop=True)
    catalog_path = os.path.join(root, "catalog.parquet")
    cat.to_parquet(catalog_path, index=False)

    kind = np.array([s.kind for s in src])
    reason = np.array([s.artefact for s in src])
    truth = pd.DataFrame({
        "id": ids, "kind": kind, "artefact": reason, "spurious": kind == "artefact",
        "n_components": [len(s.components) if s.components else int(s.kind == "star")
                         for s in src],
        "families": [",".join(c.family for c in s.components) if s.components
                     else ("star" if s.kind == "star" else "") for s in src],
        "snr": snrs, "z": np.array([s.z_true for s in src]), "x": x, "y": y,
        "parent": np.array([s.parent + 1 if s.parent >= 0 else 0 for s in src],
                           dtype=np.int64),
    })[detected].reset_index(drop=True)
    truth_path = os.path.join(root, "truth_sources.parquet")
    truth.to_parquet(truth_path, index=False)

    labels_path = None
    if os.path.exists(os.path.join(root, "labels.csv")):
        os.remove(os.path.join(root, "labels.csv"))  # never leave a stale one behind
    n_lab = round(label_fraction * len(truth))
    if n_lab > 0:
        pick = np.sort(np.random.default_rng([seed, 3]).choice(len(truth), n_lab,
                                                                replace=False))
        lab = truth.iloc[pick]
        labels = pd.DataFrame({"id": lab["id"].to_numpy(),
                               "reliable": (~lab["spurious"]).astype(np.int64).to_numpy(),
                               "reason": lab["artefact"].to_numpy()})
        labels_path = os.path.join(root, "labels.csv")
        labels.to_csv(labels_path, index=False)

    manifest = {
        "survey": {"name": name},
        "bands": [{"name": b, "wavelength": float(w), "sci": f"{b}_sci.fits",
                   kinds[b]: noise_file_name(b, kinds[b]),
                   "unit": "nJy", **({"psf": psf_file_name(b)} if psfs else {})}
                  for b, w in zip(names, lam, strict=True)],
        "segmentation": {"path": "seg.fits"},
        "catalog": {"path": "catalog.parquet", "id": "id", "ra": "ra", "dec": "dec",
                    "redshift": "z"},
    }
    if declare_matched:
        manifest["survey"]["psf_matched"] = True
    if labels_path is not None:
        manifest["labels"] = {"path": "labels.csv", "id": "id", "reliable": "reliable",
                              "reason": "reason"}
    manifest_path = os.path.join(root, "survey.toml")
    manifest_from_dict(manifest, source=manifest_path, base=root)  # refuse to write a bad one
    with open(manifest_path, "wb") as fh:
        tomli_w.dump(manifest, fh)

    t_kind = truth["kind"].to_numpy()
    return SyntheticSurvey(
        path=root, manifest_path=manifest_path,
        sci_paths={b: os.path.join(root, f"{b}_sci.fits") for b in names},
        noise_paths={b: os.path.join(root, noise_file_name(b, kinds[b]))
                     for b in names},
        noise_kinds=dict(kinds), seg_path=os.path.join(root, "seg.fits"),
        catalog_path=catalog_path, labels_path=labels_path,
        truth_components_path=os.path.join(root, "truth_components.fits"),
        truth_sources_path=truth_path, bands=dict(zip(names, map(float, lam), strict=True)),
        shape=shape, pixel_scale=float(pixel_scale), seed=int(seed), n_sources=len(truth),
        n_galaxies=int((t_kind == "galaxy").sum()), n_stars=int((t_kind == "star").sum()),
        n_spurious=int(truth["spurious"].sum()), n_labelled=n_lab,
        n_artefacts={r: int((truth["artefact"] == r).sum()) for r in REASONS},
        n_undetected=int((~detected).sum()),
    )
