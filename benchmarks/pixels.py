"""Benchmark of pixel-SED clustering: distances, survey throughput, worker memory.

Run ``python benchmarks/pixels.py [--quick]``. Prints three tables, each
against a baseline measured in the same run:

(a) per-galaxy pairwise distance matrices at 200, 1,000 and 5,000 pixels:
    :func:`galclust.pixels.pairwise_distances` (vectorised, blockwise) against
    a reference that loops over pixel pairs in Python as research code did
    (one numpy expression per pair, upper triangle only, mirrored). Where the
    loop would take too long, a subset of pairs is timed and the per-pair
    time extrapolated to all pairs (the table says so).
(b) galaxies per second of :func:`galclust.pixels.survey.pixel_tables` on an
    ingested synthetic survey (``galclust.synth.make_survey`` FITS ->
    ``galclust.ingest`` zarr cube) on a 2-worker ``LocalCluster`` against
    1 worker (processes, one thread each): parallel efficiency.
(c) peak resident memory of each worker process during (b).
(d) galaxies per second of ``pixel_tables`` options on the same cube and the
    same 2-worker cluster, against the clustering as it was before error
    rescaling and unmixing (``rescale_errors=False, unmix=False``): the
    default now (``rescale_errors=True``), ``unmix=True``, ``unmix="pixel"``
    (its k test pixel by pixel only) and ``bin_snr=5`` (all with
    ``rescale_errors=True``), with the ratio of each to the
    baseline, worker CPU and each worker's peak RSS during that run (the
    peak is reset before each run). The baseline is timed first and again
    last; ratios are to the mean of the two, and their difference shows how
    much the machine's load drifted. Before timing, every worker loads the
    unmixing's numba kernel and a few galaxies (one per tile) are clustered
    with ``unmix=True, bin_snr=5``: that warm-up is reported separately.

``--part survey`` runs (b)-(d) only; with ``--quick`` on a small survey.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

import numpy as np
import psutil

# before dask is imported: workers inherit it, and their shutdown chatter stays quiet
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")

METRICS = ("euclidean", "xcorr", "wavelength", "chi2")
WAVELENGTH = np.array([0.901, 1.154, 1.501, 1.988, 2.776, 3.565, 4.083, 4.402])


# --------------------------------------------------------------------------- (a) distances
def loop_distance(f1: np.ndarray, e1: np.ndarray, f2: np.ndarray, e2: np.ndarray, metric: str,
                  w: np.ndarray) -> float:
    """One pair, as research code wrote it."""
    if metric == "euclidean":
        return float(np.sqrt(((f1 - f2) ** 2).sum()))
    if metric == "wavelength":
        return float(np.sqrt((w * (f1 - f2) ** 2).sum()))
    if metric == "xcorr":
        a12 = (f1 * f2).sum() / (f2 * f2).sum()
        return float(np.sqrt(((f1 - a12 * f2) ** 2).sum() / (f1 * f1).sum()))
    n1, n2 = np.sqrt((f1 * f1).sum()), np.sqrt((f2 * f2).sum())
    u, v, t1, t2 = f1 / n1, f2 / n2, e1 / n1, e2 / n2
    wt = 1.0 / (t1 * t1 + t2 * t2)
    a = (wt * u * v).sum() / (wt * v * v).sum()
    b = (wt * u * v).sum() / (wt * u * u).sum()
    chi = 0.5 * ((wt * (u - a * v) ** 2).sum() + (wt * (v - b * u) ** 2).sum())
    return float(np.sqrt(chi / (len(f1) - 1)))


def loop_matrix(x: np.ndarray, err: np.ndarray, metric: str, w: np.ndarray,
                max_pairs: int) -> tuple[np.ndarray, float, int]:
    """Fill the upper triangle pair by pair (up to ``max_pairs``); (matrix, seconds, pairs)."""
    n = len(x)
    out = np.full((n, n), np.nan)
    done = 0
    t0 = time.perf_counter()
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = loop_distance(x[i], err[i], x[j], err[j], metric, w)
            done += 1
            if done >= max_pairs:
                return out, time.perf_counter() - t0, done
    np.fill_diagonal(out, 0.0)
    return out, time.perf_counter() - t0, done


def inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flux = rng.uniform(0.2, 3.0, size=(n, 8)) * rng.uniform(1, 50, size=(n, 1))
    err = rng.uniform(0.5, 2.0, size=(n, 8))
    return flux, err


def bench_distances(sizes: tuple[int, ...], loop_budget_s: float) -> None:
    from galclust.pixels import pairwise_distances, trapezoid_weights
    from galclust.pixels.normalize import normalize_seds

    w = trapezoid_weights(WAVELENGTH)
    print("\n(a) pairwise distance matrix per galaxy: vectorised vs Python pair loop")
    print(f"{'pixels':>7} {'metric':>10} {'vectorised':>11} {'float32':>9} {'python loop':>12} "
          f"{'speed-up':>9}  loop timing")
    for n in sizes:
        flux, err = inputs(n)
        for metric in METRICS:
            x = flux if metric in ("xcorr", "chi2") else normalize_seds(flux, "l2").features
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                d = pairwise_distances(x, metric=metric, err=err, weights=w)
                times.append(time.perf_counter() - t0)
            t_vec = min(times)
            t0 = time.perf_counter()
            pairwise_distances(x, metric=metric, err=err, weights=w, dtype="float32")
            t_32 = time.perf_counter() - t0
            total = n * (n - 1) // 2
            # probe the per-pair cost, then decide whether the full loop fits the budget
            _, t_probe, k = loop_matrix(x, err, metric, w, max_pairs=min(total, 2000))
            per_pair = t_probe / k
            budget_pairs = int(loop_budget_s / per_pair)
            ref, t_loop, done = loop_matrix(x, err, metric, w, max_pairs=min(total, budget_pairs))
            measured = ~np.isnan(ref)
            err_max = float(np.abs(ref[measured] - d[measured]).max())
            if done < total:
                t_loop = t_loop / done * total
                how = f"extrapolated from {done:,} of {total:,} pairs"
            else:
                how = f"measured, all {total:,} pairs"
            print(f"{n:>7} {metric:>10} {t_vec * 1e3:>9.2f}ms {t_32 * 1e3:>7.2f}ms "
                  f"{t_loop:>11.2f}s {t_loop / t_vec:>8.0f}x  {how}; max |diff| {err_max:.1e}")


# --------------------------------------------------------------------------- (b, c) survey
def worker_stats() -> dict[str, float]:
    """This process's peak and current resident memory (MiB) and CPU seconds.

    Peak is ``VmHWM`` from ``/proc/self/status``: it starts afresh at exec,
    unlike ``ru_maxrss``, which a spawned worker inherits from the process
    that forked it. Run on each worker with ``client.run``.
    """
    out = {"cpu_s": time.process_time()}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key = "peak_mib" if line.startswith("VmHWM") else "rss_mib"
                    out[key] = int(line.split()[1]) / 1024.0
    except OSError:  # not Linux: the lifetime maximum is the best available
        out["peak_mib"] = out["rss_mib"] = resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine spent busy so far (all processes)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def warm_worker() -> dict[str, float]:
    """Import the science stack and cluster one tiny galaxy, so timing excludes imports."""
    from galclust.pixels import cluster_galaxy
    from galclust.synth import make_galaxy

    g = make_galaxy(shape=(21, 21), seed=0)
    cluster_galaxy(g.sci, g.err, g.mask, g.wavelength)
    return worker_stats()


CONFIGS: tuple[tuple[str, dict], ...] = (
    ("baseline (before)", {"rescale_errors": False, "unmix": False}),
    ("default now", {"rescale_errors": True}),
    ("unmix=True", {"rescale_errors": True, "unmix": True}),
    ("unmix='pixel'", {"rescale_errors": True, "unmix": "pixel"}),
    ("bin_snr=5", {"rescale_errors": True, "bin_snr": 5.0}),
)


def reset_peak() -> bool:
    """Reset this process's ``VmHWM`` (Linux ``clear_refs`` 5) so the next peak is per run."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def warm_unmix() -> dict[str, float]:
    """Load (or compile) the unmixing's numba kernel in this worker; seconds it took."""
    t0 = time.perf_counter()
    from galclust.pixels.unmix import weighted_nmf

    rng = np.random.default_rng(0)
    flux = rng.uniform(1.0, 5.0, size=(40, 8))
    weighted_nmf(flux, np.full_like(flux, 0.5), 2, max_iter=20)
    return {"seconds": time.perf_counter() - t0, **worker_stats()}


