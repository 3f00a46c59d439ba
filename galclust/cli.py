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
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from galclust.argtypes import integer_ids, whole
from galclust.cli_common import (
    add_cluster_options,
    add_common_arguments,
    add_run_options,
    add_survey_arguments,
    print_stages,
    settings_from_args,
)
from galclust.errors import GalclustError, InputError, RunFailedError
from galclust.products import GALAXIES, SPURIOUS

__all__ = ["add_common_arguments", "add_run_options", "add_survey_arguments", "build_parser",
           "main", "settings_from_args"]

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
    noise = cube.attrs.get("noise") or {}
    if noise:  # bands without an error or weight map: say where their errors came from
        lines.append(f"errors       estimated from the image's sky for {', '.join(noise)} "
                     "(no error or weight map; cube.attrs['noise'])")
    psf = (cube.attrs.get("psf") or {}).get("status", "none")
    lines.append("psf          " + {
        "matched": f"matched at ingest to {cube.attrs['psf'].get('target_band')}",
        "declared": "declared PSF-matched by the manifest"}.get(
        psf, "not matched (give psf per band or psf_matched = true in the manifest)"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands
def cmd_ingest(args: argparse.Namespace) -> int:
    import contextlib

    import galclust
    from galclust.cluster import dask_client

    with dask_client(args.scheduler) if args.scheduler else contextlib.nullcontext() as client:
        cube, rep = galclust.ingest(args.manifest, args.store, tile=args.tile, client=client,
                                    verify=args.verify, progress=not args.quiet, report=True,
                                    overwrite=args.overwrite)
    if rep.changed:
        print(f"wrote bands: {', '.join(rep.bands_written) or 'none'}; "
              f"segmentation: {'yes' if rep.seg_written else 'unchanged'}; "
              f"catalog: {'yes' if rep.tables_written else 'unchanged'}; "
              f"{_human_bytes(rep.bytes_read)} read in {rep.seconds:.1f} s")
    else:
        print("inputs unchanged: nothing written")
    print(describe_cube(cube, args.store))
    return 0


def _ints(text: str | None) -> list[int] | None:
    """``"1,2,5"`` or ``"@ids.txt"`` (one id per line) -> ids."""
    if not text:
        return None
    if text.startswith("@"):
        from galclust.store.tables import read_id_list

        return read_id_list(text[1:], argument="--ids")
    return integer_ids([t for t in text.replace(" ", "").split(",") if t], where="--ids",
                       hint="give ids separated by commas (12,57,301), or @FILE with one id "
                       "per line.")


def _floats(text: str | None, n: int, option: str, what: str) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        values = []
    if len(values) != n:
        raise InputError(f"{option} {text!r}: give {what}.")
    return values


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    from galclust.pixels.options import check_cone

    sel = dict(ids=_ints(args.ids),
               cone=_floats(args.cone, 3, "--cone", "RA,DEC,RADIUS (deg, deg, arcsec)"),
               z_range=_floats(args.z_range, 2, "--z-range", "ZMIN,ZMAX"))
    if sel["cone"] is not None:
        sel["cone"] = list(check_cone(sel["cone"]))
    return {k: v for k, v in sel.items() if v is not None}


def cmd_pixels(args: argparse.Namespace) -> int:
    """Pixel-SED clustering of every (selected) galaxy of a cube store."""
    import galclust
    from galclust.stages import execute

    settings = settings_from_args(args)  # every option checked before any work
    selection = _selection(args)
    report = execute(args.store, results=args.results, settings=settings, stages=["pixels"],
                     scheduler=args.scheduler, workers=args.workers, **selection)
    res = galclust.open_results(report.results, run=report.run)
    gal = res.table(GALAXIES)
    print(f"run {report.run} published to {report.results} in {report.seconds:.1f} s")
    print_stages(report)
    clustered = gal["n_clusters"] > 0
    print(f"galaxies {len(gal)}, clustered {int(clustered.sum())}, flagged "
          f"{int((gal['flags'] != 0).sum())}; median k = "
          f"{float(gal.loc[clustered, 'n_clusters'].median()):.0f}")
    if args.plots:
        from galclust.plots.survey import write_label_maps

        paths = write_label_maps(galclust.open_cube(args.store), res, args.plots,
                                 n=args.n_plots)
        print(f"{len(paths)} label maps written to {args.plots}")
    return 0


def cmd_flag(args: argparse.Namespace) -> int:
    """Cutout embedding and spurious-source flags for the whole catalog."""
    import galclust
    from galclust.stages import execute

    settings = settings_from_args(args)
    report = execute(args.store, results=args.results, settings=settings, stages=["catalog"],
                     labels=args.labels, scheduler=args.scheduler, workers=args.workers)
    print(f"run {report.run} published to {report.results} in {report.seconds:.1f} s")
    print_stages(report)
    if report.stages["catalog"]["action"] == "skip":
        return 0
    res = galclust.open_results(report.results, run=report.run)
    table = res.table(SPURIOUS)
    n_flag = int(table["flag"].fillna(False).astype(bool).sum())
    summary = table.attrs.get("summary") or report.stages["catalog"]
    print(f"sources {len(table)}, flagged spurious {n_flag} "
          f"({100 * n_flag / max(len(table), 1):.1f}%), unknown "
          f"{int(table['flag'].isna().sum())}; labelled {summary.get('n_labelled', 0)}, of "
          f"which the model contradicts {summary.get('contradicted_reliable', 0)} reliable and "
          f"{summary.get('contradicted_spurious', 0)} spurious")
    if args.plots:
        from galclust.plots.survey import write_embedding_pictures
        from galclust.store.cube import open_catalog, open_labels
        from galclust.store.labels import read_labels

        labels = read_labels(args.labels) if args.labels else open_labels(args.store)
        options = {"embedding": settings.catalog.embedding, "model": settings.catalog.model}
        for path in write_embedding_pictures(table, labels, galclust.open_cube(args.store),
                                             open_catalog(args.store), args.plots,
                                             size=settings.catalog.size, run_id=report.run,
                                             options=options):
            print(f"picture {path}")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the library's commands (``flows.cli`` adds the Prefect ones)."""
    parser = argparse.ArgumentParser(
        prog="galclust",
        description="Survey-scale analysis of multi-band galaxy imaging (JWST/HST "
                    "mosaics): detection and deblending, pixel-SED clustering, morphology, "
                    "density structures, emission-line regions, spurious-source flags and "
                    "classification, published as queryable runs.",
        epilog="Store URLs are local folders or s3://bucket/prefix; S3 endpoint and "
               "credentials come from the standard AWS environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ingest", help="FITS mosaics -> zarr cube store",
                       description="Ingest the survey described by MANIFEST (TOML) into a "
                       "chunked zarr cube store. Unchanged inputs are not rewritten; a "
                       "changed band rewrites only that band.")
    p.add_argument("manifest", help="survey manifest (TOML), local or s3://")
    p.add_argument("--store", required=True, help="cube store: folder or s3://bucket/prefix")
    p.add_argument("--tile", type=whole(16), default=None,
                   help="square chunk size in pixels (default: the store's own, else 1024)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (default: local threads)")
    p.add_argument("--verify", action="store_true",
                   help="recompute input checksums even if size and date are unchanged")
    p.add_argument("--overwrite", action="store_true",
                   help="rewrite an existing galclust cube store from scratch (a location "
                   "that is not a galclust cube store is never written)")
    add_common_arguments(p)
    p.set_defaults(func=cmd_ingest)

    _add_pixels_parser(sub)
    _add_flag_parser(sub)
    from galclust.cli_classify import add_classify_parser
    from galclust.query_cli import add_query_parser

    add_classify_parser(sub)
    from galclust.cli_sources import add_sources_parsers

    add_sources_parsers(sub)
    from galclust.cli_structures import add_structures_parsers

    add_structures_parsers(sub)

    add_query_parser(sub)
    return parser


def _add_pixels_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pixels", help="pixel-SED clustering of every galaxy",
        description="Group each galaxy's pixels by SED shape and build a composite SED per "
        "group, for every catalog galaxy of a cube store (or a selection). Publishes a "
        "run to the results store: pixels/galaxies, pixels/composites and pixels/stamps "
        "(label stamps).")
    p.add_argument("--store", required=True, help="cube store (folder or s3://)")
    p.add_argument("--ids", default=None, help="only these ids: 12,57,301 or @ids.txt")
    p.add_argument("--cone", default=None, metavar="RA,DEC,R",
                   help="only galaxies within R arcsec of RA, DEC (degrees)")
    p.add_argument("--z-range", default=None, metavar="ZMIN,ZMAX",
                   help="only galaxies with ZMIN <= z <= ZMAX")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write label-map + composite-SED PNGs of the brightest galaxies")
    p.add_argument("--n-plots", type=whole(1), default=12, help="how many (default: %(default)s)")
    add_cluster_options(p)
    add_run_options(p, ["pixels"])
    add_common_arguments(p)
    p.set_defaults(func=cmd_pixels)


def _add_flag_parser(sub: Any) -> None:
    p = sub.add_parser(
        "flag", help="cutout embedding and spurious-source flags",
        description="Cut a multi-band stamp around every catalog source, embed them "
        "(asinh scaling, PCA with dask-ml, optionally t-SNE/UMAP), fit a Gaussian mixture "
        "and flag the components where labelled spurious sources concentrate. Publishes "
        "the per-source table (catalog_spurious) to the results store.")
    p.add_argument("--store", required=True, help="cube store (folder or s3://)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="inspection labels (CSV, parquet, FITS or .xlsx: id, reliable, "
                   "reason); default: the labels ingested with the cube")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write the embedding pictures (PNG) to DIR")
    add_cluster_options(p)
    add_run_options(p, ["catalog"])
    add_common_arguments(p)
    p.set_defaults(func=cmd_flag)


def _version() -> str:
    import galclust

    return galclust.__version__


def prefect_environment() -> None:
    """Defaults for running Prefect without a server, set before Prefect is imported.

    A private ``PREFECT_HOME`` (Prefect writes its database there), no
    analytics, and time for the temporary local API to start on a busy laptop.
    """
    home = os.environ.setdefault("PREFECT_HOME", os.path.join(os.path.expanduser("~"),
                                                              ".galclust", "prefect"))
    os.makedirs(home, exist_ok=True)  # Prefect's SQLite cannot create missing folders
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning" if verbose < 2 else "info")
    # Prefect's own run log (state changes, and the traceback of a failed task)
    # only under -v: galclust prints one line per outcome itself
    # a log handler that cannot write (a closed pipe) stays silent, as in production;
    # under -v its error is printed
    logging.raiseExceptions = verbose > 0
    prefect_level = ("CRITICAL", "INFO", "DEBUG")[min(verbose, 2)]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", prefect_level)
    logging.getLogger("prefect").setLevel(prefect_level)  # if Prefect is configured already
    # galclust's progress lines reach a Prefect run's log
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "galclust")
    for noisy in ("distributed", "werkzeug", "numba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _notes(args: argparse.Namespace, caught: list[warnings.WarningMessage]) -> None:
    """galclust's own warnings as one ``note:`` line each; others only under ``-v``."""
    from galclust.errors import GalclustWarning

    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if issubclass(w.category, GalclustWarning) and text not in seen:
            seen.add(text)
            print(f"galclust {args.command}: note: {text}", file=sys.stderr)
        elif args.verbose:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _traceback(verbose: int) -> None:
    if verbose:
        traceback.print_exc(file=sys.stderr)


def main(argv: Sequence[str] | None = None, *,
         parser: argparse.ArgumentParser | None = None) -> int:
    """Run the ``galclust`` command (``parser``: default the library's commands); returns
    the exit status."""
    parser = parser or build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a refused option (argparse printed why)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    _setup_logging(args.verbose)
    prefect_environment()
    t0 = time.perf_counter()
    try:
        if args.command == "serve":  # a long-running service: warnings stay Python's
            status = int(args.func(args) or 0)
        else:  # catch_warnings swaps process-wide state: only around a finite command
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always" if args.verbose else "default")
                status = int(args.func(args) or 0)
            _notes(args, caught)
    except RunFailedError as exc:
        print(f"galclust {args.command}: run failed: {exc}", file=sys.stderr)
        return 1
    except GalclustError as exc:
        _traceback(args.verbose)
        print(f"galclust {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"galclust {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unforeseen: one line; the traceback under -v
        _traceback(args.verbose)
        text = " ".join(str(exc).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        print(f"galclust {args.command}: error: {type(exc).__name__}: {text}"
              + ("" if args.verbose else " (rerun with -v for the traceback)"), file=sys.stderr)
        return 1
    log.info("%s finished in %.1f s", args.command, time.perf_counter() - t0)
    return status


if __name__ == "__main__":
    sys.exit(main())
