"""Cluster membership on synthetic truth: both models learn it, on the tuned generator and on
the held-out one no setting was chosen on.

Measured with 600 sources of 64 px, 75/25 split, one thread (closing note of the
classification issue): the feature model 0.913 mean held-out accuracy over six untouched
fields (0.853-0.953), the CNN 0.86-0.97; majority class 0.653; PCA + logistic
regression on the pixels ~0.83 (default family) and ~0.80 (held-out family). The
CNN does not beat the feature model by a margin that holds across fields; this test
asserts what does hold, at the smaller size CI can afford, with margins below the
spread measured.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from galclust.classify.estimator import SourceClassifier
from galclust.synth import make_cluster_field


@pytest.mark.parametrize("family", ["default", "heldout"])
def test_cnn_and_feature_model_learn_membership_well_above_the_majority_class(family):
    field = make_cluster_field(400, size=32, family=family, random_state=31)
    X, y = field.cutouts, field.table["member"].to_numpy()
    tr, te = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=0)
    majority = max(y[te].mean(), 1 - y[te].mean())
    features = SourceClassifier("features", random_state=0, threads=1).fit(X[tr], y[tr])
    cnn = SourceClassifier("cnn", random_state=0, threads=1, input_size=32,
                           epochs=40).fit(X[tr], y[tr])
    acc_f, acc_c = features.score(X[te], y[te]), cnn.score(X[te], y[te])
    print(f"{family}: majority {majority:.3f}, features {acc_f:.3f}, cnn {acc_c:.3f} "
          f"({len(cnn.cnn_.history)} epochs)")
    assert acc_f >= majority + 0.15
    assert acc_c >= majority + 0.12
    # the stars and compact galaxies that confused the research are rarely called members
    kind = field.table["kind"].to_numpy()[te]
    for clf in (features, cnn):
        pred = clf.predict(X[te])
        stars = np.isin(kind, ["star", "compact_galaxy"])
        assert np.mean(pred[stars] == 1) <= 0.15
