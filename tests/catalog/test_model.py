"""SpuriousModel (mixture + labels), SpuriousClassifier and the flag_spurious API."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import galclust
from galclust.catalog.classifier import SpuriousClassifier
from galclust.catalog.model import SpuriousModel, bic_grid
from galclust.catalog.schema import CORE_COLUMNS
from galclust.errors import GalclustWarning, InputError, LabelConflictWarning


def _blobs(rng, n_a=400, n_b=400, n_c=30):
    X = np.vstack([rng.normal([0, 0], 1, (n_a, 2)), rng.normal([8, 0], 1, (n_b, 2)),
                   rng.normal([4, 9], 0.5, (n_c, 2))])
    truth = np.r_[np.zeros(n_a + n_b), np.ones(n_c)].astype(int)
    return X, truth


def test_mixture_flags_the_spurious_component():
    rng = np.random.default_rng(0)
    X, truth = _blobs(rng)
    y = np.where(rng.random(len(X)) < 0.3, truth, -1)
    reason = np.where(y == 1, "edge data", "")
    m = SpuriousModel(random_state=0).fit(X, y, reason=reason)
    assert m.n_components_ == 3 and min(m.bic_, key=m.bic_.get) == 3
    out = m.explain(X)
    assert out["flag"][truth == 1].all() and not out["flag"][truth == 0].any()
    assert (out["reason"][truth == 1] == "edge data").all() and (out["reason"][truth == 0] == "").all()
    p = m.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[truth == 1, 1].min() > 0.5 > 0.05 > p[truth == 0, 1].max()
    np.testing.assert_array_equal(m.predict(X), out["flag"].astype(int))


def test_shrinkage_one_labelled_source_is_not_certain():
    rng = np.random.default_rng(1)
    X, truth = _blobs(rng, n_c=20)
    y = np.full(len(X), -1)
    y[:50] = 0
    y[400:450] = 0
    first_c = len(X) - 20
    y[first_c] = 1  # a single labelled source in the small component
    m = SpuriousModel(n_components=3, prior_strength=2.0, local_prior=0, min_labels=1,
                      random_state=0)
    m.fit(X, y)
    k = m.predict_component(X[first_c:first_c + 1])[0]
    prior = 1 / 101
    assert m.component_fraction_[k] == pytest.approx((1 + 2 * prior) / (1 + 2), rel=1e-3)
    assert m.flagged_components_[k] and m.component_fraction_[k] < 0.5


def test_local_prior_flags_an_unlabelled_component_next_to_spurious_ones():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal([0, 0], 1, (500, 2)), rng.normal([20, 0], 0.4, (40, 2)),
                   rng.normal([20, 8], 0.4, (15, 2))])
    y = np.full(len(X), -1)
    y[:500] = 0  # global labelled spurious fraction 20 / 520 < threshold 0.05
    y[500:520] = 1  # labelled spurious in the first small blob; the second has no labels
    m = SpuriousModel(random_state=0).fit(X, y)
    k = m.predict_component(X[-15:])
    assert len(set(k)) == 1 and m.component_labelled_[k[0]] < 1e-6
    assert m.explain(X[-15:])["flag"].all()
    glob = SpuriousModel(local_prior=0, random_state=0).fit(X, y)
    assert not glob.explain(X[-15:])["flag"].any()  # the global prior alone misses it


def test_estimator_conventions_and_uncalibrated():
    m = SpuriousModel(n_components=2, threshold=0.1)
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "mixture_")
    X, _ = _blobs(np.random.default_rng(3))
    assert m.fit(X) is m
    assert not m.calibrated_ and np.isnan(m.predict_proba(X)[:, 1]).all()
    assert not m.predict(X).any()
    with pytest.raises(InputError, match="n_components"):
        SpuriousModel(n_components=0).fit(X)
    with pytest.raises(InputError, match=r"y must be 1 \(spurious\)"):
        SpuriousModel(n_components=2).fit(X, np.full(len(X), 2))
    assert bic_grid(20) == [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 19, 20]


def test_classifier_threshold_from_out_of_fold_recall():
    rng = np.random.default_rng(4)
    X, truth = _blobs(rng)
    X = np.hstack([X, rng.normal(size=(len(X), 3))])
    clf = SpuriousClassifier(target_recall=0.9, random_state=0).fit(X, truth)
    assert 0 < clf.threshold_ <= 1
    pred = clf.predict(X)
    assert pred[truth == 1].mean() >= 0.9 and pred[truth == 0].mean() < 0.02
    with pytest.raises(InputError, match="0 spurious"):
        SpuriousClassifier().fit(X, np.zeros(len(X)))


def _toy_stamps(rng, n_gal=260, n_edge=20, n_ridge=20, size=25):
    """Round galaxies, half-covered edge blobs and faint sources on a bright ridge."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    out = []
    for i in range(n_gal + n_edge + n_ridge):
        amp, r = rng.lognormal(2, 0.7), rng.uniform(1.5, 4)
        st = amp * np.exp(-(xx**2 + yy**2) / (2 * r**2)) * rng.uniform(0.5, 1.5, (3, 1, 1))
        st = st + rng.normal(0, 1, (3, size, size))
        if n_gal <= i < n_gal + n_edge:
            cut = rng.integers(9, 16)
            st[:, :, :cut] = 0.0
        elif i >= n_gal + n_edge:
            st = st * 0.3 + 40 * (np.abs(yy * np.cos(0.3 * i) - xx * np.sin(0.3 * i)) < 1.2)
        out.append(st)
    reason = ["" for _ in range(n_gal)] + ["edge data"] * n_edge + ["diffraction spike"] * n_ridge
    return np.asarray(out, dtype=np.float32), np.asarray(reason, dtype=object)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(7)
    stamps, reason = _toy_stamps(rng)
    ids = np.arange(1000, 1000 + len(stamps))
    lab = rng.random(len(ids)) < 0.5
    labels = pd.DataFrame({"id": ids[lab], "reliable": np.where(reason[lab] == "", "yes", "no"),
                           "reason": reason[lab]})
    return stamps, ids, reason, labels


