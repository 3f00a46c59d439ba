"""Inspection labels from CSV, parquet, FITS and Excel; spellings; id checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from galclust.errors import GalclustWarning, InputError, MissingInputError
from galclust.store.labels import check_label_ids, normalise_labels, read_labels

RAW = pd.DataFrame({
    "ID": [3, 7, 11, 12, 20],
    "ok": ["yes", "No", "1", "false", True],
    "why": [np.nan, " diffraction spike ", "", "edge data", "ignored for reliable"],
})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits", ".xlsx"])
def test_read_every_format(tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    df = RAW.copy()
    df["ok"] = df["ok"].astype(str)
    df["why"] = df["why"].fillna("")
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    elif suffix == ".xlsx":
        df.to_excel(path, index=False)
    else:
        Table.from_pandas(df).write(path)
    got = read_labels(str(path), id="ID", reliable="ok", reason="why")
    assert list(got.columns) == ["id", "reliable", "reason"]
    assert got["id"].dtype == np.int64
    assert got["id"].tolist() == [3, 7, 11, 12, 20]
    assert got["reliable"].tolist() == [1, 0, 1, 0, 1]
    # reasons are stripped and blank for reliable sources
    assert got["reason"].tolist() == ["", "diffraction spike", "", "edge data", ""]


def test_missing_column_names_what_the_table_has(tmp_path):
    path = tmp_path / "l.csv"
    RAW.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"no column for id='id'.*The table has: 'ID', 'ok', 'why'"):
        read_labels(str(path))
    with pytest.raises(InputError, match="reason=None"):
        read_labels(str(path), id="ID", reliable="ok")
    got = read_labels(str(path), id="ID", reliable="ok", reason=None)
    assert (got["reason"] == "").all()


def test_bad_values_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"'maybe'"):
        normalise_labels(pd.DataFrame({"id": [1, 2], "reliable": [1, "maybe"],
                                       "reason": ["", ""]}))
    with pytest.raises(InputError, match="<blank>"):
        normalise_labels(pd.DataFrame({"id": [1, 2], "reliable": [1, None], "reason": ["", ""]}))
    with pytest.raises(InputError, match="repeat"):
        normalise_labels(pd.DataFrame({"id": [1, 1], "reliable": [1, 0], "reason": ["", "x"]}))
    with pytest.raises(InputError, match="integer catalog ids"):
        normalise_labels(pd.DataFrame({"id": [1.5], "reliable": [1], "reason": [""]}))
    with pytest.raises(MissingInputError, match="labels table not found"):
        read_labels(str(tmp_path / "nope.csv"))


def test_check_label_ids_reports_instead_of_dropping():
    labels = normalise_labels(pd.DataFrame({"id": [1, 2, 900, 901, 902, 903, 904, 905],
                                            "reliable": [1] * 8, "reason": [""] * 8}))
    with pytest.warns(GalclustWarning, match=r"6 of 8 labelled ids are not in the catalog "
                                             r"\(first few: \[900, 901, 902, 903, 904\]\)"):
        missing = check_label_ids(labels, [1, 2, 3])
    assert missing == [900, 901, 902, 903, 904, 905]
    assert len(labels) == 8  # nothing dropped
    assert check_label_ids(labels.iloc[:2], [1, 2, 3]) == []


def test_synthetic_survey_labels(survey, catalog):
    labels = read_labels(survey[0].labels_path)
    assert len(labels) == survey[0].n_labelled
    assert check_label_ids(labels, catalog["id"]) == []
    spur = labels[labels.reliable == 0]
    assert len(spur) == survey[0].n_spurious
    assert set(spur.reason) == {"diffraction spike", "edge data", "close to another source"}
