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

from galclust.products import GALAXIES, SPURIOUS, STAMPS

__all__ = ["run_demo", "survey_ari"]


#: Component layout of the demo's synthetic survey: components two PSF FWHM or
#: more apart, so its per-pixel truth is a partition clustering should recover.
DEMO_LAYOUT = "separated"


def survey_ari(results: Any, truth_components: np.ndarray, truth_sources: pd.DataFrame, *,
               bins: tuple[float, ...] | None = None,
               by_components: bool = False) -> pd.DataFrame:
    """Pixel clustering of a published run against the synthetic truth, by S/N.

    Parameters
    ----------
    results : galclust.store.results.Results
        A run holding ``pixels/stamps`` and ``pixels/galaxies``.
    truth_components : ndarray (y, x)
        Dominant SED component per pixel (-1 outside galaxies).
    truth_sources : DataFrame
        ``id, kind, n_components, snr``.
    bins : tuple of float
        S/N bin edges of the summary (default: galclust.evaluation.pixels.SNR_BINS).
    by_components : bool
        One row per true number of components (>= 2) and S/N bin.

    Returns
    -------
    DataFrame
        :func:`galclust.evaluation.pixels.ari_table` of
        :func:`galclust.evaluation.pixels.survey_ari`: per S/N bin, galaxies
        with >= 2 true components, their median ARI and fraction with the
        automatic k equal to the true number of components, and the fraction
        of one-component galaxies given k = 1.
    """
    from galclust.evaluation.pixels import ari_table

    return ari_table(_per_galaxy_ari(results, truth_components, truth_sources, bins=bins),
                     by_components=by_components)


def _per_galaxy_ari(results: Any, truth_components: np.ndarray, truth_sources: pd.DataFrame,
                    *, bins: tuple[float, ...] | None = None) -> pd.DataFrame:
    from galclust.evaluation.pixels import SNR_BINS
    from galclust.evaluation.pixels import survey_ari as per_galaxy_ari

    return per_galaxy_ari(results.table(STAMPS),
                          results.table(GALAXIES, columns=["id", "n_clusters"]),
                          truth_components, truth_sources,
                          bins=SNR_BINS if bins is None else bins)


def _step(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"==> {msg}", flush=True)