def bench_configs(client, cube, cat, boxes) -> dict:
    """(d): time each of :data:`CONFIGS` on the warm cluster; baseline first and last."""
    from galclust.pixels.survey import pixel_tables

    kernel = client.run(warm_unmix)
    # a few galaxies in different tiles (so both workers get one) through every new path
    found = cat.merge(boxes[["id"]], on="id")
    _, ys, xs = (np.r_[0, np.cumsum(c)] for c in cube["sci"].data.chunks)
    tile = (np.searchsorted(ys, found["y"].round(), side="right") * len(xs)
            + np.searchsorted(xs, found["x"].round(), side="right"))
    ids = found["id"].groupby(tile).first().head(6).astype(int).tolist()
    t0 = time.perf_counter()
    warm = pixel_tables(cube, cat, ids=ids, boxes=boxes, unmix=True, bin_snr=5.0).compute(
        scheduler=client)
    t_warm = time.perf_counter() - t0
    runs = []
    order = list(CONFIGS) + [("baseline (repeat)", CONFIGS[0][1])]
    for name, kw in order:
        client.run(reset_peak)
        before = client.run(worker_stats)
        t0 = time.perf_counter()
        tables = pixel_tables(cube, cat, boxes=boxes, **kw).compute(scheduler=client)
        seconds = time.perf_counter() - t0
        after = client.run(worker_stats)
        runs.append((name, kw, seconds, tables, before, after))
    return {"kernel": kernel, "warm": (t_warm, len(ids), warm[0]), "runs": runs}


