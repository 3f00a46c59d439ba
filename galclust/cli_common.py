"""What every ``galclust`` command shares: common flags, run options and settings.

Kept apart from :mod:`galclust.cli` so the commands defined in their own modules
(:mod:`galclust.cli_classify`) and the Prefect commands (:mod:`flows.cli`) use
them without an import cycle.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from galclust.argtypes import whole
from galclust.cluster import DEFAULT_WORKERS

__all__ = ["add_cluster_options", "add_common_arguments", "add_run_options",
           "add_stage_command", "add_survey_arguments", "print_stages", "settings_from_args"]


def settings_from_args(args: argparse.Namespace) -> Any:
    """The run settings: the ``--settings`` file (if any), then the flags given."""
    import dataclasses

    from galclust.options import OPTIONS, load_settings, options_from_args

    settings = load_settings(getattr(args, "settings", None))
    return settings.replace(**{
        name: options_from_args(cls, args, base=dataclasses.asdict(settings.of(name)))
        for name, cls in OPTIONS.items()})


def print_stages(report: Any) -> None:
    for name, s in report.stages.items():
        what = s.get("reason") or s.get("from_run") or ""
        print(f"  {name:8s} {s['action']:12s} {s['seconds']:7.1f} s  {what}".rstrip())


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose``, as every command has them."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output (-vv for debug)")


def add_survey_arguments(p: argparse.ArgumentParser) -> None:
    """MANIFEST, --store and --results: what a whole-survey command works on."""
    p.add_argument("manifest", help="survey manifest (TOML), local or s3://")
    p.add_argument("--store", required=True, help="cube store: folder or s3://bucket/prefix")
    p.add_argument("--results", default=None, metavar="URL",
                   help="results store (default: the cube store's name with -results)")


def add_run_options(p: argparse.ArgumentParser, stages: Sequence[str] | None = None) -> None:
    """``--settings FILE`` and every option of the named stages (default all), built
    from their options dataclasses (:mod:`galclust.options`)."""
    import galclust.stages  # noqa: F401  (a stage's module registers its options)
    from galclust.options import OPTIONS, add_option_arguments

    p.add_argument("--settings", default=None, metavar="FILE",
                   help="run-settings TOML ([pixels], [catalog], [run] skip=[...]); flags "
                   "given on the command line override it")
    for name, cls in OPTIONS.items():
        if stages is None or name in stages:
            add_option_arguments(p, cls)


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=None, metavar="URL",
                   help="results store (default: the cube store's name with -results)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (default: in-process threads for fewer "
                   "than 300 galaxies, else a local cluster)")
    p.add_argument("--workers", type=whole(1), default=DEFAULT_WORKERS,
                   help="local cluster worker processes (default: %(default)s)")


def add_stage_command(sub: Any, name: str, options: type, func: Any, *, help: str,
                      description: str, epilog: str, plots: str) -> argparse.ArgumentParser:
    """A command that runs one stage on a cube store: ``--store``, ``--plots DIR``, the
    cluster options, the stage's own options (short flags) and ``-q``/``-v``."""
    from galclust.options import add_option_arguments

    p = sub.add_parser(name, help=help, description=description, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="cube store (folder or s3://)")
    p.add_argument("--plots", default=None, metavar="DIR", help=plots)
    add_cluster_options(p)
    add_option_arguments(p, options, own=True)
    add_common_arguments(p)
    p.set_defaults(func=func)
    return p
