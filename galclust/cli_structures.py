"""``galclust structures`` and ``galclust emission``: structures inside galaxies.

Both run one stage of the one run path (:mod:`galclust.stages`) and publish a
run. ``structures`` finds hierarchical density structures (AstroLink on point
clouds sampled in proportion to luminosity, positions in PSF widths and colours
in units of their noise); ``emission`` finds extended emission-line regions in
the medium band each galaxy's redshift calls for. ``--plots DIR`` draws the
structures over the colour image with their hierarchy, the excess maps with the
regions' contours, and the regions' medium- against reference-band sizes.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_structures_parsers", "cmd_emission", "cmd_structures"]

STRUCTURES_EPILOG = """\
examples:
  galclust structures --store field.zarr
      AstroLink on each catalog galaxy's footprint (k_den 50, S = 5 sigma);
      publishes structures/table, structures/galaxies, structures/stamps
  galclust structures --store deep.zarr --mode tile --background keep --plots figs/
  galclust query --results field-results --structures 3:

AstroLink compiles its numba kernels for 40-60 s in every new process (every
Dask worker, once: a worker plugin does it when the stage starts).
"""

EMISSION_EPILOG = """\
examples:
  galclust emission --store field.zarr
      each galaxy's medium band from its catalog redshift (Halpha, [OIII]+Hbeta or
      Pabeta); publishes emission/regions, emission/galaxies, emission/stamps
  galclust emission --store field.zarr --band F410M --plots figs/
  galclust query --results field-results --emission candidate
"""


def _run(args: argparse.Namespace, stage: str) -> Any:
    from galclust.cli_common import print_stages, settings_from_args
    from galclust.stages import execute

    settings = settings_from_args(args)
    if stage == "structures" and settings.structures.method == "off":  # the command's default
        import dataclasses

        settings = settings.replace(structures=dataclasses.replace(settings.structures,
                                                                   method="astrolink"))
    report = execute(args.store, results=args.results, settings=settings, stages=[stage],
                     scheduler=args.scheduler, workers=args.workers)
    print(f"run {report.run} published to {report.results} in {report.seconds:.1f} s")
    print_stages(report)
    return report


def _plots(args: argparse.Namespace, report: Any, what: str) -> None:
    if args.plots:
        from galclust.plots.structures import save_structure_figures

        for path in save_structure_figures(args.store, report.results, report.run,
                                           args.plots, what=what):
            print(f"picture {path}")


def cmd_structures(args: argparse.Namespace) -> int:
    """Find density structures; publish them; print a summary."""
    report = _run(args, "structures")
    s = report.stages["structures"]
    if s["action"] == "compute":
        print(f"{s['structures']} structures ({s['method']}, {s['mode']})"
              + (f" in {s['galaxies']} galaxies, {s['flagged']} flagged" if "galaxies" in s
                 else ""))
    _plots(args, report, "structures")
    return 0


def cmd_emission(args: argparse.Namespace) -> int:
    """Find extended emission-line regions; publish them; print a summary."""
    report = _run(args, "emission")
    s = report.stages["emission"]
    if s["action"] == "compute":
        print(f"{s['galaxies']} galaxies: {s['with_regions']} with emission regions, "
              f"{s['candidates']} outflow candidates, {s['not_measured']} not measured "
              "(reasons in emission/galaxies)")
    _plots(args, report, "emission")
    return 0


def add_structures_parsers(sub: Any) -> None:
    """Add ``structures`` and ``emission`` to the ``galclust`` parser's subparsers."""
    from galclust.cli_common import add_stage_command
    from galclust.stage_options import EmissionOptions, StructuresOptions

    add_stage_command(
        sub, "structures", StructuresOptions, cmd_structures,
        help="density structures inside galaxies (AstroLink)",
        description="Sample points in proportion to each galaxy's luminosity (continuously "
        "within pixels, above a background cut or keeping the background), place them in "
        "(x, y, colours) with positions in PSF widths and colours in units of their noise, "
        "and find hierarchical density structures with AstroLink (or HDBSCAN). Publishes "
        "one row per structure (parent, significance, centroid, composite SED with errors).",
        epilog=STRUCTURES_EPILOG,
        plots="write each galaxy's structures over its colour image and their hierarchy")
    add_stage_command(
        sub, "emission", EmissionOptions, cmd_emission,
        help="extended emission-line regions in medium bands (outflow candidates)",
        description="Subtract a continuum interpolated from the neighbouring bands from the "
        "medium band holding Halpha, [OIII]+Hbeta or Pabeta at each galaxy's redshift, "
        "cluster the excess pixels with DBSCAN (eps and min_samples from the PSF and the "
        "noise), and measure each region: flux, excess significance, Gini, asymmetry, "
        "medium- and reference-band sizes and axis ratios, offset, and an outflow score.",
        epilog=EMISSION_EPILOG,
        plots="write the excess maps with the regions' contours and their sizes")