def print_configs(res: dict) -> None:
    kernel, (t_warm, n_warm, warm_gal), runs = res["kernel"], res["warm"], res["runs"]
    loads = " / ".join(f"{v['seconds']:.1f}s" for v in kernel.values())
    print("\n(d) pixel_tables options, same cube, same 2-worker cluster (1 thread each)")
    print(f"warm-up (not timed below): numba unmixing kernel load per worker "
          f"{loads}; "
          f"{n_warm} galaxies with unmix=True, bin_snr=5 in {t_warm:.1f}s "
          f"({(warm_gal['error'] != '').sum()} failed)")
    base_rates = [len(r[3][0]) / r[2] for r in runs if r[1] == CONFIGS[0][1]]
    base = float(np.mean(base_rates))
    print(f"{'configuration':>18} {'seconds':>8} {'galaxies/s':>11} {'vs baseline':>12} "
          f"{'s/galaxy x':>11} {'worker CPU s':>13} {'CPU share':>10} {'peak RSS MiB':>13} "
          f"{'clustered':>10} {'binned':>7} {'flagged':>8} {'failed':>7} {'fractions':>10} "
          f"{'components':>11}")
    for name, _, seconds, tables, before, after in runs:
        gal, _, _, frac, comps = tables
        rate = len(gal) / seconds
        cpu = [after[w]["cpu_s"] - before[w]["cpu_s"] for w in after]
        share = " / ".join(f"{c / seconds:.0%}" for c in cpu)
        peak = " / ".join(f"{a['peak_mib']:.0f}" for a in after.values())
        print(f"{name:>18} {seconds:>8.1f} {rate:>11.1f} {rate / base:>11.2f}x "
              f"{base / rate:>10.2f}x {' / '.join(f'{c:.0f}' for c in cpu):>13} {share:>10} "
              f"{peak:>13} {(gal['n_clusters'] > 0).sum():>10,} {(gal['n_bins'] > 0).sum():>7,} "
              f"{(gal['flags'] != 0).sum():>8,} "
              f"{(gal['error'] != '').sum():>7,} {len(frac):>10,} {len(comps):>11,}")
    for name, _, _, tables, _, _ in runs:
        gal = tables[0]
        errors = gal.loc[gal["error"] != "", "error"]
        if len(errors):
            print(f"  {name}: {len(errors)} failed, e.g. {errors.iloc[0][:200]}")
    print(f"vs baseline = galaxies/s / baseline galaxies/s, baseline = mean of its first and "
          f"last run ({' and '.join(f'{b:.1f}' for b in base_rates)} galaxies/s: the spread is "
          "the machine's drift); 's/galaxy x' = the inverse (cost per galaxy). Peak RSS per "
          "worker during that run alone (VmHWM reset before it). binned: galaxies with "
          "Voronoi bins of faint pixels clustered; fractions/components: rows of those tables.")


