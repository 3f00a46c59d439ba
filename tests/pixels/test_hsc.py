"""Real pixels: a Subaru HSC blend in COSMOS (tests/data/hsc_cosmos, from scarlet, MIT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from galclust.pixels import METHODS, cluster_galaxy

DATA = Path(__file__).resolve().parents[1] / "data" / "hsc_cosmos" / "hsc_cosmos_35.npz"
#: HSC filter pivot wavelengths (micron).
HSC_PIVOTS = {"g": 0.477, "r": 0.623, "i": 0.775, "z": 0.925, "y": 0.980}


@pytest.fixture(scope="module")
def hsc():
    """Images, 1-sigma errors, band names, pivots and a segmentation of the 7 sources.

    Segmentation: pixels whose band-summed S/N exceeds 3, each given to the
    nearest catalog position (a Voronoi split of the detection mask).
    """
    with np.load(DATA) as d:
        sci = d["images"].astype(np.float64)
        err = np.sqrt(d["variance"].astype(np.float64))
        bands = [str(b) for b in d["filters"]]
        cat = d["catalog"]
    detect = sci.sum(axis=0) / np.sqrt((err**2).sum(axis=0)) > 3
    yy, xx = np.mgrid[: sci.shape[1], : sci.shape[2]]
    dist = (yy[None] - cat["y"][:, None, None]) ** 2 + (xx[None] - cat["x"][:, None, None]) ** 2
    seg = np.where(detect, dist.argmin(axis=0) + 1, 0)
    wl = np.array([HSC_PIVOTS[b] for b in bands])
    return sci, err, bands, wl, seg, cat


def test_data_is_what_the_readme_says(hsc):
    sci, err, bands, _, seg, cat = hsc
    assert sci.shape == (5, 58, 48) and bands == ["g", "r", "i", "z", "y"]
    assert len(cat) == 7 and np.isfinite(err).all() and (err > 0).all()
    assert len(np.unique(seg[seg > 0])) == 7
    labelled, n = ndimage.label(seg > 0)
    assert n >= 1


@pytest.mark.parametrize("method", METHODS)
def test_every_source_gives_a_sensible_result(hsc, method):
    sci, err, bands, wl, seg, cat = hsc
    for i in range(len(cat)):
        foot = seg == i + 1
        res = cluster_galaxy(sci, err, foot, wl, method=method, bands=bands)
        assert res.n_clusters >= 1 and res.n_pixels > 0
        assert not (res.labels[~foot] >= 0).any()  # labels only inside the footprint
        assert set(np.unique(res.labels)) <= set(range(-1, res.n_clusters))
        ds = res.composites
        assert np.isfinite(ds["flux"].values).all() and (ds["err"].values > 0).all()
        assert ds["n_pixels"].values.sum() == (res.labels >= 0).sum()
        assert res.used_bands == tuple(bands)


def test_brightest_source_has_structure_and_faint_one_is_single(hsc):
    sci, err, bands, wl, seg, _ = hsc
    bright = cluster_galaxy(sci, err, seg == 1, wl, bands=bands)
    assert bright.n_clusters >= 2 and bright.chi2_single > 10
    faint = cluster_galaxy(sci, err, seg == 7, wl, bands=bands)
    assert faint.n_clusters == 1 and faint.criterion == "single"


def test_same_seed_same_labels_on_real_pixels(hsc):
    sci, err, bands, wl, seg, _ = hsc
    for method in ("kmeans", "gmm", "spectral"):
        a = cluster_galaxy(sci, err, seg == 2, wl, method=method, random_state=3)
        b = cluster_galaxy(sci, err, seg == 2, wl, method=method, random_state=3)
        np.testing.assert_array_equal(a.labels, b.labels)
