"""galclust's morphology against statmorph (test-only dependency) on the same galaxies.

Sets: (a) PSF-convolved, noisy Sersic galaxies made here with astropy's
``Sersic2D`` — a default set, and a held-out set from another seed and other
parameter ranges (larger and smaller galaxies, rounder and flatter, lower S/N,
broader PSF) on which nothing was tuned; (b) real HST WFC3 F105W images of
Abell 2744 (tests/data/hst_abell2744), segmented here with a threshold on the
smoothed image and ``scipy.ndimage.label``, using the RMS map where there is one.

Only galaxies that statmorph does not call bad are compared: statmorph
``flag <= 1`` (0 good, 1 suspect — e.g. a disjoint Gini segmap); ``flag >= 2``
(bad, e.g. sky box not background-subtracted, Petrosian radius at a bound) are
excluded. Targets: median |dGini| <= 0.02, |dM20| <= 0.1, |dC| <= 0.15,
|dA| <= 0.03 on each set.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi

from galclust.sources.nonparametric import morphology

statmorph = pytest.importorskip("statmorph")
fits = pytest.importorskip("astropy.io.fits")
from astropy.modeling.models import Sersic2D  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "hst_abell2744"
TARGETS = {"gini": 0.02, "m20": 0.1, "concentration": 0.15, "asymmetry": 0.03}
GAIN = 100.0
DEFAULT = dict(n=(0.5, 4.0), r_eff=(3.0, 12.0), ellip=(0.0, 0.6), snr=(20.0, 300.0),
               psf=(1.0, 1.8), size=101, shift=2.0)
HELD_OUT = dict(n=(0.5, 4.0), r_eff=(2.0, 16.0), ellip=(0.0, 0.75), snr=(10.0, 80.0),
                psf=(1.8, 2.6), size=121, shift=5.0)


def sersic_tile(seed: int, n_gal: int, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """``n_gal`` galaxies side by side on size x size stamps, unit sky noise plus
    Poisson noise (gain ``GAIN``); segmap: the smoothed image above 1.5 sigma,
    the region holding the galaxy centre."""
    rng = np.random.default_rng(seed)
    size = p["size"]
    img = np.zeros((size, size * n_gal))
    seg = np.zeros(img.shape, dtype=np.int32)
    y, x = np.mgrid[0:size, 0:size]
    for k in range(n_gal):
        n, r_eff = rng.uniform(*p["n"]), rng.uniform(*p["r_eff"])
        ellip, theta = rng.uniform(*p["ellip"]), rng.uniform(0, np.pi)
        xc, yc = size / 2 + rng.uniform(-p["shift"], p["shift"], 2)
        model = Sersic2D(amplitude=1.0, r_eff=r_eff, n=n, x_0=xc, y_0=yc, ellip=ellip,
                         theta=theta)(x, y)
        model = ndi.gaussian_filter(model, rng.uniform(*p["psf"]))
        area = np.pi * (2 * r_eff) ** 2 * (1 - ellip)
        model *= rng.uniform(*p["snr"]) * np.sqrt(area) / model.sum()
        stamp = (rng.poisson(np.clip(model, 0, None) * GAIN) / GAIN
                 + rng.normal(0.0, 1.0, model.shape))
        smooth = ndi.gaussian_filter(stamp, 1.0)
        lab, _ = ndi.label(smooth > 1.5 / (2 * np.sqrt(np.pi)))
        keep = lab[int(yc), int(xc)] or np.bincount(lab.ravel())[1:].argmax() + 1
        img[:, k * size:(k + 1) * size] = stamp
        seg[:, k * size:(k + 1) * size][lab == keep] = k + 1
    return img, seg


def hst_images() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(name, background-subtracted image, segmap, rms or None) of the real images."""
    out = []
    for name, rms_name in [("group_of_galaxies", None),
                           ("dwarf_galaxy", "dwarf_galaxy_f105w_rms"),
                           ("spiral_galaxy", None)]:
        img = fits.getdata(DATA / f"abell_2744_{name}_f105w.fits.gz").astype(np.float64)
        rms = (fits.getdata(DATA / f"abell_2744_{rms_name}.fits.gz").astype(np.float64)
               if rms_name else None)
        sky = img[np.isfinite(img)]
        med, mad = np.median(sky), 1.4826 * np.median(np.abs(sky - np.median(sky)))
        for _ in range(5):
            s = sky[np.abs(sky - med) < 3 * mad]
            med, mad = np.median(s), 1.4826 * np.median(np.abs(s - np.median(s)))
        img = img - med
        lab, _ = ndi.label(ndi.gaussian_filter(img, 1.5) > 2.0 * mad / (2 * np.sqrt(np.pi) * 1.5))
        sizes = np.bincount(lab.ravel())
        keep = np.flatnonzero(sizes >= 30)
        keep = keep[keep > 0]
        seg = np.zeros(lab.shape, dtype=np.int32)
        seg[np.isin(lab, keep)] = np.searchsorted(keep, lab[np.isin(lab, keep)]) + 1
        out.append((name, img, seg, rms))
    return out


def compare(img, seg, *, gain, rms=None) -> pd.DataFrame:
    """One row per segment: statmorph's flag and |galclust - statmorph| per quantity."""
    kw = dict(weightmap=rms) if rms is not None else dict(gain=gain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = statmorph.source_morphology(img, seg, **kw)
    ours = morphology(img, seg, err=rms, gain=gain).set_index("id")
    rows = []
    for s in sm:
        r = ours.loc[s.label]
        dpa = (r["position_angle"] - np.degrees(s.orientation_asymmetry) + 90) % 180 - 90
        rows.append({
            "id": s.label, "sm_flag": s.flag, "flag": r["flag"],
            "gini": r["gini"] - s.gini, "m20": r["m20"] - s.m20,
            "concentration": r["concentration"] - s.concentration,
            "asymmetry": r["asymmetry"] - s.asymmetry, "smoothness": r["smoothness"] - s.smoothness,
            "r20": r["r20"] - s.r20, "r80": r["r80"] - s.r80, "r_petro": r["r_petro"] - s.rpetro_circ,
            "axis_ratio": r["axis_ratio"] - 1.0 / s.elongation_asymmetry, "pa": dpa,
        })
    return pd.DataFrame(rows)


def check(d: pd.DataFrame, min_n: int) -> None:
    good = d[d["sm_flag"] <= 1]
    assert len(good) >= min_n, f"only {len(good)} galaxies statmorph does not flag"
    # galclust measures every galaxy statmorph measures
    assert (good["flag"] < 4).all() and good[list(TARGETS)].notna().all().all()
    med = good[list(TARGETS) + ["pa", "axis_ratio"]].abs().median()
    for q, tol in TARGETS.items():
        assert med[q] <= tol, f"median |d{q}| = {med[q]:.4f} > {tol}"
    assert med["pa"] < 1.0 and med["axis_ratio"] < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("which, seed, params", [("default", 1, DEFAULT),
                                                  ("held-out", 2026, HELD_OUT)])
def test_sersic_agrees_with_statmorph(which, seed, params):
    img, seg = sersic_tile(seed, 12, params)
    check(compare(img, seg, gain=GAIN), min_n=8)


@pytest.mark.slow
def test_hst_abell2744_agrees_with_statmorph():
    parts = [compare(img, seg, gain=68952.0, rms=rms)  # gain = EXPTIME (image in e-/s)
             for _, img, seg, rms in hst_images()]
    check(pd.concat(parts, ignore_index=True), min_n=8)
