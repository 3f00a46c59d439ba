"""From cutouts, ids and labels to the per-source spurious table (in memory).

:func:`run_flagging` is what :func:`galclust.flag_spurious` runs;
:func:`fit_models` and :func:`predict_columns` are shared with the survey
mapping (:mod:`galclust.catalog.survey`), which computes the embedding and the
features chunk by chunk and predicts block by block.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

from galclust.catalog.classifier import ESTIMATORS, SpuriousClassifier
from galclust.catalog.embedding import NONLINEAR, StampEmbedding, embed_stamps, nonlinear_map
from galclust.catalog.features import feature_matrix, neighbour_features, spike_features
from galclust.catalog.model import SpuriousModel
from galclust.catalog.schema import spurious_schema, to_frame
from galclust.errors import GalclustWarning, InputError, check_choice, did_you_mean
from galclust.store.labels import check_label_ids, normalise_labels

__all__ = ["METHODS", "FittedFlags", "FlagOptions", "align_labels", "fit_models",
           "predict_columns", "run_flagging", "single_thread_blas"]

#: "mixture": the mixture over the embedding alone; "combined": over the
#: embedding plus the interpretable features; "classifier": a classifier on
#: features + embedding trained on the labelled subset.
METHODS = ("combined", "mixture", "classifier")


@dataclass(frozen=True)
class FlagOptions:
    """Settings of the spurious flagging (validated on construction).

    See :func:`galclust.flag_spurious` for their meaning.
    """

    method: str = "combined"
    embedding: str = "none"
    n_pca: int = 16
    bin: int = 5
    softening: float = 3.0
    noise: Any = None
    n_components: int | str = "bic"
    max_components: int = 20
    threshold: float = 0.05
    prior_strength: float = 2.0
    local_prior: int = 10
    mixture_pcs: int | None = 4
    flag_rule: str = "component"
    classifier: str = "forest"
    target_recall: float = 0.97
    perplexity: float = 30.0
    positions: Any = field(default=None, compare=False, repr=False)
    coverage: Any = field(default=None, compare=False, repr=False)
    batch_size: int | None = None
    n_jobs: int = 1
    random_state: int | None = 0

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("embedding", self.embedding, NONLINEAR)
        check_choice("classifier", self.classifier, ESTIMATORS)
        check_choice("flag_rule", self.flag_rule, ("component", "probability"))
        for name in ("n_pca", "bin", "max_components", "n_jobs"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{name}={v!r} must be an integer >= 1.")
        if self.mixture_pcs is not None and (not isinstance(self.mixture_pcs, (int, np.integer))
                                             or self.mixture_pcs < 1):
            raise InputError(f"mixture_pcs={self.mixture_pcs!r} must be an integer >= 1 or None "
                             "(all linear components).")
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold={self.threshold!r} must be in (0, 1).")
        if self.softening <= 0:
            raise InputError(f"softening={self.softening!r} must be > 0.")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> FlagOptions:
        """Build from keyword arguments, refusing unknown ones with a suggestion."""
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in kwargs:
            if key not in valid:
                raise InputError(f"unknown option {key!r} for flag_spurious."
                                 + did_you_mean(key, valid) + f" Valid: {', '.join(valid)}.")
        return cls(**kwargs)


@dataclass
class FittedFlags:
    """The fitted models and the inputs they were fitted on (in memory).

    Attributes
    ----------
    mixture : SpuriousModel
    classifier : SpuriousClassifier or None
    space : ndarray (n, d)
        What the mixture was fitted on.
    clf_space : ndarray (n, e)
        Classifier inputs (features + linear components).
    map2 : ndarray (n, 2)
        The 2-D map (t-SNE/UMAP, or the first two components).
    labelled_reasons : tuple
        Standardised classifier inputs (m, e) and reasons (m,) of the labelled
        spurious sources, and the mean and scale used to standardise.
    """

    mixture: SpuriousModel
    classifier: SpuriousClassifier | None
    space: np.ndarray
    clf_space: np.ndarray
    map2: np.ndarray
    labelled_reasons: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def check_cutouts(cutouts: Any, ids: Any) -> np.ndarray:
    """Validate a (source, band, y, x) cutout array and its ids; return int64 ids."""
    shape = getattr(cutouts, "shape", None)
    if shape is None or len(shape) != 4:
        raise InputError("cutouts must be a (source, band, y, x) array (numpy or Dask); "
                         f"got {type(cutouts).__name__} with shape {shape}.")
    ids = np.asarray(ids).reshape(-1)
    if len(ids) != shape[0]:
        raise InputError(f"ids has {len(ids)} values but cutouts has {shape[0]} sources.")
    try:
        ids64 = ids.astype(np.int64)
    except (TypeError, ValueError):
        raise InputError("ids must be integer catalog ids.") from None
    if len(np.unique(ids64)) != len(ids64):
        vals, counts = np.unique(ids64, return_counts=True)
        raise InputError(f"ids repeat, e.g. {vals[counts > 1][:5].tolist()}; one cutout per "
                         "source.")
    if shape[0] < 2:
        raise InputError(f"need at least 2 cutouts to embed; got {shape[0]}.")
    return ids64


def align_labels(labels: pd.DataFrame | None, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels aligned to ``ids``: y (1 spurious, 0 reliable, -1 unlabelled) and reasons.

    Labelled ids absent from ``ids`` are reported (GalclustWarning), not
    dropped silently.
    """
    y = np.full(len(ids), -1, dtype=np.int8)
    reason = np.full(len(ids), "", dtype=object)
    if labels is None:
        return y, reason
    labels = normalise_labels(labels, what="labels")
    check_label_ids(labels, ids)
    pos = pd.Index(ids).get_indexer(labels["id"].to_numpy())
    ok = pos >= 0
    y[pos[ok]] = np.where(labels["reliable"].to_numpy()[ok] == 0, 1, 0)
    reason[pos[ok]] = labels["reason"].to_numpy()[ok]
    return y, reason


