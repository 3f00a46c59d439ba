"""detect: table columns, deterministic ids, WCS, err=None, masks, flags and bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.wcs import WCS

import galclust
from galclust.errors import InputError
from galclust.sources.detection import detect
from galclust.synth.blends import make_blend_scenes


@pytest.fixture(scope="module")
def scene():
    return make_blend_scenes(3, random_state=5)[2]


def _two_sources(shape=(64, 64), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    blob = lambda y, x: np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / 2.0**2)  # noqa: E731
    sci = np.stack([100 * blob(20, 20) + 30 * blob(44, 40),
                    50 * blob(20, 20) + 80 * blob(44, 40)])
    return sci + rng.normal(size=sci.shape), np.ones(sci.shape)


def test_public_api_and_columns(scene):
    assert galclust.detect is detect
    seg, tab = galclust.detect(scene.sci, scene.err, bands=scene.bands)
    assert seg.dtype == np.int32 and seg.shape == scene.sci.shape[1:]
    assert list(tab["id"]) == list(range(1, seg.max() + 1))
    cols = ["id", "x", "y", *[f"flux_{b}" for b in scene.bands],
            *[f"flux_err_{b}" for b in scene.bands], "area", "a", "b", "theta", "snr",
            "parent", "flag"]
    for c in cols:
        assert c in tab.columns, c
    assert (tab["a"] >= tab["b"]).all() and (tab["area"] > 0).all()
    assert tab["parent"].isin(tab["id"]).all()
    np.testing.assert_array_equal(np.bincount(seg.ravel())[1:], tab["area"])
    seg2, tab2 = galclust.detect(scene.sci, scene.err, bands=scene.bands)   # deterministic
    np.testing.assert_array_equal(seg, seg2)
    assert tab.equals(tab2)


def test_ids_sorted_by_position_and_reproducible():
    sci, err = _two_sources()
    seg, tab = detect(sci, err, deblend=None)
    assert len(tab) == 2
    assert tab.loc[0, "y"] < tab.loc[1, "y"]                 # numbered by (y, x)
    assert abs(tab.loc[0, "x"] - 20) < 0.5 and abs(tab.loc[1, "y"] - 44) < 0.5
    seg2, tab2 = detect(sci, err, deblend=None)
    np.testing.assert_array_equal(seg, seg2)
    assert tab.equals(tab2)
    assert list(tab.columns[:3]) == ["id", "x", "y"] and "flux_0" in tab and "flux_1" in tab
    np.testing.assert_allclose(tab["flux_0"].iloc[0], 100 * 2 * np.pi * 4, rtol=0.1)


def test_single_band_wcs_and_estimated_noise(caplog):
    sci, _ = _two_sources()
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [1, 1]
    w.wcs.cdelt = [-1e-5, 1e-5]
    with caplog.at_level(logging.INFO, logger="galclust.sources.detection"):
        seg, tab = detect(sci[0], wcs=w)
    assert "estimating the noise" in caplog.text
    assert len(tab) == 2 and {"ra", "dec"} <= set(tab.columns)
    assert abs(tab["dec"].iloc[0] - (2.0 + 1e-5 * tab["y"].iloc[0])) < 1e-7


def test_edge_and_mask_flags():
    sci, err = _two_sources()
    sci = np.roll(sci, (-19, -19), axis=(1, 2))          # first source on the corner
    mask = np.zeros(sci.shape[1:], bool)
    mask[25, 21] = True
    seg, tab = detect(sci, err, mask=mask, deblend="watershed")
    corner = tab.loc[tab["x"].idxmin()]
    assert int(corner["flag"]) & 1
    hit = seg[25, 21]
    if hit:
        assert int(tab.loc[tab["id"] == hit, "flag"].iloc[0]) & 2


def test_deblend_modes_split_a_pair_of_different_colours():
    yy, xx = np.indices((48, 48))
    blob = lambda y, x: np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / 2.0**2)  # noqa: E731
    rng = np.random.default_rng(1)
    a, b = blob(24, 20), blob(24, 27)
    sci = np.stack([40 * a + 5 * b, 30 * a + 20 * b, 10 * a + 40 * b])
    sci = sci + rng.normal(size=sci.shape)
    err = np.ones_like(sci)
    n_none = detect(sci, err, deblend=None)[1].shape[0]
    seg, tab = detect(sci, err, deblend="colour")
    assert n_none == 1 and len(tab) == 2
    assert (tab["parent"] == tab["id"].min()).all() and (tab["flag"] & 4).all()


def test_bad_input_raises_before_compute():
    sci = np.ones((2, 16, 16))
    with pytest.raises(InputError, match="err.*same shape"):
        detect(sci, np.ones((2, 16, 15)))
    bad = sci.copy()
    bad[1] = np.nan
    with pytest.raises(InputError, match=r"band 1 \('r'\).*NaN"):
        detect(bad, np.ones_like(sci), bands=["g", "r"])
    with pytest.raises(InputError, match="deblend"):
        detect(sci, np.ones_like(sci), deblend="scarlet")
    with pytest.raises(InputError, match="npixels"):
        detect(sci, np.ones_like(sci), npixels=0)
    with pytest.raises(InputError, match="mask"):
        detect(sci, np.ones_like(sci), mask=np.zeros((3, 3), bool))
    with pytest.raises(InputError, match="bands"):
        detect(sci, np.ones_like(sci), bands=["g"])
