"""Benchmark: galclust's ``morphology`` against statmorph — speed and agreement.

Run: ``python benchmarks/_structures_morphology.py [--quick]`` (a script, not a
test); ``benchmarks/structures.py`` calls :func:`bench_morphology`.

Measured in the same run, on the same galaxies, one core (OMP_NUM_THREADS=1):

1. **CPU time per galaxy** (``time.process_time``, steadier than wall-clock time
   on a shared machine) of statmorph's ``source_morphology`` (the baseline; gain
   given, every segment of the tile) and of ``galclust.morphology`` called once
   on the whole tile (vectorised over its segments) and once per galaxy on its
   own stamp. Target: galclust >= 20x faster than statmorph per galaxy.
2. **Agreement** with statmorph: median and 90th percentile of |galclust -
   statmorph| for Gini, M20, C, A, S, r20, r80 and the circular Petrosian radius,
   on galaxies statmorph does not call bad (``flag <= 1``). Targets (medians):
   |dGini| <= 0.02, |dM20| <= 0.1, |dC| <= 0.15, |dA| <= 0.03.

Sets: PSF-convolved noisy Sersic galaxies (astropy ``Sersic2D``; n 0.5-4) with
the default parameters, a held-out set (other seed and ranges, nothing tuned on
it), and the real HST WFC3 F105W images of Abell 2744 in tests/data (PetroFit,
BSD-3-Clause), segmented by a threshold on the smoothed image.

``--quick``: 6 Sersic galaxies per set (a smoke run); the HST set is always whole.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "hst_abell2744"
GAIN = 100.0
HST_GAIN = 68952.0  # EXPTIME: the images are in electron/s
DEFAULT = dict(n=(0.5, 4.0), r_eff=(3.0, 12.0), ellip=(0.0, 0.6), snr=(20.0, 300.0),
               psf=(1.0, 1.8), size=101, shift=2.0)
HELD_OUT = dict(n=(0.5, 4.0), r_eff=(2.0, 16.0), ellip=(0.0, 0.75), snr=(10.0, 80.0),
                psf=(1.8, 2.6), size=121, shift=5.0)
QUANTITIES = [("gini", "gini"), ("m20", "m20"), ("concentration", "concentration"),
              ("asymmetry", "asymmetry"), ("smoothness", "smoothness"), ("r20", "r20"),
              ("r80", "r80"), ("r_petro", "rpetro_circ")]
TARGETS = {"gini": 0.02, "m20": 0.1, "concentration": 0.15, "asymmetry": 0.03}


def sersic_tile(seed: int, n_gal: int, p: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Galaxies side by side on size x size stamps (as in the statmorph test)."""
    from astropy.modeling.models import Sersic2D

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
        lab, _ = ndi.label(ndi.gaussian_filter(stamp, 1.0) > 1.5 / (2 * np.sqrt(np.pi)))
        keep = lab[int(yc), int(xc)] or np.bincount(lab.ravel())[1:].argmax() + 1
        img[:, k * size:(k + 1) * size] = stamp
        seg[:, k * size:(k + 1) * size][lab == keep] = k + 1
    return img, seg, size


