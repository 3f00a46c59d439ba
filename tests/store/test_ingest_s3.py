"""Ingest to S3 object storage through s3fs, against a real moto S3 server."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import galclust
from galclust.config import load_manifest
from galclust.store.cube import open_catalog
from galclust.synth import make_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("s3survey"), shape=(160, 128),
                       bands={"F115W": 1.154, "F277W": 2.776, "F444W": 4.402}, seed=7)


def test_ingest_to_s3_reopen_and_reingest(survey, bucket, s3, tmp_path):
    url = f"{bucket}/fields/field.zarr"
    cube, rep = galclust.ingest(survey.manifest_path, url, tile=64, report=True)
    assert rep.changed and len(rep.bands_written) == 3
    assert s3.exists(f"{url[5:]}/zarr.json") and s3.exists(f"{url[5:]}/tables/catalog.parquet")
    reopened = galclust.open_cube(url)
    local = galclust.ingest(survey.manifest_path, str(tmp_path / "local.zarr"), tile=64)
    for var in ("sci", "err", "seg"):
        np.testing.assert_array_equal(reopened[var].values, local[var].values)
    assert reopened.attrs["provenance"]["inputs"] == local.attrs["provenance"]["inputs"]
    assert len(open_catalog(url)) == len(open_catalog(str(tmp_path / "local.zarr")))

    _, again = galclust.ingest(survey.manifest_path, url, tile=64, report=True)
    assert not again.changed

    m = load_manifest(survey.manifest_path)
    with fits.open(m.bands[0].sci, mode="update") as hdul:
        hdul[0].data = hdul[0].data + 3.0
    cube, inc = galclust.ingest(survey.manifest_path, url, tile=64, report=True)
    assert inc.bands_written == ["F115W"] and not inc.seg_written
    covered = np.isfinite(local["err"][0].values)
    np.testing.assert_allclose(cube["sci"][0].values[covered],
                               local["sci"][0].values[covered] + 3.0, rtol=1e-6)
    np.testing.assert_array_equal(cube["sci"][1:].values, local["sci"][1:].values)


def test_manifest_and_inputs_read_from_s3(survey, bucket, s3, tmp_path):
    """A manifest in object storage with relative paths: inputs resolve to s3:// too."""
    import os

    folder = os.path.dirname(survey.manifest_path)
    s3.put(folder, f"{bucket[5:]}/delivery", recursive=True)
    remote_manifest = f"{bucket}/delivery/{os.path.basename(survey.manifest_path)}"
    m = load_manifest(remote_manifest)
    assert m.bands[0].sci.startswith(f"{bucket}/delivery/")
    cube = galclust.ingest(remote_manifest, str(tmp_path / "from-s3.zarr"), tile=64)
    with fits.open(load_manifest(survey.manifest_path).bands[2].sci) as hdul:
        expected = hdul[0].data
    covered = np.isfinite(cube["err"][2].values)
    np.testing.assert_array_equal(cube["sci"][2].values[covered], expected[covered])
