"""Benchmark: detection and deblending of a mosaic, and morphology per galaxy, each against
the library a user would otherwise run, in the same run.

    python benchmarks/structures.py                  # 8 bands x 8192^2 mosaic
    python benchmarks/structures.py --size 2048      # quicker
    python benchmarks/structures.py --quick          # 2048^2 and a small morphology set
    python benchmarks/structures.py --skip-morphology | --skip-detection

**Detection** (issue 12): a synthetic 8-band NIRCam-like survey
(:func:`galclust.synth.make_survey`, PSF-matched) is ingested into a cube
(tiles of 1024 px; not timed). Then, each in its own child process so peak
memory is its own:

- galclust: :func:`galclust.sources.survey.detect_cube` (``deblend="colour"``,
  the default options) on a local Dask cluster of 2 single-threaded worker
  processes, tiles with a 64 px halo; wall time, and the peak RSS (VmHWM) of
  each worker — bounded by a tile and its halo, not by the mosaic;
- photutils 3.0 (the baseline): ``detect_sources`` + ``deblend_sources``
  (nlevels=32, contrast=0.001) on the same S/N-weighted, smoothed detection
  stack of the whole mosaic (made beforehand, not timed) with the same
  threshold and npixels, one process; wall time and peak RSS.

Both are scored against the survey's truth (galaxies and stars): completeness
(a true source with a detected centroid within 3 px), and the number of
detections. Printed: the times, their ratio (photutils / galclust), memory.

**Morphology**: :func:`_structures_morphology.bench_morphology` — galclust's
``morphology`` against statmorph per galaxy (CPU time ratio) and their
agreement on Sersic galaxies and the real HST Abell 2744 images.

**Density structures** (issue 13): :func:`_structures_density.bench_density` —
AstroLink on a 10^6-point cloud from one tile against HDBSCAN on the same
points, after compilation, with the compilation time shown apart.

**Clumps** (issue 13): :func:`_structures_clumps.bench_clumps` — colour-distinct
clumps found and false structures per scene on both synthetic families, for
AstroLink and HDBSCAN, host kept or subtracted, with the image-S/N cut (and without it,
host subtracted).

**Emission regions**: :func:`_structures_emission.bench_emission` — emission
regions per galaxy over a synthetic survey (galaxies per second, recovery and
false regions) against DBSCAN on (x, y, flux) of the raw medium band.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHILD_GALCLUST = """
import json, sys, time
import numpy as np
from distributed import Client, LocalCluster
import galclust
from galclust.options import DetectOptions
from galclust.sources.survey import detect_cube
from galclust.store.segmaps import create_seg_dataset


def stats():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))


def warm():
    from galclust.sources.detection import detect
    rng = np.random.default_rng(0)
    detect(rng.normal(size=(2, 64, 64)), np.ones((2, 64, 64)))
    return stats()


if __name__ == "__main__":
    store, out = sys.argv[1], sys.argv[2]
    cube = galclust.open_cube(store)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit="8GiB", dashboard_address=None) as cluster, \\
            Client(cluster) as client:
        client.run(warm)
        base = client.run(stats)
        opts = DetectOptions()
        target = create_seg_dataset(out, (cube.sizes["y"], cube.sizes["x"]), 1024)
        t = time.perf_counter()
        sources, info = detect_cube(cube, target, options=opts.kwargs(), halo=opts.halo,
                                    client=client)
        seconds = time.perf_counter() - t
        peaks = client.run(stats)
    sources[["x", "y"]].to_parquet(out + ".parquet")
    print(json.dumps({"seconds": seconds, "n": len(sources),
                      "worker_peak_mib": sorted(peaks.values()),
                      "worker_base_mib": sorted(base.values()), **info}))
"""

CHILD_STACK = """
import sys
import numpy as np
import dask.array as da
import galclust
from galclust.sources.detection import detection_image

if __name__ == "__main__":
    cube = galclust.open_cube(sys.argv[1])
    def stack(sci, err):
        return detection_image(sci, err)[0][None]
    det = da.map_overlap(stack, cube["sci"].data, cube["err"].data, depth=(0, 8, 8),
                         boundary="none", dtype="f4", chunks=(1,) + cube["sci"].data.chunks[1:],
                         trim=True)
    np.save(sys.argv[2], det[0].compute(scheduler="threads").astype("f4"))
"""

CHILD_PHOTUTILS = """
import json, sys, time
import numpy as np
from photutils.segmentation import deblend_sources, detect_sources
from photutils.segmentation import SourceCatalog


def peak():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))