def bench_survey(shape: tuple[int, int], n_galaxies: int, tile: int, workdir: str) -> None:
    from distributed import Client, LocalCluster

    from galclust.pixels.survey import pixel_tables, segment_boxes
    from galclust.store.cube import open_catalog, open_cube
    from galclust.store.ingest import ingest
    from galclust.synth import make_survey

    t0 = time.perf_counter()
    survey = make_survey(os.path.join(workdir, "survey"), shape=shape, n_galaxies=n_galaxies,
                         seed=11)
    t_survey = time.perf_counter() - t0
    store = os.path.join(workdir, "cube.zarr")
    t0 = time.perf_counter()
    ingest(survey.manifest_path, store, tile=tile)
    t_ingest = time.perf_counter() - t0
    cube, cat = open_cube(store), open_catalog(store)
    t0 = time.perf_counter()
    boxes = segment_boxes(cube["seg"])
    t_boxes = time.perf_counter() - t0
    n_tiles = int(np.prod([len(c) for c in cube["sci"].data.chunks[1:]]))
    print(f"\n(b) survey: {shape[0]}x{shape[1]} px, {len(cube.band)} bands, {len(cat):,} catalog "
          f"sources ({survey.n_galaxies:,} galaxies), {n_tiles} tiles of {tile} px; "
          f"make_survey {t_survey:.1f}s, ingest {t_ingest:.1f}s, segment boxes {t_boxes:.2f}s")
    results = {}
    for n_workers in (1, 2):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, memory_limit="4GiB") as cluster, \
                Client(cluster) as client:
            before = client.run(warm_worker)
            machine0, main0 = _busy_cpu_s(), time.process_time()
            t0 = time.perf_counter()
            tables = pixel_tables(cube, cat, boxes=boxes)
            gal, comp, stamps, *_ = tables.compute(scheduler=client)
            seconds = time.perf_counter() - t0
            machine, main = _busy_cpu_s() - machine0, time.process_time() - main0
            after = client.run(worker_stats)
            if n_workers == 2:
                configs = bench_configs(client, cube, cat, boxes)
        results[n_workers] = (seconds, gal, before, after, main, machine)
    print(f"{'workers':>7} {'seconds':>8} {'galaxies/s':>11} {'speed-up':>9} {'efficiency':>11} "
          f"{'worker CPU s':>13} {'CPU share':>10} {'RSS warm MiB':>13} {'peak RSS MiB':>13} "
          f"{'client CPU s':>13} {'others CPU s':>13}")
    base = results[1][0]
    for n_workers, (seconds, gal, before, after, main, machine) in results.items():
        speed = base / seconds
        cpu = [after[w]["cpu_s"] - before[w]["cpu_s"] for w in after]
        share = " / ".join(f"{c / seconds:.0%}" for c in cpu)
        warm = " / ".join(f"{b['rss_mib']:.0f}" for b in before.values())
        peak = " / ".join(f"{a['peak_mib']:.0f}" for a in after.values())
        print(f"{n_workers:>7} {seconds:>8.1f} {len(gal) / seconds:>11.1f} {speed:>8.2f}x "
              f"{speed / n_workers:>10.0%} {' / '.join(f'{c:.0f}' for c in cpu):>13} "
              f"{share:>10} "
              f"{warm:>13} {peak:>13} {main:>13.0f} {machine - main - sum(cpu):>13.0f}")
    cpu_per_run = {k: sum(r[3][w]["cpu_s"] - r[2][w]["cpu_s"] for w in r[3])
                   for k, r in results.items()}
    print(f"worker CPU per galaxy: {cpu_per_run[1] / len(results[1][1]) * 1e3:.1f} ms (1 worker), "
          f"{cpu_per_run[2] / len(results[2][1]) * 1e3:.1f} ms (2 workers): work efficiency "
          f"{cpu_per_run[1] / cpu_per_run[2]:.0%}, the wall-clock efficiency 2 idle cores "
          "would give")
    one, two = (results[k][1].sort_values("id").reset_index(drop=True) for k in (1, 2))
    same = one[["id", "n_clusters", "n_pixels"]].equals(two[["id", "n_clusters", "n_pixels"]])
    gal = results[2][1]
    print(f"rows: {len(gal):,} galaxies ({(gal['n_clusters'] > 0).sum():,} clustered, "
          f"{(gal['flags'] != 0).sum():,} flagged, {(gal['error'] != '').sum()} failed); "
          f"1-worker and 2-worker tables identical: {same}")
    print("(c) peak RSS: per worker process (VmHWM), including the imported stack ('RSS warm'"
          " = after imports and one tiny galaxy). CPU share = worker CPU seconds / wall time: "
          "below 100% the worker waited for a core (other processes) or for data. 'client "
          "CPU s': this process (scheduler, client, graph); 'others CPU s': every other "
          "process on the machine during the run (psutil system-wide busy time).")
    print_configs(configs)
    print(f"load average at end {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: distances at 200/1000 px, a 500-galaxy survey")
    parser.add_argument("--part", choices=("all", "distances", "survey"), default="all",
                        help="run only (a) or only (b, c, d)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average at start "
          f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())} (1/5/15 min): other processes "
          "share the cores, so ratios measured in one run are the figures to read")
    if args.part in ("all", "distances"):
        if args.quick:
            bench_distances((200, 1000), loop_budget_s=2.0)
        else:
            bench_distances((200, 1000, 5000), loop_budget_s=20.0)
    if args.part == "distances":
        return
    workdir = tempfile.mkdtemp(prefix="galclust-bench-pixels-")
    try:
        if args.quick:
            bench_survey((1024, 1024), 500, 256, workdir)
        else:
            bench_survey((2048, 2048), 2000, 256, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
