"""Pictures of a source classifier's evaluation (matplotlib; functions return Figures).

- :func:`plot_confusion` — the confusion matrix, counts and fractions of each true class.
- :func:`plot_reliability` — observed against predicted probability, with the
  diagonal, binomial (Wilson, 68 %) error bars and the predictions' histogram.
- :func:`plot_learning_curve` — accuracy against the number of training examples.
- :func:`plot_colour_magnitude` — the colour–magnitude diagram with the fitted
  red sequence, its region boundaries, and right and wrong predictions per class.
- :func:`save_report_figures` — all of them as PNG, named after the options and run.

The tables come from :mod:`galclust.evaluation.classify`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from galclust.errors import InputError
from galclust.plots._style import wrap_title
from galclust.plots.naming import picture_stem, picture_title

if TYPE_CHECKING:
    from galclust.evaluation.classify import ClassificationReport

__all__ = ["plot_colour_magnitude", "plot_confusion", "plot_learning_curve",
           "plot_reliability", "save_report_figures"]

#: Class colours on the colour–magnitude diagram (not blue or red, which name regions there).
CLASS_COLOURS = ("tab:purple", "tab:green", "tab:orange", "tab:brown", "tab:pink", "tab:olive",
                 "tab:cyan", "tab:grey")
_REGIONS = ("blue cloud", "red sequence", "red shoulder")


def _title(subject: str, title: str | None, run_id: str | None,
           options: Mapping[str, Any] | None, width: int = 60) -> str:
    return title or wrap_title(picture_title(subject, options=options, run_id=run_id), width)


def _new(ax: Any, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def plot_confusion(report: ClassificationReport, *, normalise: bool = True, ax: Any = None,
                   title: str | None = None, run_id: str | None = None,
                   options: Mapping[str, Any] | None = None) -> Figure:
    """The confusion matrix: each cell shows its count and the fraction of its true class.

    Parameters
    ----------
    report : ClassificationReport
    normalise : bool
        Shade cells by the fraction of the true class (else by count).
    ax : matplotlib Axes, optional
    title : str, optional
        Default: accuracy, balanced accuracy and N, then ``options`` and ``run_id``.
    run_id : str, optional
    options : dict, optional
        E.g. ``{"model": "cnn", "target": "member"}``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    counts = report.confusion.to_numpy()
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = counts / np.where(rows > 0, rows, np.nan)
    k = len(report.classes)
    fig, ax = _new(ax, (1.6 + 1.1 * k, 1.2 + 1.0 * k))
    shade = frac if normalise else counts
    top = 1.0 if normalise else max(float(counts.max()), 1.0)
    im = ax.imshow(np.nan_to_num(shade), cmap="Blues", vmin=0, vmax=top)
    for i in range(k):
        for j in range(k):
            f = "—" if np.isnan(frac[i, j]) else f"{frac[i, j]:.0%}"
            ax.text(j, i, f"{counts[i, j]}\n{f}", ha="center", va="center", fontsize="small",
                    color="white" if np.nan_to_num(shade[i, j]) > 0.6 * top else "black")
    names = [str(c) for c in report.classes]
    ax.set_xticks(range(k), names, rotation=30 if max(map(len, names)) > 8 else 0, ha="right"
                  if max(map(len, names)) > 8 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, shrink=0.8,
                 label="fraction of the true class" if normalise else "sources")
    s = report.summary
    ax.set_title(_title(f"Confusion matrix: accuracy {s['accuracy']:.3f}, balanced "
                        f"{s['balanced_accuracy']:.3f}, N = {s['n']}", title, run_id, options,
                        40 + 8 * k), fontsize="medium")
    return fig


