"""Tiled detection over a cube (galclust.sources.survey.detect_cube): a source crossing a
tile edge gets exactly one id, the tiled map equals the whole-image map, and ids are a
function of the pixels."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from galclust.sources.detection import detect
from galclust.sources.survey import TILE_EDGE, detect_cube
from galclust.store.segmaps import create_seg_dataset

N, TILE = 256, 128
#: (y, x, peak S/N, sigma px): one on a tile edge, one on the corner of four tiles.
SOURCES = [(40.0, 40.0, 60.0, 2.5), (70.0, 128.0, 50.0, 3.0), (128.0, 128.0, 80.0, 3.5),
           (200.0, 60.0, 40.0, 2.5), (190.0, 200.0, 30.0, 2.0), (128.0, 220.0, 45.0, 2.5),
           (100.0, 180.0, 35.0, 2.0)]


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:N, :N].astype(float)
    sed = np.array([0.6, 1.0, 1.4])
    sci = np.zeros((3, N, N))
    for cy, cx, peak, s in SOURCES:
        sci += peak * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))[None] \
            * sed[:, None, None]
    err = np.ones_like(sci)
    return sci + rng.normal(size=sci.shape), err


def _cube(sci: np.ndarray, err: np.ndarray) -> xr.Dataset:
    chunks = (sci.shape[0], TILE, TILE)
    return xr.Dataset(
        {"sci": (("band", "y", "x"), da.from_array(sci.astype("f4"), chunks=chunks)),
         "err": (("band", "y", "x"), da.from_array(err.astype("f4"), chunks=chunks))},
        coords={"band": np.array(["g", "r", "i"], dtype=object),
                "wavelength": ("band", [0.48, 0.62, 0.77])})


def _tiled(tmp_path, sci, err, name="seg", **kw):
    target = create_seg_dataset(str(tmp_path / f"{name}.zarr"), (N, N), TILE)
    sources, info = detect_cube(_cube(sci, err), target, options={"deblend": "watershed"},
                                **kw)
    return target.read(0, N, 0, N), sources, info


def test_tiled_detection_equals_whole_image_and_edge_sources_get_one_id(tmp_path):
    sci, err = _scene()
    seg, sources, info = _tiled(tmp_path, sci, err)
    whole_seg, whole = detect(sci, err, deblend="watershed", bands=["g", "r", "i"])
    assert info["tiles"] == 4 and info["unmatched_pixels"] == 0
    assert len(sources) == len(whole) == len(SOURCES)
    # every true source: one id, and the tiled and whole-image maps agree pixel for pixel
    for cy, cx, _, _ in SOURCES:
        ids = np.unique(seg[int(cy) - 3:int(cy) + 4, int(cx) - 3:int(cx) + 4])
        assert len(ids[ids > 0]) == 1, (cy, cx, ids)
    pairs = np.unique(np.stack([seg.ravel(), whole_seg.ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(seg)) == len(np.unique(whole_seg))  # a bijection
    # the corner source spans four tiles with one id
    corner = seg[118:139, 118:139]
    c_id = seg[128, 128]
    assert c_id > 0 and (corner[:10, :10] == c_id).any() and (corner[-10:, -10:] == c_id).any()
    # positions and fluxes agree with the whole-image measurement
    m = sources.sort_values(["y", "x"]).reset_index(drop=True)
    w = whole.sort_values(["y", "x"]).reset_index(drop=True)
    np.testing.assert_allclose(m[["x", "y"]], w[["x", "y"]], atol=1e-6)
    np.testing.assert_allclose(m["flux_r"], w["flux_r"], rtol=1e-6)
    assert not (sources["flag"] & TILE_EDGE).any()


def test_ids_are_a_function_of_the_pixels(tmp_path):
    sci, err = _scene()
    seg1, s1, _ = _tiled(tmp_path, sci, err, "a")
    seg2, s2, _ = _tiled(tmp_path, sci, err, "b")
    np.testing.assert_array_equal(seg1, seg2)
    assert s1.equals(s2)
    # numbered 1..N in (y, x) order of the centroids
    assert s1["id"].tolist() == list(range(1, len(s1) + 1))
    order = np.lexsort((s1["x"].round(3), s1["y"].round(3)))
    assert order.tolist() == list(range(len(s1)))
    assert set(np.unique(seg1)) - {0} == set(s1["id"])


def test_a_source_larger_than_the_halo_is_flagged(tmp_path):
    sci, err = _scene()
    y, x = np.mgrid[:N, :N].astype(float)
    big = 20 * np.exp(-((y - 60) ** 2 + (x - 126) ** 2) / (2 * 12.0 ** 2))
    sci[:, :, :] += big[None]
    _, sources, _ = _tiled(tmp_path, sci, err, halo=4)
    near = sources[(abs(sources["x"] - 126) < 6) & (abs(sources["y"] - 60) < 12)]
    assert len(near) >= 1 and (near["flag"] & TILE_EDGE).all()


def test_bad_halo_is_refused(tmp_path):
    from galclust.errors import InputError

    sci, err = _scene()
    with pytest.raises(InputError, match="halo"):
        _tiled(tmp_path, sci, err, halo=-1)
