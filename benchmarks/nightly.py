"""End-to-end nightly flow: cost against survey size, and reruns against the full run.

    python benchmarks/nightly.py                       # 500, 2000, 8000 galaxies
    python benchmarks/nightly.py --galaxies 500,2000   # quicker

For each size: a synthetic survey whose area grows with the number of
galaxies, the whole nightly flow (ingest -> pixels -> flags -> publish) on a
2-worker LocalCluster under Prefect's local API, then a rerun with nothing
changed and a rerun with one band reprocessed. Prints seconds per stage, the
ratio of each rerun to the full run (target for the unchanged rerun < 5%),
and the exponent of a power-law fit of the full run's time against the
number of galaxies (target: ~1, linear).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import pandas as pd


def _survey(path: str, n_galaxies: int, seed: int):
    from galclust.synth import make_survey

    side = int(np.ceil(np.sqrt(n_galaxies * 60 * 60) / 128) * 128)  # ~1 galaxy / 60x60 px
    return make_survey(path, shape=(side, side), n_galaxies=n_galaxies, seed=seed,
                       psf_matched=True)


def _warm_up() -> None:
    from prefect import flow

    flow(name="galclust-warm-up")(_noop)()


def _noop() -> int:
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--galaxies", default="500,2000,8000",
                    help="comma-separated survey sizes (galaxies)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--tile", type=int, default=512, help="cube chunk size (px)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    from galclust.cli import prefect_environment

    prefect_environment()
    from astropy.io import fits

    from flows.nightly import nightly_flow
    from galclust.cluster import dask_client
    from galclust.config import load_manifest

    work = args.workdir or tempfile.mkdtemp(prefix="galclust-bench-nightly-")
    rows = []
    _warm_up()  # Prefect's temporary API starts once per process: not part of any run
    try:
        with dask_client(n_workers=args.workers) as client:
            address = client.scheduler.address
            for n in [int(v) for v in args.galaxies.split(",")]:
                folder = os.path.join(work, f"g{n}")
                survey = _survey(os.path.join(folder, "survey"), n, seed=n)
                store = os.path.join(folder, "field.zarr")
                kw = dict(scheduler=address, tile=args.tile)
                t = time.perf_counter()
                full = nightly_flow(survey.manifest_path, store, **kw)
                t_full = time.perf_counter() - t
                t = time.perf_counter()
                same = nightly_flow(survey.manifest_path, store, **kw)
                t_same = time.perf_counter() - t
                m = load_manifest(survey.manifest_path)
                with fits.open(m.bands[3].sci, mode="update") as hdul:
                    hdul[0].data = hdul[0].data * np.float32(1.01)
                t = time.perf_counter()
                band = nightly_flow(survey.manifest_path, store, **kw)
                t_band = time.perf_counter() - t
                assert same["pixels"]["action"] == "reuse", same["pixels"]
                assert band["pixels"]["action"] == "compute", band["pixels"]
                rows.append(dict(galaxies=full["pixels"]["clustered"],
                                 sources=len(pd.read_parquet(survey.catalog_path)),
                    ingest=full["ingest"]["seconds"], pixels=full["pixels"]["seconds"],
                    flags=full["catalog"]["seconds"], full=t_full, unchanged=t_same,
                    band=t_band))
                print(f"{n} galaxies done: full {t_full:.1f} s, unchanged {t_same:.1f} s, "
                      f"one band {t_band:.1f} s", flush=True)
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'galaxies':>9}{'sources':>9}{'ingest':>8}{'pixels':>8}{'flags':>8}"
          f"{'full s':>8}{'unchanged':>11}{'ratio':>7}{'one band':>10}{'ratio':>7}")
    for r in rows:
        print(f"{r['galaxies']:>9}{r['sources']:>9}{r['ingest']:>8.1f}{r['pixels']:>8.1f}"
              f"{r['flags']:>8.1f}{r['full']:>8.1f}{r['unchanged']:>11.1f}"
              f"{r['unchanged'] / r['full']:>7.3f}{r['band']:>10.1f}"
              f"{r['band'] / r['full']:>7.2f}")
    if len(rows) >= 2:
        g = np.log([r["galaxies"] for r in rows])
        for key in ("full", "pixels", "flags"):
            slope = np.polyfit(g, np.log([r[key] for r in rows]), 1)[0]
            print(f"fitted exponent, {key} time vs galaxies: {slope:.2f}")
    print("targets: exponent ~1 (linear); unchanged rerun < 5% of the full run")


if __name__ == "__main__":
    main()
