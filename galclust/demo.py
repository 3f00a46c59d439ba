"""``galclust demo``: the pipeline on a synthetic survey, with embedded defaults.

Local disk store, a local Dask cluster of worker processes, no configuration.
"""

from __future__ import annotations

import os
import time

__all__ = ["run_demo"]


def _step(msg: str, quiet: bool) -> float:
    if not quiet:
        print(f"==> {msg}", flush=True)
    return time.perf_counter()


def run_demo(*, workdir: str = "galclust-demo", size: int = 1024, seed: int = 0,
             store: str | None = None, workers: int = 2, quiet: bool = False) -> int:
    """Generate a synthetic survey, ingest it on a local Dask cluster, report.

    Parameters
    ----------
    workdir : str
        Folder for the synthetic survey and the stores.
    size : int
        Side of the synthetic mosaic in pixels.
    seed : int
        Random seed of the synthetic survey.
    store : str, optional
        Cube store URL (default ``WORKDIR/field.zarr``).
    workers : int
        Local Dask worker processes.
    quiet : bool
        No progress output.

    Returns
    -------
    int
        Exit status (0).
    """
    import galclust
    from galclust.cli import describe_cube
    from galclust.cluster import dask_client
    from galclust.synth import make_survey

    workdir = os.path.abspath(workdir)
    store = store or os.path.join(workdir, "field.zarr")
    timings: dict[str, float] = {}

    t = _step(f"synthetic survey ({size}x{size} px, 8 NIRCam bands, seed {seed}) "
              f"-> {workdir}/survey", quiet)
    survey = make_survey(os.path.join(workdir, "survey"), shape=(size, size), seed=seed)
    timings["synthesise"] = time.perf_counter() - t

    with dask_client(n_workers=workers) as client:
        t = _step(f"ingest on a local Dask cluster ({workers} workers; dashboard "
                  f"{client.dashboard_link})", quiet)
        cube, rep = galclust.ingest(survey.manifest_path, store, client=client,
                                    progress=not quiet, report=True)
        timings["ingest"] = time.perf_counter() - t

    print()
    print(describe_cube(cube, store))
    print(f"manifest     {survey.manifest_path}")
    print("timings      " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0
