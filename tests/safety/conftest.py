"""A small world for the safety cases: a survey, its cube, one published run, a
user's folder; built once, copied for each test, entered with relative paths.

Relative paths keep every test's copy self-contained: the published run names
its cube store as ``field.zarr``, which resolves inside the copy.
"""

from __future__ import annotations

import os
import shutil
import warnings
from types import SimpleNamespace

import pytest
from safety_world import BANDS


@pytest.fixture(scope="session")
def pristine_world(tmp_path_factory):
    """The world, built once: ``survey/`` (err and weight maps), ``field.zarr``,
    ``field-results`` with one published pixel run, ``user/`` and ``secret.txt``."""
    import galclust
    from galclust.pixels.survey import run_pixels
    from galclust.store.cube import open_catalog
    from galclust.store.results import RunWriter
    from galclust.synth import make_survey

    root = tmp_path_factory.mktemp("world")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        make_survey("survey", shape=(128, 128), n_galaxies=6, bands=BANDS, seed=5,
                    noise="mixed", label_fraction=1.0)
        cube = galclust.ingest("survey/survey.toml", "field.zarr", tile=64)
        run = RunWriter.begin("field-results", params={"store": "field.zarr"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            run_pixels(cube, open_catalog("field.zarr"), run)
        run.publish()
    finally:
        os.chdir(cwd)
    (root / "user" / "sub").mkdir(parents=True)
    (root / "user" / "thesis.txt").write_text("three years of work\n")
    (root / "user" / "sub" / "notes.txt").write_text("do not lose\n")
    (root / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash\nsecond line\n")
    return root


@pytest.fixture
def world(pristine_world, tmp_path, monkeypatch):
    """A private copy of the world; the test runs inside it."""
    root = tmp_path / "w"
    shutil.copytree(pristine_world, root, copy_function=shutil.copy2)
    monkeypatch.chdir(root)
    return SimpleNamespace(root=root, manifest="survey/survey.toml", survey="survey",
                           store="field.zarr", results="field-results", user="user",
                           new="new.zarr", secret="secret.txt")
