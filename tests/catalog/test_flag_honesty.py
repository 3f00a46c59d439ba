"""Spurious flags that do not mislead: unknown is null (also in the results store), and
the run summary counts the labelled sources the model contradicts.

The same on cutouts (``flag_spurious``): ``test_model.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from galclust.catalog.model import SpuriousModel
from galclust.catalog.pipeline import FlagOptions, label_summary, warn_label_conflicts
from galclust.catalog.schema import spurious_schema, to_frame
from galclust.errors import InputError, LabelConflictWarning
from galclust.store.results import RunWriter, open_results


def test_label_summary_counts_and_ignores_unknown_flags():
    table = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6], "p_spurious": [0.9, 0.0, np.nan, 0.8, 0.1,
                                                                     np.nan],
                          "flag": pd.array([True, False, pd.NA, True, False, pd.NA],
                                           dtype="boolean")})
    y = np.array([0, 1, 0, -1, 0, 1])  # 1 reliable-flagged, 1 spurious-cleared, 2 unknown
    s = label_summary(table, y)
    assert s == {"n_sources": 6, "n_flagged": 2, "n_unknown": 2, "calibrated": True,
                 "n_labelled": 5, "n_labelled_reliable": 3, "n_labelled_spurious": 2,
                 "contradicted_reliable": 1, "contradicted_spurious": 1,
                 "contradicted_reliable_ids": [1], "contradicted_spurious_ids": [2]}
    with pytest.warns(LabelConflictWarning, match=r"^1 source labelled reliable is flagged "
                                                  r"spurious by the model: id 1; 1 source "
                                                  r"labelled spurious is not flagged by the "
                                                  r"model: id 2; check the labels.* 1 of 3 "
                                                  r"reliable and 1 of 2 spurious"):
        warn_label_conflicts(s)
    missed = {**s, "contradicted_reliable": 0, "contradicted_reliable_ids": []}
    with pytest.warns(LabelConflictWarning, match=r"^1 source labelled spurious is not flagged"):
        warn_label_conflicts(missed)
    many = {**s, "contradicted_reliable": 12, "contradicted_reliable_ids": list(range(12))}
    with pytest.warns(LabelConflictWarning, match=r"ids 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more"):
        warn_label_conflicts(many)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_label_conflicts({**missed, "contradicted_spurious": 0,
                              "contradicted_spurious_ids": []})


def test_null_flags_survive_the_results_store_and_match_no_filter(tmp_path):
    schema = spurious_schema(1)
    table = to_frame({"id": np.array([1, 2, 3]), "component": np.zeros(3, np.int32),
                      "p_spurious": np.array([0.01, np.nan, 0.9]),
                      "flag": np.array([False, False, True]),  # the model's False means nothing
                      "reason": np.array(["", "", "edge data"], dtype=object),
                      "map_x": np.zeros(3), "map_y": np.zeros(3), "pc": np.zeros((3, 1))},
                     schema)
    assert table["flag"].tolist() == [False, pd.NA, True]
    table.attrs["summary"] = {"n_unknown": 1, "contradicted_reliable_ids": [3]}
    run = RunWriter.begin(str(tmp_path / "results"))
    run.write_table("catalog_spurious", table)
    run.publish()
    res = open_results(str(tmp_path / "results"))
    back = res.table("catalog_spurious")
    assert back["flag"].dtype == "boolean" and back["flag"].tolist() == [False, pd.NA, True]
    assert back.attrs["summary"] == table.attrs["summary"]
    for value, ids in ((False, [1]), (True, [3])):
        got = res.table("catalog_spurious", columns=["id"], filters=[("flag", "==", value)])
        assert got["id"].tolist() == ids


def test_min_labels_is_checked_and_reaches_the_model():
    with pytest.raises(InputError, match=r"min_labels=0 must be an integer >= 1"):
        FlagOptions(min_labels=0)
    with pytest.raises(InputError, match=r"min_labels=True must be an integer >= 1"):
        SpuriousModel(min_labels=True).fit(np.zeros((4, 2)))
    X = np.random.default_rng(3).normal(size=(300, 2)) + np.repeat([[0, 0], [8, 0], [4, 9]],
                                                                    100, axis=0)
    y = np.full(len(X), -1)
    y[:3], y[-2:] = 0, 1  # 3 reliable, 2 spurious
    assert SpuriousModel(n_components=3).fit(X, y).calibrated_
    m = SpuriousModel(n_components=3, min_labels=3).fit(X, y)
    assert not m.calibrated_ and np.isnan(m.predict_proba(X)[:, 1]).all()
    assert (m.n_labelled_reliable_, m.n_labelled_spurious_) == (3, 2)
