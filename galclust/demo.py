"""``galclust demo``: the nightly pipeline on a synthetic survey, with embedded defaults.

Local disk stores, a local Dask cluster of worker processes, Prefect without a
server (a temporary local API). The summary compares the results with the
survey's known truth.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["run_demo", "survey_ari"]


def survey_ari(results: Any, truth_components: np.ndarray, truth_sources: pd.DataFrame, *,
               bins: tuple[float, ...] = (0, 10, 20, 40, np.inf)) -> pd.DataFrame:
    """Per-galaxy adjusted Rand index of a published run against the synthetic truth.

    Parameters
    ----------
    results : galclust.store.results.Results
        A run holding ``pixels/stamps`` and ``pixels/galaxies``.
    truth_components : ndarray (y, x)
        Dominant SED component per pixel (-1 outside galaxies).
    truth_sources : DataFrame
        ``id, kind, n_components, snr``.
    bins : tuple of float
        S/N bin edges of the summary.

    Returns
    -------
    DataFrame
        One row per S/N bin: galaxies, median ARI, fraction with the automatic
        k equal to the true number of components (galaxies with >= 2 true
        components, where ARI is informative).
    """
    from sklearn.metrics import adjusted_rand_score

    from galclust.pixels.survey import decode_labels

    gal = results.table("pixels/galaxies", columns=["id", "n_clusters"])
    stamps = results.table("pixels/stamps")
    truth = truth_sources[truth_sources["kind"] == "galaxy"].set_index("id")
    rows = []
    for st in stamps.itertuples():
        if st.id not in truth.index or truth.at[st.id, "n_components"] < 2:
            continue
        labels = decode_labels(st.labels, st.ny, st.nx)
        ref = truth_components[st.y0:st.y0 + st.ny, st.x0:st.x0 + st.nx]
        use = (labels >= 0) & (ref >= 0)
        if use.sum() < 10:
            continue
        rows.append({"id": st.id, "snr": truth.at[st.id, "snr"],
                     "ari": adjusted_rand_score(ref[use], labels[use]),
                     "n_true": int(truth.at[st.id, "n_components"])})
    per = pd.DataFrame(rows).merge(gal, on="id")
    per["snr_bin"] = pd.cut(per["snr"], list(bins), right=False)
    per["k_correct"] = per["n_clusters"] == per["n_true"]
    return (per.groupby("snr_bin", observed=True)
            .agg(galaxies=("id", "size"), median_ari=("ari", "median"),
                 k_correct=("k_correct", "mean"))
            .reset_index())


def _step(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"==> {msg}", flush=True)


def run_demo(*, workdir: str = "galclust-demo", size: int = 1024, seed: int = 0,
             store: str | None = None, workers: int = 2, quiet: bool = False) -> int:
    """Generate a synthetic survey, run the nightly flow on it, report against truth.

    Parameters
    ----------
    workdir : str
        Folder for the synthetic survey, the stores and the pictures.
    size : int
        Side of the synthetic mosaic in pixels.
    seed : int
        Random seed of the synthetic survey.
    store : str, optional
        Cube store URL (default ``WORKDIR/field.zarr``).
    workers : int
        Local Dask worker processes.
    quiet : bool
        Less progress output.

    Returns
    -------
    int
        Exit status (0).
    """
    from galclust.cli import prefect_environment

    prefect_environment()
    from astropy.io import fits

    import galclust
    from flows.nightly import nightly_flow
    from galclust.catalog.evaluation import evaluate_flags
    from galclust.cli import describe_cube
    from galclust.plots.survey import write_embedding_pictures, write_label_maps
    from galclust.store.cube import open_catalog, open_labels
    from galclust.synth import make_survey

    workdir = os.path.abspath(workdir)
    store = store or os.path.join(workdir, "field.zarr")
    t0 = time.perf_counter()
    _step(f"synthetic survey: {size}x{size} px, 8 NIRCam bands, seed {seed} -> "
          f"{workdir}/survey", quiet)
    survey = make_survey(os.path.join(workdir, "survey"), shape=(size, size), seed=seed,
                         psf_matched=True)
    t_synth = time.perf_counter() - t0
    _step(f"nightly flow (Prefect, local Dask cluster of {workers} workers): ingest -> "
          "pixel clustering -> spurious flags -> publish", quiet)
    summary = nightly_flow(survey.manifest_path, store, workers=workers)
    results = galclust.open_results(summary["results"])
    cube = galclust.open_cube(store)

    _step("comparing with the truth and drawing pictures", quiet)
    truth = pd.read_parquet(survey.truth_sources_path)
    ari = survey_ari(results, fits.getdata(survey.truth_components_path), truth)
    flags = results.table("catalog_spurious")
    recall = evaluate_flags(flags, truth)
    pictures = os.path.join(workdir, "pictures")
    paths = write_label_maps(cube, results, pictures, n=6)
    paths += write_embedding_pictures(flags, open_labels(store), cube, open_catalog(store),
                                      pictures)

    print()
    print(describe_cube(cube, store))
    print(f"results      {summary['results']}  (run {summary['run']})")
    print(f"pictures     {pictures}  ({len(paths)} PNG files)")
    print("\ntimings      " + ", ".join([
        f"synthesise {t_synth:.1f} s", f"ingest {summary['ingest']['seconds']:.1f} s",
        f"pixels {summary['pixels']['seconds']:.1f} s",
        f"flags {summary['catalog']['seconds']:.1f} s",
        f"whole flow {summary['seconds']:.1f} s"]))
    print("\npixel clustering against truth (galaxies with >= 2 SED components):")
    print(ari.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\nspurious-source flags against truth:")
    print(recall.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
