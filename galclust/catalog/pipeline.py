"""From cutouts, ids and labels to the per-source spurious table (in memory).

:func:`run_flagging` is what :func:`galclust.flag_spurious` runs;
:func:`fit_models` and :func:`predict_columns` are shared with the survey
mapping (:mod:`galclust.catalog.survey`), which computes the embedding and the
features chunk by chunk and predicts block by block. :func:`label_summary` and
:func:`warn_label_conflicts` tell both whether the model agrees with the labels.
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

from galclust.catalog import defaults
from galclust.catalog.classifier import ESTIMATORS, SpuriousClassifier
from galclust.catalog.embedding import NONLINEAR, StampEmbedding, embed_stamps, nonlinear_map
from galclust.catalog.features import feature_matrix, neighbour_features, spike_features
from galclust.catalog.labels import check_label_ids, normalise_labels
from galclust.catalog.model import MIN_LABELS, SpuriousModel
from galclust.catalog.schema import spurious_schema, to_frame
from galclust.errors import (
    GalclustWarning,
    InputError,
    LabelConflictWarning,
    check_choice,
    did_you_mean,
)

__all__ = ["METHODS", "CatalogEmbedding", "SurveyCutouts", "assemble_table", "catalog_flux", "component_summary", "FittedFlags", "FlagOptions", "align_labels", "fit_models",
           "label_summary", "predict_columns", "run_flagging", "single_thread_blas",
           "warn_label_conflicts"]

#: "mixture": the mixture over the embedding alone; "combined": over the
#: embedding plus the interpretable features; "classifier": a classifier on
#: features + embedding trained on the labelled subset.
METHODS = ("combined", "mixture", "classifier")


@dataclass(frozen=True)
class FlagOptions:
    """Settings of the spurious flagging (validated on construction).

    See :func:`galclust.flag_spurious` for their meaning.
    """

    method: str = defaults.METHOD
    embedding: str = defaults.EMBEDDING
    n_pca: int = 16
    bin: int = 5
    softening: float = 3.0
    noise: Any = None
    n_components: int | str = "bic"
    max_components: int = 20
    threshold: float = defaults.THRESHOLD
    prior_strength: float = 2.0
    local_prior: int = 10
    mixture_pcs: int | None = 4
    flag_rule: str = "component"
    classifier: str = "forest"
    target_recall: float = 0.97
    min_labels: int = MIN_LABELS
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
        for name in ("n_pca", "bin", "max_components", "n_jobs", "min_labels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
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
        local_prior=opts.local_prior, min_labels=opts.min_labels,
        flag_rule=opts.flag_rule, random_state=opts.random_state,
    ).fit(space, y, reason=reason)
    clf_space = np.hstack([Xf, components])
    mu, sd = clf_space.mean(axis=0), clf_space.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    spur = y == 1
    ref = ((clf_space[spur] - mu) / sd, reason[spur], mu, sd)
    classifier = None
    if not mixture.calibrated_:
        n_rel, n_sp = mixture.n_labelled_reliable_, mixture.n_labelled_spurious_
        warnings.warn(
            f"too few labels: {n_rel} labelled reliable and {n_sp} labelled spurious "
            f"source(s), and the spurious model needs at least {opts.min_labels} of each "
            "(reliable = 1 and reliable = 0 in the labels table), so it cannot be "
            "calibrated: p_spurious is NaN (unknown) and flag is null for every source; "
            "the table still holds the embedding, mixture components and features. "
            "Label more sources.", GalclustWarning, stacklevel=3)
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


def label_summary(table: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """Counts of a spurious table's flags and of the labelled sources the model contradicts.

    Parameters
    ----------
    table : DataFrame
        ``id``, ``p_spurious`` and ``flag`` (nullable boolean: null = unknown).
    y : ndarray (n,)
        Labels aligned to the rows (:func:`align_labels`): 1 spurious,
        0 reliable, -1 unlabelled.

    Returns
    -------
    dict
        Plain ints, bools and lists (JSON-ready): ``n_sources``,
        ``n_flagged``, ``n_unknown`` (flag null), ``calibrated`` (any
        ``p_spurious`` known), ``n_labelled``, ``n_labelled_reliable``,
        ``n_labelled_spurious``, ``contradicted_reliable`` (labelled reliable
        but flagged), ``contradicted_spurious`` (labelled spurious but not
        flagged; an unknown flag contradicts nothing) and the ids of both
        (``contradicted_reliable_ids``, ``contradicted_spurious_ids``).
    """
    y = np.asarray(y).reshape(-1)
    flag = table["flag"].astype("boolean")
    flagged = flag.fillna(False).to_numpy(bool)
    cleared = (~flag).fillna(False).to_numpy(bool)
    ids = table["id"].to_numpy(np.int64)
    bad_rel, bad_sp = (y == 0) & flagged, (y == 1) & cleared
    return {
        "n_sources": len(table), "n_flagged": int(flagged.sum()),
        "n_unknown": int(flag.isna().sum()),
        "calibrated": bool(table["p_spurious"].notna().any()),
        "n_labelled": int((y >= 0).sum()), "n_labelled_reliable": int((y == 0).sum()),
        "n_labelled_spurious": int((y == 1).sum()),
        "contradicted_reliable": int(bad_rel.sum()),
        "contradicted_spurious": int(bad_sp.sum()),
        "contradicted_reliable_ids": ids[bad_rel].tolist(),
        "contradicted_spurious_ids": ids[bad_sp].tolist(),
    }


def _some_ids(ids: list[int], most: int = 10) -> str:
    """``"id 7"`` or ``"ids 1, 2, 3 and 4 more"``."""
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return f"id{'s' if len(ids) > 1 else ''} " + ", ".join(map(str, ids[:most])) + more


def warn_label_conflicts(summary: dict[str, Any], *, stacklevel: int = 3) -> None:
    """Warn once if the model contradicts labels, naming the sources.

    Parameters
    ----------
    summary : dict
        From :func:`label_summary`.
    stacklevel : int
        Passed to :func:`warnings.warn`.

    Warns
    -----
    LabelConflictWarning
        If sources labelled reliable are flagged or sources labelled spurious
        are not (the first 10 ids of each; ``summary`` holds them all).
    """
    k, j = summary["contradicted_reliable"], summary["contradicted_spurious"]
    parts = []
    if k:
        parts.append(f"{k} source{'s' if k > 1 else ''} labelled reliable "
                     f"{'are' if k > 1 else 'is'} flagged spurious by the model: "
                     + _some_ids(summary["contradicted_reliable_ids"]))
    if j:
        parts.append(f"{j} source{'s' if j > 1 else ''} labelled spurious "
                     f"{'are' if j > 1 else 'is'} not flagged by the model: "
                     + _some_ids(summary["contradicted_spurious_ids"]))
    if not parts:
        return
    warnings.warn(
        "; ".join(parts) + "; check the labels or use more of them (or change threshold). "
        f"Of {summary['n_labelled']} labelled sources the model contradicts {k} of "
        f"{summary['n_labelled_reliable']} reliable and {j} of "
        f"{summary['n_labelled_spurious']} spurious (table.attrs['summary'] lists them).",
        LabelConflictWarning, stacklevel=stacklevel)


def single_thread_blas() -> threadpool_limits:
    """Context limiting BLAS and OpenMP to one thread per process.

    The work is parallel across Dask tasks (or small: mixtures of ~30
    dimensions); nested multi-threaded BLAS on a loaded 2-core machine is up to
    20x slower than single-threaded (measured: a 24-d GaussianMixture fit 7.4 s
    vs 0.4 s, a 1272 x 800 SVD 21 s vs 0.9 s; k-means' OpenMP likewise).
    """
    return threadpool_limits(limits=1)


def run_flagging(cutouts: Any, ids: Any, labels: pd.DataFrame | None,
                 opts: FlagOptions, *, embed: Any = None) -> pd.DataFrame:
    """The whole pipeline behind :func:`galclust.flag_spurious` (``embed``: how to
    embed cutouts that are not in memory, ``embed(cutouts, opts) -> StampEmbedding``)."""
    with single_thread_blas():
        return _run_flagging(cutouts, ids, labels, opts, embed)


def _run_flagging(cutouts: Any, ids: Any, labels: pd.DataFrame | None,
                  opts: FlagOptions, embed: Any) -> pd.DataFrame:
    ids64 = check_cutouts(cutouts, ids)
    y, reason = align_labels(labels, ids64)
    positions = opts.positions
    if positions is not None and not isinstance(positions, pd.DataFrame):
        raise InputError("positions must be a DataFrame with columns id, x, y, flux.")
    extra = catalog_features(positions, ids64) if positions is not None else {}
    if embed is None:
        emb = embed_stamps(np.asarray(cutouts), noise=opts.noise, softening=opts.softening,
                           bin=opts.bin, n_components=opts.n_pca,
                           random_state=opts.random_state)
    else:  # the Dask path (galclust.catalog.survey) brings its own embedding
        emb = embed(cutouts, opts)
    return table_from_embedding(emb, ids64, y, reason, opts, extra=extra)


def table_from_embedding(emb: StampEmbedding, ids: np.ndarray, y: np.ndarray,
                         reason: np.ndarray, opts: FlagOptions, *,
                         extra: dict[str, np.ndarray] | None = None,
                         positions: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Fit, predict and assemble the per-source table (schema order).

    ``table.attrs["summary"]`` holds :func:`label_summary`; sources labelled
    reliable but flagged are warned about (:func:`warn_label_conflicts`).
    """
    features = dict(emb.features)
    features.update(extra or {})
    fitted = fit_models(emb.components, features, y, reason, opts)
    cols = predict_columns(fitted, fitted.space, fitted.clf_space)
    coverage = (np.asarray(opts.coverage, dtype=np.float32) if opts.coverage is not None
                else 1.0 - np.asarray(features["zero_fraction"], dtype=np.float32))
    return assemble_table(ids, cols, fitted, emb.components, coverage, features, y,
                          positions=positions, stacklevel=7)  # flag_spurious's caller


def assemble_table(ids: np.ndarray, cols: dict[str, np.ndarray], fitted: FittedFlags,
                   components: np.ndarray, coverage: np.ndarray,
                   features: dict[str, np.ndarray], y: np.ndarray, *,
                   positions: dict[str, np.ndarray] | None = None,
                   stacklevel: int = 3) -> pd.DataFrame:
    """The per-source spurious table in schema order (the one place it is built):
    ``table.attrs["summary"]`` holds :func:`label_summary`, and sources labelled
    reliable but flagged are warned about (:func:`warn_label_conflicts`)."""
    names = ["coverage", *[k for k in features if k != "coverage"]]
    schema = spurious_schema(components.shape[1], features=names,
                             positions=positions is not None)
    columns = {"id": ids, **cols, "map_x": fitted.map2[:, 0], "map_y": fitted.map2[:, 1],
               "pc": components, "coverage": coverage, **features, **(positions or {})}
    table = to_frame(columns, schema)
    table.attrs["summary"] = label_summary(table, y)
    warn_label_conflicts(table.attrs["summary"], stacklevel=stacklevel)
    return table


def catalog_flux(catalog: pd.DataFrame, bands: list[str]) -> np.ndarray | None:
    cols = [f"flux_{b}" for b in bands if f"flux_{b}" in catalog.columns]
    if not cols:
        cols = [c for c in catalog.columns if str(c).lower().startswith("flux_")]
    if not cols:
        return None
    return np.nansum(catalog[cols].to_numpy(np.float64), axis=1)


def component_summary(fitted: FittedFlags) -> pd.DataFrame:
    """One row per mixture component: soft counts, spurious fraction, flag, reason."""
    m = fitted.mixture
    return pd.DataFrame({
        "component": np.arange(m.n_components_, dtype=np.int32),
        "weight": m.mixture_.weights_.astype(np.float64),
        "n_labelled": m.component_labelled_.astype(np.float64),
        "n_spurious": m.component_spurious_.astype(np.float64),
        "spurious_fraction": m.component_fraction_.astype(np.float64),
        "flagged": m.flagged_components_.astype(bool),
        "reason": pd.Series(m.component_reason_, dtype=object),
    })


@dataclass
class CatalogEmbedding:
    """Everything measured on a survey's cutouts, before any labels are used.

    Attributes
    ----------
    ids : ndarray (n,) int64
        In catalog order (as every other array here).
    embedding : StampEmbedding
        Linear components and stamp features.
    features : dict of str -> ndarray (n,)
        Stamp and catalog (neighbour, spike) features.
    coverage : ndarray (n,) float32
    positions : dict
        ``ra``, ``dec``, ``x``, ``y`` (NaN where the catalog lacks them).
    """

    ids: np.ndarray
    embedding: StampEmbedding
    features: dict[str, np.ndarray]
    coverage: np.ndarray
    positions: dict[str, np.ndarray]


@dataclass
class SurveyCutouts:
    """Lazy multi-band stamps of every catalog source.

    Attributes
    ----------
    stamps : dask.array.Array, shape (source, band, size, size), float32
        One chunk per spatial tile of sources.
    aux : dask.array.Array, shape (source, 2 + band), float32
        Per source: coverage fraction, aperture flux (r <= 3 px, all bands),
        median error per band.
    ids : ndarray (source,) int64
        Catalog ids in stamp order.
    x, y : ndarray (source,) float64
        Pixel positions in stamp order.
    order : ndarray (source,) int
        Row of the catalog each stamp belongs to.
    """

    stamps: Any  # dask.array.Array
    aux: Any
    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    order: np.ndarray