def test_flag_spurious_on_toy_cutouts(toy):
    stamps, ids, reason, labels = toy
    out = galclust.flag_spurious(stamps, ids, labels, random_state=0, n_pca=6)
    assert list(out.columns[:len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert out["id"].tolist() == ids.tolist()
    assert {"pc_0", "pc_5", "coverage", "zero_fraction", "ridge_m2", "spike_score"} - \
        set(out.columns) == {"spike_score"}  # no positions given: no catalog features
    spur = reason != ""
    assert out["flag"][spur].mean() >= 0.95 and out["flag"].mean() <= 0.2
    assert (out["reason"][spur & out["flag"]] == reason[spur & out["flag"]]).mean() >= 0.9
    np.testing.assert_allclose(out["coverage"][reason == "edge data"], 1 - out[
        "zero_fraction"][reason == "edge data"], rtol=1e-6)
    assert out["coverage"][reason == "edge data"].max() < 0.7
    # the same call on a Dask array (dask-ml IncrementalPCA) gives the same flags
    dout = galclust.flag_spurious(da.from_array(stamps, chunks=(64, 3, 25, 25)), ids, labels,
                                  random_state=0, n_pca=6)
    np.testing.assert_array_equal(dout["flag"], out["flag"])
    np.testing.assert_allclose(np.abs(dout["pc_0"]), np.abs(out["pc_0"]), rtol=1e-3, atol=1e-3)


def test_flag_spurious_bad_input(toy):
    stamps, ids, reason, labels = toy
    with pytest.raises(InputError, match=r"no column for reliable='reliable'. The table has: "
                                         r"'id', 'ok', 'reason'"):
        galclust.flag_spurious(stamps, ids, labels.rename(columns={"reliable": "ok"}))
    with pytest.raises(InputError, match="ids has 3 values but cutouts has 300"):
        galclust.flag_spurious(stamps, ids[:3], labels)
    with pytest.raises(InputError, match=r"unknown option 'n_compnents'.*Did you mean "
                                         r"'n_components'"):
        galclust.flag_spurious(stamps, ids, labels, n_compnents=3)
    with pytest.raises(InputError, match=r"method='tsne' is not one of"):
        galclust.flag_spurious(stamps, ids, labels, method="tsne")
    with pytest.raises(InputError, match="source, band, y, x"):
        galclust.flag_spurious(stamps[0], ids, labels)


def test_flag_spurious_without_labelled_spurious_warns_and_keeps_features(toy):
    stamps, ids, reason, labels = toy
    reliable_only = labels[labels.reliable == "yes"]
    with pytest.warns(GalclustWarning, match="cannot be calibrated"):
        out = galclust.flag_spurious(stamps, ids, reliable_only, n_pca=4)
    assert out["p_spurious"].isna().all() and out["flag"].isna().all()
    assert out["ridge_m2"].notna().all() and out["component"].nunique() >= 1
    with pytest.warns(GalclustWarning, match="cannot be calibrated"):
        galclust.flag_spurious(stamps, ids, None, n_pca=4)


def test_flag_spurious_reports_unknown_label_ids(toy):
    stamps, ids, reason, labels = toy
    extra = pd.concat([labels, pd.DataFrame({"id": [5, 6], "reliable": [0, 1],
                                             "reason": ["edge data", ""]})])
    with pytest.warns(GalclustWarning, match=r"2 of \d+ labelled ids are not in the catalog"):
        out = galclust.flag_spurious(stamps, ids, extra, n_pca=4, method="mixture")
    assert len(out) == len(ids)


def test_no_labels_gives_null_flags_that_are_neither_true_nor_false(toy):
    stamps, ids, _, _ = toy
    with pytest.warns(GalclustWarning, match=r"0 labelled reliable and 0 labelled spurious "
                                             r"source\(s\).*at least 2 of each"):
        out = galclust.flag_spurious(stamps, ids, None, n_pca=4)
    assert out["flag"].dtype == "boolean"
    assert out["p_spurious"].isna().all() and out["flag"].isna().all()
    assert not (out["flag"] == False).any() and not (out["flag"] == True).any()  # noqa: E712
    s = out.attrs["summary"]
    assert (s["calibrated"], s["n_unknown"], s["n_flagged"], s["n_labelled"]) == (
        False, len(ids), 0, 0)


def test_too_few_labels_is_unknown_and_says_how_many_are_needed(toy):
    stamps, ids, reason, _ = toy
    one_reliable = pd.DataFrame({"id": [ids[0], *ids[reason != ""][:3]],
                                 "reliable": [1, 0, 0, 0], "reason": ["", *["edge data"] * 3]})
    with pytest.warns(GalclustWarning, match=r"too few labels: 1 labelled reliable and 3 "
                                             r"labelled spurious.*needs at least 2 of each"):
        out = galclust.flag_spurious(stamps, ids, one_reliable, n_pca=4)
    assert out["p_spurious"].isna().all() and out["flag"].isna().all()  # not p = 0.5 for all
    s = out.attrs["summary"]
    assert (s["n_labelled"], s["n_labelled_reliable"], s["n_labelled_spurious"]) == (4, 1, 3)
    assert s["contradicted_reliable"] == s["contradicted_spurious"] == 0  # unknown: no verdict


def test_four_labels_that_flag_everything_name_the_reliable_ones(toy):
    """The reported case: 2 reliable + 2 spurious labels, every source flagged at p ~ 0.5."""
    stamps, ids, reason, _ = toy
    rel, sp = ids[reason == ""][:2], ids[reason != ""][:2]
    labels = pd.DataFrame({"id": [*rel, *sp], "reliable": [1, 1, 0, 0],
                           "reason": ["", "", "edge data", "edge data"]})
    with pytest.warns(LabelConflictWarning, match=rf"^2 sources labelled reliable are flagged "
                                                  rf"spurious by the model: ids {rel[0]}, "
                                                  rf"{rel[1]}; check the labels or use more"):
        out = galclust.flag_spurious(stamps, ids, labels, n_pca=4)
    s = out.attrs["summary"]
    assert s["contradicted_reliable"] == 2 and s["contradicted_reliable_ids"] == rel.tolist()
    # asking for 3 of each instead makes the same labels "too few": unknown, no flags
    with pytest.warns(GalclustWarning, match="needs at least 3 of each"):
        out = galclust.flag_spurious(stamps, ids, labels, n_pca=4, min_labels=3)
    assert out["flag"].isna().all()


def test_a_flagged_reliable_label_warns_with_its_id_and_is_counted(toy):
    stamps, ids, _, labels = toy
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelConflictWarning)  # the model agrees: no warning
        clean = galclust.flag_spurious(stamps, ids, labels, random_state=0, n_pca=6)
    assert clean.attrs["summary"]["contradicted_reliable"] == 0
    bad = labels.copy()
    row = bad.index[bad["reason"] == "edge data"][0]
    wrong = int(bad.loc[row, "id"])
    bad.loc[row, ["reliable", "reason"]] = ["yes", ""]  # an edge-of-data source "reliable"
    with pytest.warns(LabelConflictWarning, match=rf"^1 source labelled reliable is flagged "
                                                  rf"spurious by the model: id {wrong};"):
        out = galclust.flag_spurious(stamps, ids, bad, random_state=0, n_pca=6)
    s = out.attrs["summary"]
    assert s["contradicted_reliable"] == 1 and s["contradicted_reliable_ids"] == [wrong]
    assert s["n_labelled"] == len(labels) and s["n_labelled_reliable"] == int(
        (bad["reliable"] == "yes").sum())
    assert out.loc[out["id"] == wrong, "flag"].item()
