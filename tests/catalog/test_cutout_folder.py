"""Folders of cutouts made elsewhere (FITS, PNG, JPEG) -> (source, band, y, x) + ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from galclust.catalog.cutouts import cut_stamps
from galclust.errors import GalclustWarning, InputError, MissingInputError
from galclust.store.cutout_folder import read_cutout_folder

DATA = Path(__file__).parents[1] / "data" / "catalog"
IDS = [101, 102, 103, 104, 105, 106, 107]


@pytest.fixture(scope="module")
def hsc_stamps():
    """Real HSC g r i z y stamps (21 x 21) of the 7 catalogued sources of the blend."""
    d = np.load(DATA / "hsc_cosmos_35.npz")
    cat = d["catalog"]
    st, _, _ = cut_stamps(d["images"], np.sqrt(d["variance"]),
                          np.column_stack([cat["y"], cat["x"]]), size=21)
    return st


def _rgb8(stamp: np.ndarray) -> np.ndarray:
    """(band, y, x) -> (y, x, 3) uint8 of bands (z, i, r), top row first (image order)."""
    rgb = np.moveaxis(stamp[[3, 2, 1]], 0, -1)
    rgb = np.clip(np.arcsinh(rgb / 0.05) / 5.0, 0, 1)
    return (255 * rgb[::-1]).astype(np.uint8)


def test_fits_folder_round_trip(tmp_path, hsc_stamps):
    for i, st in zip(IDS, hsc_stamps, strict=True):
        fits.PrimaryHDU(st).writeto(tmp_path / f"cutout_{i}_hsc.fits")
    (tmp_path / "notes.txt").write_text("not an image")
    got = read_cutout_folder(str(tmp_path), pattern=r"cutout_(?P<id>\d+)_")
    assert got.ids.tolist() == IDS
    np.testing.assert_array_equal(got.cutouts, hsc_stamps)
    assert [Path(f).name for f in got.files][0] == "cutout_101_hsc.fits"


def test_png_rgb_grey_and_jpeg(tmp_path, hsc_stamps):
    rgb = [_rgb8(s) for s in hsc_stamps]
    for i, im in zip(IDS, rgb, strict=True):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    got = read_cutout_folder(str(tmp_path))
    assert got.cutouts.shape == (7, 3, 21, 21)
    # bands R, G, B; flipped so that row 0 is the bottom, as in FITS
    np.testing.assert_allclose(got.cutouts[2, 0], rgb[2][::-1, :, 0] / 255.0, atol=1e-6)
    np.testing.assert_allclose(got.cutouts[2, :, -1, :], np.moveaxis(rgb[2][0], -1, 0) / 255.0,
                               atol=1e-6)

    grey = tmp_path / "grey"
    grey.mkdir()
    for i, im in zip(IDS, rgb, strict=True):
        Image.fromarray(im[:, :, 0]).save(grey / f"g{i}.png")
    g = read_cutout_folder(str(grey))
    assert g.cutouts.shape == (7, 1, 21, 21)

    jpg = tmp_path / "jpg"
    jpg.mkdir()
    for i, im in zip(IDS, rgb, strict=True):
        Image.fromarray(im).save(jpg / f"src-{i}.jpeg", quality=95)
    j = read_cutout_folder(str(jpg))
    assert j.cutouts.shape == (7, 3, 21, 21)
    assert np.abs(j.cutouts - got.cutouts).mean() < 0.03  # lossy but close


def test_mapping_table(tmp_path, hsc_stamps):
    names = [f"obj_{c}.fits" for c in "abcdefg"]
    for n, st in zip(names, hsc_stamps, strict=True):
        fits.PrimaryHDU(st[0]).writeto(tmp_path / n)
    table = tmp_path / "map.csv"
    pd.DataFrame({"filename": names, "source": IDS[::-1]}).to_csv(table, index=False)
    got = read_cutout_folder(str(tmp_path), mapping=str(table), file_column="filename",
                             id_column="source")
    assert got.ids.tolist() == IDS[::-1] and got.cutouts.shape == (7, 1, 21, 21)
    with pytest.raises(InputError, match=r"no column \['file'\].*filename"):
        read_cutout_folder(str(tmp_path), mapping=str(table), id_column="source")
    with pytest.raises(InputError, match="no id for 1 files"):
        read_cutout_folder(str(tmp_path), mapping={n: i for n, i in zip(names[:-1], IDS,
                                                                        strict=False)})


def test_different_sizes_name_the_files(tmp_path, hsc_stamps):
    for i, st in zip(IDS[:5], hsc_stamps, strict=False):
        fits.PrimaryHDU(st).writeto(tmp_path / f"s{i}.fits")
    fits.PrimaryHDU(hsc_stamps[5][:, :15, :15]).writeto(tmp_path / "s106.fits")
    fits.PrimaryHDU(hsc_stamps[6][:3]).writeto(tmp_path / "s107.fits")
    with pytest.raises(InputError, match=r"differ in size.*21x21 px x 5 band\(s\): 5 files.*"
                                         r"15x15 px x 5 band\(s\): 1 files \(e.g. s106.fits\).*"
                                         r"s107.fits"):
        read_cutout_folder(str(tmp_path))


def test_ids_against_catalog(tmp_path, hsc_stamps):
    for i, st in zip(IDS, hsc_stamps, strict=True):
        fits.PrimaryHDU(st).writeto(tmp_path / f"{i}.fits")
    with pytest.raises(InputError, match="none of the 7 ids .* is in the catalog"):
        read_cutout_folder(str(tmp_path), catalog_ids=[1, 2, 3])
    with pytest.warns(GalclustWarning, match="2 of 7 images have ids not in the catalog"):
        got = read_cutout_folder(str(tmp_path), catalog_ids=IDS[:5])
    assert len(got.ids) == 7


def test_bad_folders(tmp_path, hsc_stamps):
    with pytest.raises(MissingInputError, match="cutout folder not found"):
        read_cutout_folder(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="holds no"):
        read_cutout_folder(str(tmp_path))
    fits.PrimaryHDU(hsc_stamps[0]).writeto(tmp_path / "first.fits")
    fits.PrimaryHDU(hsc_stamps[1]).writeto(tmp_path / "12.fits")
    with pytest.raises(InputError, match=r"finds no integer id in 1 file names, e.g. "
                                         r"\['first.fits'\]"):
        read_cutout_folder(str(tmp_path))
    (tmp_path / "first.fits").unlink()
    fits.PrimaryHDU(hsc_stamps[2]).writeto(tmp_path / "x12.fits")
    with pytest.raises(InputError, match=r"ids \[12\] occur in several files"):
        read_cutout_folder(str(tmp_path), pattern=r"(\d+)\.fits")
    (tmp_path / "x12.fits").unlink()
    (tmp_path / "13.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="13.png: cannot be read"):
        read_cutout_folder(str(tmp_path), pattern=r"(\d+)\.")
