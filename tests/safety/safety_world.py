"""Helpers of the safety cases: a snapshot of a folder's files, and the setups that
break one input of the world before a case runs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

BANDS = {"F150W": 1.501, "F277W": 2.776, "F444W": 4.402}


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` -> the SHA-256 of its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- setups
def _edit_image(path: str, fn) -> None:
    with fits.open(path) as hdul:
        data = fn(hdul[0].data.astype(np.float32))
        header = hdul[0].header
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)


def _edit_manifest(w, fn) -> None:
    import tomllib

    import tomli_w

    data = tomllib.loads(Path(w.manifest).read_text())
    fn(data)
    Path(w.manifest).write_text(tomli_w.dumps(data))


def wavelength_inf(w):
    _edit_manifest(w, lambda d: d["bands"][0].update(wavelength=float("inf")))


def nan_one_band(w):
    _edit_image("survey/F277W_sci.fits", lambda a: np.full_like(a, np.nan))


def nan_every_band(w):
    for b in BANDS:
        _edit_image(f"survey/{b}_sci.fits", lambda a: np.full_like(a, np.nan))


def zero_weight(w):
    _edit_image("survey/F277W_wht.fits", np.zeros_like)


def negative_error(w):
    _edit_image("survey/F150W_err.fits", lambda a: -np.abs(a))


def catalog_offset(w):
    cat = pd.read_parquet("survey/catalog.parquet")
    cat["dec"] += 1.0  # one degree off the image
    cat.to_parquet("survey/catalog.parquet", index=False)


def empty_catalog(w):
    cat = pd.read_parquet("survey/catalog.parquet")
    cat.iloc[:0].to_parquet("survey/catalog.parquet", index=False)


def negative_segment(w):
    with fits.open("survey/seg.fits") as hdul:
        seg, header = hdul[0].data.astype(np.int32), hdul[0].header
    seg[seg == seg.max()] = -seg.max()  # one whole segment, around its catalog source
    fits.PrimaryHDU(seg, header=header).writeto("survey/seg.fits", overwrite=True)


def truncate_pointer(w):
    p = Path(w.results) / "latest.json"
    p.write_bytes(p.read_bytes()[:10])


def tamper_product_path(w):
    import json

    from galclust.store.results import open_results

    run = open_results(w.results).run_id
    p = Path(w.results) / "runs" / run / "run.json"
    doc = json.loads(p.read_text())
    doc["products"]["pixels/galaxies"]["path"] = "../../elsewhere/galaxies.parquet"
    p.write_text(json.dumps(doc))


def user_survey_folder(w):
    (Path(w.user) / "survey").mkdir()
    (Path(w.user) / "survey" / "labels.csv").write_text("id,reliable\n1,1\n")


SETUPS = {f.__name__: f for f in (
    user_survey_folder,
    wavelength_inf, nan_one_band, nan_every_band, zero_weight, negative_error,
    catalog_offset, empty_catalog, negative_segment, truncate_pointer, tamper_product_path)}
