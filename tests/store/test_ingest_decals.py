"""Ingest of real pixels: a DECaLS DR9 g, r, z cutout with inverse-variance maps."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import tomli_w
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

import galclust
from galclust.store.cube import open_catalog

DECALS = os.path.join(os.path.dirname(__file__), "..", "data", "decals",
                      "cutout_59.1067_-30.4848.fits")
PIVOTS = {"g": 0.4770, "r": 0.6231, "z": 0.9134}  # DECam pivot wavelengths, micron


@pytest.fixture(scope="module")
def decals_survey(tmp_path_factory):
    """A manifest over the real cutout, with a segmentation map and catalog made by a
    simple detection on the r-band S/N image (as a survey pipeline would deliver)."""
    out = tmp_path_factory.mktemp("decals")
    with fits.open(DECALS) as hdul:
        r, r_ivar, header = hdul[3].data, hdul[4].data, hdul[3].header
    snr = ndimage.gaussian_filter(r * np.sqrt(r_ivar), 1.5)
    seg, n = ndimage.label(snr > 3.0)
    assert n >= 3, "the cutout holds several detected sources"
    fits.writeto(out / "seg.fits", seg.astype(np.int32), WCS(header).to_header(),
                 overwrite=True)
    yx = np.array(ndimage.center_of_mass(r.clip(0), seg, index=np.arange(1, n + 1)))
    ra, dec = WCS(header).pixel_to_world_values(yx[:, 1], yx[:, 0])
    pd.DataFrame({"ID": np.arange(1, n + 1), "RA": ra, "DEC": dec}).to_csv(
        out / "catalog.csv", index=False)
    bands = [{"name": b, "wavelength": PIVOTS[b], "sci": DECALS, "sci_hdu": 1 + 2 * i,
              "weight": DECALS, "weight_hdu": 2 + 2 * i, "unit": "nanomaggy"}
             for i, b in enumerate("grz")]
    manifest = {"survey": {"name": "decals-59.1067-30.4848"}, "bands": bands,
                "segmentation": {"path": "seg.fits"},
                "catalog": {"path": "catalog.csv", "id": "ID", "ra": "RA", "dec": "DEC"}}
    (out / "survey.toml").write_text(tomli_w.dumps(manifest))
    return out, yx


def test_decals_cutout_ingests_exactly(decals_survey):
    out, yx = decals_survey
    store = str(out / "decals.zarr")
    cube = galclust.ingest(str(out / "survey.toml"), store, tile=128)
    assert list(cube["band"].values) == ["g", "r", "z"]
    assert cube["sci"].shape == (3, 256, 256)
    with fits.open(DECALS) as hdul:
        for i in range(3):
            img, ivar = hdul[1 + 2 * i].data, hdul[2 + 2 * i].data
            np.testing.assert_array_equal(cube["sci"][i].values, img)
            np.testing.assert_allclose(cube["err"][i].values, 1 / np.sqrt(ivar), rtol=1e-6)
        ref = WCS(hdul[1].header)
    stored = WCS(fits.Header(cube.attrs["wcs"]))
    xs, ys = np.array([0.0, 255.0, 100.3]), np.array([0.0, 255.0, 17.8])
    np.testing.assert_allclose(stored.pixel_to_world_values(xs, ys),
                               ref.pixel_to_world_values(xs, ys), atol=1e-10)
    # DECaLS pixels are 0.262 arcsec
    assert cube.attrs["pixel_scale"] == pytest.approx(0.262, rel=1e-3)
    cat = open_catalog(store).sort_values("id")
    np.testing.assert_allclose(cat["x"], yx[:, 1], atol=1e-6)
    np.testing.assert_allclose(cat["y"], yx[:, 0], atol=1e-6)
    # each detection's centroid lies inside its own segment
    seg = cube["seg"].values
    iy, ix = np.round(cat["y"]).astype(int), np.round(cat["x"]).astype(int)
    assert np.mean(seg[iy, ix] == cat["id"].to_numpy()) > 0.8
