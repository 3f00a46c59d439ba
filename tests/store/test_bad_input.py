"""Bad input is refused before any compute, with the file/field and the fix named,
and nothing half-written is left looking complete."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import tomli_w
from astropy.io import fits

import galclust
from galclust.config import load_manifest
from galclust.errors import InputError, ManifestError, MissingInputError, StoreError
from galclust.synth import make_survey


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine")
    return make_survey(path, shape=(144, 128), bands={"F150W": 1.501, "F277W": 2.776,
                                                    "F444W": 4.402}, seed=11)


@pytest.fixture
def survey(pristine, tmp_path):
    """A private copy of the small survey, with its manifest as a dict to edit."""
    dst = tmp_path / "survey"
    shutil.copytree(os.path.dirname(pristine.manifest_path), dst)
    manifest = dst / os.path.basename(pristine.manifest_path)
    return manifest


def _edit(manifest, fn):
    import tomllib

    data = tomllib.loads(manifest.read_text())
    fn(data)
    manifest.write_text(tomli_w.dumps(data))
    return str(manifest)


def _assert_nothing_written(store):
    assert not os.path.exists(store) or not os.listdir(store)
    with pytest.raises(StoreError):
        galclust.open_cube(store)


def test_missing_file(survey, tmp_path):
    m = load_manifest(survey)
    os.remove(m.bands[1].sci)
    store = str(tmp_path / "c.zarr")
    with pytest.raises(MissingInputError, match=r"band F277W sci.*not found.*F277W_sci\.fits"):
        galclust.ingest(survey, store)
    _assert_nothing_written(store)


def test_missing_manifest(tmp_path):
    with pytest.raises(MissingInputError, match="survey manifest not found"):
        galclust.ingest(str(tmp_path / "nope.toml"), str(tmp_path / "c.zarr"))


def test_corrupt_fits(survey, tmp_path):
    m = load_manifest(survey)
    with open(m.bands[2].noise_path, "wb") as fh:
        fh.write(b"this is not a FITS file" * 100)
    store = str(tmp_path / "c.zarr")
    with pytest.raises(InputError, match=r"band F444W (err|weight) image.*not a readable FITS"):
        galclust.ingest(survey, store)
    _assert_nothing_written(store)


def test_truncated_fits(survey, tmp_path):
    m = load_manifest(survey)
    raw = open(m.bands[0].sci, "rb").read()
    with open(m.bands[0].sci, "wb") as fh:
        fh.write(raw[: len(raw) - 9000])
    store = str(tmp_path / "c.zarr")
    with pytest.raises(InputError, match=r"band F150W sci.*truncated"):
        galclust.ingest(survey, store)
    _assert_nothing_written(store)


def test_bands_with_different_shapes(survey, tmp_path):
    m = load_manifest(survey)
    with fits.open(m.bands[1].sci) as hdul:
        hdr, data = hdul[0].header, hdul[0].data
        fits.writeto(m.bands[1].sci, data[:-4], hdr, overwrite=True)
    with pytest.raises(InputError, match=r"band F277W sci image .* is 128x140 px but band F150W"
                                         r".*one pixel grid.*does not reproject"):
        galclust.ingest(survey, str(tmp_path / "c.zarr"))


def test_bands_on_misaligned_grids(survey, tmp_path):
    m = load_manifest(survey)
    with fits.open(m.bands[2].sci, mode="update") as hdul:
        hdul[0].header["CRPIX1"] += 0.5  # same shape, grid shifted by half a pixel
    with pytest.raises(InputError, match=r"band F444W sci.*WCS differs.*not aligned"
                                         r".*offset up to 0.5 px.*reproject"):
        galclust.ingest(survey, str(tmp_path / "c.zarr"))


def test_unknown_manifest_key_suggests_the_right_one(survey, tmp_path):
    path = _edit(survey, lambda d: d["bands"][0].update(wavelenght=1.5))
    with pytest.raises(ManifestError, match=r"unknown key 'wavelenght' in \[bands\]\[0\]"
                                            r".*Did you mean 'wavelength'"):
        galclust.ingest(path, str(tmp_path / "c.zarr"))
    path = _edit(survey, lambda d: d.update(catalogue=d.pop("catalog")))
    with pytest.raises(ManifestError, match=r"unknown top-level table \[catalogue\].*"
                                            r"Did you mean 'catalog'"):
        load_manifest(path)


def test_manifest_errors_name_the_field(survey):
    def both(d):
        d["bands"][0]["weight"] = "x.fits"
        d["bands"][0]["err"] = "y.fits"

    original = survey.read_text()
    with pytest.raises(ManifestError, match="band 'F150W' must give exactly one of 'err'"):
        load_manifest(_edit(survey, both))
    survey.write_text(original)
    with pytest.raises(ManifestError, match="wavelength=-2.0 must be a positive"):
        load_manifest(_edit(survey, lambda d: d["bands"][1].update(name="F150W2",
                                                                     wavelength=-2.0)))


def test_manifest_duplicate_band_and_bad_toml(survey):
    original = survey.read_text()
    with pytest.raises(ManifestError, match="band names must be unique.*F150W"):
        load_manifest(_edit(survey, lambda d: d["bands"][1].update(name="F150W")))
    survey.write_text(original)
    survey.write_text("[survey\nname = 1")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(str(survey))


def test_segmentation_of_the_wrong_shape(survey, tmp_path):
    m = load_manifest(survey)
    seg = fits.getdata(m.segmentation.path)
    fits.writeto(m.segmentation.path, seg[:, :50], overwrite=True)
    with pytest.raises(InputError, match=r"segmentation map .*seg\.fits is 50x144 px but the "
                                         r"bands are 128x144 px"):
        galclust.ingest(survey, str(tmp_path / "c.zarr"))


def test_catalog_without_id_ra_dec(survey, tmp_path):
    m = load_manifest(survey)
    cat = pd.read_parquet(m.catalog.path).rename(columns={"ra": "RA_deg"})
    cat.to_parquet(m.catalog.path)
    with pytest.raises(InputError, match=r"source catalog .*catalog\.parquet: no column for "
                                         r"ra='ra'\. The table has: id, RA_deg"):
        galclust.ingest(survey, str(tmp_path / "c.zarr"))
    path = _edit(survey, lambda d: d["catalog"].update(ra="RA_deg"))
    cube = galclust.ingest(path, str(tmp_path / "c.zarr"))  # renaming the column fixes it
    assert cube["sci"].shape == (3, 144, 128)


def test_missing_bucket(survey, s3):
    with pytest.raises(StoreError, match=r"bucket 'no-such-bucket' does not exist.*aws s3 mb"):
        galclust.ingest(survey, "s3://no-such-bucket/field.zarr")


def test_refused_credentials(survey, s3_with_auth):
    with pytest.raises(StoreError, match=r"access to bucket 'survey-data' was refused.*"
                                         r"AWS_ACCESS_KEY_ID") as info:
        galclust.ingest(survey, "s3://survey-data/field.zarr")
    assert "AKIAREFUSEDREFUSED00" not in str(info.value)  # credentials are never echoed


def test_errors_come_before_any_compute(survey, tmp_path):
    """A bad last band is found before the first band's pixels are read or written."""
    m = load_manifest(survey)
    with fits.open(m.bands[-1].sci, mode="update") as hdul:
        hdul[0].header["CRVAL2"] += 1.0
    store = str(tmp_path / "c.zarr")
    with pytest.raises(InputError, match="WCS differs"):
        galclust.ingest(survey, store)
    _assert_nothing_written(store)
    assert np.isfinite(fits.getdata(m.bands[0].sci)).any()


