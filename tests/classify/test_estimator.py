"""SourceClassifier: the scikit-learn contract, the model choice, bad input, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from galclust.classify import estimator as est
from galclust.classify.estimator import SourceClassifier
from galclust.classify.features import cutout_features, feature_names
from galclust.errors import InputError


def blobs(n: int, size: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: point-like, neutral colour; class 1: extended and redder. Noisy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, 3, size, size)).astype(np.float32)
    for i in range(n):
        sig = 1.3 if y[i] == 0 else rng.uniform(2.2, 3.5)
        colour = np.array([1.0, 1.2, 1.4]) if y[i] == 0 else np.array([0.8, 1.3, 1.9])
        X[i] += (colour[:, None, None] * np.exp(-(yy**2 + xx**2) / (2 * sig**2))
                 * rng.uniform(8, 40))
    return X, y


def test_features_model_learns_a_separable_problem_and_beats_the_majority_class():
    X, y = blobs(240)
    clf = SourceClassifier(model="features", random_state=0).fit(X[:160], y[:160])
    acc = clf.score(X[160:], y[160:])
    majority = max(np.mean(y[160:]), 1 - np.mean(y[160:]))
    assert acc >= 0.95 > majority + 0.2
    assert clf.model_ == "features" and clf.model_reason_ == "asked for"
    p = clf.predict_proba(X[160:])
    assert p.shape == (80, 2) and np.allclose(p.sum(axis=1), 1)
    assert list(clf.classes_) == [0, 1]


def test_string_labels_multiclass_and_the_sklearn_contract():
    X, y = blobs(180, seed=1)
    names = np.array(["star", "galaxy"])[y]
    names[::7] = "other"  # a third, unlearnable class: the machinery must still run
    clf = SourceClassifier(model="features", random_state=0)
    scores = cross_val_score(clf, X, names, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.6)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "model_")
    fitted = clf.fit(X, names)
    assert set(fitted.predict(X[:10])) <= {"star", "galaxy", "other"}
    assert fitted.predict_proba(X).shape == (180, 3)


def test_same_seed_same_model_and_bytes_round_trip():
    X, y = blobs(150, seed=2)
    a = SourceClassifier(model="features", random_state=3).fit(X, y)
    b = SourceClassifier(model="features", random_state=3).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    back = SourceClassifier.from_bytes(a.to_bytes())
    assert np.array_equal(back.predict_proba(X), a.predict_proba(X))
    assert back.describe()["model"] == "features"
    with pytest.raises(InputError, match="not a galclust classifier"):
        SourceClassifier.from_bytes(b"not a model")


def test_catalog_columns_are_used_and_required_again_for_prediction():
    X, y = blobs(160, seed=4)
    noise_only = np.random.default_rng(0).normal(0, 1, X.shape).astype(np.float32)
    cat = pd.DataFrame({"z_phot": y * 0.4 + np.random.default_rng(1).normal(0, 0.05, len(y))})
    plain = SourceClassifier(model="features").fit(noise_only[:100], y[:100])
    helped = SourceClassifier(model="features").fit(noise_only[:100], y[:100],
                                                    features=cat[:100])
    # the pixels hold nothing; the catalog column separates the classes
    acc_helped = np.mean(helped.predict(noise_only[100:], features=cat[100:]) == y[100:])
    acc_plain = np.mean(plain.predict(noise_only[100:]) == y[100:])
    assert acc_helped >= 0.95 and acc_plain < 0.8
    assert "z_phot" in helped.feature_names_
    with pytest.raises(InputError, match="catalog columns"):
        helped.predict(noise_only[100:])


def test_auto_takes_the_cnn_only_with_torch_and_enough_examples(monkeypatch):
    X, y = blobs(60, seed=5)
    monkeypatch.setattr(est, "torch_available", lambda: False)
    clf = SourceClassifier(model="auto").fit(X, y)
    assert clf.model_ == "features" and "torch is not installed" in clf.model_reason_
    with pytest.raises(InputError, match=r"galclust\[cnn\]"):
        SourceClassifier(model="cnn").fit(X, y)
    monkeypatch.setattr(est, "torch_available", lambda: True)
    clf = SourceClassifier(model="auto").fit(X, y)  # ~30 per class < 50
    assert clf.model_ == "features" and "smallest class has" in clf.model_reason_


@pytest.mark.parametrize("make, match", [
    (lambda X, y: (X[0, 0], y), r"\(source, band, y, x\)"),
    (lambda X, y: ([X[0], X[1][:, :10, :10]] + list(X[2:]), y), "mixed sizes"),
    (lambda X, y: (np.where(np.arange(len(X))[:, None, None, None] == 3, np.nan, X), y),
     r"no finite pixel \(positions \[3\]\)"),
    (lambda X, y: (X, np.zeros(len(y))), "a classifier needs at least two classes"),
    (lambda X, y: (X, np.r_[np.ones(5), np.zeros(len(y) - 5)]), "too few examples"),
    (lambda X, y: (X, y[:-1]), "one label per cutout"),
])
def test_bad_input_is_refused_before_training(make, match):
    X, y = blobs(40, seed=6)
    Xb, yb = make(X, y)
    with pytest.raises(InputError, match=match):
        SourceClassifier(model="features").fit(Xb, yb)


def test_prediction_needs_the_training_size():
    X, y = blobs(60, seed=7)
    clf = SourceClassifier(model="features").fit(X, y)
    with pytest.raises(InputError, match="cut them at that size"):
        clf.predict(X[:, :, 2:-2, 2:-2])


def test_cutout_features_measure_what_they_name():
    size = 41
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    point = np.exp(-(yy**2 + xx**2) / (2 * 1.2**2))
    disk = np.exp(-np.hypot(yy, xx / 0.3) / 4.0)  # elongated exponential
    red = np.stack([point * 1.0, point * 2.0, point * 4.0])
    X = np.stack([red, np.stack([disk] * 3), np.stack([point] * 3)]) * 100
    X += np.random.default_rng(0).normal(0, 0.1, X.shape)
    f = cutout_features(X)
    assert list(f.columns) == feature_names(3)
    assert np.all(np.isfinite(f.to_numpy()))
    # colour: red source brighter in later bands -> mag_0 - mag_1 ~ +0.75 (2.5 log10 2)
    assert f.loc[0, "colour_tot_0"] == pytest.approx(2.5 * np.log10(2), abs=0.1)
    assert abs(f.loc[2, "colour_tot_0"]) < 0.05
    assert f.loc[1, "axis_ratio"] < 0.5 < f.loc[2, "axis_ratio"]
    assert f.loc[2, "peak_fraction"] > 3 * f.loc[1, "peak_fraction"]
    assert f.loc[1, "r50"] > 2 * f.loc[2, "r50"]
