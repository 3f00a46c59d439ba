"""How well spurious flags recover known spurious sources (synthetic truth).

Recall is measured on *every* truly spurious source of the catalog, labelled
or not; the cost of that recall is the fraction of the catalog flagged. The
reference to beat (t-SNE + mixture on CEERS cutouts): 54 of 57 known spurious
sources inside a flagged region of 412 of 1,816 sources — recall 94.7% for
22.7% of the catalog flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galclust.errors import InputError

__all__ = ["REFERENCE", "evaluate_flags"]

#: The published result to beat.
REFERENCE = {"n_spurious": 57, "n_recovered": 54, "n_sources": 1816, "n_flagged": 412}

EVALUATION_COLUMNS = {
    "subset": "object", "n_sources": "int64", "n_spurious": "int64", "n_recovered": "int64",
    "recall": "float64", "n_flagged": "int64", "flagged_fraction": "float64",
    "precision": "float64", "reason_accuracy": "float64",
}


def evaluate_flags(flags: pd.DataFrame, truth: pd.DataFrame, *, spurious: str = "spurious",
                   reason: str = "artefact", only: np.ndarray | None = None) -> pd.DataFrame:
    """Recall, flagged fraction and precision of spurious flags, overall and per reason.

    Parameters
    ----------
    flags : DataFrame
        ``id``, ``flag`` (bool) and optionally ``reason`` (predicted).
    truth : DataFrame
        ``id``, ``spurious`` (bool) and ``artefact`` (true reason, "" if real).
    spurious, reason : str
        Truth column names.
    only : ndarray of int, optional
        Restrict to these ids (e.g. the unlabelled ones).

    Returns
    -------
    DataFrame
        One row ``"all"`` then one per true reason: ``n_sources``,
        ``n_spurious``, ``n_recovered`` (flagged), ``recall``, ``n_flagged``
        (all flagged sources for "all"; flagged with that predicted reason for a
        reason), ``flagged_fraction`` (of the catalog), ``precision`` (flagged
        that are spurious; per reason: predicted reason correct), and
        ``reason_accuracy`` (recovered sources whose predicted reason is right).

    Raises
    ------
    InputError
        Missing columns, or flags without a truth row.
    """
    for name, df, cols in (("flags", flags, ("id", "flag")), ("truth", truth,
                                                              ("id", spurious, reason))):
        miss = [c for c in cols if c not in df.columns]
        if miss:
            raise InputError(f"{name} table has no column {miss}; it has "
                             f"{[str(c) for c in df.columns][:20]}.")
    t = truth.set_index(truth["id"].astype("int64"))
    f = flags.set_index(flags["id"].astype("int64"))
    if only is not None:
        f = f.loc[f.index.isin(np.asarray(only, dtype=np.int64))]
    unknown = f.index.difference(t.index)
    if len(unknown):
        raise InputError(f"{len(unknown)} flagged ids have no truth row, e.g. "
                         f"{unknown[:5].tolist()}.")
    t = t.loc[f.index]
    is_sp = t[spurious].astype(bool).to_numpy()
    true_reason = t[reason].fillna("").astype(str).to_numpy()
    flag = f["flag"].astype("boolean").fillna(False).to_numpy(bool)  # unknown: not flagged
    pred_reason = (f["reason"].fillna("").astype(str).to_numpy() if "reason" in f.columns
                   else np.full(len(f), "", dtype=object))
    n = len(f)
    rows = []

    def row(subset: str, sel: np.ndarray, flagged: np.ndarray, correct: np.ndarray) -> dict:
        n_sp = int(sel.sum())
        rec = int((sel & flag).sum())
        n_fl = int(flagged.sum())
        return {
            "subset": subset, "n_sources": n, "n_spurious": n_sp, "n_recovered": rec,
            "recall": rec / n_sp if n_sp else np.nan, "n_flagged": n_fl,
            "flagged_fraction": n_fl / n if n else np.nan,
            "precision": float(correct.sum()) / n_fl if n_fl else np.nan,
            "reason_accuracy": (float((sel & flag & (pred_reason == true_reason)).sum()) / rec
                                if rec else np.nan),
        }

    rows.append(row("all", is_sp, flag, flag & is_sp))
    for r in sorted(set(true_reason[is_sp])):
        sel = is_sp & (true_reason == r)
        pred = flag & (pred_reason == r)
        rows.append(row(r or "(no reason)", sel, pred, pred & sel))
    out = pd.DataFrame(rows)
    return out.astype(EVALUATION_COLUMNS)
