"""A synthetic cluster field delivered as a survey: FITS mosaics, segmentation,
catalog, ``members.csv`` and a manifest (:func:`make_cluster_survey`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tomli_w
from astropy.wcs import WCS

from galclust.config import manifest_from_dict
from galclust.errors import InputError
from galclust.synth._fitsio import StripImage, wcs_cards
from galclust.synth._render import _paste, _Stamp, noise_file_name
from galclust.synth.cluster_field import _field, _table
from galclust.synth.galaxy import DETECT_NSIGMA
from galclust.synth.survey import SYNTH_MARKER

__all__ = ["ClusterSurvey", "make_cluster_survey"]


@dataclass(frozen=True)
class ClusterSurvey:
    """What :func:`make_cluster_survey` wrote (absolute paths) and its truth.

    ``truth`` holds the :attr:`ClusterField.table` columns plus x, y (0-based
    pixel), ra, dec and detected (False: no segmentation pixel, so not in the
    catalog nor in ``members.csv``).
    """

    path: str
    manifest_path: str
    labels_path: str
    catalog_path: str
    seg_path: str
    truth_path: str
    sci_paths: dict[str, str]
    err_paths: dict[str, str]
    truth: pd.DataFrame
    shape: tuple[int, int]
    pixel_scale: float


def make_cluster_survey(path: str | os.PathLike[str], n_sources: int = 200, *, size: int = 48,
                        family: str = "default", random_state: int = 0,
                        spacing: int | None = None, bands: tuple[str, ...] = ("g", "r", "i"),
                        member_fraction: float = 0.35, ra0: float = 49.95,
                        dec0: float = 41.51) -> ClusterSurvey:
    """Write a cluster field as a survey (sources on a grid) and return its truth.

    Written as :func:`~galclust.synth.make_survey` writes (its FITS writer, WCS,
    ownership rule for ``seg.fits`` and folder marker): ``{band}_sci.fits``,
    ``{band}_err.fits`` (nanomaggies), ``seg.fits``, ``catalog.parquet`` (id, ra,
    dec, x, y, flux_<band> of the detected sources; no redshift, which would
    give the label away), ``members.csv`` (id, member, kind),
    ``truth_sources.parquet`` and ``survey.toml``. Sources are rendered as by
    :func:`make_cluster_field` in ``size`` px stamps, with no added neighbours
    (the grid's sources are the neighbours) and one noise level per band.

    Parameters
    ----------
    path : str or path-like
        Output folder: new, empty, or written by a galclust synth writer.
    n_sources : int
        Sources, row by row on a square grid (id = grid order).
    size : int
        Stamp side: sets the pixel scale (``42" / size``) and render extent.
    family, random_state, bands, member_fraction
        As in :func:`make_cluster_field` (the same seed gives other sources).
    spacing : int, optional
        Grid spacing in pixels (>= 8); default ``size``.
    ra0, dec0 : float
        Mosaic centre, degrees (default: the Perseus cluster).

    Returns
    -------
    ClusterSurvey

    Raises
    ------
    InputError
        For an invalid argument or a folder holding other files (before
        anything is written).
    """
    bands, spacing = tuple(bands), int(size if spacing is None else spacing)
    if spacing < 8:
        raise InputError(f"spacing={spacing!r} must be at least 8 pixels.")
    rng = np.random.default_rng([int(random_state), 11])
    imager, p, flux = _field(n_sources, size, bands, member_fraction, family, rng)
    root = os.path.abspath(os.fspath(path))
    marker = os.path.join(root, SYNTH_MARKER)  # make_survey's: only its folders are rewritten
    if os.path.isdir(root) and os.listdir(root) and not os.path.exists(marker):
        raise InputError(f"{root} already holds files that are not a synthetic survey of "
                         f"galclust's ({', '.join(sorted(os.listdir(root))[:5])}); give a new "
                         "or empty folder (it writes and replaces catalog, labels and FITS "
                         "files there).")
    os.makedirs(root, exist_ok=True)  # only now: every argument has been checked
    with open(marker, "w") as fh:
        fh.write('{"galclust_store": "synthetic survey"}\n')
    n, ncol, h, mid = len(p), int(np.ceil(np.sqrt(len(p)))), int(size) // 2, len(bands) // 2
    shape = (int(np.ceil(n / ncol)) * spacing, ncol * spacing)
    y = (np.arange(n) // ncol + 0.5) * spacing + rng.uniform(-0.5, 0.5, n)
    x = (np.arange(n) % ncol + 0.5) * spacing + rng.uniform(-0.5, 0.5, n)
    sigma, stamps, snr = imager.sigma.astype(np.float32), {}, np.empty(n)
    for i in range(n):
        iy0, ix0 = int(round(y[i])) - h, int(round(x[i])) - h
        model = imager.model(p.iloc[i], flux[i], y[i] - iy0, x[i] - ix0).astype(np.float32)
        snr[i] = np.sqrt(np.sum((model[mid] / sigma[mid]) ** 2))
        stamps[i] = _Stamp(iy0, ix0, model, model.sum(axis=0), None)
    model = np.zeros((len(bands), *shape), dtype=np.float32)
    best_w, best_id = np.zeros(shape, np.float32), np.zeros(shape, np.int32)
    _paste(stamps, 0, shape[0], model, best_w, best_id)  # make_survey's ownership rule
    detect = (model.sum(axis=0) > DETECT_NSIGMA * np.sqrt(np.sum(sigma**2))) & (best_w > 0)
    seg = np.where(detect, best_id, 0).astype(np.int32)
    detected = np.bincount(seg.ravel(), minlength=n + 1)[1:] > 0

    wcs = wcs_cards(shape, pixel_scale=imager.scale, ra0=ra0, dec0=dec0)
    cards = {**wcs, "ORIGIN": "galclust.synth", "PIXAR_A2": imager.scale**2}
    noise = np.random.default_rng([int(random_state), 12])
    sci_paths = {b: os.path.join(root, f"{b}_sci.fits") for b in bands}
    err_paths = {b: os.path.join(root, noise_file_name(b, "err")) for b in bands}
    for bi, b in enumerate(bands):
        band = {**cards, "FILTER": b, "PHOTPLAM": float(imager.lam[bi]) * 1e4, "BUNIT": "nanomaggy",
                "PSFFWHM": (float(imager.fwhm[bi]) * imager.scale, "PSF FWHM, arcsec")}
        sci = model[bi] + sigma[bi] * noise.standard_normal(shape, dtype=np.float32)
        for file, data, ext in ((sci_paths[b], sci, "SCI"),
                                (err_paths[b], np.full(shape, sigma[bi]), "ERR")):
            with StripImage(file, shape, np.float32, {**band, "EXTNAME": ext}) as out:
                out.write(0, data)
    seg_path = os.path.join(root, "seg.fits")
    with StripImage(seg_path, shape, np.int32, {**cards, "EXTNAME": "SEGM"}) as out:
        out.write(0, seg)

    ra, dec = WCS(wcs).all_pix2world(x, y, 0)
    truth = _table(p, imager, flux, bands, snr).assign(
        neighbour=False, x=x, y=y, ra=ra, dec=dec, detected=detected)
    files = {k: os.path.join(root, f) for k, f in (
        ("catalog", "catalog.parquet"), ("labels", "members.csv"),
        ("truth", "truth_sources.parquet"), ("manifest", "survey.toml"))}
    truth[["id", "ra", "dec", "x", "y"]].assign(
        **{f"flux_{b}": flux[:, bi] for bi, b in enumerate(bands)})[detected].to_parquet(
        files["catalog"], index=False)
    truth.loc[detected, ["id", "member", "kind"]].to_csv(files["labels"], index=False)
    truth.to_parquet(files["truth"], index=False)
    manifest = {
        "survey": {"name": os.path.basename(root) or "cluster"},
        "bands": [{"name": b, "wavelength": float(w), "sci": os.path.basename(sci_paths[b]),
                   "err": os.path.basename(err_paths[b]), "unit": "nanomaggy"}
                  for b, w in zip(bands, imager.lam, strict=True)],
        "segmentation": {"path": "seg.fits"},
        "catalog": {"path": "catalog.parquet", "id": "id", "ra": "ra", "dec": "dec"},
    }
    manifest_from_dict(manifest, source=files["manifest"], base=root)  # refuse a bad one
    with open(files["manifest"], "wb") as fh:
        tomli_w.dump(manifest, fh)
    return ClusterSurvey(path=root, manifest_path=files["manifest"], labels_path=files["labels"],
                         catalog_path=files["catalog"], seg_path=seg_path,
                         truth_path=files["truth"], sci_paths=sci_paths, err_paths=err_paths,
                         truth=truth, shape=shape, pixel_scale=imager.scale)
