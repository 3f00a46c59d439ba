"""Pixel and band selection: footprint, coverage, S/N, neighbours at the same redshift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from galclust.errors import InputError
from galclust.pixels import (
    PixelFlag,
    footprint_from_segmentation,
    segment_bboxes,
    select_galaxy,
    select_pixels,
)


def _stamp(n_band=4, shape=(12, 12), level=10.0):
    sci = np.full((n_band, *shape), level)
    err = np.ones((n_band, *shape))
    seg = np.zeros(shape, np.int32)
    seg[2:8, 2:8] = 5
    seg[2:8, 8:11] = 9  # touches galaxy 5
    seg[10:12, 0:3] = 11  # does not touch
    return sci, err, seg


def test_footprint_is_the_segment_and_snr_cut_applies():
    sci, err, seg = _stamp()
    sci[:, 2, 2:8] = 2.0  # one row of the galaxy below S/N 3 in every band
    sel = select_galaxy(sci, err, seg, 5, snr_threshold=3.0)
    assert sel.footprint.sum() == 36
    assert sel.n_pixels == 30 and sel.n_low_snr == 6
    assert not sel.mask[2].any() and sel.mask[3:8, 2:8].all()
    assert not sel.mask[:, 8:].any()  # the neighbour is not taken without z_tolerance
    assert sel.used_bands.all() and sel.flags == PixelFlag(0)


def test_median_snr_over_bands_decides():
    sci, err, seg = _stamp(n_band=5)
    sci[:2, 4, 4] = 0.0  # two bands faint: median of 5 still 10 -> kept
    sci[:3, 5, 5] = 0.0  # three bands faint: median 0 -> dropped
    sel = select_galaxy(sci, err, seg, 5)
    assert sel.mask[4, 4] and not sel.mask[5, 5]
    assert sel.snr[4, 4] == pytest.approx(10.0) and sel.snr[5, 5] == pytest.approx(0.0)


def test_band_without_coverage_is_dropped_and_recorded():
    sci, err, seg = _stamp()
    err[2] = np.inf
    sci[2] = 0.0
    err[3, 2:6, 2:8] = np.inf  # band 3 covers a third of the footprint
    sel = select_galaxy(sci, err, seg, 5)
    assert sel.used_bands.tolist() == [True, True, False, False]
    assert sel.dropped_bands[2] == "no coverage"
    assert "covers 33%" in sel.dropped_bands[3]
    assert sel.flags & PixelFlag.BANDS_DROPPED
    assert sel.n_pixels == 36  # the remaining bands cover every pixel


def test_partially_covered_pixels_are_left_out():
    sci, err, seg = _stamp()
    err[1, 3, 3] = np.inf
    sci[0, 4, 4] = np.nan
    sel = select_galaxy(sci, err, seg, 5)
    assert sel.used_bands.all()
    assert not sel.mask[3, 3] and not sel.mask[4, 4]
    assert sel.n_uncovered == 2 and sel.n_pixels == 34


def test_all_nan_and_single_band_are_flags_not_errors():
    sci, err, seg = _stamp()
    sci[:] = np.nan
    sel = select_galaxy(sci, err, seg, 5)
    assert sel.flags & PixelFlag.ALL_NAN and sel.flags & PixelFlag.NO_PIXELS
    assert sel.n_pixels == 0 and not sel.used_bands.any()
    sci, err, seg = _stamp()
    err[1:] = np.inf
    sel = select_galaxy(sci, err, seg, 5)
    assert sel.flags & PixelFlag.SINGLE_BAND and sel.used_bands.sum() == 1


def test_neighbours_at_the_same_redshift_join_the_footprint():
    _, _, seg = _stamp()
    z = {5: 2.00, 9: 2.05, 11: 2.0}
    foot = footprint_from_segmentation(seg, 5, redshifts=z, z_tolerance=0.1)
    assert foot.sum() == 36 + 18  # 9 touches and is at |dz| = 0.05; 11 does not touch
    foot = footprint_from_segmentation(seg, 5, redshifts=z, z_tolerance=0.01)
    assert foot.sum() == 36
    foot = footprint_from_segmentation(seg, 5, redshifts={5: 2.0, 9: np.nan}, z_tolerance=1.0)
    assert foot.sum() == 36  # unknown redshift: not the same redshift


def test_missing_id_and_bad_shapes_raise():
    sci, err, seg = _stamp()
    with pytest.raises(InputError, match="galaxy id 42 is absent from the segmentation map"):
        select_galaxy(sci, err, seg, 42)
    with pytest.raises(InputError, match="must be .*of the same stamp"):
        select_galaxy(sci, err[:, :5], seg, 5)
    with pytest.raises(InputError, match="z_tolerance is given but redshifts is not"):
        footprint_from_segmentation(seg, 5, z_tolerance=0.1)


def test_select_pixels_on_a_given_mask():
    sci, err, _ = _stamp()
    mask = np.zeros((12, 12), bool)
    sel = select_pixels(sci, err, mask)
    assert sel.n_pixels == 0 and sel.flags & PixelFlag.NO_PIXELS


def test_segment_bboxes_match_find_objects_for_large_ids():
    rng = np.random.default_rng(0)
    small = ndimage.label(rng.random((60, 50)) > 0.7)[0]
    big = np.where(small > 0, small.astype(np.int64) * 1_000_003 + 10**9, 0)
    boxes = segment_bboxes(big, y_offset=100, x_offset=7)
    objs = ndimage.find_objects(small)
    assert len(boxes) == len(objs)
    for row in boxes.itertuples():
        sl = objs[(row.id - 10**9) // 1_000_003 - 1]
        assert (row.y0 - 100, row.y1 - 100, row.x0 - 7, row.x1 - 7) == (
            sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
        assert row.n_pixels == (small == (row.id - 10**9) // 1_000_003).sum()
    assert segment_bboxes(np.zeros((4, 4), int)).empty
