"""The classification stage of the run path: train (or reuse) a model, classify every source.

Plan (before any compute, so bad labels fail the run at its start):

- no labels in the options: **skip**, saying how to give them (the last
  published classification is carried, as for any stage not run);
- the label table is read and checked against the catalog (ids absent from
  it are listed; a single class or a class with too few examples is refused);
- **reuse** when a checkpoint holds this model *and* these pixels and catalog;
- **predict** when a checkpoint holds a model trained on the same labels and
  options (and bands): the stored model classifies the new pixels, no
  retraining;
- **compute** otherwise: hold out ``test_fraction`` of the labelled sources
  (stratified), train on the rest, evaluate on them as the Perseus study did,
  store the model with its card, and classify every source.

Products, for a classification named ``<name>`` (the label column by default):
``classify/<name>`` (id, class, probability, ``p_<class>``, label, split,
flag, model), ``classify/<name>/model`` (``model.pkl`` and ``model.json``) and
the evaluation tables ``classify/<name>/confusion``, ``.../per_class``,
``.../by_region``, ``.../reliability`` and ``.../summary``.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from galclust.classify import defaults
from galclust.classify.estimator import SourceClassifier, torch_available
from galclust.classify.labels import class_labels, positive_class
from galclust.classify.survey import MIN_COVERAGE
from galclust.errors import GalclustWarning, InputError
from galclust.options import ClassifyOptions
from galclust.pipeline import (
    StagePlan,
    _adopt,
    _checkpoints,
    _inputs,
    _key,
    find_checkpoint,
    labels_fingerprint,
    write_checkpoint,
)
from galclust.store.results import RunWriter

__all__ = ["colour_magnitude", "evaluate_split", "plan_classify", "run_classify_stage",
           "split_labels", "stored_report", "write_pictures"]

log = logging.getLogger(__name__)

MODEL_FILE, CARD_FILE = "model.pkl", "model.json"
EVALUATION_TABLES = ("confusion", "per_class", "by_region", "reliability", "summary")


def products_of(name: str) -> list[str]:
    """Every product of the classification ``name``."""
    base = f"classify/{name}"
    return [base, f"{base}/model", *(f"{base}/{t}" for t in EVALUATION_TABLES)]


def split_labels(labels: pd.DataFrame, test_fraction: float, random_state: int
                 ) -> dict[int, str]:
    """id -> ``"train"`` / ``"test"``: a stratified hold-out of the labelled sources."""
    rng = np.random.default_rng(random_state)
    out: dict[int, str] = {}
    for _, group in labels.groupby("label", sort=True):
        ids = group["id"].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        n_test = int(round(test_fraction * len(ids)))
        out.update({int(i): "test" for i in ids[:n_test]})
        out.update({int(i): "train" for i in ids[n_test:]})
    return out


def _check_split(labels: pd.DataFrame, options: ClassifyOptions) -> None:
    counts = labels["label"].value_counts()
    train = (counts * (1 - options.test_fraction)).round().astype(int)
    few = train[train < defaults.MIN_EXAMPLES]
    if len(few):
        text = ", ".join(f"{k!r}: {counts[k]}" for k in few.index)
        raise InputError(
            f"{options.labels}: after holding out test_fraction={options.test_fraction} for "
            f"evaluation, class(es) {text} keep fewer than {defaults.MIN_EXAMPLES} training "
            "examples; label more sources or lower --test-fraction (0 trains on all).")


def plan_classify(inputs: Any, options: ClassifyOptions) -> tuple[StagePlan, pd.DataFrame | None]:
    """What the classification stage must do, and the checked labels (None when skipped)."""
    if options.labels is None:
        return StagePlan("classify", "", "skip", reason=(
            "no classification labels (the last published classification, if any, is kept): "
            "give --class-labels FILE --class-column COLUMN (or labels and column in the "
            "settings file's [classify] table)")), None
    from galclust.store.tables import read_table

    table = read_table(options.labels, what="classification labels")
    labels = class_labels(table, options.column, inputs.catalog["id"].to_numpy(),
                          source=options.labels)
    _check_split(labels, options)
    missing = [c for c in options.feature_columns if c not in inputs.catalog.columns]
    if missing:
        raise InputError(f"--class-features: the catalog has no column(s) {missing}.")
    if options.model == "cnn" and not torch_available():
        raise InputError(f"model='cnn' needs PyTorch: {defaults.CNN_EXTRA}.")
    bands = [str(b) for b in inputs.cube["band"].values]
    model_options = {**options.kwargs(), "name": None, "features": options.feature_columns}
    if options.model != "features":  # a new network retrains once; a feature model stays
        model_options["network"] = defaults.NETWORK
    model_key = _key("classify-model", labels_fingerprint(labels), model_options, bands)
    key = _key("classify", model_key, _inputs(inputs.cube, ("sci", "err", "weight",
                                                           "catalog")))
    cp = find_checkpoint(inputs.results, "classify", key)
    if cp is not None and cp.get("name") == options.product:
        return StagePlan("classify", key, "reuse", cp, model_key), labels
    older = next((c for c in _checkpoints(inputs.results, "classify")
                  if c.get("model_key") == model_key and c.get("name") == options.product),
                 None)
    if older is not None:
        return StagePlan("classify", key, "predict", older, model_key), labels
    return StagePlan("classify", key, "compute", None, model_key), labels


def colour_magnitude(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (first minus second band) and magnitude (second band) of centred cutouts:
    total asinh magnitudes measured on the cutouts (instrumental zero point)."""
    from galclust.classify.features import cutout_features

    f = cutout_features(stamps)
    return (f["mag_tot_0"] - f["mag_tot_1"]).to_numpy(), f["mag_tot_1"].to_numpy()


