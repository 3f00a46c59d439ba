"""The command line: help texts, ingest, clean one-line errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from flows.cli import build_full_parser as build_parser
from flows.cli import main
from galclust.synth import make_survey


def test_every_command_has_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    assert set(commands) == {"demo", "ingest", "detect", "pixels", "morphology", "structures",
                             "emission", "flag", "classify", "nightly", "serve", "query"}
    for cmd in commands:
        assert cmd in out
        assert main([cmd, "--help"]) == 0
        assert "usage: galclust " + cmd in capsys.readouterr().out


def test_every_stage_option_is_a_flag_of_nightly_serve_and_deploy(capsys):
    """The flags are built from the options dataclasses: none is missing anywhere."""
    import dataclasses

    from galclust.options import OPTIONS

    flags = {f.metadata["flag"] for cls in OPTIONS.values() for f in dataclasses.fields(cls)}
    assert {"--method", "--normalize", "--metric", "--n-clusters", "--snr-min", "--embedding",
            "--model", "--threshold", "--size", "--seed"} <= flags
    for cmd in ("nightly", "serve"):
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert all(f in out for f in flags), (cmd, [f for f in flags if f not in out])
    deploy = subprocess.run([sys.executable, "deploy/deploy.py", "--help"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.dirname(
                                os.path.dirname(os.path.abspath(__file__)))))
    assert deploy.returncode == 0, deploy.stderr
    assert all(f in deploy.stdout for f in flags)
    assert main(["pixels", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--snr-min" in out and "--embedding" not in out  # its own stage's options only


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
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "ingest",
                           str(tmp_path / "missing.toml"), "--store", str(tmp_path / "c.zarr")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("galclust ingest: error: survey manifest not found")
    assert "Traceback" not in proc.stderr
