"""How well a source classifier does, as the Perseus membership study measured it.

- :func:`colour_regions` — fit the red sequence of a colour–magnitude diagram;
  place each source in the blue cloud, on the red sequence or in the red shoulder.
- :func:`evaluate` — confusion matrix, per-class precision/recall/F1, accuracy,
  balanced accuracy, log loss, Brier score, calibration error; the same per
  colour region; a reliability table (:class:`ClassificationReport`).
- :func:`galclust.evaluation.learning.learning_curve` — accuracy against the
  number of training examples.

Their pictures are in :mod:`galclust.plots.classify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, confusion_matrix
from sklearn.mixture import GaussianMixture

from galclust.errors import InputError

__all__ = ["REGIONS", "ClassificationReport", "colour_regions", "evaluate"]

#: Colour regions of the colour–magnitude diagram, blue to red.
REGIONS = ("blue cloud", "red sequence", "red shoulder")
UNKNOWN = "unknown"
#: The narrowest red-sequence half-width (mag) and scatter floor of the fit.
MIN_WIDTH, MIN_SCATTER = 0.05, 0.01
_SUMMARY_LABELS = {"balanced_accuracy": "balanced accuracy",
                   "majority_accuracy": "majority-class accuracy", "macro_f1": "macro F1",
                   "log_loss": "log loss", "brier": "Brier score", "ece": "ECE"}


def _vector(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise InputError(f"{name} must be one-dimensional; got shape {a.shape}.")
    return a


def _same_length(**arrays: np.ndarray) -> None:
    (n0, a0), *rest = arrays.items()
    for name, a in rest:
        if len(a) != len(a0):
            raise InputError(f"{name} has {len(a)} entries but {n0} has {len(a0)}; "
                             "pass one value per source.")


# ----------------------------------------------------------------------------- regions
def _fit_sequence(colour: np.ndarray, mag: np.ndarray, n_iter: int = 30,
                  clip: float = 3.0) -> tuple[float, float, float]:
    """Iterative sigma-clipped line through the red peak of the colour distribution."""
    if len(colour) >= 20:  # start from the redder component of a two-Gaussian colour model
        gm = GaussianMixture(2, random_state=0).fit(colour[:, None])
        red = int(np.argmax(gm.means_[:, 0]))
        a, sig = float(gm.means_[red, 0]), float(np.sqrt(gm.covariances_.ravel()[red]))
    else:
        a = float(np.median(colour[colour >= np.median(colour)]))
        sig = float(np.std(colour)) or 0.1
    b, sig = 0.0, max(sig, MIN_SCATTER)
    keep = np.abs(colour - a) <= clip * sig
    for _ in range(n_iter):
        if keep.sum() < 3 or np.ptp(mag[keep]) == 0:
            raise InputError(f"colour: only {int(keep.sum())} sources on the red sequence, "
                             "too few to fit it; pass sequence=(intercept, slope, scatter).")
        b, a = np.polyfit(mag[keep], colour[keep], 1)
        res = colour - (a + b * mag)
        sig = max(1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep])))),
                  MIN_SCATTER)
        new = np.abs(res) <= clip * sig
        if np.array_equal(new, keep):
            break
        keep = new
    return float(a), float(b), float(sig)


def colour_regions(colour: Any, magnitude: Any, *, width: float | None = None,
                   sequence: tuple[float, float, float] | None = None,
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """Place sources in the blue cloud, red sequence or red shoulder.

    The red sequence ``colour = intercept + slope * magnitude`` is fitted by iterative
    3-sigma clipping (scatter from the MAD), starting from the redder component of
    a two-Gaussian model of the colours.

    Parameters
    ----------
    colour, magnitude : array-like (n,)
        E.g. ``g - r`` and ``r`` (mag). NaN: region ``"unknown"``.
    width : float, optional
        Half-width of the red sequence (mag); default ``max(2 * scatter, 0.05)``.
    sequence : (intercept, slope, scatter), optional
        Use this relation instead of fitting one (e.g. the training set's).

    Returns
    -------
    regions : ndarray of str (n,)
        ``"red sequence"`` within ``width`` of the relation, ``"red shoulder"``
        above it, ``"blue cloud"`` below, ``"unknown"`` without a colour.
    relation : dict
        ``intercept``, ``slope``, ``scatter``, ``width`` (mag).

    Raises
    ------
    InputError
        Lengths differ, a bad ``width`` or ``sequence``, or too few red sources to fit.
    """
    colour = _vector("colour", colour).astype(np.float64)
    mag = _vector("magnitude", magnitude).astype(np.float64)
    _same_length(colour=colour, magnitude=mag)
    ok = np.isfinite(colour) & np.isfinite(mag)
    if sequence is not None:
        if len(sequence) != 3 or not np.all(np.isfinite(sequence)) or sequence[2] < 0:
            raise InputError(f"sequence={sequence!r} must be (intercept, slope, scatter) "
                             "with a finite scatter >= 0, e.g. the relation of colour_regions.")
        a, b, sig = (float(v) for v in sequence)
    else:
        if ok.sum() < 3:
            raise InputError(f"colour: {int(ok.sum())} sources with a colour and a magnitude; "
                             "at least 3 are needed to fit the red sequence.")
        a, b, sig = _fit_sequence(colour[ok], mag[ok])
    if width is None:
        width = max(2.0 * sig, MIN_WIDTH)
    elif not (np.isfinite(width) and width > 0):
        raise InputError(f"width={width!r} must be a positive number of magnitudes.")
    res = colour - (a + b * mag)
    out = np.full(len(colour), UNKNOWN, dtype="<U12")
    out[ok & (res < -width)] = REGIONS[0]
    out[ok & (np.abs(res) <= width)] = REGIONS[1]
    out[ok & (res > width)] = REGIONS[2]
    return out, {"intercept": a, "slope": b, "scatter": sig, "width": float(width)}


# ----------------------------------------------------------------------------- metrics
def _scores(cm: np.ndarray) -> dict[str, np.ndarray | float]:
    """Precision, recall, F1 and support per class, accuracy and balanced accuracy
    from a confusion matrix (NaN where undefined: a class never predicted has no
    precision; balanced accuracy averages recall over the classes present)."""
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    n = cm.sum()
    return {"precision": precision, "recall": recall, "f1": f1, "support": support,
            "accuracy": float(tp.sum() / n) if n else np.nan,
            "balanced_accuracy": float(np.nanmean(recall)) if (support > 0).any() else np.nan}


def _summary(cm: np.ndarray, positive: Any) -> dict[str, Any]:
    sc, n = _scores(cm), int(cm.sum())
    out = {"n": n, "accuracy": sc["accuracy"], "balanced_accuracy": sc["balanced_accuracy"],
           "macro_f1": float(np.nanmean(sc["f1"])),
           "majority_accuracy": float(cm.sum(axis=1).max() / n)}
    return out if positive is None else {**out, "positive": positive}


def _reliability(p: np.ndarray, hit: np.ndarray, n_bins: int) -> tuple[pd.DataFrame, float]:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=n_bins) / n
        obs = np.bincount(b, weights=hit.astype(float), minlength=n_bins) / n
    table = pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "n": n.astype("int64"),
                          "mean_predicted": mean_p, "observed_fraction": obs})
    full = n > 0
    return table, float(np.sum(n[full] / n.sum() * np.abs(obs[full] - mean_p[full])))


@dataclass
class ClassificationReport:
    """Everything :func:`evaluate` measured.

    Attributes
    ----------
    classes : list
        Class labels, in the order of the tables and of the ``proba`` columns.
    confusion : DataFrame
        Counts; index ``true``, columns ``predicted``.
    per_class : DataFrame
        ``class``, ``precision``, ``recall``, ``f1``, ``support``.
    summary : dict
        ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``majority_accuracy``
        (of always predicting the commonest class), ``positive`` (two classes); with
        probabilities ``log_loss``, ``ece`` and (two classes) ``brier``.
    by_region : DataFrame or None
        ``region``, ``n``, ``support`` (true ``positive`` sources, or all), ``accuracy``,
        ``balanced_accuracy``, ``precision``, ``recall``, ``f1`` (of ``positive``, or macro).
    reliability : DataFrame or None
        ``bin_lo``, ``bin_hi``, ``n``, ``mean_predicted``, ``observed_fraction`` of the
        positive class (two classes) or of the top-label confidence.
    positive : label or None
        The positive class (two classes).
    """

    classes: list
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    summary: dict
    by_region: pd.DataFrame | None = None
    reliability: pd.DataFrame | None = None
    positive: Any = field(default=None)

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """Every table, parquet-ready: ``confusion`` (long: ``true``, ``predicted``,
        ``count``, ``fraction`` of the true class), ``per_class``, ``summary`` (one
        row) and, when measured, ``by_region`` and ``reliability``."""
        cm = self.confusion
        long = cm.stack().rename("count").reset_index()
        long["count"] = long["count"].astype("int64")
        rows = cm.sum(axis=1).reindex(long["true"]).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            long["fraction"] = long["count"].to_numpy() / np.where(rows > 0, rows, np.nan)
        out = {"confusion": long, "per_class": self.per_class,
               "summary": pd.DataFrame([self.summary]), "by_region": self.by_region,
               "reliability": self.reliability}
        return {k: v.copy() for k, v in out.items() if v is not None}

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame]) -> ClassificationReport:
        """The report whose :meth:`to_frames` gave ``frames`` (e.g. read back from parquet).

        Raises
        ------
        InputError
            ``confusion`` or ``per_class`` is missing.
        """
        miss = [k for k in ("confusion", "per_class") if k not in frames]
        if miss:
            raise InputError(f"frames has no {miss} table; pass the output of to_frames().")
        per_class = frames["per_class"].reset_index(drop=True)
        classes = per_class["class"].tolist()
        long = frames["confusion"]
        cm = long.pivot_table(index="true", columns="predicted", values="count",
                              aggfunc="sum", fill_value=0).reindex(
            index=classes, columns=classes, fill_value=0).astype("int64")
        cm.index.name, cm.columns.name = "true", "predicted"
        summary = (frames["summary"].iloc[0].to_dict() if len(frames.get("summary", ()))
                   else _summary(cm.to_numpy(), classes[1] if len(classes) == 2 else None))
        summary = {k: v.item() if isinstance(v, np.generic) else v for k, v in summary.items()}
        return cls(classes, cm, per_class, summary, frames.get("by_region"),
                   frames.get("reliability"), summary.get("positive"))

    def to_text(self) -> str:
        """The confusion matrix, a classification report (per class, accuracy,
        macro and weighted averages, which skip NaN) and the per-region table."""
        names = [str(c) for c in self.classes]
        w = max(12, *(len(c) for c in names))
        cm = self.confusion.copy()
        cm.index, cm.columns = pd.Index(names, name="true"), pd.Index(names, name="predicted")
        lines = ["Confusion matrix (rows: true class, columns: predicted class)",
                 cm.to_string(), ""]
        fmt = f"{{:>{w}}}  {{:>9}}  {{:>9}}  {{:>9}}  {{:>9}}"
        num = f"{{:>{w}}}  {{:>9.3f}}  {{:>9.3f}}  {{:>9.3f}}  {{:>9d}}"
        lines += [fmt.format("", "precision", "recall", "f1-score", "support"), ""]
        pc = self.per_class
        for name, r in zip(names, pc.itertuples(), strict=True):
            lines.append(num.format(name, r.precision, r.recall, r.f1, int(r.support)))
        n = int(self.summary["n"])
        lines += ["", fmt.format("accuracy", "", "", f"{self.summary['accuracy']:.3f}", n)]
        s = pc["support"].to_numpy(float)
        for label, wts in (("macro avg", np.ones_like(s)), ("weighted avg", s)):
            avg = [_nanaverage(pc[c].to_numpy(float), wts) for c in ("precision", "recall", "f1")]
            lines.append(num.format(label, *avg, n))
        extra = [f"{label} {self.summary[k]:.3f}" for k, label in _SUMMARY_LABELS.items()
                 if k in self.summary]
        lines += ["", "; ".join(extra)]
        if self.by_region is not None:
            of = f"of {self.positive!s}" if self.positive is not None else "macro averages"
            lines += ["", f"By colour region (precision, recall, F1 {of})",
                      self.by_region.to_string(index=False, float_format="{:.3f}".format)]
        return "\n".join(lines)


def _nanaverage(x: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(x) & (w > 0)
    return float(np.average(x[ok], weights=w[ok])) if ok.any() else np.nan


def _check_proba(proba: Any, n: int, k: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape != (n, k):
        raise InputError(f"proba has shape {p.shape}; expected ({n}, {k}): one row per source "
                         "and one column per class, in the order of classes.")
    bad = np.abs(p.sum(axis=1) - 1.0) > 1e-3
    if not np.isfinite(p).all() or (p < -1e-9).any() or (p > 1 + 1e-9).any():
        raise InputError("proba holds values outside [0, 1] or NaN; pass probabilities "
                         "(predict_proba), not scores.")
    if bad.any():
        raise InputError(f"proba: {int(bad.sum())} rows do not sum to 1 (e.g. row "
                         f"{int(np.flatnonzero(bad)[0])}); pass predict_proba's output.")
    return np.clip(p, 0.0, 1.0)


def evaluate(y_true: Any, y_pred: Any, proba: Any = None, *, classes: Sequence | None = None,
             regions: Any = None, n_bins: int = 10, positive: Any = None) -> ClassificationReport:
    """Score predicted classes (and probabilities) against the true ones.

    Parameters
    ----------
    y_true, y_pred : array-like (n,)
        Class labels (ints or strings).
    proba : array-like (n, K), optional
        Class probabilities, columns in the order of ``classes``.
    classes : sequence, optional
        All classes, e.g. the classifier's ``classes_``; default the sorted labels seen.
    regions : array-like of str (n,), optional
        Colour region per source (:func:`colour_regions`) for ``by_region``.
    n_bins : int
        Equal-width probability bins of the reliability table.
    positive : label, optional
        With two classes, the class scored by the per-region precision/recall/F1,
        the Brier score and the reliability table; default ``classes[1]``.

    Returns
    -------
    ClassificationReport
        The expected calibration error is ``ECE = sum_b n_b / N |observed_b - predicted_b|``
        over the reliability bins; precision is NaN for a class never predicted.

    Raises
    ------
    InputError
        Empty input, lengths differ, unknown labels, or ``proba`` of the wrong
        shape or with rows not summing to 1.
    """
    y_true, y_pred = _vector("y_true", y_true), _vector("y_pred", y_pred)
    _same_length(y_true=y_true, y_pred=y_pred)
    if len(y_true) == 0:
        raise InputError("y_true is empty: nothing to evaluate.")
    if classes is None:
        classes = np.unique(np.concatenate([y_true, y_pred])).tolist()
    classes = list(classes)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        unknown = sorted(set(np.unique(y).tolist()) - set(classes), key=str)
        if unknown:
            raise InputError(f"{name} holds labels {unknown[:5]} that are not in classes "
                             f"{classes[:10]}.")
    k, n = len(classes), len(y_true)
    if int(n_bins) < 1:
        raise InputError(f"n_bins={n_bins!r} must be >= 1.")
    if positive is None and k == 2:
        positive = classes[1]
    elif positive is not None and (k != 2 or positive not in classes):
        raise InputError(f"positive={positive!r} must be one of two classes {classes}.")
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    sc = _scores(cm)
    confusion = pd.DataFrame(cm, index=pd.Index(classes, name="true"),
                             columns=pd.Index(classes, name="predicted"))
    per_class = pd.DataFrame({"class": classes, "precision": sc["precision"],
                              "recall": sc["recall"], "f1": sc["f1"],
                              "support": np.asarray(sc["support"], dtype="int64")})
    summary = _summary(cm, positive)
    reliability = None
    if proba is not None:
        p = _check_proba(proba, n, k)
        col = pd.Index(classes).get_indexer(y_true)
        summary["log_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(n), col], 1e-15, 1))))
        if k == 2:
            j = classes.index(positive)
            hit = y_true == positive
            summary["brier"] = float(brier_score_loss(hit.astype(int), p[:, j]))
            reliability, summary["ece"] = _reliability(p[:, j], hit, n_bins)
        else:
            top = p.argmax(axis=1)
            reliability, summary["ece"] = _reliability(p.max(axis=1), top == col, n_bins)
    by_region = None
    if regions is not None:
        regions = _vector("regions", regions).astype(str)
        _same_length(y_true=y_true, regions=regions)
        by_region = _by_region(y_true, y_pred, regions, classes, positive)
    return ClassificationReport(classes, confusion, per_class, summary, by_region, reliability,
                                positive)


def _by_region(y_true: np.ndarray, y_pred: np.ndarray, regions: np.ndarray, classes: list,
               positive: Any) -> pd.DataFrame:
    present = set(regions.tolist())
    order = [r for r in (*REGIONS, UNKNOWN) if r in present] + sorted(
        present - {*REGIONS, UNKNOWN})
    rows = []
    for r in order:
        sel = regions == r
        cm = confusion_matrix(y_true[sel], y_pred[sel], labels=classes)
        sc = _scores(cm)
        if positive is not None:
            j = classes.index(positive)
            pick = {m: float(sc[m][j]) for m in ("precision", "recall", "f1")}
            support = int(sc["support"][j])
        else:
            pick = {m: float(np.nanmean(sc[m])) if np.isfinite(sc[m]).any() else np.nan
                    for m in ("precision", "recall", "f1")}
            support = int(sel.sum())
        rows.append({"region": r, "n": int(sel.sum()), "support": support,
                     "accuracy": sc["accuracy"], "balanced_accuracy": sc["balanced_accuracy"],
                     **pick})
    return pd.DataFrame(rows).astype({"region": object, "n": "int64", "support": "int64"})


# ----------------------------------------------------------------------------- learning curve
