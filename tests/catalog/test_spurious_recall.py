"""Recovery of injected spurious sources on a synthetic survey, against the reference.

The reference (t-SNE + mixture on CEERS cutouts) recovered 54 of 57 known
spurious sources in a flagged region of 412 of 1,816 sources (recall 94.7%,
22.7% flagged). The production default must reach recall >= 95% with <= 20%
of the catalog flagged, with all and with 25% of the sources labelled, where
recall counts *every* truly spurious source (labelled or not). Scored with
:func:`galclust.evaluation.catalog.evaluate_flags` (tested by hand in
tests/evaluation/test_evaluation_catalog.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galclust.evaluation.catalog import REFERENCE, evaluate_flags

METHODS = ("combined", "classifier", "mixture")


@pytest.fixture(scope="module")
def scores(embedded, labels, labels_25, truth):
    """evaluate_flags of each method x labelling (a table the report quotes)."""
    from galclust.catalog.survey import flag_catalog

    rows, tables = [], {}
    for method in METHODS:
        for name, lab in (("100%", labels), ("25%", labels_25)):
            table, _ = flag_catalog(embedded, lab, method=method)
            tables[method, name] = table
            ev = evaluate_flags(table, truth)
            rows.append(ev.assign(method=method, labelled=name))
    out = pd.concat(rows, ignore_index=True)
    print("\n" + out[["method", "labelled", "subset", "n_spurious", "n_recovered", "recall",
                      "n_flagged", "flagged_fraction", "precision",
                      "reason_accuracy"]].to_string())
    return out, tables


def _overall(scores, method, labelled):
    ev = scores[0]
    return ev[(ev.method == method) & (ev.labelled == labelled) & (ev.subset == "all")].iloc[0]


@pytest.mark.parametrize("labelled", ["100%", "25%"])
def test_default_beats_the_reference(scores, labelled, truth):
    row = _overall(scores, "combined", labelled)
    assert row.n_spurious == truth["spurious"].sum() >= 40  # all of them, labelled or not
    assert row.recall >= 0.95
    assert row.flagged_fraction <= 0.20
    ref = REFERENCE
    assert row.recall > ref["n_recovered"] / ref["n_spurious"]
    assert row.flagged_fraction < ref["n_flagged"] / ref["n_sources"]
    ev = scores[0]
    per = ev[(ev.method == "combined") & (ev.labelled == labelled) & (ev.subset != "all")]
    assert set(per.subset) == {"diffraction spike", "edge data", "close to another source"}
    assert (per.recall >= 0.9).all()
    assert row.reason_accuracy >= 0.7


def test_recall_on_unlabelled_sources_alone(scores, labels_25, truth):
    """With 25% labelled, the sources nobody inspected are recovered too."""
    table = scores[1]["combined", "25%"]
    unlabelled = np.setdiff1d(table["id"], labels_25["id"])
    ev = evaluate_flags(table, truth, only=unlabelled).iloc[0]
    assert ev.n_spurious >= 30 and ev.recall >= 0.95


def test_supervised_and_pure_mixture_are_reported(scores):
    """The classifier flags fewer sources (higher precision); the embedding-only
    mixture needs far more of the catalog flagged for its recall."""
    for labelled in ("100%", "25%"):
        comb = _overall(scores, "combined", labelled)
        clf = _overall(scores, "classifier", labelled)
        mix = _overall(scores, "mixture", labelled)
        assert clf.recall >= 0.85 and clf.flagged_fraction <= 0.10
        assert clf.precision > comb.precision
        assert mix.flagged_fraction > comb.flagged_fraction or mix.recall < comb.recall


def test_public_api_on_survey_cutouts(cube, catalog, labels_25, truth):
    """flag_spurious on numpy cutouts plus catalog positions meets the same bar."""
    import galclust
    from galclust.catalog.survey import survey_cutouts

    cut = survey_cutouts(cube, catalog)
    stamps = cut.stamps.compute()
    positions = pd.DataFrame({"id": catalog["id"], "x": catalog["x"], "y": catalog["y"],
                              "flux": catalog.filter(like="flux_").sum(axis=1)})
    table = galclust.flag_spurious(stamps, cut.ids, labels_25, positions=positions)
    ev = evaluate_flags(table, truth).iloc[0]
    assert ev.recall >= 0.95 and ev.flagged_fraction <= 0.20
