"""Cluster membership on synthetic truth, at the research's size: the centred CNN beats the
feature model, and both beat the majority class and PCA + logistic regression on the pixels,
on the tuned generator and on the held-out one no setting was chosen on.

The research trained on ~460 gri cutouts of 200 x 200 px. Each field here trains on 460
and tests on 1,000 more cutouts of the same field (+-0.007 on an accuracy of 0.95), so the
CNN-features difference is measured on the same cutouts and judged with McNemar's exact
test. Seed 41 was chosen before this test was first run and never looked at otherwise.

Measured on six further fields never used for a choice (default and held-out, seeds
101-103, one thread; closing note of the classification issue): centred CNN - features
+0.006 to +0.031, mean +0.023, 6 of 6; CNN 0.929-0.961. The plain ResNet before it
(global average pool) was -0.084 to +0.009. At 64 px stamps (a third of the research's
sampling) the two models tie (-0.002 and +0.013), so this test runs at 200 px.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from galclust.classify.estimator import SourceClassifier
from galclust.synth import make_cluster_field

N_TRAIN, N_TEST, SIZE, SEED = 460, 1000, 200, 41


def _field(family: str) -> dict:
    field = make_cluster_field(N_TRAIN + N_TEST, size=SIZE, family=family, random_state=SEED)
    X, y = field.cutouts, field.table["member"].to_numpy()
    tr, te = train_test_split(np.arange(len(y)), train_size=N_TRAIN, stratify=y,
                              random_state=0)
    # the baseline: PCA + logistic regression on asinh-scaled pixels
    noise = 1.4826 * np.median(np.abs(X[tr] - np.median(X[tr])))
    flat = np.arcsinh(X / (3 * noise)).reshape(len(X), -1)
    pca_lr = make_pipeline(StandardScaler(), PCA(30, random_state=0),
                           LogisticRegression(max_iter=2000)).fit(flat[tr], y[tr])
    right = {"pca_lr": pca_lr.predict(flat[te]) == y[te]}
    for model in ("features", "cnn"):  # both cores: this is the slowest test of the suite
        clf = SourceClassifier(model, random_state=0, threads=2).fit(X[tr], y[tr])
        pred = clf.predict(X[te])
        right[model] = pred == y[te]
        right[f"{model}_pred"] = pred
    right["majority"] = max(y[te].mean(), 1 - y[te].mean())
    right["kind"] = field.table["kind"].to_numpy()[te]
    acc = {k: float(np.mean(v)) for k, v in right.items() if k in ("pca_lr", "features", "cnn")}
    print(f"{family} seed {SEED}: majority {right['majority']:.3f}, " +
          ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    return right


@pytest.fixture(scope="module")
def fields():
    return {family: _field(family) for family in ("default", "heldout")}


@pytest.mark.parametrize("family", ["default", "heldout"])
def test_both_models_beat_the_majority_class_and_pca_on_pixels(fields, family):
    r = fields[family]
    acc = {k: float(np.mean(r[k])) for k in ("pca_lr", "features", "cnn")}
    assert acc["pca_lr"] <= 0.88  # the realistic problem: PCA + LR reaches ~0.83
    assert acc["features"] >= r["majority"] + 0.2 and acc["features"] >= acc["pca_lr"] + 0.05
    assert acc["cnn"] >= r["majority"] + 0.2 and acc["cnn"] >= acc["pca_lr"] + 0.05
    assert acc["cnn"] >= 0.92  # the target
    # the stars and compact galaxies that confused the research are rarely called members
    stars = np.isin(r["kind"], ["star", "compact_galaxy"])
    for model in ("features", "cnn"):
        assert np.mean(r[f"{model}_pred"][stars] == 1) <= 0.1


def test_centred_cnn_beats_the_feature_model_on_the_same_cutouts(fields):
    """Pooled over both fields (2,000 test cutouts): more right, and significantly so by
    McNemar's exact test on the cutouts one model gets right and the other wrong; on
    neither field does the feature model win."""
    cnn = np.concatenate([fields[f]["cnn"] for f in ("default", "heldout")])
    feat = np.concatenate([fields[f]["features"] for f in ("default", "heldout")])
    only_cnn, only_feat = int(np.sum(cnn & ~feat)), int(np.sum(feat & ~cnn))
    p = binomtest(only_cnn, only_cnn + only_feat).pvalue
    print(f"pooled: cnn {cnn.mean():.3f}, features {feat.mean():.3f}; only cnn right "
          f"{only_cnn}, only features right {only_feat}; McNemar p = {p:.2g}")
    assert cnn.mean() >= feat.mean() + 0.01
    assert p < 0.05
    for f in ("default", "heldout"):
        assert np.mean(fields[f]["cnn"]) >= np.mean(fields[f]["features"])
