"""evaluate_flags (galclust.evaluation.catalog) on a hand-made truth.

Its use on a synthetic survey, scoring the spurious flags against the
reference, is in tests/catalog/test_spurious_recall.py.
"""

from __future__ import annotations

import pandas as pd
import pytest

from galclust.errors import InputError
from galclust.evaluation.catalog import evaluate_flags


def test_evaluate_flags_by_hand():
    truth = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6], "spurious": [1, 1, 1, 0, 0, 0],
                          "artefact": ["edge data", "edge data", "diffraction spike", "", "",
                                       ""]})
    flags = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6], "flag": [1, 0, 1, 1, 0, 0],
                          "reason": ["edge data", "", "edge data", "diffraction spike", "",
                                     ""]})
    ev = evaluate_flags(flags, truth).set_index("subset")
    assert ev.loc["all", "recall"] == pytest.approx(2 / 3)
    assert ev.loc["all", "flagged_fraction"] == pytest.approx(3 / 6)
    assert ev.loc["all", "precision"] == pytest.approx(2 / 3)
    assert ev.loc["all", "reason_accuracy"] == pytest.approx(1 / 2)
    assert ev.loc["edge data", "recall"] == 0.5
    assert ev.loc["edge data", "precision"] == pytest.approx(1 / 2)  # 2 predicted edge, 1 right
    assert ev.loc["diffraction spike", "recall"] == 1.0
    assert ev.loc["diffraction spike", "precision"] == 0.0
    with pytest.raises(InputError, match="no truth row"):
        evaluate_flags(flags.assign(id=[1, 2, 3, 4, 5, 99]), truth)
    with pytest.raises(InputError, match=r"no column \['flag'\]"):
        evaluate_flags(flags.drop(columns=["flag"]), truth)
