"""Today's spurious flagging against the general :class:`SourceClassifier`.

The issue: run the spurious-source task with the general estimator, compare it
with today's catalog stage and keep the better one as that stage's default.
Scored on the *unlabelled* sources only (the labelled subset is training data),
on the catalog tests' survey (conftest: 1,100 galaxies, 5% spurious, a random
25% labelled), against the synthetic truth.

Measured beforehand (scratch benchmark; mean ± sd over survey seeds 11-15 of
this configuration, unlabelled sources; SourceClassifier flags = ``predict``)::

    method                         recall     precision  F1         BAcc   AUC
    combined (today's default)     .995±.010  .44±.06    .61±.06    .967   .990
    classifier (today's option)    .989±.016  .88±.08    .93±.05    .991   .999
    SourceClassifier("features")   .67±.10    .86±.03    .75±.07    .834   .991
      + catalog geometry columns   .76±.05    .88±.07    .81±.03    .876   .994
    SourceClassifier("cnn")        .54±.33    .25±.07    .28±.17    .727   .800
    flag nothing / random          0 / .06    - / .05    0 / .05    .50    -

With 40% labelled, 8% spurious, 1,400 galaxies (held out, 3 seeds) the
SourceClassifier catches up on recall (features + geometry .94, BAcc .970 vs
combined .966) while today's ``method="classifier"`` stays at least as good
(F1 .98, BAcc .992). What holds on every seed of both configurations, and is
asserted here: at its own (argmax) threshold the SourceClassifier flags far
more precisely than the combined mixture (higher F1), and today's
``method="classifier"`` is at least as good as it. What holds with a quarter
labelled (every seed here, not with 40% labelled): the SourceClassifier misses
far more spurious sources, so it fails the stage's recall contract (>= 95%,
tests/catalog/test_spurious_recall.py) that the combined default meets. So
the stage keeps ``method="combined"``; the CNN (short training, 32 px) is not
competitive here and is not run in this test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from galclust.evaluation.catalog import evaluate_flags

SPURIOUS, RELIABLE = "spurious", "reliable"


def _score(flags: np.ndarray, ids: np.ndarray, truth: pd.DataFrame, unlabelled: np.ndarray,
           p: np.ndarray | None = None) -> dict[str, float]:
    """recall, precision, false-flag rate, F1, balanced accuracy on the unlabelled ids."""
    table = pd.DataFrame({"id": ids, "flag": np.asarray(flags, dtype=bool)})
    ev = evaluate_flags(table, truth, only=unlabelled).iloc[0]
    t = truth.set_index("id").loc[unlabelled, "spurious"].to_numpy(bool)
    f = table.set_index("id").loc[unlabelled, "flag"].to_numpy(bool)
    n_rel = int((~t).sum())
    ffr = float((f & ~t).sum()) / n_rel
    tp, fp, fn = int((f & t).sum()), int((f & ~t).sum()), int((~f & t).sum())
    out = {"n_spurious": int(ev.n_spurious), "recall": float(ev.recall),
           "precision": float(ev.precision) if ev.n_flagged else 0.0, "false_flag_rate": ffr,
           "f1": 2 * tp / (2 * tp + fp + fn), "balanced_accuracy": (ev.recall + 1 - ffr) / 2}
    if p is not None:
        from sklearn.metrics import roc_auc_score

        sel = pd.Index(ids).get_indexer(unlabelled)
        out["auc"] = float(roc_auc_score(t, np.asarray(p)[sel]))
    return out


@pytest.fixture(scope="module")
def comparison(cube, catalog, embedded, labels_25, truth):
    """Scores of today's methods, the SourceClassifier variants and trivial baselines."""
    from galclust.catalog.features import CATALOG_FEATURES, feature_matrix
    from galclust.catalog.survey import flag_catalog, survey_cutouts
    from galclust.classify.estimator import SourceClassifier

    ids = embedded.ids
    unlabelled = np.setdiff1d(ids, labels_25["id"].to_numpy())
    scores = {}
    for method in ("combined", "classifier"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # label conflicts: test_flag_honesty's subject
            table, _ = flag_catalog(embedded, labels_25, method=method)
        assert (table["id"].to_numpy() == ids).all()
        scores[method] = _score(table["flag"].astype("boolean").fillna(False).to_numpy(bool),
                                ids, truth, unlabelled, table["p_spurious"].to_numpy(float))

    # the very stamps the catalog stage embeds (same size), in catalog order
    cut = survey_cutouts(cube, catalog)
    back = np.argsort(cut.order, kind="stable")
    stamps = np.asarray(cut.stamps.compute())[back]
    assert (cut.ids[back] == ids).all()
    pos = pd.Index(ids).get_indexer(labels_25["id"].to_numpy())
    assert (pos >= 0).all()
    y = np.where(labels_25["reliable"].to_numpy() == 0, SPURIOUS, RELIABLE)
    geometry = pd.DataFrame(feature_matrix(embedded.features, columns=CATALOG_FEATURES)[0],
                            columns=list(CATALOG_FEATURES))
    for name, extra in (("source_features", None), ("source_features+geometry", geometry)):
        sc = SourceClassifier(model="features", random_state=0, threads=1)
        sc.fit(stamps[pos], y, features=None if extra is None else extra.iloc[pos])
        assert sc.model_ == "features"
        p = sc.predict_proba(stamps, features=extra)[:, list(sc.classes_).index(SPURIOUS)]
        flags = sc.predict(stamps, features=extra) == SPURIOUS
        scores[name] = _score(flags, ids, truth, unlabelled, p)

    prevalence = float((y == SPURIOUS).mean())
    scores["flag_nothing"] = _score(np.zeros(len(ids), bool), ids, truth, unlabelled)
    scores["random_at_prevalence"] = _score(
        np.random.default_rng(0).random(len(ids)) < prevalence, ids, truth, unlabelled)
    out = pd.DataFrame(scores).T
    print("\n" + out.round(3).to_string())
    return out


LEARNT = ("combined", "classifier", "source_features", "source_features+geometry")


def test_every_method_beats_trivial_flaggers(comparison):
    s = comparison
    assert s.loc["combined", "n_spurious"] >= 30  # unlabelled spurious sources to recover
    assert s.loc["flag_nothing", "f1"] == 0 and s.loc["flag_nothing", "balanced_accuracy"] == 0.5
    trivial_f1 = s.loc[["flag_nothing", "random_at_prevalence"], "f1"].max()
    assert trivial_f1 < 0.2
    for m in LEARNT:  # worst of 5 seeds: F1 0.56 (combined), BAcc 0.79 (source_features)
        assert s.loc[m, "f1"] >= max(0.45, trivial_f1 + 0.3), m
        assert s.loc[m, "balanced_accuracy"] >= 0.75, m
    for m in ("source_features", "source_features+geometry"):
        assert s.loc[m, "auc"] >= 0.97, m  # worst of 5 seeds 0.986


def test_default_keeps_the_recall_the_source_classifier_misses(comparison):
    """With a quarter labelled the SourceClassifier misses about a quarter of the
    unlabelled spurious sources; the default recovers them (recall gap 0.24 ± 0.04,
    balanced accuracy 0.09 ± 0.03 over 5 seeds; the gap closes with 40% labelled)."""
    comb, sc = comparison.loc["combined"], comparison.loc["source_features+geometry"]
    assert comb.recall >= 0.95  # the stage's contract, on the sources nobody inspected
    assert sc.recall < 0.95
    assert comb.recall >= sc.recall + 0.10
    assert comb.balanced_accuracy >= sc.balanced_accuracy + 0.02


def test_source_classifier_is_the_more_precise_flagger(comparison):
    """At its argmax threshold the SourceClassifier flags fewer reliable sources
    (precision +0.44 ± 0.07, F1 +0.20 ± 0.07 over 5 seeds; +0.39 / +0.22 held out)."""
    comb, sc = comparison.loc["combined"], comparison.loc["source_features+geometry"]
    assert sc.precision >= comb.precision + 0.2
    assert sc.false_flag_rate < comb.false_flag_rate
    assert sc.f1 >= comb.f1 + 0.05


def test_todays_supervised_option_is_at_least_as_good(comparison):
    """The stage's own ``method="classifier"`` matches or beats the SourceClassifier
    (F1 +0.12 ± 0.04 here, +0.02 ± 0.06 held out): switching estimators gains nothing."""
    clf = comparison.loc["classifier"]
    for m in ("source_features", "source_features+geometry"):
        sc = comparison.loc[m]
        assert clf.f1 >= sc.f1 - 0.02, m
        assert clf.balanced_accuracy >= sc.balanced_accuracy - 0.01, m
        assert clf.recall >= 0.95