def catalog_features(positions: pd.DataFrame, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Neighbour and spike features from a table with id, x, y, flux."""
    need = [c for c in ("id", "x", "y", "flux") if c not in positions.columns]
    if need:
        raise InputError(f"positions needs columns id, x, y, flux; missing {need} (it has "
                         f"{[str(c) for c in positions.columns]}).")
    pos = pd.Index(positions["id"].astype("int64")).get_indexer(ids)
    if (pos < 0).any():
        raise InputError(f"positions has no row for {int((pos < 0).sum())} ids, e.g. "
                         f"{ids[pos < 0][:5].tolist()}.")
    x, y, f = (positions[c].to_numpy(np.float64)[pos] for c in ("x", "y", "flux"))
    out = neighbour_features(x, y, f)
    out["spike_score"] = spike_features(x, y, f)["spike_score"]
    return out


def fit_models(components: np.ndarray, features: dict[str, np.ndarray], y: np.ndarray,
               reason: np.ndarray, opts: FlagOptions) -> FittedFlags:
    """Fit the mixture (and the classifier) on in-memory embedding + features."""
    components = np.asarray(components, dtype=np.float64)
    map2 = nonlinear_map(components, method=opts.embedding, random_state=opts.random_state,
                         perplexity=opts.perplexity, n_jobs=opts.n_jobs)
    base = map2 if opts.embedding != "none" else components[:, :opts.mixture_pcs]
    Xf, _ = feature_matrix(features)
    space = base if opts.method == "mixture" else np.hstack([base, Xf])
    mixture = SpuriousModel(
        n_components=opts.n_components, max_components=opts.max_components,
        threshold=opts.threshold, prior_strength=opts.prior_strength,
        local_prior=opts.local_prior,
        flag_rule=opts.flag_rule, random_state=opts.random_state,
    ).fit(space, y, reason=reason)
    clf_space = np.hstack([Xf, components])
    mu, sd = clf_space.mean(axis=0), clf_space.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    spur = y == 1
    ref = ((clf_space[spur] - mu) / sd, reason[spur], mu, sd)
    classifier = None
    if not mixture.calibrated_:
        warnings.warn(
            "no labelled source is spurious, so the spurious model cannot be calibrated: "
            "the table holds the embedding, mixture components and features, with "
            "p_spurious NaN and no flags. Label some spurious sources (reliable = 0).",
            GalclustWarning, stacklevel=3)
    elif opts.method == "classifier":
        lab = y >= 0
        classifier = SpuriousClassifier(estimator=opts.classifier,
                                        target_recall=opts.target_recall, n_jobs=opts.n_jobs,
                                        random_state=opts.random_state)
        classifier.fit(clf_space[lab], y[lab])
    return FittedFlags(mixture=mixture, classifier=classifier, space=space,
                       clf_space=clf_space, map2=map2, labelled_reasons=ref)


def predict_columns(fitted: FittedFlags, space: np.ndarray, clf_space: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """component, p_spurious, flag, reason for rows of ``space`` / ``clf_space``.

    Module-level and array-in/array-out, so it can be mapped over blocks.
    """
    out = fitted.mixture.explain(space)
    if fitted.classifier is not None:
        p = fitted.classifier.predict_proba(clf_space)[:, 1]
        out["p_spurious"] = p
        out["flag"] = p >= fitted.classifier.threshold_
        out["reason"] = np.full(len(p), "", dtype=object)
    ref_x, ref_reason, mu, sd = fitted.labelled_reasons
    need = out["flag"] & (out["reason"] == "")
    named = ref_reason != ""
    if need.any() and named.any():
        # a flagged source without a component reason takes the reason of the
        # nearest labelled spurious source (standardised features + embedding)
        tree = cKDTree(ref_x[named])
        _, j = tree.query((clf_space[need] - mu) / sd)
        out["reason"][need] = ref_reason[named][j]
    return out


def single_thread_blas() -> threadpool_limits:
    """Context limiting BLAS and OpenMP to one thread per process.

    The work is parallel across Dask tasks (or small: mixtures of ~30
    dimensions); nested multi-threaded BLAS on a loaded 2-core machine is up to
    20x slower than single-threaded (measured: a 24-d GaussianMixture fit 7.4 s
    vs 0.4 s, a 1272 x 800 SVD 21 s vs 0.9 s; k-means' OpenMP likewise).
    """
    return threadpool_limits(limits=1)


def run_flagging(cutouts: Any, ids: Any, labels: pd.DataFrame | None,
                 opts: FlagOptions) -> pd.DataFrame:
    """The whole in-memory pipeline behind :func:`galclust.flag_spurious`."""
    with single_thread_blas():
        return _run_flagging(cutouts, ids, labels, opts)


def _run_flagging(cutouts: Any, ids: Any, labels: pd.DataFrame | None,
                  opts: FlagOptions) -> pd.DataFrame:
    ids64 = check_cutouts(cutouts, ids)
    y, reason = align_labels(labels, ids64)
    positions = opts.positions
    if positions is not None and not isinstance(positions, pd.DataFrame):
        raise InputError("positions must be a DataFrame with columns id, x, y, flux.")
    extra = catalog_features(positions, ids64) if positions is not None else {}
    if hasattr(cutouts, "dask"):
        from galclust.catalog.survey import embed_cutouts

        emb = embed_cutouts(cutouts, noise=opts.noise, softening=opts.softening, bin=opts.bin,
                            n_components=opts.n_pca, batch_size=opts.batch_size,
                            random_state=opts.random_state)
    else:
        emb = embed_stamps(np.asarray(cutouts), noise=opts.noise, softening=opts.softening,
                           bin=opts.bin, n_components=opts.n_pca,
                           random_state=opts.random_state)
    return table_from_embedding(emb, ids64, y, reason, opts, extra=extra)


def table_from_embedding(emb: StampEmbedding, ids: np.ndarray, y: np.ndarray,
                         reason: np.ndarray, opts: FlagOptions, *,
                         extra: dict[str, np.ndarray] | None = None,
                         positions: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Fit, predict and assemble the per-source table (schema order)."""
    features = dict(emb.features)
    features.update(extra or {})
    fitted = fit_models(emb.components, features, y, reason, opts)
    cols = predict_columns(fitted, fitted.space, fitted.clf_space)
    coverage = (np.asarray(opts.coverage, dtype=np.float32) if opts.coverage is not None
                else 1.0 - np.asarray(features["zero_fraction"], dtype=np.float32))
    names = ["coverage", *[k for k in features if k != "coverage"]]
    schema = spurious_schema(emb.components.shape[1], features=names,
                             positions=positions is not None)
    columns = {"id": ids, **cols, "map_x": fitted.map2[:, 0], "map_y": fitted.map2[:, 1],
               "pc": emb.components, "coverage": coverage, **features, **(positions or {})}
    return to_frame(columns, schema)