def stored_report(res: Any, name: str) -> Any:
    """The evaluation of classification ``name`` stored in a published run
    (a ClassificationReport), or None when nothing was held out."""
    from galclust.evaluation.classify import ClassificationReport

    frames = {t: res.table(f"classify/{name}/{t}") for t in EVALUATION_TABLES
              if f"classify/{name}/{t}" in res.products}
    return ClassificationReport.from_frames(frames) if "confusion" in frames else None


def evaluate_split(model: SourceClassifier, stamps: np.ndarray, y: np.ndarray,
                   features: pd.DataFrame | None = None, *,
                   reference: np.ndarray | None = None) -> Any:
    """The research's evaluation of ``model`` on held-out cutouts (a ClassificationReport).

    Colour regions (blue cloud, red sequence, red shoulder) use the first two
    bands; the red sequence is fitted on ``reference`` (every labelled cutout)
    when given, so a small test set still has regions.
    """
    from galclust.evaluation.classify import colour_regions, evaluate

    proba = model.predict_proba(stamps, features=features)
    pred = model.classes_[np.argmax(proba, axis=1)]
    regions = None
    if stamps.shape[1] >= 2:
        try:
            _, rel = colour_regions(*colour_magnitude(stamps if reference is None
                                                      else reference))
            regions, _ = colour_regions(*colour_magnitude(stamps), sequence=(
                rel["intercept"], rel["slope"], rel["scatter"]))
        except InputError as exc:  # too few red sources to fit a sequence
            log.info("no colour regions: %s", exc)
    return evaluate(y, pred, proba, classes=list(model.classes_), regions=regions,
                    positive=positive_class(model.classes_))


def _train(inputs: Any, run: RunWriter, plan: StagePlan, options: ClassifyOptions,
           labels: pd.DataFrame, client: Any) -> tuple[SourceClassifier, dict[str, Any],
                                                     dict[int, str]]:
    from galclust.classify.survey import labelled_cutouts
    from galclust.progress import Progress

    split = split_labels(labels, options.test_fraction, options.random_state)
    stamps, coverage, feats = labelled_cutouts(inputs.cube, inputs.catalog, labels["id"],
                                               size=options.size,
                                               columns=options.feature_columns, client=client)
    off = coverage < MIN_COVERAGE
    if off.any():  # cutouts mostly off the mosaic would teach the model padding
        warnings.warn(f"{options.labels}: {int(off.sum())} labelled source(s) have less than "
                      f"{MIN_COVERAGE:.0%} of their cutout on the data and are not trained on "
                      f"(ids {labels['id'][off].head(10).tolist()}).", GalclustWarning,
                      stacklevel=2)
        labels, stamps = labels[~off].reset_index(drop=True), stamps[~off]
        feats = None if feats is None else feats[~off].reset_index(drop=True)
        kept = set(labels["id"].tolist())
        split = {i: v for i, v in split.items() if i in kept}
    y = labels["label"].to_numpy()
    train = np.array([split[int(i)] == "train" for i in labels["id"]])
    model = SourceClassifier(options.model, random_state=options.random_state,
                             epochs=options.epochs)
    sub = None if feats is None else feats[train].reset_index(drop=True)
    with Progress(options.epochs, what="epochs", desc=f"train {options.product}") as bar:
        model.fit(stamps[train], y[train], features=sub,
                  progress=lambda epoch, n, info: bar.update(1))
    card: dict[str, Any] = {"name": options.product, "model_id": plan.band_key[:16],
                            "options": options.kwargs(), "labels": options.labels,
                            "n_labelled": int(len(labels)), "n_train": int(train.sum()),
                            "n_test": int((~train).sum()), **model.describe()}
    if (~train).any():
        test_feats = None if feats is None else feats[~train].reset_index(drop=True)
        report = evaluate_split(model, stamps[~train], y[~train], test_feats, reference=stamps)
        card["metrics"] = report.summary
        frames = report.to_frames()
        for table in EVALUATION_TABLES:
            frame = frames.get(table)
            if table == "summary" and frame is None:
                frame = pd.DataFrame([report.summary])
            if frame is not None:
                run.write_table(f"classify/{options.product}/{table}", frame)
    run.write_files(f"classify/{options.product}/model", {
        MODEL_FILE: model.to_bytes(),
        CARD_FILE: json.dumps(card, indent=1, default=str).encode()})
    return model, card, split