def _wilson(k: np.ndarray, n: np.ndarray, z: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (``z`` sigma) of a binomial fraction ``k / n``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def plot_reliability(report: ClassificationReport, *, title: str | None = None,
                     run_id: str | None = None, options: Mapping[str, Any] | None = None,
                     figsize: tuple[float, float] = (5.0, 5.5)) -> Figure:
    """Reliability diagram: observed fraction against mean predicted probability.

    Two classes: the probability of the positive class and the fraction that
    is of it; more: the top-label confidence and the fraction predicted right.
    Error bars are 68 % Wilson intervals of each bin's fraction; the panel
    beneath is the histogram of the predictions.

    Parameters
    ----------
    report : ClassificationReport
        Made with ``proba``.
    title, run_id, options
        As :func:`plot_confusion`.
    figsize : (float, float)

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        The report has no probabilities.
    """
    rel = report.reliability
    if rel is None:
        raise InputError("report has no reliability table: pass proba= to evaluate().")
    fig = Figure(figsize=figsize, layout="constrained")
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    n = rel["n"].to_numpy(float)
    full = n > 0
    obs, pred = rel["observed_fraction"].to_numpy(float), rel["mean_predicted"].to_numpy(float)
    lo, hi = _wilson(obs * n, n)
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfectly calibrated")
    what = (f"{report.positive}" if report.positive is not None else "top label")
    ax.errorbar(pred[full], obs[full], yerr=[obs[full] - lo[full], hi[full] - obs[full]],
                fmt="o-", color="tab:blue", ms=5, capsize=2,
                label=f"{what} (ECE = {report.summary['ece']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    if report.positive is not None:
        ax.set_ylabel(f"observed fraction of {report.positive}")
        hist.set_xlabel(f"predicted probability of {report.positive}")
    else:
        ax.set_ylabel("fraction predicted correctly")
        hist.set_xlabel("top-label confidence (max. probability)")
    ax.legend(loc="upper left", fontsize="small")
    lo_edge, hi_edge = rel["bin_lo"].to_numpy(float), rel["bin_hi"].to_numpy(float)
    hist.bar(lo_edge, n, width=hi_edge - lo_edge, align="edge", color="tab:blue", alpha=0.5,
             edgecolor="tab:blue")
    hist.set_ylabel("sources")
    ax.set_title(_title(f"Reliability, N = {int(n.sum())}", title, run_id, options, 50),
                 fontsize="medium")
    return fig


def plot_learning_curve(curve: pd.DataFrame, *, baseline: float | None = None, ax: Any = None,
                        title: str | None = None, run_id: str | None = None,
                        options: Mapping[str, Any] | None = None) -> Figure:
    """Training and held-out accuracy against the number of training examples.

    Parameters
    ----------
    curve : DataFrame
        From :func:`galclust.evaluation.classify.learning_curve`: ``n_train``,
        ``train_accuracy``, ``test_accuracy`` (and ``test_balanced_accuracy``,
        ``n_test`` if present).
    baseline : float, optional
        Accuracy of always predicting the commonest class (dotted line).
    ax, title, run_id, options
        As :func:`plot_confusion`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    miss = [c for c in ("n_train", "train_accuracy", "test_accuracy") if c not in curve]
    if miss:
        raise InputError(f"curve has no column {miss}; pass the output of learning_curve().")
    fig, ax = _new(ax, (5.5, 4.0))
    x = curve["n_train"].to_numpy(float)
    ax.plot(x, curve["train_accuracy"], "o-", color="tab:orange", label="training")
    ax.plot(x, curve["test_accuracy"], "s-", color="tab:blue", label="held out")
    if "test_balanced_accuracy" in curve:
        ax.plot(x, curve["test_balanced_accuracy"], "s--", color="tab:blue", mfc="none",
                label="held out, balanced accuracy")
    if baseline is not None:
        ax.axhline(baseline, ls=":", color="0.4", label=f"commonest class ({baseline:.3f})")
    if len(x) and x.min() > 0 and x.max() / x.min() >= 10:
        ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right", fontsize="small")
    n_test = f", {int(curve['n_test'].iloc[0])} held out" if "n_test" in curve and len(curve) \
        else ""
    ax.set_title(_title(f"Learning curve{n_test}", title, run_id, options), fontsize="medium")
    return fig


def plot_colour_magnitude(colour: Any, magnitude: Any, y_true: Any, y_pred: Any, regions: Any,
                          relation: Mapping[str, float], *, colour_label: str = "g - r [mag]",
                          magnitude_label: str = "r [mag]", ax: Any = None,
                          title: str | None = None, run_id: str | None = None,
                          options: Mapping[str, Any] | None = None) -> Figure:
    """Colour–magnitude diagram: fitted red sequence, region boundaries, right and wrong.

    Each source is drawn in the colour of its true class: a dot if predicted
    right, a cross if not. The legend title gives the accuracy per region.

    Parameters
    ----------
    colour, magnitude : array-like (n,)
    y_true, y_pred : array-like (n,)
    regions : array-like of str (n,)
        From :func:`galclust.evaluation.classify.colour_regions`.
    relation : dict
        ``intercept``, ``slope``, ``width`` (mag), as ``colour_regions`` returns.
    colour_label, magnitude_label : str
        Axis labels, with units.
    ax, title, run_id, options
        As :func:`plot_confusion`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    arrays = {"colour": np.asarray(colour, float), "magnitude": np.asarray(magnitude, float),
              "y_true": np.asarray(y_true), "y_pred": np.asarray(y_pred),
              "regions": np.asarray(regions).astype(str)}
    for name, a in arrays.items():
        if a.shape != arrays["colour"].shape or a.ndim != 1:
            raise InputError(f"{name} has shape {a.shape} but colour has "
                             f"{arrays['colour'].shape}; pass one value per source.")
    miss = [k for k in ("intercept", "slope", "width") if k not in relation]
    if miss:
        raise InputError(f"relation has no {miss}; pass the dict colour_regions() returns.")
    col, mag, yt, yp, reg = arrays.values()
    fig, ax = _new(ax, (7.5, 5.0))
    classes = np.unique(np.concatenate([yt, yp])).tolist()
    for i, c in enumerate(classes):
        colour_i = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        mine = yt == c
        for right, marker, size, word in ((True, "o", 9, "correct"),
                                          (False, "x", 22, "misclassified")):
            sel = mine & ((yp == yt) == right)
            ax.scatter(mag[sel], col[sel], s=size, marker=marker, color=colour_i,
                       alpha=0.7 if right else 0.9, linewidths=0.8 if not right else 0,
                       label=f"{c}: {word} ({int(sel.sum())})", rasterized=len(mag) > 5000)
    ok = np.isfinite(mag) & np.isfinite(col)
    if ok.any():
        m = np.linspace(mag[ok].min(), mag[ok].max(), 2)
        a, b, w = (float(relation[k]) for k in ("intercept", "slope", "width"))
        ax.plot(m, a + b * m, "k-", lw=1.2, label=f"red sequence: {a:.3f} {'−' if b < 0 else '+'} {abs(b):.4f} × mag")
        ax.plot(m, a + b * m + w, "k--", lw=0.8, label=f"± {w:.3f} mag")
        ax.plot(m, a + b * m - w, "k--", lw=0.8)
        for text, dy, va in (("red shoulder", w, "bottom"), ("blue cloud", -w, "top")):
            ax.text(m[1], a + b * m[1] + dy + (0.01 if dy > 0 else -0.01), text, ha="right",
                    va=va, fontsize="small", color="0.2",
                    bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})
        lo, hi = np.percentile(col[ok], [0.5, 99.5])
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(magnitude_label)
    ax.set_ylabel(colour_label)
    lines = []
    for r in [*_REGIONS, *sorted(set(reg.tolist()) - set(_REGIONS))]:
        sel = reg == r
        if sel.any():
            lines.append(f"{r}: {np.mean(yt[sel] == yp[sel]):.3f} (n = {int(sel.sum())})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
              title="accuracy by region\n" + "\n".join(lines), title_fontsize="small",
              alignment="left")
    ax.set_title(_title(f"Colour–magnitude diagram, N = {len(col)}", title, run_id, options,
                        70), fontsize="medium")
    return fig


def save_report_figures(report: ClassificationReport, folder_or_prefix: str, *,
                        curve: pd.DataFrame | None = None, cmd: Mapping[str, Any] | None = None,
                        run_id: str | None = None,
                        options: Mapping[str, Any] | None = None) -> list[str]:
    """Write the evaluation's pictures as PNG (local paths or URLs).

    Parameters
    ----------
    report : ClassificationReport
    folder_or_prefix : str
        A folder (ends with ``/`` or is an existing directory): files are
        ``classify_<options>_run-<id>_<kind>.png`` in it. Otherwise a prefix whose
        last part replaces ``classify``.
    curve : DataFrame, optional
        A learning curve (:func:`plot_learning_curve`).
    cmd : dict, optional
        Arguments of :func:`plot_colour_magnitude` (``colour``, ``magnitude``,
        ``y_true``, ``y_pred``, ``regions``, ``relation``, ...).
    run_id : str, optional
    options : dict, optional
        Named in titles and file names.

    Returns
    -------
    list of str
        The files written: kinds ``confusion``, ``reliability`` (with
        probabilities), ``learning-curve`` and ``cmd`` (when given).
    """
    from galclust.plots.catalog import save_figure

    path = str(folder_or_prefix)
    if path.endswith("/") or os.path.isdir(path):
        folder, subject = path.rstrip("/") or "/", "classify"
    else:
        folder, subject = path.rsplit("/", 1) if "/" in path else ("", path)
    tag = {"run_id": run_id, "options": options}
    figs = {"confusion": plot_confusion(report, **tag)}
    if report.reliability is not None:
        figs["reliability"] = plot_reliability(report, **tag)
    if curve is not None:
        figs["learning-curve"] = plot_learning_curve(
            curve, baseline=report.summary.get("majority_accuracy"), **tag)
    if cmd is not None:
        figs["cmd"] = plot_colour_magnitude(**{**cmd, **tag})
    out = []
    for kind, fig in figs.items():
        name = picture_stem(subject, kind=kind, **tag) + ".png"
        out.append(save_figure(fig, f"{folder}/{name}" if folder else name))
    return out