if __name__ == "__main__":
    det = np.load(sys.argv[1])
    nsigma, npixels = float(sys.argv[2]), int(sys.argv[3])
    base = peak()
    t = time.perf_counter()
    segm = detect_sources(det, nsigma, npixels=npixels)
    t_detect = time.perf_counter() - t
    segm = deblend_sources(det, segm, npixels=npixels, nlevels=32, contrast=0.001,
                           progress_bar=False)
    seconds = time.perf_counter() - t
    cat = SourceCatalog(det, segm)
    xy = np.c_[cat.xcentroid, cat.ycentroid]
    np.save(sys.argv[4], xy)
    print(json.dumps({"seconds": seconds, "detect_seconds": t_detect, "n": int(segm.nlabels),
                      "peak_mib": peak(), "base_mib": base}))
"""


def _child(code: str, *args: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(code)  # a file, not -c: process-based Dask workers re-import __main__
    try:
        out = subprocess.run([sys.executable, fh.name, *args], check=False,
                             capture_output=True, text=True)
    finally:
        os.unlink(fh.name)
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed ({out.returncode}):\n{out.stderr[-3000:]}")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _completeness(truth, xy) -> float:
    import numpy as np
    from scipy.spatial import cKDTree

    if not len(xy):
        return 0.0
    d, _ = cKDTree(xy).query(truth[["x", "y"]].to_numpy())
    return float(np.mean(d < 3.0))


def bench_detection(size: int, workdir: str) -> None:
    import numpy as np
    import pandas as pd

    import galclust
    from galclust.options import DetectOptions
    from galclust.synth import make_survey

    t = time.perf_counter()
    survey = make_survey(os.path.join(workdir, "survey"), shape=(size, size), seed=0,
                         psf_matched=True)
    t_survey = time.perf_counter() - t
    store = os.path.join(workdir, "field.zarr")
    t = time.perf_counter()
    galclust.ingest(survey.manifest_path, store, tile=1024)
    t_ingest = time.perf_counter() - t
    cube = galclust.open_cube(store)
    nb = cube.sizes["band"]
    print(f"\n== detection: {nb} bands x {size}^2 px ({nb * size * size * 8 / 2**30:.1f} GiB "
          f"sci + err); make_survey {t_survey:.0f} s, ingest {t_ingest:.0f} s")
    truth = pd.read_parquet(survey.truth_sources_path)
    truth = truth[truth["kind"].isin(["galaxy", "star"])]
    opts = DetectOptions()
    g = _child(CHILD_GALCLUST, store, os.path.join(workdir, "detect.zarr"))
    stack = os.path.join(workdir, "stack.npy")
    _child(CHILD_STACK, store, stack)
    p = _child(CHILD_PHOTUTILS, stack, str(opts.nsigma), str(opts.npixels),
               os.path.join(workdir, "photutils_xy.npy"))
    g_xy = pd.read_parquet(os.path.join(workdir, "detect.zarr.parquet")).to_numpy()
    p_xy = np.load(os.path.join(workdir, "photutils_xy.npy"))
    print(f"truth: {len(truth)} galaxies and stars; options nsigma={opts.nsigma}, "
          f"npixels={opts.npixels}")
    print(f"{'':28s}{'seconds':>9s}{'sources':>9s}{'complete':>10s}  peak RSS")
    print(f"{'galclust (2 workers, tiles)':28s}{g['seconds']:9.1f}{g['n']:9d}"
          f"{_completeness(truth, g_xy):10.3f}  per worker "
          f"{', '.join(f'{m:.0f}' for m in g['worker_peak_mib'])} MiB "
          f"(idle {', '.join(f'{m:.0f}' for m in g['worker_base_mib'])} MiB)")
    print(f"{'photutils (1 process)':28s}{p['seconds']:9.1f}{p['n']:9d}"
          f"{_completeness(truth, p_xy):10.3f}  {p['peak_mib']:.0f} MiB "
          f"(stack loaded: {p['base_mib']:.0f} MiB)")
    print(f"time ratio photutils / galclust: {p['seconds'] / g['seconds']:.2f}x "
          f"(galclust on 2 workers; photutils detect {p['detect_seconds']:.1f} s of it); "
          f"galclust tiles {g['tiles']}, unmatched pixels {g['unmatched_pixels']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="mosaic side (px)")
    parser.add_argument("--quick", action="store_true", help="2048^2 and a small set")
    for part in ("detection", "morphology", "density", "clumps", "emission"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if not args.skip_morphology:
        from _structures_morphology import bench_morphology

        bench_morphology(quick=args.quick)
    if not args.skip_density:
        from _structures_density import bench_density

        bench_density(quick=args.quick)
    if not args.skip_clumps:
        from _structures_clumps import bench_clumps

        bench_clumps(quick=args.quick)
    if not args.skip_emission:
        from _structures_emission import bench_emission

        bench_emission(quick=args.quick)
    if not args.skip_detection:
        work = tempfile.mkdtemp(prefix="galclust-structures-")
        try:
            bench_detection(2048 if args.quick else args.size, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
