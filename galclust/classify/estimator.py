""":class:`SourceClassifier`: any labelled property of sources, learnt from their cutouts.

Two models behind one scikit-learn estimator:

- ``"cnn"`` — a residual network sized for CPUs (:mod:`galclust.classify.cnn`,
  PyTorch from the ``[cnn]`` extra) trained on the pixels with dihedral
  augmentation, early stopping and a temperature fitted on a validation split;
- ``"features"`` — gradient boosting (scikit-learn) on photometry and
  morphology measured on the cutouts (:mod:`galclust.classify.features`),
  a PCA embedding of the stamps and any catalog columns given, with
  probabilities calibrated by cross-validated sigmoid fits.

``model="auto"`` takes the CNN when torch is installed and every class has at
least ``min_cnn_examples`` labelled examples (a network needs them), otherwise
the feature model; the choice and its reason are kept in ``model_`` and
``model_reason_``. Every check of the input runs before any training.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from galclust.catalog.scaling import asinh_scale, band_noise, bin_stamps, border_noise
from galclust.classify import defaults
from galclust.classify.features import check_cutouts, cutout_features, feature_names
from galclust.errors import GalclustWarning, InputError, check_choice

__all__ = ["SourceClassifier", "check_labels", "torch_available"]

_FORMAT = "galclust-source-classifier/1"


def torch_available() -> bool:
    """Whether PyTorch (the ``[cnn]`` extra) can be imported."""
    return importlib.util.find_spec("torch") is not None


def check_labels(y: Any, n: int, *, min_examples: int = defaults.MIN_EXAMPLES,
                 argument: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Classes and integer codes of ``y``, refused when it cannot train a classifier.

    Raises
    ------
    InputError
        Wrong length, missing labels, a single class, or a class with fewer than
        ``min_examples`` examples (naming it and its count).
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise InputError(f"{argument} must hold one label per cutout: {n} cutouts, "
                         f"{argument} has shape {y.shape}.")
    missing = pd.isna(y)
    if missing.any():
        raise InputError(f"{argument}: {int(missing.sum())} label(s) missing (positions "
                         f"{np.flatnonzero(missing)[:10].tolist()}); drop those sources.")
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise InputError(f"{argument}: every label is {classes[0]!r}; a classifier needs at "
                         "least two classes.")
    few = [(c, k) for c, k in zip(classes.tolist(), counts.tolist(), strict=True)
           if k < min_examples]
    if few:
        text = ", ".join(f"{c!r}: {k}" for c, k in few)
        raise InputError(f"{argument}: too few examples of class(es) {text}; each class needs "
                         f"at least {min_examples} (label more, or merge rare classes).")
    return classes, codes.astype(np.int64)


class SourceClassifier(ClassifierMixin, BaseEstimator):
    """Classify sources from their multi-band cutouts (a CNN or a feature model).

    Parameters
    ----------
    model : {"auto", "cnn", "features"}
        See the module docstring.
    random_state : int
        Seed of every random choice (splits, initialisation, augmentation):
        the same data and seed give the same model.
    epochs : int
        Upper bound of CNN epochs (early stopping usually ends sooner).
    input_size : int
        Side (pixels) the CNN resamples each cutout to.
    width : int
        Channels of the CNN's first stage (doubled at each of its stages).
    patience : int
        CNN epochs without validation improvement before stopping.
    centred : bool
        The CNN knows where the cutout's centre is (a radius channel, a
        centre-weighted pool, aperture magnitudes and colours in its head; see
        :mod:`galclust.classify.resnet`). False: a plain ResNet with a global
        average pool, which confuses a faint source with a brighter neighbour.
    threads : int, optional
        Threads used while training and predicting (restored afterwards);
        default ``OMP_NUM_THREADS`` when set, else every core. Set it after
        fitting (``set_params(threads=1)``) to predict on one core.
    tta : bool
        CNN predictions average the 8 rotations and flips of each cutout
        (dihedral test-time augmentation): exactly invariant to them, at 8x
        the cost (~95 against ~500 cutouts per second per core at 64 px).
        Off by default: training already augments with the same group, and
        each mode has its own calibrated temperature.
    n_components : int
        PCA components of the stamps added to the feature model's inputs.
    min_examples : int
        Fewest examples of each class to train at all.
    min_cnn_examples : int
        Fewest examples of each class for ``model="auto"`` to take the CNN.

    Attributes
    ----------
    classes_ : ndarray
        The classes, sorted.
    model_ : str
        ``"cnn"`` or ``"features"``: the model fitted.
    model_reason_ : str
        Why that model was chosen.
    cnn_ : FittedCNN or None
        The trained network (its ``history`` holds the per-epoch losses).
    features_model_ : CalibratedClassifierCV or None
    feature_names_ : list of str
    cutout_shape_ : tuple
        (band, y, x) of the training cutouts; prediction requires the same.
    fit_seconds_ : float
    """

    def __init__(self, model: str = defaults.MODEL, *, random_state: int = 0,
                 epochs: int = defaults.EPOCHS, input_size: int = defaults.INPUT_SIZE,
                 width: int = 16, patience: int = 10, centred: bool = True,
                 threads: int | None = None, tta: bool = False,
                 n_components: int = 8,
                 min_examples: int = defaults.MIN_EXAMPLES,
                 min_cnn_examples: int = defaults.MIN_CNN_EXAMPLES) -> None:
        self.model = model
        self.random_state = random_state
        self.epochs = epochs
        self.input_size = input_size
        self.width = width
        self.patience = patience
        self.centred = centred
        self.threads = threads
        self.tta = tta
        self.n_components = n_components
        self.min_examples = min_examples
        self.min_cnn_examples = min_cnn_examples

    # ------------------------------------------------------------------ fitting
    def _threads(self) -> int:
        if self.threads is not None:
            return int(self.threads)
        env = os.environ.get("OMP_NUM_THREADS", "")
        return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)

    def _choose(self, counts: np.ndarray) -> tuple[str, str]:
        check_choice("model", self.model, defaults.MODELS)
        has_torch = torch_available()
        if self.model == "cnn":
            if not has_torch:
                raise InputError("model='cnn' needs PyTorch, which is not installed: "
                                 f"{defaults.CNN_EXTRA}; or use model='features'.")
            return "cnn", "asked for"
        if self.model == "features":
            return "features", "asked for"
        if not has_torch:
            return "features", f"torch is not installed ({defaults.CNN_EXTRA} for the CNN)"
        if counts.min() < self.min_cnn_examples:
            return "features", (f"the smallest class has {int(counts.min())} examples; the "
                                f"CNN needs at least {self.min_cnn_examples} of each")
        return "cnn", (f"torch is installed and every class has >= {self.min_cnn_examples} "
                       "examples")

    def fit(self, X: Any, y: Any, *, features: Any = None,
            progress: Callable[[int, int, dict], None] | None = None) -> SourceClassifier:
        """Train on labelled cutouts.

        Parameters
        ----------
        X : array_like, shape (source, band, y, x)
            Cutouts centred on their sources, all of one size.
        y : array_like, shape (source,)
            Labels (binary or multi-class; any hashable values).
        features : DataFrame or array, shape (source, k), optional
            Catalog columns for the feature model (the CNN ignores them).
        progress : callable, optional
            ``progress(epoch, n_epochs, info)`` after each CNN epoch.

        Returns
        -------
        self

        Raises
        ------
        InputError
            Before any training: cutouts not 4-D, of mixed sizes or all-NaN; a
            single class or too few examples of one; ``model="cnn"`` without
            torch.
        """
        t0 = time.perf_counter()
        X = check_cutouts(X, argument="X")
        self.classes_, codes = check_labels(y, len(X), min_examples=self.min_examples)
        counts = np.bincount(codes, minlength=len(self.classes_))
        extra = _catalog_columns(features, len(X))
        self.model_, self.model_reason_ = self._choose(counts)
        self.cutout_shape_ = tuple(X.shape[1:])
        self.n_features_in_ = int(np.prod(self.cutout_shape_))
        self.cnn_ = self.features_model_ = None
        self.extra_columns_ = None if extra is None else list(extra.columns)
        if self.model_ == "cnn":
            from galclust.classify.cnn import CNNConfig, fit_cnn

            config = CNNConfig(input_size=self.input_size, width=self.width, epochs=self.epochs,
                               patience=self.patience, centred=self.centred,
                               threads=self._threads())
            if extra is not None:
                warnings.warn(f"features: the CNN ({self.model_reason_}) does not use catalog "
                              "columns; model='features' does.", GalclustWarning, stacklevel=2)
                self.extra_columns_ = None
            self.cnn_ = fit_cnn(X, codes, n_classes=len(self.classes_), config=config,
                                random_state=self.random_state, progress=progress)
        else:
            self._fit_features(X, codes, extra)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _embedding_input(self, X: np.ndarray) -> np.ndarray:
        scaled = asinh_scale(X, self.noise_)
        factor = max(1, min(X.shape[2], X.shape[3]) // 16)
        binned = bin_stamps(scaled, factor)
        return binned.reshape(len(X), -1)

    def _feature_matrix(self, X: np.ndarray, extra: pd.DataFrame | None) -> np.ndarray:
        parts = [cutout_features(X).to_numpy(np.float64)]
        if self.pca_ is not None:
            parts.append(self.pca_.transform(self._embedding_input(X)))
        if extra is not None:
            parts.append(extra.to_numpy(np.float64))
        return np.column_stack(parts)

    def _fit_features(self, X: np.ndarray, codes: np.ndarray,
                      extra: pd.DataFrame | None) -> None:
        with threadpool_limits(self._threads()):
            self.noise_ = band_noise(border_noise(X))
            self.pca_ = None
            k = int(min(self.n_components, len(X) - 1, self.n_features_in_))
            if k >= 1:
                self.pca_ = PCA(n_components=k, random_state=self.random_state).fit(
                    self._embedding_input(X))
            F = self._feature_matrix(X, extra)
            self.feature_names_ = [*feature_names(X.shape[1]),
                                   *(f"pca_{i}" for i in range(k if self.pca_ else 0)),
                                   *(self.extra_columns_ or [])]
            n_cv = int(min(3, np.bincount(codes).min()))
            # a leaf of 20 (scikit-learn's default) cannot split a calibration fold of a
            # small label set (~13 of 20 labels): every prediction would be the prior
            leaf = int(max(2, min(20, len(codes) * (max(n_cv, 2) - 1) // max(n_cv, 2) // 8)))
            boost = HistGradientBoostingClassifier(
                max_iter=300, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
                min_samples_leaf=leaf, class_weight="balanced", random_state=self.random_state)
            self.features_model_ = CalibratedClassifierCV(boost, method="sigmoid",
                                                          cv=max(n_cv, 2)).fit(F, codes)

    # ------------------------------------------------------------------ prediction
    def _check_predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = check_cutouts(X, argument="X")
        if tuple(X.shape[1:]) != self.cutout_shape_:
            want = "x".join(map(str, self.cutout_shape_))
            raise InputError(f"X: cutouts are {'x'.join(map(str, X.shape[1:]))} (band x y x x) "
                             f"but the model was trained on {want}; cut them at that size.")
        return X

    def predict_proba(self, X: Any, *, features: Any = None,
                      threads: int | None = None) -> np.ndarray:
        """Calibrated class probabilities, columns in the order of ``classes_``.

        ``threads`` overrides the estimator's for this call (a Dask task uses 1).
        """
        X = self._check_predict(X)
        threads = threads or self._threads()
        if self.model_ == "cnn":
            return self.cnn_.predict_proba(X, tta=self.tta, threads=threads)
        extra = _catalog_columns(features, len(X), self.extra_columns_)
        with threadpool_limits(threads):
            return self.features_model_.predict_proba(self._feature_matrix(X, extra))

    def predict(self, X: Any, *, features: Any = None) -> np.ndarray:
        """The most probable class of each cutout."""
        return self.classes_[np.argmax(self.predict_proba(X, features=features), axis=1)]

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if state.get("cnn_") is not None:  # tensors as bytes: no live torch module pickled
            state["cnn_"] = ("FittedCNN.bytes", state["cnn_"].to_bytes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        cnn = state.get("cnn_")
        if isinstance(cnn, tuple) and cnn and cnn[0] == "FittedCNN.bytes":
            from galclust.classify.cnn import FittedCNN

            state["cnn_"] = FittedCNN.from_bytes(cnn[1])
        super().__setstate__(state)

    def to_bytes(self) -> bytes:
        """The fitted estimator as bytes (:meth:`from_bytes` reads them back)."""
        check_is_fitted(self, "model_")
        buf = io.BytesIO()
        pickle.dump({"format": _FORMAT, "estimator": self}, buf,
                    protocol=pickle.HIGHEST_PROTOCOL)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SourceClassifier:
        """A fitted estimator written by :meth:`to_bytes` (only load models you wrote).

        Raises
        ------
        InputError
            If ``data`` is not a galclust classifier.
        """
        try:
            doc = pickle.loads(data)  # noqa: S301 - the results store's own model
        except Exception as exc:
            raise InputError(f"not a galclust classifier model ({exc}).") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise InputError("not a galclust classifier model (unknown format).")
        return doc["estimator"]

    def describe(self) -> dict[str, Any]:
        """What was fitted: model, reason, classes, shape, timing and (CNN) training history."""
        check_is_fitted(self, "model_")
        out: dict[str, Any] = {
            "model": self.model_, "reason": self.model_reason_,
            "classes": [str(c) for c in self.classes_], "cutout_shape": list(self.cutout_shape_),
            "fit_seconds": round(float(self.fit_seconds_), 3), "params": self.get_params()}
        if self.cnn_ is not None:
            out.update(epochs_run=len(self.cnn_.history), best_epoch=int(self.cnn_.best_epoch),
                       n_parameters=int(self.cnn_.n_parameters),
                       temperature=float(self.cnn_.temperature))
        else:
            out.update(n_features=len(self.feature_names_))
        return out


def _catalog_columns(features: Any, n: int, names: list[str] | None = None
                     ) -> pd.DataFrame | None:
    """Catalog columns as a numeric DataFrame of ``n`` rows (checked against ``names``)."""
    if features is None:
        if names:
            raise InputError(f"features: the model was trained with catalog columns {names}; "
                             "give them for prediction too.")
        return None
    df = features if isinstance(features, pd.DataFrame) else pd.DataFrame(np.asarray(features))
    if len(df) != n:
        raise InputError(f"features has {len(df)} rows for {n} cutouts.")
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    if names is not None and list(df.columns) != names:
        raise InputError(f"features: columns {list(df.columns)} differ from those the model "
                         f"was trained with ({names}).")
    try:
        return df.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"features: every catalog column must be numeric ({exc}).") from None
