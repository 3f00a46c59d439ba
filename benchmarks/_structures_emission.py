"""Benchmark: extended emission-line regions — throughput, recovery and false regions,
against the research's baseline, in one run.

Run: ``python benchmarks/_structures_emission.py [--quick]`` (a script, not a test).

A synthetic survey of N galaxies per family (200; 30 with ``--quick``) from
:func:`galclust.synth.make_emission_galaxy`: 60 % with extended line emission
(integrated S/N 8, 10, 15, 20 or 40 against the noise the image has, or with
``--snr-of white`` against white noise of the per-pixel sigma; size 2, 3 or 5 px; Hα in F410M at z = 5.22,
or in F335M at z = 4.13), 40 % controls (half with nuclear line emission that
follows the continuum). Families: ``default`` (the score thresholds were chosen on
it) and ``heldout`` (other hosts, emission shapes, SED slopes, correlated noise).

Measured, one core (``OMP_NUM_THREADS=1``; CPU time by ``time.process_time``):

- galaxies per second of :func:`galclust.structures.emission.emission_regions`
  with the full table (``n_resample=3``: morphology and noise-resampled errors)
  and with ``n_resample=0``;
- recovery (a detected region overlaps the true region by >= 50 % of the smaller)
  by injected S/N and size (``snr_true``: the mean S/N under the actual noise; with
  ``--snr-of white`` about half the nominal one for the held-out correlated noise),
  of regions and of outflow candidates; the false-region rate in
  controls without a line, and the candidate rate in nuclear controls;
- the **baseline** (the research's method): DBSCAN on (x, y, flux) of the raw
  medium band's pixels above 3 sigma, no continuum subtraction, hand-set
  ``eps = 1.5`` (pixels and flux in noise units) and ``min_samples = 5``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

SNRS = (8, 10, 15, 20, 40)
SIZES = (2, 3, 5)


def _recovered(labels: np.ndarray, region: np.ndarray) -> bool:
    for i in np.unique(labels[labels > 0]):
        r = labels == i
        if (r & region).sum() >= 0.5 * min(r.sum(), region.sum()):
            return True
    return False


def baseline_regions(sci_mb: np.ndarray, err_mb: np.ndarray, eps: float = 1.5,
                     min_samples: int = 5, nsigma: float = 3.0) -> np.ndarray:
    """The research's baseline: DBSCAN on (x, y, flux / err) of raw pixels > nsigma."""
    from sklearn.cluster import DBSCAN

    snr = sci_mb / err_mb
    yy, xx = np.nonzero(snr > nsigma)
    labels = np.zeros(sci_mb.shape, dtype=np.int64)
    if yy.size < min_samples:
        return labels
    lab = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(
        np.column_stack([xx, yy, snr[yy, xx]]))
    labels[yy, xx] = lab + 1
    return labels


def _galaxies(family: str, n: int, seed: int, snr_of: str = "actual"):
    from galclust.synth.emission import make_emission_galaxy

    rng = np.random.default_rng(seed)
    for k in range(n):
        z = 5.22 if rng.random() < 0.7 else 4.13
        if k < int(0.6 * n):
            snr, size = SNRS[k % len(SNRS)], SIZES[(k // len(SNRS)) % len(SIZES)]
            yield make_emission_galaxy(z=z, snr=snr, size=size, family=family,
                                       random_state=seed + k, snr_of=snr_of)
        else:
            yield make_emission_galaxy(z=z, extended=False, family=family,
                                       random_state=seed + k)


def run_family(family: str, n: int, seed: int, snr_of: str = "actual"
               ) -> tuple[pd.DataFrame, dict]:
    """One row per galaxy (truth and outcome of both methods) and the timings."""
    from galclust.structures.emission import emission_regions

    rows, t_full, t_fast, t_base = [], 0.0, 0.0, 0.0
    for g in _galaxies(family, n, seed, snr_of):
        kw = dict(z=g.meta["z"], bands=g.bands, psf_fwhm=g.meta["psf_fwhm"])
        t0 = time.process_time()
        r = emission_regions(g.sci, g.err, g.wavelength, None, n_resample=3, **kw)
        t1 = time.process_time()
        emission_regions(g.sci, g.err, g.wavelength, None, n_resample=0, **kw)
        t2 = time.process_time()
        b = baseline_regions(g.sci[g.band].astype(float), g.err[g.band].astype(float))
        t3 = time.process_time()
        t_full, t_fast, t_base = t_full + t1 - t0, t_fast + t2 - t1, t_base + t3 - t2
        cand = np.where(np.isin(r.labels, r.candidates["id"]), r.labels, 0)
        ext = bool(g.meta["extended"])
        rows.append(dict(
            family=family, extended=ext, nuclear=g.meta["nuclear"],
            snr=g.meta["snr"] if ext else np.nan, size=g.meta["size"] if ext else np.nan,
            snr_true=g.meta["snr_true"] if ext else np.nan,
            n_regions=r.n_regions, n_candidates=len(r.candidates),
            recovered=_recovered(r.labels, g.region) if ext else False,
            recovered_candidate=_recovered(cand, g.region) if ext else False,
            base_regions=int(b.max()),
            base_recovered=_recovered(b, g.region) if ext else False))
    times = dict(full=n / t_full, fast=n / t_fast, baseline=n / t_base)
    return pd.DataFrame(rows), times


def summarise(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Recovery by (snr, size) and the control rates."""
    ext = df[df.extended]
    table = ext.groupby(["snr", "size"])[
        ["snr_true", "recovered", "recovered_candidate", "base_recovered"]].mean()
    none = df[~df.extended & ~df.nuclear]
    nuc = df[~df.extended & df.nuclear]
    rates = pd.Series({
        "recovered (regions)": ext.recovered.mean(),
        "recovered (candidates)": ext.recovered_candidate.mean(),
        "controls w/o line with a region": (none.n_regions > 0).mean(),
        "nuclear controls with a candidate": (nuc.n_candidates > 0).mean(),
        "nuclear controls with a region": (nuc.n_regions > 0).mean(),
        "baseline recovered": ext.base_recovered.mean(),
        "baseline controls w/o line with a region": (none.base_regions > 0).mean(),
        "baseline nuclear controls with a region": (nuc.base_regions > 0).mean(),
    })
    return table, rates


def bench_emission(quick: bool = False, snr_of: str = "actual") -> None:
    """Print throughput, recovery and false-region rates of galclust and the baseline.

    Parameters
    ----------
    quick : bool
        30 galaxies per family instead of 200.
    snr_of : {"actual", "white"}
        The injected S/N is against the noise the image has (both families at the
        same significance), or nominal white noise (the held-out family's correlated
        noise then halves it).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    n = 30 if quick else 200
    pd.set_option("display.width", 120)
    for family, seed in (("default", 10_000), ("heldout", 20_000)):
        df, times = run_family(family, n, seed, snr_of)
        table, rates = summarise(df)
        print(f"\n== family {family}: {n} galaxies, S/N against {snr_of} noise ==")
        print(f"galaxies/s (one core): full table {times['full']:.1f}, "
              f"n_resample=0 {times['fast']:.1f}, baseline {times['baseline']:.1f}")
        print(table.round(2).to_string())
        print(rates.round(3).to_string())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 galaxies per family")
    parser.add_argument("--snr-of", choices=("actual", "white"), default="actual",
                        help="injected S/N against the actual (default) or white noise")
    args = parser.parse_args()
    bench_emission(args.quick, args.snr_of)
