"""Real pixels: SED clusters explain a galaxy's colour maps better than clusters of
brightness or of position with the same k (HSC COSMOS blend, DECaLS DR9 cutout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from sklearn.cluster import KMeans

from galclust.pixels import cluster_galaxy
from galclust.pixels.skynoise import sky_from_segmentation

DATA = Path(__file__).resolve().parents[1] / "data"


def _hsc():
    with np.load(DATA / "hsc_cosmos" / "hsc_cosmos_35.npz") as d:
        sci = d["images"].astype(np.float64)
        err = np.sqrt(d["variance"].astype(np.float64))
        cat = d["catalog"]
    detect = sci.sum(axis=0) / np.sqrt((err**2).sum(axis=0)) > 3
    yy, xx = np.mgrid[: sci.shape[1], : sci.shape[2]]
    dist = (yy[None] - cat["y"][:, None, None]) ** 2 + (xx[None] - cat["x"][:, None, None]) ** 2
    seg = np.where(detect, dist.argmin(axis=0) + 1, 0)
    return sci, err, np.array([0.477, 0.623, 0.775, 0.925, 0.980]), seg == 1, seg


def _decals():
    with fits.open(DATA / "decals" / "cutout_59.1067_-30.4848.fits") as hdul:
        sci = np.stack([hdul[i].data for i in (1, 3, 5)]).astype(np.float64)
        ivar = np.stack([hdul[i].data for i in (2, 4, 6)]).astype(np.float64)
    err = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1)), np.inf)
    seg, _ = ndimage.label(ndimage.gaussian_filter(sci[1] / err[1], 1.5) > 3.0)
    sizes = np.bincount(seg.ravel())
    sizes[0] = 0
    return sci, err, np.array([0.477, 0.623, 0.913]), seg == sizes.argmax(), seg


def _eta2(colours: np.ndarray, labels: np.ndarray) -> float:
    """Share of the colour variance between the clusters (correlation ratio, summed over
    colours)."""
    total = ((colours - colours.mean(axis=0)) ** 2).sum()
    within = sum(((colours[labels == k] - colours[labels == k].mean(axis=0)) ** 2).sum()
                 for k in np.unique(labels))
    return 1.0 - within / total


@pytest.mark.parametrize("image", ["hsc", "decals"])
@pytest.mark.parametrize("unmix", [False, True])
def test_sed_clusters_explain_colours_better_than_brightness_or_position(image, unmix):
    sci, err, wl, foot, seg = _hsc() if image == "hsc" else _decals()
    res = cluster_galaxy(sci, err, foot, wl, sky=sky_from_segmentation(seg), unmix=unmix)
    k = res.n_clusters
    assert k >= 2, "the test needs a galaxy with structure"
    sel = res.labels >= 0
    flux = sci[:, sel].T
    colours = -2.5 * np.log10(np.clip(flux[:, :-1], 1e-12, None)
                              / np.clip(flux[:, 1:], 1e-12, None))
    yy, xx = np.nonzero(sel)
    brightness = KMeans(k, n_init=10, random_state=0).fit_predict(
        np.log10(np.clip(flux.sum(axis=1), 1e-12, None))[:, None])
    position = KMeans(k, n_init=10, random_state=0).fit_predict(np.c_[yy, xx].astype(float))
    ours = _eta2(colours, res.labels[sel])
    print(f"{image} unmix={unmix} k={k}: eta2 SED {ours:.3f}, brightness "
          f"{_eta2(colours, brightness):.3f}, position {_eta2(colours, position):.3f}")
    # measured: HSC 0.22-0.23 against 0.14 and 0.02; DECaLS 0.06-0.23 against <= 0.014
    assert ours > 1.4 * max(_eta2(colours, brightness), _eta2(colours, position))
