"""The command line: help texts, ingest, clean one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from galclust.cli import build_parser, main
from galclust.synth import make_survey


def test_every_command_has_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    assert set(commands) == {"demo", "ingest", "pixels", "flag", "nightly", "serve", "query"}
    for cmd in commands:
        assert cmd in out
        with pytest.raises(SystemExit) as info:
            main([cmd, "--help"])
        assert info.value.code == 0
        assert "usage: galclust " + cmd in capsys.readouterr().out


def test_ingest_command(tmp_path, capsys):
    survey = make_survey(tmp_path / "s", shape=(128, 128), seed=4,
                         bands={"F200W": 1.988, "F356W": 3.565})
    store = str(tmp_path / "field.zarr")
    assert main(["ingest", survey.manifest_path, "--store", store, "--tile", "32", "-q"]) == 0
    out = capsys.readouterr().out
    assert "wrote bands: F200W, F356W" in out and "2 bands x 128 x 128 px" in out
    assert "32 x 32" in out
    assert main(["ingest", survey.manifest_path, "--store", store, "--tile", "32", "-q"]) == 0
    assert "inputs unchanged: nothing written" in capsys.readouterr().out


def test_bad_input_is_one_line_with_exit_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "galclust.cli", "ingest",
                           str(tmp_path / "missing.toml"), "--store", str(tmp_path / "c.zarr")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("galclust ingest: error: survey manifest not found")
    assert "Traceback" not in proc.stderr
