"""`galclust demo`, run as a user runs it: quiet by default (no distributed INFO line,
no Python warning, no traceback), and -v brings the library's logs back."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def _demo(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASK_LOGGING", "PREFECT_LOGGING"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    return subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--workdir",
                           str(tmp_path / "demo"), "--size", "256", *extra],
                          capture_output=True, text=True, env=env, timeout=900)


def test_demo_output_is_quiet_and_complete(tmp_path):
    proc = _demo(tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "distributed." not in text and " INFO " not in text and "INFO:" not in text
    assert "Traceback" not in text and "CommClosedError" not in text
    assert not re.search(r"\w+Warning:", text), text  # no Python warning line
    assert "prefect" not in proc.stderr.lower()
    # what a user is told: stores, run, timings, accuracy, pictures
    for expected in ("cube store", "results", "pictures", "timings", "against truth",
                     "detection against truth", "morphology (statmorph definitions",
                     "density structures (AstroLink", "emission regions:",
                     "pixel clustering on mixing galaxies", "frac_rms"):
        assert expected in text
    found = re.search(r"(\d\.\d\d) of (\d+) true galaxies and stars hold one", text)
    assert found and float(found[1]) >= 0.85, text[-2000:]
    pictures = os.listdir(tmp_path / "demo" / "pictures")
    assert any(p.startswith("gini-m20-galaxies") for p in pictures), pictures
    assert any(p.startswith("segmentation") for p in pictures), pictures
    assert any(re.search(r"_run-\d{8}T\d{6}Z-[0-9a-f]{6}", p) for p in pictures), pictures
