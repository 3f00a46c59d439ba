"""Benchmark: colour-aware deblending of blended multi-band scenes against photutils'
standard recipe, pooled over many scenes, in the same run (issue 12's blend targets).

    python benchmarks/blends.py                                  # the seeds below
    python benchmarks/blends.py --default-seeds 30,31 --heldout-seeds 60,61
    python benchmarks/blends.py --scenes 100                     # quicker

The protocol is the test's (``tests/sources/test_deblend_vs_photutils.py``,
imported here so the two cannot drift): :func:`galclust.synth.make_blend_scenes`
scenes of the ``"default"`` family (the one the deblender's settings were chosen
on, seeds 0-1; other seeds are unseen scenes of that generator) and of the
``"heldout"`` family (never tuned on; its errors are measured from the image by
:func:`galclust.sources.estimate_noise`, as its noise is correlated); every
method sees the same S/N-weighted detection stack and threshold. Printed per
family, pooled over all its seeds: completeness (also over *detectable*
sources: alone and noise-free they reach the threshold), purity, fully resolved
blends, isolated sources, and each against photutils (difference or ratio); and
the share of blended scenes fully resolved by both methods, by the closest pair's
separation and the scene's flux ratio.

A test seed of 200 scenes holds ~390 sources: its completeness has a standard
error of ~0.018, as large as the gaps the targets speak of, so the targets are
judged here on 800 scenes per family (standard error ~0.009). The default
seeds (30-33, default family; 60-63, held-out) had never been generated before
the deblender's settings of detection version 3 were fixed. Between blocks of
four seeds the held-out completeness over detectable sources moved from 0.844
(60-63) to 0.808 (64-67): report the seeds with a figure, and pool blocks
(``--default-seeds 30,...,41 --heldout-seeds 60,...,71``: 2,400 scenes each, ~4 min).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "sources"))

TARGETS = {"completeness_detectable": 0.85, "purity": 0.95}   # and resolved >= 2x photutils


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def run_family(family: str, seeds: list[int], n_scenes: int) -> dict[str, dict[str, float]]:
    """Pooled figures of the colour deblender and photutils on one family."""
    from test_deblend_vs_photutils import evaluate  # the test's protocol

    from galclust.sources.noise import estimate_noise
    from galclust.synth.blends import make_blend_scenes

    scenes = [s for seed in seeds
              for s in make_blend_scenes(n_scenes, family=family, random_state=seed)]
    errs = ([s.err for s in scenes] if family == "default"
            else [estimate_noise(s.sci, tile=32)[0] for s in scenes])
    out, rows = {}, {}
    for method in ("photutils", "colour"):
        t0 = time.perf_counter()
        rows[method] = []
        out[method] = evaluate(scenes, method, errs, rows_out=rows[method])
        out[method]["seconds"] = time.perf_counter() - t0
    n_src = sum(s.meta["n_sources"] for s in scenes)
    print(f"\n[{family}] seeds {seeds}, {len(scenes)} scenes, {n_src} sources")
    keys = ("completeness", "completeness_detectable", "purity", "resolved", "isolated",
            "detectable", "seconds")
    print(f"  {'':24s} {'photutils':>10s} {'galclust':>10s}  galclust vs photutils")
    for k in keys:
        p, c = out["photutils"][k], out["colour"][k]
        rel = (f"x{c / p:.2f}" if k in ("resolved", "seconds") and p > 0
               else f"{c - p:+.3f}")
        print(f"  {k:24s} {p:10.3f} {c:10.3f}  {rel}")
    co, ph = out["colour"], out["photutils"]
    held = {k: co[k] >= v for k, v in TARGETS.items()}
    held["resolved >= 2x photutils"] = co["resolved"] >= 2 * ph["resolved"]
    print("  targets: " + ", ".join(f"{k} {'holds' if v else 'MISSES'}"
                                    for k, v in held.items()))
    _resolved_table(scenes, rows)
    return out


def _resolved_table(scenes, rows) -> None:
    """Blended scenes fully resolved, galclust / photutils, by the closest pair's separation
    (reference FWHM) and the scene's flux ratio (brightest / faintest, on the stack)."""
    sep = [("< 0.8", 0.0, 0.8), ("0.8-1.2", 0.8, 1.2), ("1.2-1.8", 1.2, 1.8),
           (">= 1.8", 1.8, np.inf)]
    ratio = [("ratio 1-2", 1.0, 2.0), ("ratio 2-4", 2.0, 4.0), ("ratio >= 4", 4.0, np.inf)]
    blended = [i for i, s in enumerate(scenes) if s.meta["n_sources"] > 1]
    print("  blends fully resolved, galclust / photutils (scenes), by separation (FWHM) "
          "and flux ratio:")
    print(f"  {'separation':14s}" + "".join(f"{name:>24s}" for name, _, _ in ratio))
    for sname, slo, shi in sep:
        cells = []
        for _, rlo, rhi in ratio:
            sel = [i for i in blended if slo <= scenes[i].meta["separation_fwhm"] < shi
                   and rlo <= scenes[i].meta["flux_ratio"] < rhi]
            if not sel:
                cells.append(f"{'-':>24s}")
                continue
            c, p = (sum(rows[m][i]["resolved"] for i in sel) / len(sel)
                    for m in ("colour", "photutils"))
            cells.append(f"{f'{c:.2f} / {p:.2f} ({len(sel)})':>24s}")
        print(f"  {sname:14s}" + "".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--default-seeds", default="30,31,32,33",
                    help="seeds of the default family (comma-separated; default %(default)s)")
    ap.add_argument("--heldout-seeds", default="60,61,62,63",
                    help="seeds of the held-out family (default %(default)s)")
    ap.add_argument("--scenes", type=int, default=200, help="scenes per seed (default 200)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run_family("default", _seeds(args.default_seeds), args.scenes)
    run_family("heldout", _seeds(args.heldout_seeds), args.scenes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
