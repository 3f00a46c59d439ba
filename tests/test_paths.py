"""One is_url: file:// is a local path, for the store and for the manifest alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import galclust.store.urls as urls
from galclust.config import load_manifest, manifest_from_dict
from galclust.paths import is_url, join, local_path

MANIFEST = """\
[survey]
name = "tiny"

[[bands]]
name = "F150W"
wavelength = 1.501
sci = "img/f150w_sci.fits"
err = "file:///elsewhere/f150w_err.fits"

[[bands]]
name = "F444W"
wavelength = 4.4
sci = "s3://bucket/f444w_sci.fits"
weight = "../wht/f444w_wht.fits"

[segmentation]
path = "seg.fits"

[catalog]
path = "/abs/catalog.parquet"
"""


@pytest.mark.parametrize(("path", "url"), [
    ("s3://bucket/key", True), ("memory://x", True), ("gs://b/k", True),
    ("file:///abs/survey.toml", False), ("file://rel/survey.toml", False),
    ("/abs/survey.toml", False), ("rel/survey.toml", False), (Path("/abs/x"), False),
])
def test_is_url(path, url):
    assert is_url(path) is url
    assert urls.is_url is is_url and urls.join is join  # the store uses the same definition


def test_local_path_strips_only_the_file_scheme():
    assert local_path("file:///abs/survey.toml") == "/abs/survey.toml"
    assert local_path("file://rel/survey.toml") == "rel/survey.toml"  # as fsspec reads it
    assert local_path("s3://bucket/file://x") == "s3://bucket/file://x"
    assert local_path(Path("/abs/x")) == "/abs/x"


def test_join():
    assert join("s3://bucket/", "/runs/", "a") == "s3://bucket/runs/a"
    assert join("/data", "runs", "a") == "/data/runs/a"


def _expected(folder: Path) -> dict:
    return {"sci": [str(folder / "img" / "f150w_sci.fits"), "s3://bucket/f444w_sci.fits"],
            "err": ["/elsewhere/f150w_err.fits", None],
            "weight": [None, str(folder.parent / "wht" / "f444w_wht.fits")],
            "seg": str(folder / "seg.fits"), "cat": "/abs/catalog.parquet"}


def _resolved(m) -> dict:
    return {"sci": [b.sci for b in m.bands], "err": [b.err for b in m.bands],
            "weight": [b.weight for b in m.bands], "seg": m.segmentation.path,
            "cat": m.catalog.path}


def test_file_url_manifest_resolves_to_local_paths(tmp_path):
    folder = tmp_path / "survey"
    folder.mkdir()
    (folder / "survey.toml").write_text(MANIFEST)
    plain = load_manifest(folder / "survey.toml")
    as_url = load_manifest(f"file://{folder / 'survey.toml'}")
    assert _resolved(as_url) == _resolved(plain) == _expected(folder)
    assert as_url.source == plain.source == str(folder / "survey.toml")
    assert all(not p.startswith("file://") for p in as_url.input_paths().values())


def test_file_url_base_resolves_to_local_paths(tmp_path):
    import tomllib

    m = manifest_from_dict(tomllib.loads(MANIFEST), base=f"file://{tmp_path}")
    assert _resolved(m) == _expected(tmp_path)
    remote = manifest_from_dict(tomllib.loads(MANIFEST), base="s3://bucket/survey")
    assert remote.bands[0].sci == "s3://bucket/survey/img/f150w_sci.fits"
    assert remote.bands[0].err == "/elsewhere/f150w_err.fits"


def test_config_and_paths_do_not_import_fsspec():
    code = ("import sys, galclust.config, galclust.paths; "
            "assert 'fsspec' not in sys.modules, 'fsspec imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
