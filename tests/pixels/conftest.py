"""Small arrays and cubes with known truth for the pixel-clustering tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from galclust.synth import NIRCAM_BANDS, make_galaxy

WAVELENGTH = np.array(list(NIRCAM_BANDS.values()))
BANDS = list(NIRCAM_BANDS)


def two_halves(*, snr_peak: float = 60.0, shape: tuple[int, int] = (20, 20), seed: int = 0,
               split: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 20x20 galaxy: left half a blue SED, right half a red one, a radial brightness gradient.

    Returns sci, err (band, y, x), mask (y, x) and truth (y, x) (0 left, 1 right;
    all 0 when ``split`` is False: one SED everywhere).
    """
    rng = np.random.default_rng(seed)
    blue = WAVELENGTH ** -1.0
    red = WAVELENGTH ** 1.0
    blue, red = blue / blue.mean(), red / red.mean()
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    light = np.exp(-np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2) / (nx / 5))
    truth = (xx >= nx // 2).astype(int) if split else np.zeros(shape, int)
    sed = np.where(truth[None] == 1, red[:, None, None], blue[:, None, None])
    model = sed * light[None] * snr_peak
    err = np.ones_like(model)
    sci = model + rng.standard_normal(model.shape) * err
    return sci, err, np.ones(shape, bool), truth


@pytest.fixture
def make_halves():
    """Factory: :func:`two_halves`."""
    return two_halves


@pytest.fixture
def wavelength():
    return WAVELENGTH.copy()


def make_cube(*, n_side: int = 3, stamp: int = 41, chunk: int | None = None, snr: float = 30.0,
              seed: int = 0) -> tuple[xr.Dataset, pd.DataFrame, dict[int, np.ndarray]]:
    """A mosaic of n_side x n_side make_galaxy stamps as a dask-backed cube.

    Returns the cube (as galclust.open_cube returns), the catalog (id, ra,
    dec, x, y, z) and the per-galaxy truth stamps keyed by id.
    """
    n = n_side * stamp
    chunk = chunk or stamp * 2
    sci = np.zeros((len(BANDS), n, n), np.float32)
    err = np.full((len(BANDS), n, n), 1.0, np.float32)
    seg = np.zeros((n, n), np.int32)
    rows, truths = [], {}
    for i in range(n_side * n_side):
        gid = 1000 + 7 * i
        g = make_galaxy(n_components=1 + i % 3, snr=snr, seed=seed + i, psf_fwhm_px=2.0,
                        shape=(stamp, stamp))
        y0, x0 = (i // n_side) * stamp, (i % n_side) * stamp
        sl = (slice(y0, y0 + stamp), slice(x0, x0 + stamp))
        sci[:, sl[0], sl[1]] = g.sci
        err[:, sl[0], sl[1]] = g.err
        seg[sl][g.mask] = gid
        truths[gid] = g.truth
        rows.append({"id": gid, "ra": 150.0 + x0 * 1e-5, "dec": 2.0 + y0 * 1e-5,
                     "x": x0 + (stamp - 1) / 2, "y": y0 + (stamp - 1) / 2, "z": 2.0,
                     "n_components": g.n_components})
    cube = xr.Dataset(
        {"sci": (("band", "y", "x"), sci), "err": (("band", "y", "x"), err),
         "seg": (("y", "x"), seg)},
        coords={"band": np.array(BANDS, dtype=object), "wavelength": ("band", WAVELENGTH),
                "y": np.arange(n), "x": np.arange(n)},
        attrs={"survey": "test", "pixel_scale": 0.04, "unit": "nJy"},
    ).chunk({"band": -1, "y": chunk, "x": chunk})
    cube = cube.assign_coords(wavelength=cube["wavelength"].load())  # as open_cube does
    return cube, pd.DataFrame(rows), truths


@pytest.fixture
def cube_factory():
    """Factory: :func:`make_cube`."""
    return make_cube


@pytest.fixture(scope="module")
def small_cube():
    return make_cube()
