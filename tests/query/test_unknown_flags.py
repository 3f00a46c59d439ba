"""A run without labels knows no spurious flag: queries must not answer "not spurious";
a labelled run stores the count of labels its model contradicts (issue #10, item 6)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import galclust
from galclust.catalog.schema import TABLE_NAME
from galclust.errors import GalclustWarning
from galclust.query import Query
from galclust.store.cube import open_catalog, open_labels
from galclust.store.results import RunWriter, open_results


@pytest.fixture(scope="module")
def unlabelled(published, tmp_path_factory):
    """A second results store for the same cube, flagged without any labels."""
    from galclust.catalog.survey import run_catalog

    results = str(tmp_path_factory.mktemp("unlabelled") / "results")
    run = RunWriter.begin(results, params={"store": published.store})
    with warnings.catch_warnings():  # 0/0 in a feature of an all-empty stamp (numpy's note)
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(GalclustWarning, match="0 labelled reliable and 0 labelled spurious"):
            table = run_catalog(galclust.open_cube(published.store),
                                open_catalog(published.store), None, run)
    run.publish()
    return results, table


def test_no_labels_flags_are_null_and_match_neither_selection(unlabelled):
    results, table = unlabelled
    assert table["p_spurious"].isna().all() and table["flag"].isna().all()
    summary = table.attrs["summary"]
    assert (summary["calibrated"], summary["n_unknown"], summary["n_flagged"]) == (
        False, len(table), 0)
    q = Query(results)
    stored = q.results.table(TABLE_NAME)
    assert stored["flag"].dtype == "boolean" and stored["flag"].isna().all()
    assert stored.attrs["summary"] == summary
    assert q.select(spurious=False).empty and q.select(spurious=True).empty
    everything = q.select()
    assert len(everything) == len(table) and everything["spurious"].isna().all()
    rec = q.galaxy(int(table["id"].iloc[0]))
    assert pd.isna(rec.spurious["flag"]) and rec.to_dict()["spurious"]["flag"] is None
    fig = rec.figure()
    assert "p_spurious unknown" in fig._suptitle.get_text()


def test_labelled_run_stores_how_many_labels_the_model_contradicts(published, tables):
    spur = tables[TABLE_NAME]
    summary = open_results(published.results).table(TABLE_NAME).attrs["summary"]
    lab = open_labels(published.store).merge(spur[["id", "flag"]], on="id")
    rel = lab[(lab["reliable"] == 1) & lab["flag"].fillna(False)]
    missed = lab[(lab["reliable"] == 0) & ~lab["flag"].fillna(True)]
    assert summary["n_labelled"] == len(lab) and summary["calibrated"]
    assert summary["contradicted_reliable"] == len(rel)
    assert summary["contradicted_reliable_ids"] == np.sort(rel["id"]).tolist()
    assert summary["contradicted_spurious"] == len(missed)
    assert summary["n_flagged"] == int(spur["flag"].sum())
