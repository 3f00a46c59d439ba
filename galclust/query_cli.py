"""``galclust query``: the command line over :class:`galclust.query.Query`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from galclust.argtypes import run_id, whole
from galclust.errors import InputError, did_you_mean
from galclust.products import MORPHOLOGY_COLUMNS
from galclust.query import Query, to_json
from galclust.store.results import default_results_url
from galclust.store.urls import write_bytes

__all__ = ["add_query_parser", "cmd_query"]

#: Columns the command line prints by default (those present).
DEFAULT_COLUMNS = ["id", "ra", "dec", "sep_arcsec", "z", "n_pixels", "n_clusters",
                   "flag_names", "p_spurious", "spurious", "spurious_reason", "gini", "m20",
                   "asymmetry", "n_structures", "emission_regions", "outflow_candidates"]
#: Morphology ranges listed in --help (the others work too: --r20, --r80, --smoothness, ...).
SHOWN = ("gini", "m20", "concentration", "asymmetry", "r_petro", "axis_ratio")


EPILOG = """\
examples:
  galclust query --results s3://bucket/field-results --id 1042
      source 1042: catalog row, pixel clusters, spurious flag, composite SEDs
  galclust query --store field.zarr --id 1042 --format png --output g1042.png
      its colour image, label map and composite SEDs (reads field-results)
  galclust query --results field-results --cone 214.9,52.9,3
      sources within 3 arcsec of RA 214.9, Dec +52.9 (degrees; or hours and
      degrees: 14:19:36,+52:54:00,3), nearest first, with sep_arcsec
  galclust query --results field-results --n-clusters 3:6 --spurious no --z-range 5,7
  galclust query --results field-results --flags TOO_FEW_PIXELS --columns all --limit 20
  galclust query --results field-results --class member
      sources the classification "member" (galclust classify) calls members
  galclust query --results field-results --gini 0.5: --asymmetry :0.2
      by morphology (galclust morphology): Gini >= 0.5 and asymmetry <= 0.2;
      also --m20, --concentration, --smoothness, --r20, --r80, --r-petro,
      --axis-ratio, --position-angle
  galclust query --results field-results --structures 3: --emission candidate
      galaxies with 3 or more density structures and an outflow candidate

