"""Classifier evaluation (galclust.evaluation.classify) and its pictures
(galclust.plots.classify), on hand-made and planted examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from galclust.errors import InputError
from galclust.evaluation.classify import (
    REGIONS,
    colour_regions,
    evaluate,
)
from galclust.evaluation.learning import learning_curve
from galclust.plots.classify import (
    plot_colour_magnitude,
    plot_confusion,
    plot_learning_curve,
    plot_reliability,
    save_report_figures,
)

RUN = "20261201T031500Z-a1b2c3"
OPTS = {"model": "cnn", "target": "member"}


def planted_cmd(n: int = 600, seed: int = 0):
    """Red sequence g-r = 1.72 - 0.03 r (scatter 0.03), a blue cloud 0.85 mag
    below it on average and a red shoulder 0.2-0.5 mag above."""
    rng = np.random.default_rng(seed)
    mag = rng.uniform(14, 19, n)
    kind = rng.choice(3, n, p=[0.4, 0.5, 0.1])
    seq = 1.72 - 0.03 * mag
    col = np.select([kind == 0, kind == 1],
                    [0.45 + rng.normal(0, 0.1, n), seq + rng.normal(0, 0.03, n)],
                    seq + rng.uniform(0.2, 0.5, n))
    return col, mag, kind


@pytest.fixture(scope="module")
def binary():
    """Members are mostly red-sequence galaxies; probabilities calibrated."""
    col, mag, kind = planted_cmd()
    rng = np.random.default_rng(1)
    p = np.where(kind == 1, 0.8, 0.2) + rng.uniform(-0.15, 0.15, len(kind))
    y = np.where(rng.uniform(size=len(p)) < p, "member", "non-member")
    pred = np.where(p > 0.5, "member", "non-member")
    regions, relation = colour_regions(col, mag)
    proba = np.column_stack([p, 1 - p])
    report = evaluate(y, pred, proba, regions=regions, positive="member")
    return {"col": col, "mag": mag, "y": y, "pred": pred, "proba": proba, "regions": regions,
            "relation": relation, "report": report}


# ----------------------------------------------------------------------------- evaluate
def test_confusion_and_per_class_by_hand():
    y = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    rep = evaluate(y, pred)
    np.testing.assert_array_equal(rep.confusion.to_numpy(), [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert rep.confusion.index.name == "true" and rep.confusion.columns.name == "predicted"
    pc = rep.per_class.set_index("class")
    np.testing.assert_allclose(pc["precision"], [1, 1 / 2, 1 / 2])
    np.testing.assert_allclose(pc["recall"], [2 / 3, 1 / 2, 1])
    np.testing.assert_allclose(pc["f1"], [0.8, 0.5, 2 / 3])
    np.testing.assert_array_equal(pc["support"], [3, 2, 1])
    assert rep.summary["accuracy"] == pytest.approx(4 / 6)
    assert rep.summary["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert rep.summary["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert rep.summary["majority_accuracy"] == pytest.approx(3 / 6)
    # integer labels, classes in a given order (rows and columns follow it)
    rep = evaluate([1, 1, 0], [1, 0, 0], classes=[1, 0])
    np.testing.assert_array_equal(rep.confusion.to_numpy(), [[1, 1], [0, 1]])
    assert rep.per_class["class"].tolist() == [1, 0]


def test_balanced_accuracy_differs_on_imbalanced_classes():
    y = np.array([0] * 90 + [1] * 10)
    pred = np.zeros(100, int)  # always the commonest class
    rep = evaluate(y, pred)
    assert rep.summary["accuracy"] == pytest.approx(0.9)
    assert rep.summary["balanced_accuracy"] == pytest.approx(0.5)
    assert rep.summary["majority_accuracy"] == pytest.approx(0.9)
    pc = rep.per_class.set_index("class")
    assert np.isnan(pc.loc[1, "precision"])  # never predicted: undefined, not 0
    assert pc.loc[1, "recall"] == 0 and pc.loc[1, "f1"] == 0
    pred[[0, 1, 90, 91, 92]] = 1
    assert evaluate(y, pred).summary["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y, pred))


def test_per_region_numbers_are_the_metrics_of_the_subset(binary):
    rep = binary["report"]
    y, pred, regions = binary["y"], binary["pred"], binary["regions"]
    br = rep.by_region.set_index("region")
    assert list(br.index) == [r for r in REGIONS if r in set(regions)]
    assert br["n"].sum() == len(y)
    for r, row in br.iterrows():
        s = regions == r
        assert row["n"] == s.sum()
        assert row["support"] == (y[s] == "member").sum()
        assert row["accuracy"] == pytest.approx(np.mean(y[s] == pred[s]))
        assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y[s], pred[s]))
        for col, fn in (("precision", precision_score), ("recall", recall_score),
                        ("f1", f1_score)):
            assert row[col] == pytest.approx(fn(y[s], pred[s], pos_label="member")), (r, col)
    # the default positive class is the second: the tables follow it
    other = evaluate(y, pred, regions=regions).by_region.set_index("region")
    s = regions == "red sequence"
    assert other.loc["red sequence", "recall"] == pytest.approx(
        recall_score(y[s], pred[s], pos_label="non-member"))
    # a region without sources is left out
    rep2 = evaluate(y[:3], pred[:3], regions=np.array(["blue cloud"] * 3))
    assert rep2.by_region["region"].tolist() == ["blue cloud"]


def test_colour_regions_recovers_a_planted_red_sequence():
    col, mag, kind = planted_cmd()
    col[:3] = np.nan
    regions, rel = colour_regions(col, mag)
    assert rel["slope"] == pytest.approx(-0.03, abs=0.006)
    mid = 16.5
    assert rel["intercept"] + rel["slope"] * mid == pytest.approx(1.72 - 0.03 * mid, abs=0.01)
    assert rel["scatter"] == pytest.approx(0.03, rel=0.3)
    assert rel["width"] == pytest.approx(max(2 * rel["scatter"], 0.05))
    assert (regions[:3] == "unknown").all()
    k, r = kind[3:], regions[3:]
    assert (r[k == 0] == "blue cloud").mean() > 0.99
    assert (r[k == 2] == "red shoulder").mean() > 0.97
    assert (r[k == 1] == "red sequence").mean() > 0.93
    # the training relation applied to other sources; a wider band takes more in
    again, rel2 = colour_regions(col, mag, sequence=(rel["intercept"], rel["slope"],
                                                     rel["scatter"]))
    np.testing.assert_array_equal(again, regions)
    assert rel2 == pytest.approx(rel)
    wide, _ = colour_regions(col, mag, width=0.6)
    assert (wide == "red sequence").sum() > (regions == "red sequence").sum()


def test_reliability_of_calibrated_and_overconfident_probabilities():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    pred = (p > 0.5).astype(int)
    good = evaluate(y, pred, np.column_stack([1 - p, p]))
    rel = good.reliability
    assert len(rel) == 10 and rel["n"].sum() == p.size
    np.testing.assert_allclose(rel["observed_fraction"], rel["mean_predicted"], atol=0.03)
    assert good.summary["ece"] < 0.02
    assert good.summary["log_loss"] == pytest.approx(log_loss(y, np.column_stack([1 - p, p])))
    assert good.summary["brier"] == pytest.approx(brier_score_loss(y, p))
    q = np.where(p > 0.5, 0.99, 0.01)  # same decisions, over-confident
    bad = evaluate(y, pred, np.column_stack([1 - q, q]))
    assert bad.summary["ece"] > 0.2
    assert bad.summary["accuracy"] == good.summary["accuracy"]
    # three classes: top-label confidence against the fraction right
    p3 = rng.dirichlet([1, 1, 1], size=3000)
    y3 = np.array([rng.choice(3, p=row) for row in p3])
    rep3 = evaluate(y3, p3.argmax(axis=1), p3, classes=[0, 1, 2])
    assert rep3.positive is None and "brier" not in rep3.summary
    assert rep3.summary["ece"] < 0.05
    assert rep3.reliability["mean_predicted"].dropna().min() >= 1 / 3


def test_report_text_and_tables(binary, tmp_path):
    rep = binary["report"]
    text = rep.to_text()
    for word in ("member", "non-member", "accuracy", f"{rep.summary['accuracy']:.3f}",
                 "macro avg", "weighted avg", "precision", "recall", "f1-score", *REGIONS):
        assert word in text
    frames = rep.to_frames()
    assert set(frames) == {"confusion", "per_class", "summary", "by_region", "reliability"}
    assert frames["confusion"]["count"].sum() == len(binary["y"])
    assert frames["confusion"].groupby("true")["fraction"].sum().to_numpy() == pytest.approx(1)
    assert len(frames["summary"]) == 1
    back = {}
    for name, df in frames.items():  # publishable as parquet, and read back
        df.to_parquet(tmp_path / f"{name}.parquet")
        back[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back[name], df, check_dtype=False)
    again = type(rep).from_frames(back)
    assert again.classes == rep.classes and again.positive == "member"
    pd.testing.assert_frame_equal(again.confusion, rep.confusion)
    assert again.to_text() == text
    assert again.summary == pytest.approx(rep.summary)
    # without probabilities or regions; integer classes in a given order
    small = evaluate([2, 2, 0], [2, 0, 0], classes=[2, 0])
    again = type(small).from_frames(small.to_frames())
    assert again.classes == [2, 0] and again.to_text() == small.to_text()
    no_summary = {k: v for k, v in small.to_frames().items() if k != "summary"}
    assert type(small).from_frames(no_summary).summary == pytest.approx(small.summary)
    with pytest.raises(InputError, match="per_class"):
        type(small).from_frames({"confusion": frames["confusion"]})


def test_bad_input_names_the_argument():
    with pytest.raises(InputError, match="y_pred has 2 entries but y_true has 3"):
        evaluate([0, 1, 1], [0, 1])
    with pytest.raises(InputError, match="y_true is empty"):
        evaluate([], [])
    with pytest.raises(InputError, match=r"proba has shape \(3, 3\)"):
        evaluate([0, 1, 1], [0, 1, 1], np.full((3, 3), 1 / 3))
    with pytest.raises(InputError, match="proba: 1 rows do not sum to 1"):
        evaluate([0, 1, 1], [0, 1, 1], [[0.5, 0.5], [0.2, 0.2], [0, 1]])
    with pytest.raises(InputError, match="regions has 2 entries"):
        evaluate([0, 1, 1], [0, 1, 1], regions=["blue cloud", "red sequence"])
    with pytest.raises(InputError, match="y_true holds labels"):
        evaluate([0, 1, 2], [0, 1, 1], classes=[0, 1])
    with pytest.raises(InputError, match="magnitude has 2 entries"):
        colour_regions([0.5, 0.6, 0.7], [15, 16])
    with pytest.raises(InputError, match="width"):
        colour_regions([0.5, 0.6, 0.7], [15, 16, 17], width=-1)
    with pytest.raises(InputError, match="sequence"):
        colour_regions([0.5, 0.6, 0.7], [15, 16, 17], sequence=(1.0, 0.0))
    with pytest.raises(InputError, match="X has 4 rows but y has 3"):
        learning_curve(LogisticRegression(), np.zeros((4, 2)), [0, 1, 0])
    with pytest.raises(InputError, match="train_sizes"):
        learning_curve(LogisticRegression(), np.zeros((40, 2)), [0, 1] * 20, train_sizes=(1.5,))


# ----------------------------------------------------------------------------- learning curve
SEEN: list[np.ndarray] = []


def _record_and_flatten(X):
    """The first pixel of each cutout is its row number: remember who was seen."""
    X = np.asarray(X)
    return X.reshape(len(X), -1)[:, 1:]


class Recording(LogisticRegression):
    def fit(self, X, y):
        SEEN.append(np.asarray(X)[:, 0, 0, 0].astype(int))
        return super().fit(X[:, 1:].reshape(len(X), -1), y)

    def predict(self, X):
        return super().predict(X[:, 1:].reshape(len(X), -1))


def test_learning_curve_nested_stratified_and_rising():
    rng = np.random.default_rng(5)
    n = 400
    y = (rng.uniform(size=n) < 0.3).astype(int)
    cutouts = rng.normal(size=(n, 2, 4, 4)).astype(np.float32)  # (source, band, y, x)
    cutouts[:, 1] += np.where(y == 1, 0.5, -0.5)[:, None, None] * rng.normal(1, 0.2, (n, 4, 4))
    cutouts[:, 0, 0, 0] = np.arange(n)
    calls = []
    SEEN.clear()
    curve = learning_curve(Recording(max_iter=500), cutouts, y, train_sizes=(4, 0.25, 0.5, 1.0),
                           progress=lambda done, total: calls.append((done, total)))
    assert curve["n_train"].tolist() == [4, 75, 150, 300] and (curve["n_test"] == 100).all()
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(set(a) <= set(b) for a, b in zip(SEEN, SEEN[1:], strict=False))  # nested
    frac = y[SEEN[-1]].mean()  # of the whole training part
    for seen in SEEN:  # each subset stratified to within one example, both classes in 4
        assert abs(y[seen].sum() - frac * len(seen)) <= 1 and 0 < y[seen].sum() < len(seen)
    assert curve["test_accuracy"].iloc[-1] > curve["test_accuracy"].iloc[0] + 0.05
    assert curve["test_accuracy"].iloc[-1] > 0.9
    assert ((curve["seconds"] >= 0) & curve["train_accuracy"].between(0, 1)).all()
    # a plain pipeline on 4-D cutouts works as is
    pipe = make_pipeline(FunctionTransformer(_record_and_flatten), LogisticRegression())
    curve2 = learning_curve(pipe, cutouts, y, train_sizes=(0.5, 1.0))
    assert curve2["test_accuracy"].iloc[-1] > 0.9


# ----------------------------------------------------------------------------- pictures
def _check(fig: Figure, path) -> None:
    assert isinstance(fig, Figure)
    assert any(ax.get_xlabel() for ax in fig.axes) and any(ax.get_ylabel() for ax in fig.axes)
    assert any(RUN in ax.get_title() for ax in fig.axes)
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_label_axes_and_name_the_run(binary, tmp_path):
    rep = binary["report"]
    fig = plot_confusion(rep, run_id=RUN, options=OPTS)
    _check(fig, tmp_path / "confusion.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "cnn, member" in ax.get_title()
    cells = {t.get_text() for t in ax.texts}
    c = rep.confusion.loc["member", "member"]
    assert f"{c}\n{c / rep.confusion.loc['member'].sum():.0%}" in cells
    assert [t.get_text() for t in ax.get_xticklabels()] == ["member", "non-member"]

    fig = plot_reliability(rep, run_id=RUN)
    _check(fig, tmp_path / "reliability.png")
    assert "member" in fig.axes[1].get_xlabel()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"member (ECE = {rep.summary['ece']:.3f})" in legend
    with pytest.raises(InputError, match="proba="):
        plot_reliability(evaluate([0, 1], [0, 1]))

    curve = pd.DataFrame({"n_train": [10, 50, 100], "n_test": 40, "train_accuracy": [1, .95, .9],
                          "test_accuracy": [.6, .8, .85], "test_balanced_accuracy": [.55, .75, .8],
                          "seconds": [.1, .2, .3]})
    fig = plot_learning_curve(curve, baseline=0.6, run_id=RUN)
    _check(fig, tmp_path / "curve.png")
    assert fig.axes[0].get_xlabel() == "training examples"
    with pytest.raises(InputError, match="n_train"):
        plot_learning_curve(curve.drop(columns="n_train"))

    fig = plot_colour_magnitude(binary["col"], binary["mag"], binary["y"], binary["pred"],
                                binary["regions"], binary["relation"], run_id=RUN)
    _check(fig, tmp_path / "cmd.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "r [mag]" and ax.get_ylabel() == "g - r [mag]"
    legend = ax.get_legend()
    n_wrong = int(((binary["y"] == "member") & (binary["pred"] != "member")).sum())
    assert f"member: misclassified ({n_wrong})" in [t.get_text() for t in legend.get_texts()]
    assert "red sequence: " in legend.get_title().get_text()
    with pytest.raises(InputError, match="regions has shape"):
        plot_colour_magnitude(binary["col"], binary["mag"], binary["y"], binary["pred"],
                              binary["regions"][:5], binary["relation"])


def test_save_report_figures_names_options_and_run(binary, tmp_path):
    b = binary
    curve = pd.DataFrame({"n_train": [10, 20], "train_accuracy": [1.0, 0.9],
                          "test_accuracy": [0.7, 0.8]})
    cmd = {k: b[k2] for k, k2 in (("colour", "col"), ("magnitude", "mag"), ("y_true", "y"),
                                  ("y_pred", "pred"), ("regions", "regions"),
                                  ("relation", "relation"))}
    paths = save_report_figures(b["report"], str(tmp_path), curve=curve, cmd=cmd, run_id=RUN,
                                options=OPTS)
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == sorted(f"classify_cnn-member_run-{RUN}_{k}.png"
                           for k in ("confusion", "reliability", "learning-curve", "cmd"))
    for p in paths:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    paths = save_report_figures(evaluate([0, 1], [0, 1]), str(tmp_path / "sub" / "perseus"))
    assert paths == [str(tmp_path / "sub" / "perseus_confusion.png")]
