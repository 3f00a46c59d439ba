"""cluster_galaxy: arrays in, labels + composites + flags out; bad calls raise, bad galaxies flag."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score

import galclust
from galclust.errors import InputError
from galclust.pixels import PixelFlag, cluster_galaxy, flag_names


def test_public_name_resolves_lazily():
    assert galclust.cluster_galaxy is cluster_galaxy


def test_two_halves_labels_and_composites(make_halves, wavelength):
    sci, err, mask, truth = make_halves()
    mask[:3] = False  # a footprint smaller than the stamp
    res = cluster_galaxy(sci, err, mask, wavelength, bands=[f"b{i}" for i in range(8)])
    assert res.labels.shape == mask.shape and res.labels.dtype == np.int32
    assert (res.labels[~mask] == -1).all()
    assert res.n_clusters == 2 and res.flags == PixelFlag(0)
    sel = res.labels >= 0
    assert adjusted_rand_score(truth[sel], res.labels[sel]) == 1.0
    ds = res.composites
    assert isinstance(ds, xr.Dataset)
    assert ds["flux"].dims == ("cluster", "band") and list(ds["band"].values)[0] == "b0"
    np.testing.assert_array_equal(ds["wavelength"].values, wavelength)
    for c in range(2):
        pix = res.labels == c
        np.testing.assert_allclose(ds["flux"].values[c], sci[:, pix].sum(axis=1))
        np.testing.assert_allclose(ds["err"].values[c], np.sqrt((err[:, pix] ** 2).sum(axis=1)))
        assert ds["n_pixels"].values[c] == pix.sum()
        np.testing.assert_allclose(np.linalg.norm(ds["shape"].values[c]), 1.0)
    # the blue half's composite falls with wavelength, the red half's rises
    slopes = [np.polyfit(wavelength, ds["shape"].values[c], 1)[0] for c in range(2)]
    blue = int(np.argmin(slopes))
    assert (res.labels[truth == 0][res.labels[truth == 0] >= 0] == blue).all()
    assert res.summary()["n_clusters"] == 2 and res.n_pixels == sel.sum()
    assert res.used_bands == tuple(f"b{i}" for i in range(8)) and res.dropped_bands == {}


def test_one_sed_galaxy_gets_one_cluster(make_halves, wavelength):
    sci, err, mask, _ = make_halves(split=False)
    res = cluster_galaxy(sci, err, mask, wavelength)
    assert res.n_clusters == 1 and res.criterion == "single"
    assert res.chi2_single == pytest.approx(1.0, abs=0.2)


def test_raw_fluxes_cluster_brightness(make_halves, wavelength):
    sci, err, mask, truth = make_halves()
    raw = cluster_galaxy(sci, err, mask, wavelength, normalize="none", n_clusters=2)
    sel = raw.labels >= 0
    assert adjusted_rand_score(truth[sel], raw.labels[sel]) < 0.3


def test_same_seed_same_result(make_halves, wavelength):
    sci, err, mask, _ = make_halves(snr_peak=12, seed=3)
    a = cluster_galaxy(sci, err, mask, wavelength, method="gmm", random_state=5)
    b = cluster_galaxy(sci, err, mask, wavelength, method="gmm", random_state=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    xr.testing.assert_identical(a.composites, b.composites)


def test_options_reach_the_estimator(make_halves, wavelength):
    sci, err, mask, _ = make_halves()
    res = cluster_galaxy(sci, err, mask, wavelength, method="agglomerative",
                         linkage="average", metric="chi2", k_range=(3, 3))
    assert res.n_clusters == 3 and res.criterion == "chi2"


# --------------------------------------------------------------------------- degenerate
def test_all_nan_galaxy_is_flagged(make_halves, wavelength):
    sci, err, mask, _ = make_halves()
    sci[:] = np.nan
    res = cluster_galaxy(sci, err, mask, wavelength)
    assert res.flags & PixelFlag.ALL_NAN and res.flags & PixelFlag.NO_PIXELS
    assert res.n_clusters == 0 and (res.labels == -1).all()
    assert res.composites.sizes["cluster"] == 0 and np.isnan(res.score)


def test_one_pixel_galaxy_is_flagged(make_halves, wavelength):
    sci, err, _, _ = make_halves()
    mask = np.zeros(sci.shape[1:], bool)
    mask[10, 10] = True
    res = cluster_galaxy(sci, err, mask, wavelength)
    assert res.flags & PixelFlag.TOO_FEW_PIXELS and "TOO_FEW_PIXELS" in res.flag_names
    assert res.n_clusters == 1 and res.labels[10, 10] == 0 and (res.labels >= 0).sum() == 1
    np.testing.assert_allclose(res.composites["flux"].values[0], sci[:, 10, 10])


def test_single_usable_band_is_flagged(make_halves, wavelength):
    sci, err, mask, _ = make_halves()
    err[1:] = np.inf
    sci[1:] = 0.0
    res = cluster_galaxy(sci, err, mask, wavelength, bands=list("abcdefgh"))
    assert res.flags & PixelFlag.SINGLE_BAND and res.flags & PixelFlag.BANDS_DROPPED
    assert res.n_clusters == 1 and res.used_bands == ("a",)
    assert res.dropped_bands["b"] == "no coverage"
    flux = res.composites["flux"].values[0]
    assert np.isfinite(flux[0]) and np.isnan(flux[1:]).all()


def test_dropped_band_does_not_stop_clustering(make_halves, wavelength):
    sci, err, mask, truth = make_halves()
    err[3] = np.inf
    sci[3] = np.nan
    res = cluster_galaxy(sci, err, mask, wavelength)
    assert res.flags == PixelFlag.BANDS_DROPPED and res.n_clusters == 2
    assert np.isnan(res.composites["flux"].values[:, 3]).all()
    assert np.isfinite(res.composites["flux"].values[:, [0, 1, 2, 4, 5, 6, 7]]).all()


def test_integer_k_above_selected_but_within_footprint_is_reduced(make_halves, wavelength):
    sci, err, mask, _ = make_halves(snr_peak=5)  # few pixels pass S/N 3
    res = cluster_galaxy(sci, err, mask, wavelength, n_clusters=200, min_pixels=1)
    assert res.flags & PixelFlag.K_REDUCED and res.n_clusters == res.n_pixels < 200


def test_flag_names_roundtrip():
    value = int(PixelFlag.NO_PIXELS | PixelFlag.ALL_NAN)
    assert flag_names(value) == ["NO_PIXELS", "ALL_NAN"]
    assert "no pixel passed" in flag_names(value, describe=True)[0]


# --------------------------------------------------------------------------- bad calls
def test_bad_calls_raise_before_compute(make_halves, wavelength):
    sci, err, mask, _ = make_halves()
    with pytest.raises(InputError, match=r"method='kmens'.*Did you mean 'kmeans'"):
        cluster_galaxy(sci, err, mask, wavelength, method="kmens")
    with pytest.raises(InputError, match=r"normalize='L2'.*'none', 'l2'"):
        cluster_galaxy(sci, err, mask, wavelength, normalize="L2")
    with pytest.raises(InputError, match=r"metric='euclidian'.*Did you mean 'euclidean'"):
        cluster_galaxy(sci, err, mask, wavelength, metric="euclidian")
    with pytest.raises(InputError, match=r"n_clusters=401 is larger than the number of pixels "
                                         r"in the footprint \(400\)"):
        cluster_galaxy(sci, err, mask, wavelength, n_clusters=401)
    with pytest.raises(InputError, match=r"err has shape \(8, 20, 19\) but sci has"):
        cluster_galaxy(sci, err[:, :, :19], mask, wavelength)
    with pytest.raises(InputError, match="mask has shape"):
        cluster_galaxy(sci, err, mask[:5], wavelength)
    with pytest.raises(InputError, match="one pivot wavelength per band"):
        cluster_galaxy(sci, err, mask, wavelength[:3])
    with pytest.raises(InputError, match=r"unknown option 'linkge'.*Did you mean 'linkage'"):
        cluster_galaxy(sci, err, mask, wavelength, linkge="average")
    with pytest.raises(InputError, match="positive, finite pivot wavelengths"):
        cluster_galaxy(sci, err, mask, -wavelength)
    with pytest.raises(InputError, match=r"sci must be a \(band, y, x\) array"):
        cluster_galaxy(sci[0], err[0], mask, wavelength)