def hst_images() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(name, background-subtracted image, segmap, rms or None) of the HST cutouts."""
    from astropy.io import fits

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
        keep = np.flatnonzero(np.bincount(lab.ravel()) >= 30)
        keep = keep[keep > 0]
        seg = np.zeros(lab.shape, dtype=np.int32)
        inside = np.isin(lab, keep)
        seg[inside] = np.searchsorted(keep, lab[inside]) + 1
        out.append((name, img, seg, rms))
    return out


def run_set(img, seg, *, gain, rms=None, stamp: int | None = None) -> tuple[pd.DataFrame, dict]:
    """statmorph and galclust on one tile: |differences| per galaxy and timings (s/galaxy)."""
    import statmorph

    from galclust.sources.nonparametric import morphology

    n = int(seg.max())
    kw = dict(weightmap=rms) if rms is not None else dict(gain=gain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.process_time()
        sm = statmorph.source_morphology(img, seg, **kw)
        t_sm = (time.process_time() - t0) / n
    morphology(img[:60, :60], seg[:60, :60], gain=gain)  # warm-up (imports)
    t0 = time.process_time()
    ours = morphology(img, seg, err=rms, gain=gain).set_index("id")
    t_tile = (time.process_time() - t0) / n
    t_one = np.nan
    if stamp is not None:  # one call per galaxy on its own stamp
        t0 = time.process_time()
        for k in range(n):
            sl = np.s_[:, k * stamp:(k + 1) * stamp]
            morphology(img[sl], seg[sl], gain=gain)
        t_one = (time.process_time() - t0) / n
    rows = []
    for s in sm:
        r = ours.loc[s.label]
        row = {"id": s.label, "sm_flag": s.flag, "flag": r["flag"]}
        for ours_q, sm_q in QUANTITIES:
            row[ours_q] = abs(r[ours_q] - getattr(s, sm_q))
        row["pa_deg"] = abs((r["position_angle"] - np.degrees(s.orientation_asymmetry) + 90)
                            % 180 - 90)
        rows.append(row)
    return pd.DataFrame(rows), {"statmorph": t_sm, "tile": t_tile, "one": t_one}


def _agreement(name: str, d: pd.DataFrame) -> list[str]:
    good = d[d["sm_flag"] <= 1]
    cols = [q for q, _ in QUANTITIES] + ["pa_deg"]
    med, p90 = good[cols].median(), good[cols].quantile(0.9)
    excluded = int((d["sm_flag"] > 1).sum())
    lines = [f"{name:10s} n={len(good):3d} (excl. {excluded} statmorph flag>=2)  median: "
             + " ".join(f"{q}={med[q]:.4f}" for q in cols),
             f"{'':10s} {'':28s}    p90: " + " ".join(f"{q}={p90[q]:.4f}" for q in cols)]
    both = d[(d["sm_flag"] < 4) & (d["flag"] < 4)]
    lines.append(f"{'':10s} all {len(both):3d} measured by both (incl. statmorph flag 2), median: "
                 + " ".join(f"{q}={both[q].median():.4f}" for q in cols))
    misses = [q for q, tol in TARGETS.items() if not med[q] <= tol]
    lines.append(f"{'':10s} targets (median |dG|<=0.02 |dM20|<=0.1 |dC|<=0.15 |dA|<=0.03): "
                 + ("met" if not misses else "MISSED: " + ", ".join(misses)))
    return lines


def bench_morphology(quick: bool = False) -> None:
    """Print statmorph vs galclust morphology timings and agreement (see module doc)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    n_gal = 6 if quick else 24
    sets = []
    for name, seed, p in [("sersic", 1, DEFAULT), ("held-out", 2026, HELD_OUT)]:
        img, seg, size = sersic_tile(seed, n_gal, p)
        d, t = run_set(img, seg, gain=GAIN, stamp=size)
        sets.append((name, d, t, n_gal))
    parts, times, n_hst = [], [], 0
    for _, img, seg, rms in hst_images():
        d, t = run_set(img, seg, gain=HST_GAIN, rms=rms)
        parts.append(d)
        times.append((t, int(seg.max())))
        n_hst += int(seg.max())
    t_hst = {k: sum(t[k] * n for t, n in times) / n_hst for k in ("statmorph", "tile")}
    t_hst["one"] = np.nan
    sets.append(("hst", pd.concat(parts, ignore_index=True), t_hst, n_hst))

    print("\nmorphology: galclust vs statmorph "
          f"(statmorph.source_morphology, gain given, one core){' [quick]' if quick else ''}")
    print("CPU ms per galaxy:")
    print(f"{'set':10s} {'galaxies':>8s} {'statmorph ms':>13s} {'galclust tile ms':>17s} "
          f"{'per-galaxy ms':>14s} {'speed-up tile':>14s} {'per-galaxy':>11s}")
    for name, _, t, n in sets:
        print(f"{name:10s} {n:8d} {t['statmorph'] * 1e3:13.1f} {t['tile'] * 1e3:17.2f} "
              f"{t['one'] * 1e3:14.2f} {t['statmorph'] / t['tile']:13.1f}x "
              f"{t['statmorph'] / t['one']:10.1f}x")
    print("target: >= 20x statmorph per galaxy\n")
    print("agreement |galclust - statmorph| (radii in px, pa in degrees):")
    for name, d, _, _ in sets:
        for line in _agreement(name, d):
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    bench_morphology(quick=parser.parse_args().quick)


if __name__ == "__main__":
    main()