Answers come from the last published run (or --run ID); a run still being
written is never read. Without --id, --cone or a selection, all sources are listed.
"""


def add_query_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``query`` sub-command to the ``galclust`` parser's subparsers."""
    p = subparsers.add_parser(
        "query", help="look up galaxies of a published run (by id, cone or property)",
        description="Query the last published run of a results store by galaxy id, sky cone "
        "or property; print a table or JSON, or draw one galaxy as a PNG.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    arg = p.add_argument
    arg("--results", metavar="URL", help="results store (folder or s3://)")
    arg("--store", metavar="URL", help="cube store (without --results: read STORE-results)")
    arg("--run", default="latest", type=run_id, help="run id (default: %(default)s)")
    arg("--id", type=int, help="one catalog id")
    arg("--cone", metavar="RA,DEC,R", help="sources within R arcsec of RA, DEC")
    arg("--n-clusters", metavar="A[:B]", help="A pixel clusters, or A to B (A: or :B open)")
    arg("--spurious", choices=("yes", "no"), help="flagged spurious, or not")
    arg("--z-range", metavar="ZMIN,ZMAX", help="catalog redshift range")
    arg("--flags", metavar="any|none|NAME,...", help="pixel flags, e.g. TOO_FEW_PIXELS")
    arg("--class", dest="class_", metavar="NAME[=VALUE]",
        help="predicted class of classification NAME (default: its positive class)")
    arg("--structures", metavar="A[:B]", help="density structures in the galaxy (galclust "
        "structures): A, A:B, A: or :B")
    arg("--emission", choices=("yes", "no", "candidate"),
        help="with extended emission-line regions, without, or with an outflow candidate")
    for column in MORPHOLOGY_COLUMNS:
        arg(f"--{column.replace('_', '-')}", metavar="A[:B]", dest=f"morph_{column}",
            help=argparse.SUPPRESS if column not in SHOWN else
            f"{column.replace('_', ' ')} of morphology/galaxies: A, A:B, A: or :B")
    arg("--format", default="table", choices=("table", "json", "png"),
        help="png draws one galaxy (default: %(default)s)")
    arg("--output", metavar="FILE", help="local or s3:// (default: stdout; png: ID_METHOD_RUN.png)")
    arg("--columns", metavar="A,B,...|all", help="columns (default: " +
        ",".join(DEFAULT_COLUMNS) + ")")
    arg("--limit", type=whole(0), help="at most this many rows")
    p.set_defaults(func=cmd_query, command="query", verbose=0)
    return p


def _cone_arg(text: str) -> tuple[float, float, float]:
    from astropy.coordinates import Angle

    try:
        ra, dec, r = (p.strip() for p in text.split(","))
        return (float(Angle(ra, unit="hourangle" if ":" in ra else "deg").degree),
                float(Angle(dec, unit="deg").degree), float(r))
    except ValueError:
        raise InputError(f"--cone {text!r}: give RA,DEC,RADIUS (degrees, degrees, arcsec), "
                         "e.g. 214.9,52.9,3 or 14:19:36,+52:54:00,3.") from None


def _pair(text: str, sep: str, option: str) -> tuple[float | None, float | None]:
    try:
        lo, hi = (float(p) if p.strip() else None for p in (text.split(sep) + [text])[:2])
        return lo, hi
    except ValueError:
        raise InputError(f"{option} {text!r}: give MIN{sep}MAX (or one number).") from None


def _columns(df: pd.DataFrame, spec: str | None) -> pd.DataFrame:
    if spec == "all":
        return df
    cols = [c.strip() for c in spec.split(",")] if spec else \
        [c for c in DEFAULT_COLUMNS if c in df] + [c for c in df if str(c).endswith("_class")]
    for c in cols:
        if c not in df:
            raise InputError(f"--columns: no column {c!r}." + did_you_mean(c, df.columns) +
                             f" Columns: {', '.join(df.columns)}.")
    return df[cols]


def _emit(text: str, output: str | None) -> int:
    if output:
        write_bytes(output, (text + "\n").encode())
    else:
        sys.stdout.write(text + "\n")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run ``galclust query`` (see :func:`add_query_parser`); returns the exit status."""
    if not (args.results or args.store):
        raise InputError("give --results URL (results store) or --store URL (its cube store).")
    morph = {c: _pair(getattr(args, f"morph_{c}"), ":", f"--{c.replace('_', '-')}")
             for c in MORPHOLOGY_COLUMNS if getattr(args, f"morph_{c}", None)}
    sel = bool(morph) or any(getattr(args, k) for k in ("n_clusters", "spurious", "z_range",
                                                        "flags", "class_", "structures",
                                                        "emission"))
    modes = [m for m, on in (("--id", args.id is not None), ("--cone", args.cone),
                             ("a selection", sel)) if on]
    if len(modes) > 1:
        raise InputError(f"give one of --id, --cone or a selection, not {' and '.join(modes)}.")
    if args.format == "png" and args.id is None:
        raise InputError("--format png draws one galaxy: give --id N.")
    cone = _cone_arg(args.cone) if args.cone else None  # bad options fail before any read
    n = _pair(args.n_clusters, ":", "--n-clusters") if args.n_clusters else None
    z = _pair(args.z_range, ",", "--z-range") if args.z_range else None
    q = Query(args.results or default_results_url(args.store), args.run, store=args.store)
    if args.id is not None:
        rec = q.galaxy(args.id)
        if args.format == "png":
            from galclust.plots.catalog import save_figure
            from galclust.plots.naming import picture_stem, pixel_options

            stem = picture_stem(f"galaxy-{rec.id}", run_id=q.run_id,
                                options=pixel_options(rec.pixels))
            path = save_figure(rec.figure(), args.output or f"{stem}.png")
            drawn = f"galaxy {rec.id} (run {q.run_id}) drawn to {path}"
            if rec.fractions is not None:  # an unmixing run: the fraction maps beside it
                more = save_figure(rec.fraction_figure(),
                                   str(path).removesuffix(".png") + "-fractions.png")
                drawn += f"; fraction maps to {more}"
            return _emit(drawn, None)
        if args.format == "json":
            return _emit(to_json(rec), args.output)
        comp = rec.composites[["cluster", "band", "wavelength", "flux", "err", "n_pixels"]]
        unmixed = ("" if rec.components is None else "\n\nunmixed components (SED sums to 1; "
                   "fraction maps: --format json or png)\n"
                   + rec.components.pivot(index="component", columns="band", values="sed")
                   .round(4).to_string())
        return _emit(f"galaxy {rec.id}  (run {q.run_id} of {q.results.url})\n"
                     + _columns(q.sources([rec.id]), args.columns).T.to_string(header=False)
                     + "\n\ncomposite SEDs\n" + comp.to_string(index=False) + unmixed,
                     args.output)
    if cone is not None:
        df = q.cone(*cone)
    else:
        flags = args.flags and {"any": True, "none": False}.get(args.flags.lower(),
                                                                args.flags.split(","))
        cls = None if not args.class_ else (*args.class_.split("=", 1), None)[:2]
        n_st = _pair(args.structures, ":", "--structures") if args.structures else None
        df = q.select(n_clusters=n, z=z, flags=flags, classified=cls, morphology=morph or None,
                      structures=n_st, emission=args.emission,
                      spurious=None if args.spurious is None else args.spurious == "yes")
    n_rows, df = len(df), df if args.limit is None else df.head(args.limit)
    if args.format == "json":
        return _emit(to_json(df if args.columns is None else _columns(df, args.columns)),
                     args.output)
    df = _columns(df, args.columns)
    text = df.to_string(index=False) if len(df) else f"(no rows; columns: {', '.join(df)})"
    return _emit(f"{text}\n({n_rows} rows; run {q.run_id})", args.output)
