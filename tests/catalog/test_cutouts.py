"""Stamps around centres: exact pixels, edge padding, coverage; the Dask mapping."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest

from galclust.catalog.cutouts import cut_stamps, extract_stamps, stamp_coverage
from galclust.errors import InputError

DATA = Path(__file__).parents[1] / "data" / "catalog"


def test_extract_exact_pixels_and_padding():
    img = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    st = extract_stamps(img, np.array([[5.0, 6.0], [0.4, 0.6], [9.0, 11.0]]), size=5,
                        fill=-1.0)
    assert st.shape == (3, 2, 5, 5)
    np.testing.assert_array_equal(st[0], img[:, 3:8, 4:9])
    # centre (0, 1): rows -2..2, cols -1..3 -> top-left padded
    assert st[1, 0, 2, 2] == img[0, 0, 1]
    np.testing.assert_array_equal(st[1, :, :2, :], -1.0)
    np.testing.assert_array_equal(st[1, :, 2:, 0], -1.0)
    np.testing.assert_array_equal(st[1, :, 2:, 1:], img[:, 0:3, 0:4])
    # bottom-right corner source
    np.testing.assert_array_equal(st[2, :, :3, :3], img[:, 7:10, 9:12])
    np.testing.assert_array_equal(st[2, :, 3:, :], -1.0)


def test_extract_with_origin_matches_full_array():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(3, 40, 50)).astype(np.float32)
    c = np.array([[20.2, 30.7], [12.0, 22.0]])
    full = extract_stamps(img, c, size=7)
    region = extract_stamps(img[:, 10:35, 20:45], c, size=7, origin=(10, 20))
    np.testing.assert_array_equal(full[0], region[0])  # fully inside the region
    # the second stamp (rows 9..15, cols 19..25) loses row 9 and column 19
    np.testing.assert_array_equal(region[1, :, 1:, 1:], full[1, :, 1:, 1:])
    np.testing.assert_array_equal(region[1, :, 0, :], 0.0)
    np.testing.assert_array_equal(region[1, :, :, 0], 0.0)


def test_cut_stamps_coverage_and_zero_weight():
    sci = np.ones((2, 30, 30), dtype=np.float32)
    err = np.full_like(sci, 0.5)
    err[:, :, :15] = np.inf  # left half uncovered
    sci[:, :, :15] = np.nan
    st, cov, level = cut_stamps(sci, err, np.array([[15.0, 15.0], [15.0, 25.0], [-40, -40]]),
                                size=11)
    # stamp 0: columns 10..20, of which 10..14 uncovered -> 5/11 missing
    assert cov[0] == pytest.approx(6 / 11)
    assert cov[1] == pytest.approx(10 / 11)  # cols 20..30: column 30 is off the image
    assert cov[2] == 0.0
    assert np.all(np.isfinite(st)) and np.all(st[0][:, :, :5] == 0) and np.all(st[0][:, :, 5:] == 1)
    np.testing.assert_allclose(level[0], 0.5)
    assert np.all(np.isnan(level[2]))


def test_bad_calls():
    with pytest.raises(InputError, match="odd"):
        extract_stamps(np.zeros((5, 5)), np.zeros((1, 2)), size=4)
    with pytest.raises(InputError, match="NaN"):
        extract_stamps(np.zeros((5, 5)), np.array([[np.nan, 1.0]]), size=3)
    with pytest.raises(InputError, match="same shape"):
        cut_stamps(np.zeros((2, 5, 5)), np.zeros((1, 5, 5)), np.zeros((1, 2)), size=3)
    with pytest.raises(InputError, match="source, band"):
        stamp_coverage(np.ones((3, 3), bool))


def test_real_hsc_stamps_centred_on_sources():
    """Stamps cut from real HSC pixels peak at (or next to) the catalogued centre."""
    d = np.load(DATA / "hsc_cosmos_35.npz")
    img, var = d["images"], d["variance"]
    cat = d["catalog"]
    centres = np.column_stack([cat["y"], cat["x"]])
    err = np.sqrt(var).astype(np.float32)
    st, cov, level = cut_stamps(img, err, centres, size=21)
    assert st.shape == (7, 5, 21, 21)
    summed = st.sum(axis=1)
    # every catalogued source is detected at the stamp centre (S/N > 4 in the band sum)
    snr = summed[:, 10, 10] / np.sqrt((level**2).sum(axis=1))
    assert np.all(snr > 4)
    # the four brightest peak within one pixel of the centre (the faint ones sit on
    # brighter neighbours' wings in this blend); swapping x and y breaks both checks
    bright = np.argsort(-snr)[:4]
    for s in summed[bright]:
        assert s[9:12, 9:12].max() >= s[6:15, 6:15].max()
    # sources near the 58 x 48 image edge have partial coverage
    inside = ((centres[:, 0] >= 10) & (centres[:, 0] <= 47) & (centres[:, 1] >= 10)
              & (centres[:, 1] <= 37))
    assert np.all(cov[inside] == 1.0) and np.all(cov[~inside] < 1.0)
    np.testing.assert_allclose(level, np.broadcast_to(np.median(err, axis=(1, 2)), level.shape),
                               rtol=0.2)


def test_survey_cutouts_one_task_per_tile(cube, catalog):
    from galclust.catalog.survey import survey_cutouts

    cut = survey_cutouts(cube, catalog, size=51, tile=256)
    keys = [k for k in dict(cut.stamps.__dask_graph__()) if "_tile_stamps" in str(k)]
    n_tiles = len({(int(y) // 256, int(x) // 256) for y, x in zip(catalog.y, catalog.x,
                                                                  strict=True)})
    assert len(keys) == n_tiles == len(cut.stamps.chunks[0])
    assert sorted(cut.ids.tolist()) == sorted(catalog.id.tolist())
    # compare 5 stamps with a direct numpy cut of the whole mosaic
    pick = np.linspace(0, len(cut.ids) - 1, 5).astype(int)
    sci, err = dask.compute(cube.sci.data, cube.err.data)
    want, cov, _ = cut_stamps(sci, err, np.column_stack([cut.y[pick], cut.x[pick]]), size=51)
    got = cut.stamps[pick].compute()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(cut.aux[pick, 0].compute(), cov)


def test_survey_cutouts_is_lazy(cube, catalog):
    from galclust.catalog.survey import survey_cutouts

    calls = []

    def no_compute(*args, **kwargs):
        calls.append(1)
        raise AssertionError("survey_cutouts computed something")

    with dask.config.set(scheduler=no_compute):
        cut = survey_cutouts(cube, catalog)
    assert cut.stamps.shape == (len(catalog), cube.sizes["band"], 51, 51) and not calls


def test_survey_cutouts_bad_catalog(cube, catalog):
    from galclust.catalog.survey import survey_cutouts

    with pytest.raises(InputError, match="no column"):
        survey_cutouts(cube, catalog.drop(columns=["x"]))
    bad = catalog.copy()
    bad.loc[0, "y"] = np.nan
    with pytest.raises(InputError, match="finite x, y"):
        survey_cutouts(cube, bad)
