"""``galclust classify``: learn a labelled property of sources from their cutouts.

Runs the classification stage of the one run path (:mod:`galclust.stages`):
read and check the labels, train the model (or reuse the stored one), evaluate
it on held-out labelled sources, classify every catalog source and publish the
run. Prints the evaluation in the research's format; ``--plots DIR`` writes
the confusion matrix and reliability diagram (and, with ``--learning-curve``,
the learning curve) as PNG.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_classify_parser", "cmd_classify"]

EPILOG = """\
examples:
  galclust classify --store field.zarr --labels members.csv --column member
      train on the labelled sources (CNN when torch is installed and each class has
      >= 50 examples, else gradient boosting on cutout features), evaluate on a 25%
      hold-out, classify every source; publishes classify/member
  galclust classify --store field.zarr --labels members.csv --column member --model cnn \\
      --plots figs/ --learning-curve
  galclust query --results field-results --class member
"""


def _report_text(res: Any, name: str) -> str:
    """The stored evaluation, as the research printed it."""
    from galclust.classify_stage import stored_report

    report = stored_report(res, name)
    if report is None:
        return "(no evaluation: --test-fraction 0 trains on every labelled source)"
    return report.to_text()


def cmd_classify(args: argparse.Namespace) -> int:
    """Train (or reuse) a classifier, classify every source, publish, print the evaluation."""
    import galclust
    from galclust.cli_common import print_stages, settings_from_args
    from galclust.stages import execute

    settings = settings_from_args(args)  # every option and the labels' path checked first
    if settings.classify.labels is None:
        from galclust.errors import InputError

        raise InputError("galclust classify needs --labels FILE (an id column and the class "
                         "column) and --column NAME.")
    report = execute(args.store, results=args.results, settings=settings, stages=["classify"],
                     scheduler=args.scheduler, workers=args.workers)
    print(f"run {report.run} published to {report.results} in {report.seconds:.1f} s")
    print_stages(report)
    summary = report.stages["classify"]
    name = settings.classify.product
    res = galclust.open_results(report.results, run=report.run)
    card = json.loads(res.file(f"classify/{name}/model", "model.json"))
    print(f"model {card['model']} ({card['reason']}); id {card['model_id']}; trained on "
          f"{card['n_train']}, tested on {card['n_test']} labelled sources")
    print(_report_text(res, name))
    table = res.table(f"classify/{name}", columns=["class"])
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(table["class"].value_counts().items()))
    how = "reused from run " + summary["from_run"] if summary["action"] == "reuse" else \
        summary["action"]
    print(f"{len(table)} sources classified ({counts}; {how}); table classify/{name}")
    if args.plots:
        from galclust.classify_stage import write_pictures

        for path in write_pictures(args.store, report.results, report.run, name, args.plots,
                                   learning=args.learning_curve, settings=settings.classify):
            print(f"picture {path}")
    return 0


def add_classify_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``classify`` sub-command to the ``galclust`` parser's subparsers."""
    from galclust.cli_common import add_cluster_options, add_common_arguments
    from galclust.options import ClassifyOptions, add_option_arguments

    p = sub.add_parser(
        "classify", help="learn a labelled property of sources from their cutouts",
        description="Train a classifier (a residual CNN, or gradient boosting on photometry "
        "and morphology measured on the cutouts) on labelled catalog sources, evaluate it "
        "on a held-out part (confusion matrix, precision/recall/F1 per class, per colour "
        "region, reliability), and classify every source of the cube store. Publishes "
        "classify/NAME with class, probability and model id; the model is stored with the "
        "run and reused while the labels and options are unchanged.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="cube store (folder or s3://)")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write the confusion matrix and reliability diagram (PNG) to DIR")
    p.add_argument("--learning-curve", action="store_true",
                   help="with --plots: also fit on 25-100%% of the training labels and draw "
                   "the learning curve (several fits)")
    p.add_argument("--settings", default=None, metavar="FILE",
                   help="run-settings TOML (its [classify] table); flags override it")
    add_cluster_options(p)
    add_option_arguments(p, ClassifyOptions, own=True)
    add_common_arguments(p)
    p.set_defaults(func=cmd_classify)
    return p
