"""Segmentation maps written tile by tile: the cube's ``seg`` or a run's detection map.

The tiled detection (:func:`galclust.sources.survey.detect_cube`) writes each
tile's core into a zarr array from its own task and reads it back to relabel
it; :class:`ZarrSegTarget` is that array, picklable, opened by each task. The
tiles are the array's chunks (or multiples of them), so no two tasks write the
same chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from galclust.store.cube import _open_group, _quiet_zarr, _zarr_store

__all__ = ["ZarrSegTarget", "create_seg_dataset"]


@dataclass(frozen=True)
class ZarrSegTarget:
    """A (y, x) int32 array ``name`` of the zarr group at ``url``."""

    url: str
    name: str = "seg"

    def _array(self, mode: str = "r+"):  # noqa: ANN202 - zarr.Array
        return _open_group(self.url, mode)[self.name]

    def write(self, y0: int, x0: int, block: np.ndarray) -> None:
        """Write ``block`` with its first pixel at (y0, x0)."""
        ny, nx = block.shape
        self._array()[y0:y0 + ny, x0:x0 + nx] = block.astype(np.int32, copy=False)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The block [y0:y1, x0:x1]."""
        return np.asarray(self._array("r")[y0:y1, x0:x1])


def create_seg_dataset(url: str, shape: tuple[int, int], tile: int) -> ZarrSegTarget:
    """Create an empty (0-filled) ``seg`` dataset at ``url`` (zarr v3, ``tile`` chunks),
    readable by :func:`xarray.open_zarr`; returns its target."""
    import dask.array as da
    from zarr.codecs import ZstdCodec

    ny, nx = shape
    ds = xr.Dataset({"seg": (("y", "x"), da.zeros((ny, nx), chunks=(tile, tile), dtype="i4"))},
                    coords={"y": np.arange(ny, dtype="i4"), "x": np.arange(nx, dtype="i4")})
    ds["seg"].attrs.update(long_name="segmentation map: 0 sky, else detection id")
    with _quiet_zarr():
        ds.to_zarr(_zarr_store(url), mode="w", compute=False, consolidated=True,
                   zarr_format=3, encoding={"seg": {"chunks": (tile, tile),
                                                    "fill_value": np.int32(0),
                                                    "compressors": [ZstdCodec(level=3)]}})
    return ZarrSegTarget(url, "seg")
