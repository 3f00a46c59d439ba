"""Pixel clustering on real pixels: the DECaLS DR9 g, r, z cutout, through the survey path."""

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
from galclust.store.results import RunWriter

DECALS = os.path.join(os.path.dirname(__file__), "..", "data", "decals",
                      "cutout_59.1067_-30.4848.fits")


@pytest.fixture(scope="module")
def decals_cube(tmp_path_factory):
    """The real cutout ingested, with a detection-based segmentation map and catalog."""
    out = tmp_path_factory.mktemp("decals-pixels")
    with fits.open(DECALS) as hdul:
        r, r_ivar, header = hdul[3].data, hdul[4].data, hdul[3].header
    seg, n = ndimage.label(ndimage.gaussian_filter(r * np.sqrt(r_ivar), 1.5) > 3.0)
    fits.writeto(out / "seg.fits", seg.astype(np.int32), WCS(header).to_header())
    yx = np.array(ndimage.center_of_mass(r.clip(0), seg, index=np.arange(1, n + 1)))
    ra, dec = WCS(header).pixel_to_world_values(yx[:, 1], yx[:, 0])
    pd.DataFrame({"id": np.arange(1, n + 1), "ra": ra, "dec": dec}).to_csv(
        out / "cat.csv", index=False)
    bands = [{"name": b, "wavelength": w, "sci": DECALS, "sci_hdu": 1 + 2 * i,
              "weight": DECALS, "weight_hdu": 2 + 2 * i, "unit": "nanomaggy"}
             for i, (b, w) in enumerate([("g", 0.477), ("r", 0.623), ("z", 0.913)])]
    (out / "s.toml").write_text(tomli_w.dumps({
        "bands": bands, "segmentation": {"path": "seg.fits"}, "catalog": {"path": "cat.csv"}}))
    store = str(out / "decals.zarr")
    galclust.ingest(str(out / "s.toml"), store, tile=128)
    return store, str(out / "results")


def _run(store: str, results: str, **params) -> galclust.store.results.Results:
    run = RunWriter.begin(results, params={"store": store})
    from galclust.pixels.survey import run_pixels

    run_pixels(galclust.open_cube(store), open_catalog(store), run, **params)
    run.publish()
    return galclust.open_results(results)


def test_decals_sources_are_clustered_sensibly_and_reproducibly(decals_cube):
    from galclust.pixels.survey import decode_labels

    store, results = decals_cube
    cube = galclust.open_cube(store)
    seg = cube["seg"].values
    first = _run(store, results, method="kmeans", normalize="l2", random_state=3)
    gal = first.table("pixels/galaxies")
    assert set(gal["id"]) == set(np.unique(seg)) - {0}
    assert (gal["error"].fillna("") == "").all()  # no galaxy crashed
    big = gal.nlargest(1, "n_pixels").iloc[0]
    assert big["n_clusters"] >= 1 and big["n_pixels"] > 50
    stamps = first.table("pixels/stamps").set_index("id")
    st = stamps.loc[big["id"]]
    labels = decode_labels(st["labels"], st["ny"], st["nx"])
    own = seg[st["y0"]:st["y0"] + st["ny"], st["x0"]:st["x0"] + st["nx"]] == big["id"]
    assert (labels[~own] == -1).all()  # labels only inside the source's own segment
    assert set(np.unique(labels[labels >= 0])) == set(range(int(big["n_clusters"])))
    comp = first.table("pixels/composites")
    mine = comp[comp["id"] == big["id"]]
    assert np.isfinite(mine["flux"]).all() and (mine["err"] > 0).all()
    # the summed composite flux of each band equals the cube's flux over the clustered pixels
    sci = cube["sci"].values[:, st["y0"]:st["y0"] + st["ny"], st["x0"]:st["x0"] + st["nx"]]
    for i, band in enumerate(["g", "r", "z"]):
        np.testing.assert_allclose(mine.loc[mine["band"] == band, "flux"].sum(),
                                   sci[i][labels >= 0].sum(), rtol=1e-5)
    again = _run(store, results, method="kmeans", normalize="l2", random_state=3)
    pd.testing.assert_frame_equal(
        again.table("pixels/stamps").sort_values("id").reset_index(drop=True),
        first.table("pixels/stamps").sort_values("id").reset_index(drop=True))
