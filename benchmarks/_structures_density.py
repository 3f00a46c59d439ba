"""Benchmark: AstroLink against HDBSCAN on the same luminosity-sampled point cloud.

    python benchmarks/_structures_density.py            # 10^6 points (the research's n)
    python benchmarks/_structures_density.py --quick    # 10^5 points

One synthetic clumpy galaxy tile (:func:`galclust.synth.make_clumpy_galaxy`,
128 x 128 px, 12 clumps, 5 bands) is sampled into a point cloud exactly as
:func:`galclust.structures.find_structures` does (bilinear sampling, positions in
PSF FWHM, smoothed colours in noise units). Then, in this one process:

- AstroLink's numba compilation (``warm_astrolink``), timed apart;
- AstroLink (``k_den=50, adaptive=0, S=5, workers=1``) on all points;
- HDBSCAN (``min_cluster_size=50``) on the same points — or, above
  ``--hdbscan-max`` (2x10^5) points, on a random subsample of that size; the
  output says when it subsampled. Measured on this project's shared 2-core
  machine: 2x10^5 points 24 s; all 10^6 points 758 s wall-clock
  (12.6 min, the 2 cores shared with other jobs; ~5 min of CPU), 500 clusters —
  hence the subsample;
- agreement: the adjusted Rand index between the two point labellings (on the
  points both labelled), and the clumps each finds on the tile
  (:func:`galclust.synth.score_clumps`).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

HDBSCAN_MAX = 200_000


def bench_density(quick: bool = False, hdbscan_max: int = HDBSCAN_MAX) -> None:
    """Run the benchmark and print its figures.

    Parameters
    ----------
    quick : bool
        10^5 points instead of 10^6.
    hdbscan_max : int
        HDBSCAN runs on a random subsample of at most this many of the points.
    """
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from galclust.structures._sampling import background_stats, sample_points
    from galclust.structures.density import (
        _pixel_labels,
        _run_astrolink,
        _run_hdbscan,
        find_structures,
        warm_astrolink,
    )
    from galclust.synth import make_clumpy_galaxy, score_clumps

    n = 100_000 if quick else 1_000_000
    g = make_clumpy_galaxy(n_clumps=12, size=128, random_state=0)
    sci = g.sci.astype(float)
    valid = np.ones(sci.shape[1:], bool)
    sky, rms = background_stats(sci, valid)
    cloud = sample_points(sci, g.err.astype(float), valid, sky, rms, n_samples=n,
                          background="subtract", background_level=None, psf_fwhm=2.0,
                          colour_weight=0.5, sampling="bilinear",
                          rng=np.random.default_rng(0), smooth=1.0)
    P = cloud.features
    print(f"tile 128x128 px, 5 bands, 12 clumps; {P.shape[0]:,} points in "
          f"{P.shape[1]}-D (x, y in PSF FWHM; 4 colours in noise units)")

    compile_s = warm_astrolink()
    print(f"AstroLink numba compilation (once per process): {compile_s:.1f} s")

    t0 = time.perf_counter()
    al_lab, _, al_sig, _ = _run_astrolink(P, 50, 5.0)
    al_s = time.perf_counter() - t0
    print(f"AstroLink  k_den=50 S=5 workers=1: {al_s:7.1f} s  ({al_sig.size} structures)")

    idx = np.arange(P.shape[0])
    note = ""
    if P.shape[0] > hdbscan_max:
        idx = np.sort(np.random.default_rng(1).choice(P.shape[0], hdbscan_max, replace=False))
        note = (f"  [SUBSAMPLED to {hdbscan_max:,} of {P.shape[0]:,} points; see "
                "--hdbscan-max]")
    t0 = time.perf_counter()
    hd_lab, _, hd_sig, _ = _run_hdbscan(P[idx], 50)
    hd_s = time.perf_counter() - t0
    print(f"HDBSCAN    min_cluster_size=50:      {hd_s:7.1f} s  ({hd_sig.size} clusters){note}")
    if note:
        print(f"           HDBSCAN per point vs AstroLink per point: "
              f"{hd_s / idx.size / (al_s / P.shape[0]):.1f}x slower")
    else:
        print(f"           HDBSCAN / AstroLink time: {hd_s / al_s:.1f}x")

    both = (al_lab[idx] > 0) | (hd_lab > 0)
    ari = adjusted_rand_score(al_lab[idx][both], hd_lab[both])
    print(f"agreement: ARI(AstroLink leaves, HDBSCAN) = {ari:.3f} on {both.sum():,} points")

    npix = sci.shape[1] * sci.shape[2]
    for name, lab, pix in (("AstroLink", al_lab, cloud.pixel),
                           ("HDBSCAN", hd_lab, cloud.pixel[idx])):
        labels = _pixel_labels(pix, lab, npix, 2).reshape(sci.shape[1:])
        sc = score_clumps(labels, g.clump_map, g.clumps)
        print(f"{name:9s} at {pix.size:,} points: clumps found "
              f"{sc['found_distinct']}/{sc['n_distinct']}, false structures {sc['false']}")
    st = find_structures(g.sci, err=g.err, random_state=0)
    sc = score_clumps(st.labels, g.clump_map, g.clumps)
    print(f"AstroLink at the automatic count ({st.options['n_samples']:,} points: 400 per "
          f"pixel above the cut, at most 2x10^5; {st.options['seconds']:.1f} s): clumps found "
          f"{sc['found_distinct']}/{sc['n_distinct']}, false structures {sc['false']}")
    print("(more points raise every structure's significance: at 10^6 points on one galaxy "
          "the host's own smooth sub-structure passes S = 5 too)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 points instead of 10^6")
    parser.add_argument("--hdbscan-max", type=int, default=HDBSCAN_MAX,
                        help="subsample HDBSCAN's points to at most this many")
    args = parser.parse_args()
    bench_density(args.quick, args.hdbscan_max)
