"""The ``galclust`` command: the library's commands plus those that run Prefect flows.

``galclust ingest | pixels | flag | query`` come from :mod:`galclust.cli`;
``nightly``, ``serve`` and ``demo`` run :func:`flows.nightly.nightly_flow` and live
here, so that the library never imports its orchestration (``flows`` imports
``galclust``, never the reverse).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from galclust.argtypes import whole
from galclust.cli import (
    add_common_arguments,
    add_run_options,
    add_survey_arguments,
    build_parser,
    settings_from_args,
)
from galclust.cli import main as library_main
from galclust.cluster import DEFAULT_WORKERS

__all__ = ["build_full_parser", "main"]


def cmd_nightly(args: argparse.Namespace) -> int:
    """The nightly flow once, now: ingest -> every stage -> publish."""
    from galclust.pipeline import preflight
    from galclust.store.results import default_results_url

    settings = settings_from_args(args)  # every option checked before any work
    preflight(args.manifest, args.store, args.results or default_results_url(args.store),
              scheduler=args.cluster, labels=args.labels)
    from flows.nightly import nightly_flow  # Prefect's import costs seconds: after the checks

    summary = nightly_flow(args.manifest, args.store, results=args.results,
                           scheduler=args.cluster, workers=args.workers,
                           settings=settings.to_dict(), labels=args.labels)
    print(f"run {summary['run']} published to {summary['results']} in "
          f"{summary['seconds']:.1f} s")
    from galclust.stages import STAGES

    for stage in STAGES:
        s = summary[stage]
        print(f"  {stage:8s} {s['action']:12s} {s['seconds']:7.1f} s  "
              f"{s.get('reason') or ''}".rstrip())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(workdir=args.workdir, size=args.size, seed=args.seed, store=args.store,
                    workers=args.workers, quiet=args.quiet, suite_seeds=args.suite_seeds)


def add_nightly_parser(sub: Any) -> None:
    p = sub.add_parser(
        "nightly", help="ingest -> every stage -> publish, redoing only what changed",
        description="Run the nightly reprocessing once: ingest the survey (unchanged bands "
        "are not rewritten), run every stage (reusing the last run's results where inputs "
        "and options are unchanged; a stage that cannot apply is skipped with its reason), "
        "and publish the run atomically. Schedule it with `galclust serve`.")
    add_survey_arguments(p)
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (default: threads for fewer than 300 "
                   "galaxies, else a local cluster, started only if there is work to do)")
    p.add_argument("--workers", type=whole(1), default=DEFAULT_WORKERS,
                   help="local cluster worker processes (default: %(default)s)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="inspection labels (default: those named by the manifest)")
    add_run_options(p)
    add_common_arguments(p)
    p.set_defaults(func=cmd_nightly)


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="make a synthetic survey and run the pipeline on it",
                       description="Generate a small synthetic JWST-like survey (8 NIRCam "
                       "bands) with known truth in a work folder and run the nightly pipeline "
                       "on it (Prefect, a local Dask cluster): ingest into a cube store, "
                       "pixel-SED clustering of every galaxy, spurious-source flags, publish "
                       "to a results store. Prints what was built, accuracy against the "
                       "truth, and where the pictures are.")
    p.add_argument("--workdir", default="galclust-demo",
                   help="folder for the synthetic survey and stores (default: %(default)s)")
    p.add_argument("--size", type=whole(128), default=1024,
                   help="mosaic side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=whole(0), default=0,
                   help="random seed (default: %(default)s)")
    p.add_argument("--store", default=None,
                   help="cube store URL (default: WORKDIR/field.zarr)")
    p.add_argument("--workers", type=whole(1), default=DEFAULT_WORKERS,
                   help="local Dask worker processes (default: %(default)s)")
    p.add_argument("--suite-seeds", type=whole(0), default=1,
                   help="seeds of the mixing-galaxy validation suite printed at the end, 36 "
                   "galaxies per seed and family, ~1 s each (0: skip it; default: %(default)s)")
    add_common_arguments(p)
    p.set_defaults(func=cmd_demo)


def build_full_parser() -> argparse.ArgumentParser:
    """The whole ``galclust`` parser: the library's commands and the flow commands."""
    from flows.serve import add_serve_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    add_demo_parser(sub)
    add_nightly_parser(sub)
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``galclust`` command; returns the exit status."""
    return library_main(argv, parser=build_full_parser())


if __name__ == "__main__":
    sys.exit(main())