def test_segmentation_with_negative_ids(survey, tmp_path):
    m = load_manifest(survey)
    with fits.open(m.segmentation.path, mode="update") as hdul:
        seg = hdul[0].data.astype(np.int32)
        seg[5, 5] = -3
        hdul[0].data = seg
    store = str(tmp_path / "c.zarr")
    with pytest.raises(InputError, match=r"segmentation map \(.*seg\.fits\): ids from -3 to "
                                         r"\d+ at rows 0:\d+.*int32"):
        galclust.ingest(survey, store)
    with pytest.raises(StoreError, match="did not complete"):
        galclust.open_cube(store)


def test_segmentation_with_non_integer_ids_after_bscale(survey, tmp_path):
    """An int16 map with BSCALE=0.5 holds half-integer ids: refused, not truncated."""
    m = load_manifest(survey)
    seg = fits.getdata(m.segmentation.path).astype(np.int16)
    seg[7, 7] = 21  # 21 * 0.5 = 10.5
    hdu = fits.PrimaryHDU(seg, header=fits.getheader(m.segmentation.path))
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 0.0
    hdu.writeto(m.segmentation.path, overwrite=True, output_verify="silentfix")
    with fits.open(m.segmentation.path, do_not_scale_image_data=True) as hdul:
        assert hdul[0].header["BSCALE"] == 0.5 and hdul[0].data[7, 7] == 21  # stored as asked
    store = str(tmp_path / "c.zarr")
    with pytest.raises(InputError, match=r"segmentation map .*seg\.fits.*non-integer values at "
                                         r"rows \d+:\d+ after BSCALE/BZERO"):
        galclust.ingest(survey, store)
