"""The ``galclust`` command line.

Each sub-command is a thin shell over a library function; ``galclust CMD
--help`` documents it. Errors in the input are printed as one line naming the
file or field (exit status 2), not as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from galclust.errors import GalclustError

__all__ = ["main"]

log = logging.getLogger("galclust")


# --------------------------------------------------------------------------- helpers
def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _store_bytes(url: str) -> int:
    from galclust.store.urls import get_fs

    fs, path = get_fs(url)
    return int(sum(fs.du(path, total=False).values())) if fs.exists(path) else 0


def describe_cube(cube: Any, store: str) -> str:
    """A few lines saying what a cube store holds."""
    sci = cube["sci"]
    nb, ny, nx = sci.shape
    chunks = sci.data.chunksize
    lines = [
        f"cube store   {store}",
        f"survey       {cube.attrs.get('survey', '?')}",
        "bands        " + ", ".join(
            f"{b} ({w:.3f} um)" for b, w in zip(cube["band"].values, cube["wavelength"].values,
                                                 strict=True)),
        f"shape        {nb} bands x {ny} x {nx} px  "
        f"({cube.attrs.get('pixel_scale', float('nan')):.3f} arcsec/px)",
        f"chunks       {chunks[0]} x {chunks[1]} x {chunks[2]}  "
        f"({_human_bytes(4 * chunks[0] * chunks[1] * chunks[2])} per variable and chunk)",
        f"in memory    {_human_bytes(2 * sci.nbytes + cube['seg'].nbytes)} (sci + err + seg)",
        f"on disk      {_human_bytes(_store_bytes(store))} (compressed)",
        f"segments     {cube.attrs.get('segmentation', {}).get('n_segments', '?')}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands
def cmd_ingest(args: argparse.Namespace) -> int:
    import contextlib

    import galclust
    from galclust.cluster import dask_client

    with dask_client(args.scheduler) if args.scheduler else contextlib.nullcontext() as client:
        cube, rep = galclust.ingest(args.manifest, args.store, tile=args.tile, client=client,
                                    verify=args.verify, progress=not args.quiet, report=True)
    if rep.changed:
        print(f"wrote bands: {', '.join(rep.bands_written) or 'none'}; "
              f"segmentation: {'yes' if rep.seg_written else 'unchanged'}; "
              f"catalog: {'yes' if rep.tables_written else 'unchanged'}; "
              f"{_human_bytes(rep.bytes_read)} read in {rep.seconds:.1f} s")
    else:
        print("inputs unchanged: nothing written")
    print(describe_cube(cube, args.store))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from galclust.demo import run_demo

    return run_demo(workdir=args.workdir, size=args.size, seed=args.seed, store=args.store,
                    workers=args.workers, quiet=args.quiet)


# --------------------------------------------------------------------------- parser
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output (-vv for debug)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``galclust`` command."""
    parser = argparse.ArgumentParser(
        prog="galclust",
        description="Survey-scale pixel-SED clustering and spurious-source flagging for "
                    "multi-band galaxy imaging (JWST/HST mosaics).",
        epilog="Store URLs are local folders or s3://bucket/prefix; S3 endpoint and "
               "credentials come from the standard AWS environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="make a synthetic survey and run the pipeline on it",
                       description="Generate a small synthetic JWST-like survey (8 NIRCam "
                       "bands) in a work folder, ingest it into a cube store on a local Dask "
                       "cluster and report what was built.")
    p.add_argument("--workdir", default="galclust-demo",
                   help="folder for the synthetic survey and stores (default: %(default)s)")
    p.add_argument("--size", type=int, default=1024,
                   help="mosaic side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--store", default=None,
                   help="cube store URL (default: WORKDIR/field.zarr)")
    p.add_argument("--workers", type=int, default=2,
                   help="local Dask worker processes (default: %(default)s)")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ingest", help="FITS mosaics -> zarr cube store",
                       description="Ingest the survey described by MANIFEST (TOML) into a "
                       "chunked zarr cube store. Unchanged inputs are not rewritten; a "
                       "changed band rewrites only that band.")
    p.add_argument("manifest", help="survey manifest (TOML), local or s3://")
    p.add_argument("--store", required=True, help="cube store: folder or s3://bucket/prefix")
    p.add_argument("--tile", type=int, default=None,
                   help="square chunk size in pixels (default: 1024)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (default: local threads)")
    p.add_argument("--verify", action="store_true",
                   help="recompute input checksums even if size and date are unchanged")
    _add_common(p)
    p.set_defaults(func=cmd_ingest)

    for register in _EXTRA_COMMANDS:
        register(sub, _add_common)
    return parser


#: Sub-commands registered by other modules: ``register(subparsers, add_common)``.
_EXTRA_COMMANDS: list[Callable[[Any, Callable[[argparse.ArgumentParser], None]], None]] = []


def _version() -> str:
    import galclust

    return galclust.__version__


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning" if verbose < 2 else "info")
    for noisy in ("distributed", "werkzeug", "numba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``galclust`` command; returns the exit status."""
    _load_extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    t0 = time.perf_counter()
    try:
        status = int(args.func(args) or 0)
    except GalclustError as exc:
        print(f"galclust {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"galclust {args.command}: interrupted", file=sys.stderr)
        return 130
    log.info("%s finished in %.1f s", args.command, time.perf_counter() - t0)
    return status


def _load_extra_commands() -> None:
    """Import the modules that register further sub-commands (once)."""
    if _EXTRA_COMMANDS:
        return
    from importlib import import_module

    for name in ("galclust.pixels.cli", "galclust.catalog.cli"):
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        _EXTRA_COMMANDS.append(module.register)


if __name__ == "__main__":
    sys.exit(main())