def run_classify_stage(inputs: Any, run: RunWriter, plan: StagePlan,
                       options: ClassifyOptions, labels: pd.DataFrame, *,
                       client: Any = None) -> dict[str, Any]:
    """Carry out a classification plan into ``run``; the checkpoint is written last."""
    from galclust.classify.survey import classification_table, predict_catalog

    t0 = time.perf_counter()
    name = options.product
    for product in products_of(name):  # inherited from the last run: not this model's
        run.products.pop(product, None)
    if plan.action == "reuse":
        _adopt(run, plan)
        return {"action": "reuse", "from_run": plan.checkpoint["run"], "name": name,
                "seconds": time.perf_counter() - t0}
    if plan.action == "predict":
        cp = plan.checkpoint
        # adopted first: the paths are checked and the files are this run's own
        run.adopt({k: v for k, v in cp["products"].items() if k != f"classify/{name}"})
        model = SourceClassifier.from_bytes(run.file(f"classify/{name}/model", MODEL_FILE))
        card = json.loads(run.file(f"classify/{name}/model", CARD_FILE))
        # the same labels and options: the same hold-out the stored model was evaluated on
        split = split_labels(labels, options.test_fraction, options.random_state)
    else:
        model, card, split = _train(inputs, run, plan, options, labels, client)
    proba = predict_catalog(inputs.cube, inputs.catalog, model, size=options.size,
                            columns=options.feature_columns, client=client)
    table = classification_table(proba, model.classes_, model_id=card["model_id"],
                                 labels=labels, split=split or None)
    run.write_table(f"classify/{name}", table)
    written = [p for p in products_of(name) if p in run.products]
    write_checkpoint(run, "classify", plan.key, written, model_key=plan.band_key, name=name)
    counts = table["class"].value_counts().to_dict()
    return {"action": plan.action, "name": name, "model": card["model"],
            "reason": card.get("reason"), "model_id": card["model_id"],
            "sources": int(len(table)), "classes": {str(k): int(v) for k, v in counts.items()},
            **{k: card.get("metrics", {}).get(k) for k in ("accuracy", "balanced_accuracy")
               if k in card.get("metrics", {})},
            "seconds": time.perf_counter() - t0}


def write_pictures(store: str, results: str, run_id: str, name: str, folder: str, *,
                   settings: ClassifyOptions, learning: bool = False) -> list[str]:
    """The evaluation's pictures of classification ``name`` of a published run, as PNG.

    The confusion matrix and reliability diagram come from the stored tables;
    the colour–magnitude diagram of the held-out sources and (with
    ``learning``) the learning curve re-cut the labelled sources' stamps.
    """
    import galclust
    from galclust.classify.survey import labelled_cutouts
    from galclust.evaluation.classify import colour_regions
    from galclust.evaluation.learning import learning_curve
    from galclust.plots.classify import save_report_figures
    from galclust.store.cube import open_catalog

    res = galclust.open_results(results, run=run_id)
    report = stored_report(res, name)
    if report is None:
        return []
    table = res.table(f"classify/{name}")
    labelled = table[table["label"].notna()].sort_values("id")
    cube, catalog = galclust.open_cube(store), open_catalog(store)
    stamps, _, _ = labelled_cutouts(cube, catalog, labelled["id"], size=settings.size)
    cmd = regions = None
    test = (labelled["split"] == "test").to_numpy()
    if stamps.shape[1] >= 2 and test.any():
        colour, mag = colour_magnitude(stamps)
        try:
            regions, relation = colour_regions(colour, mag)
        except InputError as exc:  # too few red sources for a sequence: no diagram
            log.info("no colour-magnitude diagram: %s", exc)
            regions = None
    if regions is not None:
        bands = [str(b) for b in cube["band"].values]
        cmd = {"colour": colour[test], "magnitude": mag[test],
               "y_true": labelled["label"].to_numpy()[test],
               "y_pred": labelled["class"].to_numpy()[test], "regions": regions[test],
               "relation": relation,
               "colour_label": f"{bands[0]} - {bands[1]} [asinh mag, instrumental]",
               "magnitude_label": f"{bands[1]} [asinh mag, instrumental]"}
    curve = None
    if learning:
        train = (labelled["split"] == "train").to_numpy()
        model = SourceClassifier(settings.model, random_state=settings.random_state,
                                 epochs=settings.epochs)
        curve = learning_curve(model, stamps[train], labelled["label"].to_numpy()[train],
                               random_state=settings.random_state)
    options = {"model": settings.model, "name": name}
    return save_report_figures(report, folder.rstrip("/") + "/", curve=curve, cmd=cmd,
                               run_id=run_id, options=options)
