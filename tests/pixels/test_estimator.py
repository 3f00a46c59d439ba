"""PixelClusterer: a scikit-learn estimator that finds SED-shape clusters and their number."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from galclust.errors import InputError
from galclust.pixels import METHODS, PixelClusterer, PixelFlag

WAVELENGTH = np.array([0.901, 1.154, 1.501, 1.988, 2.776, 3.565, 4.083, 4.402])


@pytest.fixture
def pixels(make_halves):
    """Factory: the S/N >= 3 pixels of a two-halves galaxy as (flux, err, truth) rows."""

    def make(split=True, snr_peak=60.0, seed=0):
        sci, err, mask, truth = make_halves(split=split, snr_peak=snr_peak, seed=seed)
        keep = mask & (np.median(sci / err, axis=0) >= 3)
        return sci[:, keep].T, err[:, keep].T, truth[keep]

    return make


def test_sklearn_conventions(pixels):
    est = PixelClusterer(method="gmm", n_clusters=3, normalize="sum", metric="xcorr")
    params = est.get_params()
    assert params["method"] == "gmm" and params["n_clusters"] == 3
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    est.set_params(method="kmeans", k_range=(1, 4))
    assert est.method == "kmeans" and est.k_range == (1, 4)
    assert not hasattr(PixelClusterer(method="nonsense"), "labels_")  # no logic in __init__
    flux, err, _ = pixels()
    assert est.fit(flux, err=err) is est
    assert est.labels_.shape == (len(flux),) and est.n_features_in_ == 8


@pytest.mark.parametrize("method", METHODS)
def test_every_method_recovers_two_sed_halves_despite_a_brightness_gradient(method, pixels):
    flux, err, truth = pixels()
    est = PixelClusterer(method=method, wavelength=WAVELENGTH).fit(flux, err=err)
    assert est.n_clusters_ == 2
    clustered = est.labels_ >= 0
    assert clustered.mean() > 0.9
    assert adjusted_rand_score(truth[clustered], est.labels_[clustered]) > 0.95


@pytest.mark.parametrize("metric", ["euclidean", "xcorr", "wavelength", "chi2"])
def test_every_metric_recovers_the_halves(metric, pixels):
    flux, err, truth = pixels()
    est = PixelClusterer(metric=metric, wavelength=WAVELENGTH).fit(flux, err=err)
    assert adjusted_rand_score(truth, est.labels_) > 0.95


def test_raw_fluxes_find_brightness_not_shape(pixels):
    flux, err, truth = pixels()
    raw = PixelClusterer(normalize="none", n_clusters=2).fit(flux, err=err)
    shape = PixelClusterer(normalize="l2", n_clusters=2).fit(flux, err=err)
    assert adjusted_rand_score(truth, shape.labels_) > 0.95
    assert adjusted_rand_score(truth, raw.labels_) < 0.3
    # the raw-flux clusters differ in brightness by a large factor
    tot = flux.sum(axis=1)
    means = [tot[raw.labels_ == c].mean() for c in range(2)]
    assert max(means) / min(means) > 2


@pytest.mark.parametrize("method", ["kmeans", "gmm", "agglomerative", "spectral"])
def test_one_sed_gives_one_cluster(method, pixels):
    flux, err, _ = pixels(split=False)
    est = PixelClusterer(method=method).fit(flux, err=err)
    assert est.n_clusters_ == 1 and est.criterion_ == "single"
    assert (est.labels_ == 0).all()
    assert est.chi2_single_ == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("method, linkage", [("kmeans", "ward"), ("gmm", "ward"),
                                             ("agglomerative", "average")])
def test_k1_without_errors_uses_gap_or_bic(method, linkage, pixels):
    flux, _, _ = pixels(split=False)
    assert PixelClusterer(method=method, linkage=linkage).fit(flux).n_clusters_ == 1
    flux2, _, truth = pixels(split=True)
    est = PixelClusterer(method=method, linkage=linkage).fit(flux2)
    assert est.n_clusters_ == 2 and adjusted_rand_score(truth, est.labels_) > 0.95


def test_fixed_k_and_relabelling_by_size(pixels):
    flux, err, _ = pixels()
    est = PixelClusterer(n_clusters=4).fit(flux, err=err)
    assert est.n_clusters_ == 4 and est.criterion_ == "fixed"
    sizes = np.bincount(est.labels_)
    assert (np.diff(sizes) <= 0).all()


def test_snr_target_picks_the_largest_k_whose_clusters_reach_it(pixels):
    flux, err, _ = pixels()
    loose = PixelClusterer(n_clusters="snr:5").fit(flux, err=err)
    strict = PixelClusterer(n_clusters="snr:300").fit(flux, err=err)
    assert loose.n_clusters_ == 6 and loose.criterion_ == "snr"
    assert min(loose.k_scores_.values()) >= 0 and loose.k_scores_[6] >= 5
    assert strict.n_clusters_ < loose.n_clusters_
    assert all(v < 300 for k, v in strict.k_scores_.items() if k > strict.n_clusters_)
    impossible = PixelClusterer(n_clusters="snr:1e9").fit(flux, err=err)
    assert impossible.n_clusters_ == 1 and impossible.flags_ & PixelFlag.SNR_TARGET_UNMET


def test_same_seed_same_labels_and_float32(pixels):
    flux, err, _ = pixels(snr_peak=15, seed=4)
    a = PixelClusterer(n_clusters=3, random_state=1).fit(flux, err=err).labels_
    b = PixelClusterer(n_clusters=3, random_state=1).fit(flux, err=err).labels_
    np.testing.assert_array_equal(a, b)
    c = PixelClusterer(n_clusters=3, random_state=1, dtype="float32").fit(flux, err=err).labels_
    assert adjusted_rand_score(a, c) > 0.9


def test_pairwise_methods_subsample_above_max_pairwise(pixels):
    flux, err, truth = pixels()
    est = PixelClusterer(method="agglomerative", linkage="average", max_pairwise=100,
                         memory_budget=10_000).fit(flux, err=err)
    assert est.flags_ & PixelFlag.SUBSAMPLED
    assert adjusted_rand_score(truth, est.labels_) > 0.95


def test_invalid_rows_are_unlabelled(pixels):
    flux, err, _ = pixels()
    flux = flux.copy()
    flux[0] = 0.0
    est = PixelClusterer(normalize="sum").fit(flux, err=err)
    assert est.labels_[0] == -1 and not est.valid_[0]
    assert est.flags_ & PixelFlag.INVALID_PIXELS


def test_bad_calls_raise_before_compute(pixels):
    flux, err, _ = pixels()
    with pytest.raises(InputError, match=r"method='kmean'.*Did you mean 'kmeans'"):
        PixelClusterer(method="kmean").fit(flux)
    with pytest.raises(InputError, match=r"metric='chi'.*Did you mean 'chi2'"):
        PixelClusterer(metric="chi").fit(flux)
    with pytest.raises(InputError, match="larger than the number of pixels"):
        PixelClusterer(n_clusters=len(flux) + 1).fit(flux)
    with pytest.raises(InputError, match="needs the pixel errors"):
        PixelClusterer(metric="chi2").fit(flux)
    with pytest.raises(InputError, match="needs the pixel errors"):
        PixelClusterer(n_clusters="snr:10").fit(flux)
    with pytest.raises(InputError, match="finds the number of clusters itself"):
        PixelClusterer(method="hdbscan", n_clusters=3).fit(flux)
    with pytest.raises(InputError, match="normalize must rescale pixels only"):
        PixelClusterer(metric="chi2", normalize="colour").fit(flux, err=err)
    with pytest.raises(InputError, match="needs wavelength="):
        PixelClusterer(metric="wavelength").fit(flux)
    with pytest.raises(InputError, match="S/N target after 'snr:' must be a positive number"):
        PixelClusterer(n_clusters="snr:abc").fit(flux)
    with pytest.raises(InputError, match="'auto', a positive int or 'snr:<target>'"):
        PixelClusterer(n_clusters="many").fit(flux)
    with pytest.raises(InputError, match="k_range"):
        PixelClusterer(k_range=(3, 2)).fit(flux)
    with pytest.raises(InputError, match="err has shape"):
        PixelClusterer().fit(flux, err=err[:3])


# --------------------------------------------------------------------------- the χ² rule for k
_SHAPES = np.array([[1.0, 1.2, 1.5, 2.0, 2.6, 3.3],    # red
                    [3.0, 2.5, 2.0, 1.6, 1.3, 1.1],    # blue
                    [1.0, 1.0, 3.0, 1.0, 1.0, 1.0]])   # an emission line in band 3


def _populations(shapes, n=300, snr=40.0, seed=0):
    """Pixels of the given SED shapes, brightness varying 1-4x, Gaussian noise."""
    rng = np.random.default_rng(seed)
    lab = np.repeat(np.arange(len(shapes)), n)
    model = shapes[lab] * rng.uniform(1, 4, len(lab))[:, None]
    err = np.full_like(model, model.mean() / snr)
    return model + rng.normal(0, err), err, lab


def test_clustered_chi2_is_one_for_pure_noise_around_each_shape():
    from galclust.pixels.nclusters import clustered_chi2

    flux, err, lab = _populations(_SHAPES)
    right, _ = clustered_chi2(flux, err, lab)
    merged, sig = clustered_chi2(flux, err, np.minimum(lab, 1))
    assert right == pytest.approx(1.0, abs=0.05)
    assert merged > 10 and sig > 5
    ignored = np.where(lab == 2, -1, lab)  # -1 pixels are left out
    assert clustered_chi2(flux, err, ignored)[0] == pytest.approx(1.0, abs=0.05)
    assert np.isnan(clustered_chi2(flux, err, np.full(len(lab), -1))[0])


@pytest.mark.parametrize("method", ["kmeans", "agglomerative", "spectral"])
def test_auto_k_finds_three_populations_by_chi2(method):
    flux, err, lab = _populations(_SHAPES, n=200)
    est = PixelClusterer(method=method).fit(flux, err=err)
    assert est.criterion_ == "chi2" and est.n_clusters_ == 3
    assert adjusted_rand_score(lab, est.labels_) > 0.95
    # reduced chi2 per k tried: at 3 it is down to the noise, so 4 is not tried
    assert sorted(est.k_scores_) == [2, 3]
    assert est.k_scores_[3] == pytest.approx(1.0, abs=0.1) and est.k_scores_[2] > 5


def test_auto_k_does_not_cut_a_smooth_colour_gradient_into_many():
    """One population whose colour drifts smoothly (red to blue across the
    galaxy): the split in two is real, further cuts remove less than 70 % of
    what is left and are refused."""
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 1, 900)[:, None]
    model = ((1 - t) * _SHAPES[0] + t * _SHAPES[1]) * rng.uniform(1, 4, (900, 1))
    err = np.full_like(model, model.mean() / 40)
    est = PixelClusterer().fit(model + rng.normal(0, err), err=err)
    assert est.criterion_ == "chi2" and est.n_clusters_ == 2, est.k_scores_
    strict = PixelClusterer(min_explained=0.3).fit(model + rng.normal(0, err), err=err)
    assert strict.n_clusters_ > 2  # the threshold is what stops it


def test_auto_k_does_not_split_off_single_outlier_pixels():
    """One SED plus two cosmic-ray pixels (200 sigma, each in another band): the
    chi2 rule would give each spike its own cluster (k = 3: [398, 1, 1]);
    MIN_SPLIT_PIXELS stops it. (The spikes alone already fail the k = 1 test.)"""
    flux, err, _ = _populations(_SHAPES[:1], n=400, seed=3)
    flux[[5, 100]] += 200 * err[[5, 100]] * np.eye(6)[[1, 4]]
    est = PixelClusterer().fit(flux, err=err)
    assert est.criterion_ == "chi2" and est.n_clusters_ <= 2, est.k_scores_
    assert np.bincount(est.labels_).max() >= 398


def test_auto_k_with_fewer_pixels_than_kmin():
    flux, err, _ = _populations(_SHAPES, n=1)  # 3 pixels
    est = PixelClusterer(k_range=(4, 6)).fit(flux, err=err)
    assert est.n_clusters_ == 1 and (est.labels_ == 0).all()