def run_demo(*, workdir: str = "galclust-demo", size: int = 1024, seed: int = 0,
             store: str | None = None, workers: int = 2, quiet: bool = False,
             suite_seeds: int = 1) -> int:
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
    suite_seeds : int
        Seeds per family of the mixing-galaxy validation suite printed last
        (:mod:`galclust.evaluation.mixtures`; 0 skips it).

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
    from galclust.cli import describe_cube
    from galclust.evaluation.catalog import evaluate_flags
    from galclust.evaluation.pixels import ari_table
    from galclust.plots.survey import write_embedding_pictures, write_label_maps
    from galclust.store.cube import open_catalog, open_labels
    from galclust.synth import make_survey

    workdir = os.path.abspath(workdir)
    store = store or os.path.join(workdir, "field.zarr")
    t0 = time.perf_counter()
    _step(f"synthetic survey: {size}x{size} px, 8 NIRCam bands, PSF-matched, "
          f"layout={DEMO_LAYOUT!r}, seed {seed} -> {workdir}/survey", quiet)
    survey = make_survey(os.path.join(workdir, "survey"), shape=(size, size), seed=seed,
                         psf_matched=True, layout=DEMO_LAYOUT)
    t_synth = time.perf_counter() - t0
    _step(f"nightly flow (Prefect, local Dask cluster of {workers} workers): ingest -> "
          "detection -> pixel clustering -> morphology -> structures -> emission regions -> "
          "spurious flags -> publish", quiet)
    # density structures are off in nightly runs by default (costly); the demo shows them
    summary = nightly_flow(survey.manifest_path, store, workers=workers,
                           settings={"structures": {"method": "astrolink"},
                                     "pixels": {"unmix": "on"}})
    results = galclust.open_results(summary["results"])
    cube = galclust.open_cube(store)

    _step("comparing with the truth and drawing pictures", quiet)
    truth = pd.read_parquet(survey.truth_sources_path)
    truth_map = fits.getdata(survey.truth_components_path)
    per_galaxy = _per_galaxy_ari(results, truth_map, truth)  # read and scored once
    ari, ari_by_n = ari_table(per_galaxy), ari_table(per_galaxy, by_components=True)
    flags = results.table(SPURIOUS)
    recall = evaluate_flags(flags, truth)
    pictures = os.path.join(workdir, "pictures")
    paths = write_label_maps(cube, results, pictures, n=6)
    paths += write_embedding_pictures(flags, open_labels(store), cube, open_catalog(store),
                                      pictures)
    from galclust.plots.sources import save_source_figures

    for what in ("detect", "morphology"):
        paths += save_source_figures(store, summary["results"], summary["run"], pictures,
                                     what=what)
    from galclust.plots.structures import save_structure_figures

    for what in ("structures", "emission"):
        paths += save_structure_figures(store, summary["results"], summary["run"], pictures,
                                        what=what, n=2)

    print()
    print(describe_cube(cube, store))
    print(f"results      {summary['results']}  (run {summary['run']})")
    print(f"pictures     {pictures}  ({len(paths)} PNG files)")
    print("\ntimings      " + ", ".join([
        f"synthesise {t_synth:.1f} s", f"ingest {summary['ingest']['seconds']:.1f} s",
        f"detect {summary['detect']['seconds']:.1f} s",
        f"pixels {summary['pixels']['seconds']:.1f} s",
        f"morphology {summary['morphology']['seconds']:.1f} s",
        f"structures {summary['structures']['seconds']:.1f} s",
        f"emission {summary['emission']['seconds']:.1f} s",
        f"flags {summary['catalog']['seconds']:.1f} s",
        f"whole flow {summary['seconds']:.1f} s"]))
    print(f"\npixel clustering against truth (synthetic layout {DEMO_LAYOUT!r}: each galaxy "
          "has 1-3 components of distinct SED families, >= 2 PSF FWHM apart;\n"
          "galaxies / median_ari / k_correct: galaxies with >= 2 components, k_correct = "
          "automatic k equals their number;\nsingle / single_k1: one-component galaxies "
          "given k = 1):")
    print(ari.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("by number of components:")
    print(ari_by_n.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\nspurious-source flags against truth:")
    print(recall.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    _print_sources(results, truth, summary, cube)
    if suite_seeds:
        _step(f"validation suite: mixing galaxies (2 families x {36 * suite_seeds}; the chi2 "
              "rule against unmixing)", quiet)
        _print_mixture_suite(suite_seeds)
    return 0


def _print_mixture_suite(n_seeds: int = 1) -> None:
    """The mixing-galaxy suite (galclust.evaluation.mixtures), both families."""
    from galclust.evaluation.mixtures import mixture_table, run_mixture_suite

    t0 = time.perf_counter()
    runs = pd.concat([run_mixture_suite(family=f, seeds=tuple(range(n_seeds)),
                                        rules=("chi2", "unmix"))
                      for f in ("default", "heldout")], ignore_index=True)
    print(f"\npixel clustering on mixing galaxies ({time.perf_counter() - t0:.0f} s; "
          "galclust.synth.make_mixture_galaxy: 1-4 components whose light overlaps, "
          "layouts separated / overlapping / nested, families default and heldout (never "
          "tuned on);\nk_right = automatic k equals the components; ari = median over "
          "2-4-component galaxies, on pixels one component dominates (> 70 %); frac_rms = "
          "light-weighted RMS of the fraction maps;\nshown = share of galaxies whose data show "
          "every component (the k fit from the true SEDs beats the best k-1 fit by the null "
          "rule's margin); k_right_shown = k_right over those):")
    fmt = {"float_format": lambda v: f"{v:.2f}"}
    for by in (["family", "n_components", "snr"], ["family", "layout"]):
        table = mixture_table(runs, by=by).drop(columns="n").drop(
            columns=[("frac_rms", "chi2"), ("shown", "chi2")])
        print(table.to_string(**fmt))


def _print_sources(results: Any, truth: pd.DataFrame, summary: dict[str, Any],
                   cube: Any) -> None:
    """Detection against the truth and the survey's morphology, as the demo prints them."""
    from galclust.products import DETECT_SOURCES, MORPHOLOGY_PRODUCTS

    if DETECT_SOURCES in results.products:
        det = results.table(DETECT_SOURCES, columns=["x", "y"])
        real = truth[truth["kind"].isin(["galaxy", "star"])]
        # which true footprint (the survey's own segmentation map) holds each detection
        seg = np.asarray(cube["seg"].values)
        yi = np.clip(np.round(det["y"].to_numpy()).astype(int), 0, seg.shape[0] - 1)
        xi = np.clip(np.round(det["x"].to_numpy()).astype(int), 0, seg.shape[1] - 1)
        per = pd.Series(seg[yi, xi]).value_counts()
        n = per.reindex(real["id"]).fillna(0).to_numpy()
        print(f"\ndetection against truth ({summary['detect']['seconds']:.1f} s): "
              f"{len(det)} sources; {np.mean(n > 0):.2f} of {len(real)} true galaxies and stars "
              f"hold one in their footprint, {np.median(n[n > 0]) if (n > 0).any() else 0:.0f} "
              f"per source (median; this layout's components are >= 2 PSF FWHM apart and are "
              f"split), {int(per.get(0, 0))} on sky")
    elif "detect" in summary:
        print(f"\ndetection: {summary['detect']['action']} "
              f"({summary['detect'].get('reason', '')})")
    rows = []
    for level, name in MORPHOLOGY_PRODUCTS.items():
        if name in results.products:
            t = results.table(name, columns=["gini", "m20", "asymmetry", "flag"])
            good = t[t["flag"] == 0]
            rows.append({"level": level, "rows": len(t), "measured": len(good),
                         "gini": good["gini"].median(), "m20": good["m20"].median(),
                         "asymmetry": good["asymmetry"].median()})
    if rows:
        print("morphology (statmorph definitions; medians of unflagged rows):")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    from galclust.products import EMISSION_PRODUCTS, STRUCTURES_PRODUCTS

    if STRUCTURES_PRODUCTS["galaxies"] in results.products:
        gal = results.table(STRUCTURES_PRODUCTS["galaxies"])
        ok = gal[gal["flag"] == 0]
        print(f"density structures (AstroLink, {summary['structures']['seconds']:.1f} s incl. "
              f"compiling): {int(ok['n_structures'].sum())} in {len(ok)} galaxies; "
              f"{int((ok['n_structures'] >= 2).sum())} galaxies with 2 or more")
    if EMISSION_PRODUCTS["galaxies"] in results.products:
        gal = results.table(EMISSION_PRODUCTS["galaxies"])
        ok = gal[gal["flag"] == 0]
        print(f"emission regions: {len(ok)} galaxies with a medium band for their redshift "
              f"({', '.join(sorted(set(ok['band'])))}); {int((ok['n_regions'] > 0).sum())} "
              f"with regions, {int(ok['n_candidates'].sum())} outflow candidates")
    elif "emission" in summary:
        print(f"emission regions: {summary['emission']['action']} "
              f"({summary['emission'].get('reason', '')})")
