"""Benchmark: catalog cutouts -> embedding -> spurious mixture, against scikit-learn t-SNE.

Run: ``python benchmarks/catalog.py [--quick]`` (a script, not a test).

1. End to end on a real cube: a synthetic survey of ~1,816 sources (8 bands)
   is written and ingested (not timed); ``embed_catalog`` + ``flag_catalog``
   are timed, split into cutouts / embedding / mixture. Target: < 10 s on
   2 cores.
2. The reference's step in the same run: scikit-learn ``TSNE`` on the
   flattened 51 x 51 x 8 cutouts of those 1,816 sources (the reference's
   t-SNE alone took 70 s); the ratio is printed.
3. Scaling of the linear-embedding path on synthetic stamps generated per
   block (a Dask array from a module-level generator, so 100,000 x 8 x 51 x 51
   float32 = 8.3 GB is never materialised): 1,816, 20,000 and 100,000 sources
   (``--quick``: 1,816 and 5,000), each in a fresh process so that its peak
   RSS is its own. The fitted exponent of time against size is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

BANDS, SIZE = 8, 51


def _make_block(n: int, block_id: tuple[int, ...] = (0,), seed: int = 0) -> np.ndarray:
    """``n`` synthetic (band, 51, 51) stamps: noise, a galaxy, ~5% artefacts.

    Deterministic per block. Artefacts: half-covered stamps (edge), a bright
    ridge through the source (spike), a bright neighbour off centre.
    """
    rng = np.random.default_rng([seed, block_id[0]])
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32) - SIZE // 2
    amp = rng.lognormal(2.0, 0.8, n).astype(np.float32)
    r = rng.uniform(1.5, 5.0, n).astype(np.float32)
    sed = rng.uniform(0.5, 1.5, (n, BANDS)).astype(np.float32)
    core = np.exp(-(yy**2 + xx**2)[None] / (2 * r[:, None, None] ** 2))
    out = (amp[:, None, None, None] * sed[:, :, None, None]) * core[:, None]
    out += rng.standard_normal(out.shape, dtype=np.float32)
    kind = rng.random(n)
    for i in np.flatnonzero(kind < 0.05):
        k = kind[i] / 0.05
        if k < 1 / 3:
            out[i, :, :, : rng.integers(15, 30)] = 0.0
        elif k < 2 / 3:
            a = rng.uniform(0, np.pi)
            out[i] += 30 * (np.abs(yy * np.cos(a) - xx * np.sin(a)) < 1.2)
        else:
            dy, dx = rng.uniform(-15, 15, 2)
            out[i] += 300 * np.exp(-((yy - dy) ** 2 + (xx - dx) ** 2) / 8.0)
    return out.astype(np.float32)


def synthetic_stamps(n: int, *, chunk: int = 1000, seed: int = 0):
    """A lazy (n, 8, 51, 51) float32 Dask array generated block by block."""
    import dask.array as da

    sizes = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
    blocks = [da.from_delayed(_delayed_block(s, i, seed), shape=(s, BANDS, SIZE, SIZE),
                              dtype=np.float32) for i, s in enumerate(sizes)]
    return da.concatenate(blocks)


def _delayed_block(n: int, i: int, seed: int):
    import dask

    return dask.delayed(_make_block, pure=True)(n, (i,), seed)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_synthetic(n: int) -> dict:
    """Linear path on n synthetic sources: embedding (+ generation), mixture."""
    import pandas as pd

    from galclust.catalog.pipeline import FlagOptions, fit_models, single_thread_blas
    from galclust.catalog.survey import embed_cutouts, predict_blocks

    stamps = synthetic_stamps(n)
    t0 = time.perf_counter()
    with single_thread_blas():
        emb = embed_cutouts(stamps, noise=np.ones(BANDS))
        t1 = time.perf_counter()
        rng = np.random.default_rng(1)
        lab = rng.random(n) < 0.25
        y = np.where(lab, (emb.features["zero_fraction"] > 0.2)
                     | (emb.features["stamp_neighbour"] > 2), -1).astype(np.int8)
        reason = np.where(y == 1, "artefact", "").astype(object)
        fitted = fit_models(emb.components, emb.features, y, reason, FlagOptions())
        cols = predict_blocks(fitted, fitted.space, fitted.clf_space)
        t2 = time.perf_counter()
    pd.DataFrame(cols)  # the table's rows exist
    return {"n": n, "stamps_embedding": t1 - t0, "mixture": t2 - t1, "total": t2 - t0,
            "peak_rss_mb": _peak_rss_mb(), "stamps_gb": n * BANDS * SIZE * SIZE * 4 / 1e9}


def run_cube(n_target: int, workdir: str) -> dict:
    """End to end on an ingested synthetic survey of about ``n_target`` sources."""
    import dask

    import galclust
    from galclust.catalog.pipeline import FlagOptions, fit_models, single_thread_blas
    from galclust.catalog.scaling import band_noise
    from galclust.catalog.survey import (
        embed_cutouts,
        flag_catalog,
        survey_cutouts,
    )
    from galclust.store.cube import open_catalog, open_labels
    from galclust.synth import make_survey

    n_gal = int(round(n_target / 1.055))
    sv = make_survey(os.path.join(workdir, "survey"), shape=(1024, 1024), n_galaxies=n_gal,
                     seed=3, spurious_fraction=0.05)
    store = os.path.join(workdir, "cube.zarr")
    galclust.ingest(sv.manifest_path, store)
    cube, cat, labels = galclust.open_cube(store), open_catalog(store), open_labels(store)
    labels = labels.sample(frac=0.25, random_state=0)
    out = {"n": len(cat)}
    with single_thread_blas():
        t0 = time.perf_counter()
        cut = survey_cutouts(cube, cat)
        stamps, aux = dask.persist(cut.stamps, cut.aux)
        aux = aux.compute()
        t1 = time.perf_counter()
        emb = embed_cutouts(stamps, noise=band_noise(aux[:, 2:]))
        t2 = time.perf_counter()
        fit_models(emb.components, emb.features, np.zeros(len(cat), np.int8) - 1,
                   np.full(len(cat), "", object), FlagOptions())
        t3 = time.perf_counter()
    out.update(cutouts=t1 - t0, embedding=t2 - t1, mixture=t3 - t2)
    # the public survey path, end to end (cutouts + embedding + features + mixture)
    from galclust.catalog.survey import embed_catalog

    t4 = time.perf_counter()
    table, _ = flag_catalog(embed_catalog(cube, cat), labels)
    out["end_to_end"] = time.perf_counter() - t4
    out["flagged_fraction"] = float(table["flag"].mean())
    # reference step: scikit-learn TSNE on the flattened full-resolution cutouts
    from sklearn.manifold import TSNE

    flat = np.asarray(stamps).reshape(len(cat), -1)
    t5 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TSNE(n_components=2, init="pca", random_state=0).fit_transform(flat)
    out["sklearn_tsne"] = time.perf_counter() - t5
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _child(kind: str, n: int) -> None:
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    warnings.simplefilter("ignore")
    if kind == "cube":
        with tempfile.TemporaryDirectory(prefix="galclust-bench-") as tmp:
            res = run_cube(n, tmp)
    else:
        res = run_synthetic(n)
    print("RESULT " + json.dumps(res), flush=True)


def _spawn(kind: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(n)],
                          capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark child {kind} {n} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,816 and 5,000 sources only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    print(f"cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f} (other work "
          "on the machine inflates every time below)")
    cube = _spawn("cube", 1816)
    print(f"\n== end to end on an ingested cube: {cube['n']} sources, 8 bands, 51x51 px")
    print(f"cutouts {cube['cutouts']:.2f} s | embedding {cube['embedding']:.2f} s | mixture "
          f"{cube['mixture']:.2f} s")
    print(f"embed_catalog + flag_catalog (incl. features, 25% labels): "
          f"{cube['end_to_end']:.2f} s (target < 10 s); flagged {cube['flagged_fraction']:.1%}")
    print(f"scikit-learn TSNE on the flattened cutouts: {cube['sklearn_tsne']:.1f} s "
          f"(reference: 70 s) -> galclust end to end is "
          f"{cube['sklearn_tsne'] / cube['end_to_end']:.1f}x faster than the t-SNE step alone")
    print(f"peak RSS {cube['peak_rss_mb']:.0f} MB")
    sizes = [1816, 5000] if args.quick else [1816, 20000, 100000]
    rows = [_spawn("synthetic", n) for n in sizes]
    print("\n== linear-embedding path on synthetic stamps generated per block")
    print("(stamps+embedding: generating the stamps block by block, asinh scaling, binning,")
    print(" stamp features and dask-ml IncrementalPCA fit + transform)")
    print(f"{'sources':>8} {'stamps GB':>9} {'stamps+embedding s':>18} {'mixture s':>9} "
          f"{'total s':>8} {'us/source':>9} {'peak RSS MB':>11}")
    for r in rows:
        print(f"{r['n']:>8} {r['stamps_gb']:>9.2f} {r['stamps_embedding']:>18.2f} "
              f"{r['mixture']:>9.2f} "
              f"{r['total']:>8.2f} {1e6 * r['total'] / r['n']:>9.0f} {r['peak_rss_mb']:>11.0f}")
    n = np.array([r["n"] for r in rows], float)
    t = np.array([r["total"] for r in rows], float)
    slope = np.polyfit(np.log(n), np.log(t), 1)[0]
    print(f"time ~ n^{slope:.2f} (fitted over {', '.join(str(int(v)) for v in n)}; "
          f"<= 1 is linear or better)")
    print(f"ratio of time per source, largest / smallest: "
          f"{(t[-1] / n[-1]) / (t[0] / n[0]):.2f}")


if __name__ == "__main__":
    main()
