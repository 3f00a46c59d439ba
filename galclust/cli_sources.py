"""``galclust detect`` and ``galclust morphology``: sources and their shapes.

Both run one stage of the one run path (:mod:`galclust.stages`) and publish a
run. ``detect`` finds and deblends sources over the cube's tiles
(``detect/sources``, ``detect/seg``); ``morphology`` measures Gini, M20,
concentration, asymmetry, smoothness and Petrosian radii with statmorph's
definitions, per galaxy of the segmentation map, per detection and per SED
cluster of the pixel stage. ``--plots DIR`` draws the segmentation contours
over the colour image, and the Gini-M20 diagram of the survey.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_sources_parsers", "cmd_detect", "cmd_morphology"]

DETECT_EPILOG = """\
examples:
  galclust detect --store field.zarr
      detect on an S/N-weighted stack of every band, deblend by topography and pixel
      colour; publishes detect/sources and detect/seg
  galclust detect --store field.zarr --nsigma 3 --deblend watershed --plots figs/
  python -c "import galclust; print(galclust.open_results('field-results').table('detect/sources'))"

A survey without a segmentation map or catalog needs no separate step: ingest a
manifest without [segmentation] and [catalog] and the cube is detected at ingest.
"""

MORPH_EPILOG = """\
examples:
  galclust morphology --store field.zarr
      Gini, M20, C, A, S, r20, r80, r_petro, axis ratio per galaxy (reddest band),
      per detection and per SED cluster; publishes morphology/galaxies, ...
  galclust morphology --store field.zarr --band F200W --levels galaxies --plots figs/
  galclust query --results field-results --gini 0.5: --asymmetry :0.2
"""


def _plots(args: argparse.Namespace, report: Any, what: str) -> None:
    if not args.plots:
        return
    from galclust.plots.sources import save_source_figures

    for path in save_source_figures(args.store, report.results, report.run, args.plots,
                                    what=what):
        print(f"picture {path}")


def cmd_detect(args: argparse.Namespace) -> int:
    """Detect and deblend every source of a cube; publish the table and the map."""
    import galclust
    from galclust.cli_common import print_stages, settings_from_args
    from galclust.stages import execute

    settings = settings_from_args(args)
    report = execute(args.store, results=args.results, settings=settings, stages=["detect"],
                     scheduler=args.scheduler, workers=args.workers)
    print(f"run {report.run} published to {report.results} in {report.seconds:.1f} s")
    print_stages(report)
    res = galclust.open_results(report.results, run=report.run)
    if "detect/sources" in res.products:
        t = res.table("detect/sources", columns=["id", "parent", "flag"])
        print(f"{len(t)} sources ({int((t['parent'] != t['id']).sum())} split from blends, "
              f"{int((t['flag'] > 0).sum())} flagged); table detect/sources, map detect/seg")
    _plots(args, report, "detect")
    return 0


def cmd_morphology(args: argparse.Namespace) -> int:
    """Measure morphology at every level asked for; publish one table per level."""
    import galclust
    from galclust.cli_common import print_stages, settings_from_args
    from galclust.stages import execute

    settings = settings_from_args(args)
    report = execute(args.store, results=args.results, settings=settings,
                     stages=["morphology"], scheduler=args.scheduler, workers=args.workers)
    print(f"run {report.run} published to {report.results} in {report.seconds:.1f} s")
    print_stages(report)
    summary = report.stages["morphology"]
    res = galclust.open_results(report.results, run=report.run)
    for level, info in summary.get("levels", {}).items():
        t = res.table(f"morphology/{level}", columns=["gini", "m20", "flag"])
        good = t[t["flag"] == 0]
        print(f"morphology/{level}: {info['rows']} rows, {info['flagged']} flagged; median "
              f"Gini {good['gini'].median():.3f}, M20 {good['m20'].median():.2f} "
              f"(band {summary['band']})")
    for level, why in summary.get("left_out", {}).items():
        print(f"morphology/{level}: not measured ({why})")
    _plots(args, report, "morphology")
    return 0


def add_sources_parsers(sub: Any) -> None:
    """Add ``detect`` and ``morphology`` to the ``galclust`` parser's subparsers."""
    from galclust.cli_common import add_stage_command
    from galclust.options import DetectOptions, MorphologyOptions

    add_stage_command(
        sub, "detect", DetectOptions, cmd_detect,
        help="detect and deblend sources (segmentation map and catalog)",
        description="Detect sources on a multi-band detection image of the cube (S/N-"
        "weighted stack), deblend them by topography and by the SED shapes of their "
        "pixels, and measure fluxes per band, area, semi-axes and position angle. Runs on "
        "overlapping tiles with Dask; a source crossing a tile edge gets one id; ids are "
        "stable while the pixels are unchanged. Publishes detect/sources and detect/seg.",
        epilog=DETECT_EPILOG,
        plots="write the segmentation contours over the colour image (PNG)")
    add_stage_command(
        sub, "morphology", MorphologyOptions, cmd_morphology,
        help="Gini, M20, CAS and Petrosian radii per galaxy and SED cluster",
        description="Measure non-parametric morphology with statmorph's definitions (Lotz "
        "et al. 2004 Gini and M20; Conselice 2003 concentration, asymmetry, smoothness; "
        "Petrosian radii) for every segment of the cube's segmentation map, every "
        "detection of the detect stage and every SED cluster of the pixel stage, in one "
        "band. Publishes morphology/galaxies, morphology/detections, morphology/clusters.",
        epilog=MORPH_EPILOG, plots="write the Gini-M20 diagram of the survey (PNG)")
