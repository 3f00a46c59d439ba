"""A small residual CNN that classifies multi-band cutouts (PyTorch, CPU).

Cutouts ``(n, band, y, x)`` are normalised (a robust centre per band and, by
default, one robust scale shared by all bands, fitted on the training cutouts,
then ``asinh((x - centre) / scale)``; a common scale keeps the colours: in the
log regime of asinh the band differences are flux ratios), resampled to
``input_size`` x ``input_size`` (area average, bilinear when upsampling) and
fed to a ResNet of BasicBlocks that knows where the cutout's centre is (a radius
channel, a centre-weighted pool and aperture photometry; see
:mod:`galclust.classify.resnet`). Training augments with the dihedral group D4
and small shifts, stops early on the validation loss and calibrates one
temperature on the validation set; prediction averages the softmax over the 8
dihedral transforms. Everything is in memory: a model serialises to bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp
from torch import nn

from galclust.classify.resnet import (
    _augment,
    _build_net,
    _forward,
    _preprocess,
    _robust_stats,
    _torch_env,
)
from galclust.errors import InputError

__all__ = ["CNNConfig", "FittedCNN", "fit_cnn"]

_FORMAT = "galclust.classify.cnn"
_VERSION = 2
_READS = (1, 2)   # version 1: the plain ResNet (no ``centred`` in its config)
_LOG_T_BOUNDS = (math.log(0.1), math.log(10.0))


@dataclass(frozen=True)
class CNNConfig:
    """Architecture and training settings of :func:`fit_cnn`.

    Parameters
    ----------
    input_size : int
        Cutouts are resampled to ``input_size`` x ``input_size`` pixels.
    width : int
        Channels of the first stage; each further stage doubles them.
    blocks : tuple of int
        Residual BasicBlocks per stage (stride 2 between stages).
    epochs : int
        Upper bound on the training epochs (early stopping ends sooner).
    batch_size : int
        Training batch size.
    learning_rate : float
        Peak AdamW learning rate (one-cycle: ~1 epoch warm-up, then cosine decay).
    weight_decay : float
        AdamW weight decay of the convolution and linear weights.
    patience : int
        Epochs without validation-loss improvement before stopping.
    validation_fraction : float
        Stratified validation split of the training data when no ``X_val`` is
        given; 0 trains on everything for ``epochs`` (no early stopping, T = 1).
    max_shift : int
        Largest random pixel shift (in input pixels) of the augmentation.
    threads : int
        Torch threads during fit and predict (the previous value is restored).
    common_scale : bool
        One asinh scale for all bands (the median of the per-band robust
        scales), which keeps colours; False scales each band by its own noise.
    centred : bool
        The network knows the cutout's centre: a radius input channel, a
        centre-weighted pool beside the global one, and Gaussian-aperture
        magnitudes and colours fed to a one-hidden-layer head. False is a plain
        ResNet ending in a global average pool (the network of models saved
        before version 2), which cannot tell the source from a brighter
        neighbour.
    """

    input_size: int = 64
    width: int = 16
    blocks: tuple[int, ...] = (1, 1, 1)
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 10
    validation_fraction: float = 0.2
    max_shift: int = 2
    threads: int = 2
    common_scale: bool = True
    centred: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> InputError:
            return InputError(f"CNNConfig.{name}={getattr(self, name)!r} must be {rule}.")

        def whole(v: Any, low: int) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= low

        for name, low in (("input_size", 4), ("width", 1), ("epochs", 1), ("batch_size", 2),
                          ("patience", 1), ("max_shift", 0), ("threads", 1)):
            if not whole(getattr(self, name), low):
                raise bad(name, f"a whole number >= {low}")
            object.__setattr__(self, name, int(getattr(self, name)))
        if (not isinstance(self.blocks, tuple | list) or not 1 <= len(self.blocks) <= 6
                or not all(whole(b, 1) for b in self.blocks)):
            raise bad("blocks", "a tuple of 1 to 6 whole numbers >= 1 (blocks per stage), "
                      "e.g. (1, 1, 1)")
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        for name in ("common_scale", "centred"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise bad(name, "True or False")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if 2 * self.max_shift >= self.input_size:
            raise bad("max_shift", f"less than half of input_size={self.input_size}")
        for name, low, high in (("learning_rate", 0.0, math.inf), ("weight_decay", 0.0, math.inf),
                                ("validation_fraction", 0.0, 1.0)):
            v = getattr(self, name)
            if (isinstance(v, bool) or not isinstance(v, int | float | np.number)
                    or not low <= v < high or (name == "learning_rate" and v == 0)):
                raise bad(name, f"a number in {'(' if name == 'learning_rate' else '['}{low}, "
                          f"{high})")
            object.__setattr__(self, name, float(v))


def _check_X(X: Any, name: str, n_bands: int | None = None) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 4:
        raise InputError(f"{name} must be a 4-D array (n, band, y, x); got shape {X.shape}.")
    if X.dtype.kind not in "fiu":
        raise InputError(f"{name} must hold real numbers; got dtype {X.dtype}.")
    if min(X.shape[1:]) < 1 or (n_bands is None and len(X) == 0):  # predicting on none is fine
        raise InputError(f"{name} has an empty axis (shape {X.shape}): pass at least one cutout.")
    if n_bands is not None and X.shape[1] != n_bands:
        raise InputError(f"{name} has {X.shape[1]} bands; the model was trained on {n_bands}: "
                         "pass cutouts with the same bands in the same order.")
    return X


def _check_y(y: Any, name: str, n: int, n_classes: int | None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise InputError(f"{name} must be 1-D with one label per cutout ({n}); got shape "
                         f"{y.shape}.")
    if y.dtype.kind not in "iu":
        raise InputError(f"{name} must hold integer class codes 0..K-1 (e.g. from "
                         f"pandas.factorize); got dtype {y.dtype}.")
    if n_classes is not None and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"{name} holds codes {y.min()}..{y.max()}, outside 0..{n_classes - 1} "
                         f"(n_classes={n_classes}).")
    if y.min() < 0:
        raise InputError(f"{name} holds negative codes ({y.min()}): use codes 0..K-1.")
    return y.astype(np.int64)


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    train, val = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_val = min(int(round(fraction * len(idx))), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _softmax_nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """NLL of the mean over axis 1 (transforms) of softmax(logits / T); logits (n, G, K)."""
    logp = logsumexp(log_softmax(logits / temperature, axis=2), axis=1) - math.log(logits.shape[1])
    return float(-logp[np.arange(len(y)), y].mean())


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    res = minimize_scalar(lambda lt: _softmax_nll(logits, y, math.exp(lt)),
                          bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-3})
    t = math.exp(float(res.x))
    return t if _softmax_nll(logits, y, t) <= _softmax_nll(logits, y, 1.0) else 1.0


@dataclass(eq=False)
class FittedCNN:
    """A trained CNN with its preprocessing; returned by :func:`fit_cnn`.

    Attributes
    ----------
    config : CNNConfig
        The settings it was trained with (they rebuild the network).
    n_bands, n_classes : int
        Input bands and output classes.
    centre, scale : numpy.ndarray
        Per-band normalisation ``asinh((x - centre) / scale)`` (``scale`` is the
        same for every band when ``config.common_scale``).
    state : dict
        The network's ``state_dict`` (best validation epoch).
    temperature : float
        Softmax temperature calibrated on the validation set (1 without one),
        for predictions averaged over the 8 dihedral transforms.
    temperature_single : float
        The same, for predictions without test-time augmentation.
    history : list of dict
        Per epoch: ``epoch`` (from 1), ``train_loss``, ``val_loss``,
        ``val_accuracy`` (without TTA), ``learning_rate``, ``seconds``.
    best_epoch : int
        The epoch whose weights were kept.
    n_parameters : int
        Trainable parameters of the network.
    seconds : float
        Training wall time.
    """

    config: CNNConfig
    n_bands: int
    n_classes: int
    centre: np.ndarray
    scale: np.ndarray
    state: dict = field(repr=False)
    temperature: float
    history: list[dict] = field(repr=False)
    best_epoch: int
    n_parameters: int
    seconds: float
    temperature_single: float = 1.0
    _net: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FittedCNN):
            return NotImplemented
        same = [self.config == other.config, self.n_bands == other.n_bands,
                self.n_classes == other.n_classes, np.array_equal(self.centre, other.centre),
                np.array_equal(self.scale, other.scale), self.temperature == other.temperature,
                self.temperature_single == other.temperature_single,
                self.best_epoch == other.best_epoch, self.state.keys() == other.state.keys()]
        return all(same) and all(torch.equal(v, other.state[k]) for k, v in self.state.items())

    __hash__ = None  # type: ignore[assignment]

    def _network(self) -> nn.Module:
        if self._net is None:
            net = _build_net(self.config, self.n_bands, self.n_classes)
            net.load_state_dict(self.state)
            self._net = net.eval()
        return self._net

    def _logits(self, X: Any, batch_size: int, tta: bool, threads: int | None) -> np.ndarray:
        """Logits per transform, shape (n, 8 or 1, K)."""
        X = _check_X(X, "X", self.n_bands)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size={batch_size!r} must be a whole number >= 1.")
        net, size = self._network(), self.config.input_size
        if len(X) == 0:
            return np.zeros((0, 8 if tta else 1, self.n_classes), dtype=np.float32)
        with _torch_env(threads or self.config.threads), torch.inference_mode():
            return np.concatenate([
                _forward(net, _preprocess(X[i:i + batch_size], self.centre, self.scale, size),
                         8 if tta else 1).numpy() for i in range(0, len(X), batch_size)])

    def predict_logits(self, X: Any, *, batch_size: int = 256, tta: bool = True,
                       threads: int | None = None) -> np.ndarray:
        """Uncalibrated logits, averaged over the 8 dihedral transforms when ``tta``.

        Parameters
        ----------
        X : array_like, shape (n, band, y, x)
            Cutouts with the training bands (any size; resampled).
        batch_size : int
            Cutouts preprocessed at once (the network runs on chunks of 16).
        tta : bool
            Average over the 8 rotations/flips (8 times slower, D4-invariant).
        threads : int, optional
            Torch threads (default ``config.threads``).

        Returns
        -------
        numpy.ndarray, shape (n, n_classes)
        """
        return self._logits(X, batch_size, tta, threads).mean(axis=1)

    def predict_proba(self, X: Any, *, batch_size: int = 256, tta: bool = True,
                      threads: int | None = None) -> np.ndarray:
        """Calibrated class probabilities: mean over transforms of softmax(logits / T).

        Parameters are those of :meth:`predict_logits`.

        Returns
        -------
        numpy.ndarray, shape (n, n_classes)
            Rows sum to 1.
        """
        z = torch.from_numpy(self._logits(X, batch_size, tta, threads)).double()
        t = self.temperature if tta else self.temperature_single
        p = torch.softmax(z / t, dim=2).mean(dim=1).numpy()
        return p / p.sum(axis=1, keepdims=True)

    def to_bytes(self) -> bytes:
        """Serialise (``torch.save`` of plain types and tensors) for :meth:`from_bytes`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        d.update(format=_FORMAT, version=_VERSION, config=dataclasses.asdict(self.config),
                 centre=torch.from_numpy(np.asarray(self.centre, dtype=np.float64)),
                 scale=torch.from_numpy(np.asarray(self.scale, dtype=np.float64)),
                 state=dict(self.state), history=[dict(h) for h in self.history])
        buf = io.BytesIO()
        torch.save(d, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FittedCNN:
        """Load a model written by :meth:`to_bytes` (``torch.load(weights_only=True)``)."""
        try:
            d = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"data is not a serialised FittedCNN ({exc}).") from exc
        version = d.pop("version", None) if isinstance(d, dict) else None
        if not isinstance(d, dict) or d.pop("format", None) != _FORMAT or version not in _READS:
            raise InputError(f"data is not a serialised FittedCNN (format {_FORMAT!r}, version "
                             f"{' or '.join(map(str, _READS))}; got version {version!r}): write "
                             "it with FittedCNN.to_bytes.")
        if version == 1:  # saved before the centred network existed
            d["config"] = {**d["config"], "centred": False}
        d.update(config=CNNConfig(**d["config"]), centre=d["centre"].numpy(),
                 scale=d["scale"].numpy())
        return cls(**d)


def fit_cnn(X: Any, y: Any, *, n_classes: int | None = None, config: CNNConfig = CNNConfig(),
            random_state: int = 0, X_val: Any = None, y_val: Any = None,
            progress: Callable[[int, int, dict], Any] | None = None) -> FittedCNN:
    """Train the residual CNN on labelled cutouts.

    Parameters
    ----------
    X : array_like, shape (n, band, y, x)
        Training cutouts (any real dtype and size; non-finite pixels allowed).
    y : array_like of int, shape (n,)
        Class codes 0..K-1.
    n_classes : int, optional
        K (default ``y.max() + 1``).
    config : CNNConfig
        Architecture and training settings.
    random_state : int
        Seed of the split, the initial weights, the shuffling and the augmentation.
    X_val, y_val : array_like, optional
        Validation cutouts and codes (early stopping, temperature); by default a
        stratified ``config.validation_fraction`` of ``X``.
    progress : callable, optional
        ``progress(epoch, n_epochs, info)`` after each epoch; ``info`` is the
        history entry.

    Returns
    -------
    FittedCNN
    """
    t_start = time.perf_counter()
    if not isinstance(config, CNNConfig):
        raise InputError(f"config must be a CNNConfig; got {type(config).__name__}.")
    X = _check_X(X, "X")
    if n_classes is not None and (isinstance(n_classes, bool) or int(n_classes) != n_classes
                                  or n_classes < 2):
        raise InputError(f"n_classes={n_classes!r} must be a whole number >= 2.")
    y = _check_y(y, "y", len(X), n_classes)
    n_classes = int(n_classes if n_classes is not None else y.max() + 1)
    if len(np.unique(y)) < 2:
        raise InputError(f"y holds fewer than 2 classes ({np.unique(y).tolist()}): a classifier "
                         "needs labelled examples of at least two classes.")
    if (X_val is None) != (y_val is None):
        raise InputError("pass both X_val and y_val, or neither.")
    tr, va = np.arange(len(y)), np.arange(0)
    if X_val is not None:
        X_val = _check_X(X_val, "X_val", X.shape[1])
        y_val = _check_y(y_val, "y_val", len(X_val), n_classes)
    elif config.validation_fraction > 0:
        tr, va = _stratified_split(y, config.validation_fraction, random_state)
        if len(va) == 0:
            raise InputError(f"y has too few samples per class for validation_fraction="
                             f"{config.validation_fraction}: pass X_val/y_val or more cutouts.")
        y_val = y[va]

    centre, scale = _robust_stats(X, tr)
    if config.common_scale:  # one scale for every band: asinh differences stay colours
        scale = np.full_like(scale, float(np.median(scale)))
    cfg, y_tr = config, y[tr]
    counts = np.bincount(y_tr, minlength=n_classes)
    weight = torch.tensor(np.where(counts > 0, len(y_tr) / (n_classes * np.maximum(counts, 1)),
                                   0.0), dtype=torch.float32)
    with _torch_env(cfg.threads, random_state):
        x_all = _preprocess(X, centre, scale, cfg.input_size)
        xt, yt = x_all[tr], torch.from_numpy(y_tr)
        xv = x_all[va] if X_val is None else _preprocess(X_val, centre, scale, cfg.input_size)
        xv, yv = (None, None) if y_val is None else (xv, torch.from_numpy(y_val))
        del x_all
        gen = torch.Generator().manual_seed(random_state)
        net = _build_net(cfg, X.shape[1], n_classes)
        n_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        decay = [p for p in net.parameters() if p.ndim > 1]
        other = [p for p in net.parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": other, "weight_decay": 0.0}], lr=cfg.learning_rate)
        n_batches = math.ceil(len(yt) / cfg.batch_size)
        total = cfg.epochs * n_batches
        if total >= 6:  # warm-up over ~1 epoch (at least 2 steps), then cosine decay
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, cfg.learning_rate, total_steps=total,
                pct_start=min(0.3, max(1 / cfg.epochs, 2.5 / total)), div_factor=10.0)
        else:  # too few steps for a schedule: a constant rate
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        history: list[dict] = []
        best_loss, best_epoch, best_state = math.inf, 0, None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            loss_sum, lr = 0.0, opt.param_groups[0]["lr"]
            for idx in torch.tensor_split(torch.randperm(len(yt), generator=gen), n_batches):
                xb = _augment(xt[idx], gen, cfg.max_shift).contiguous(
                    memory_format=torch.channels_last)
                loss = F.cross_entropy(net(xb), yt[idx], weight=weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lr = opt.param_groups[0]["lr"]
                sched.step()
                loss_sum += loss.item() * len(idx)
            val_loss = val_acc = math.nan
            if xv is not None:
                net.eval()
                with torch.inference_mode():
                    z = _forward(net, xv)[:, 0]
                val_loss = float(F.cross_entropy(z, yv, weight=weight))
                val_acc = float((z.argmax(1) == yv).double().mean())
            info = {"epoch": epoch, "train_loss": loss_sum / len(yt), "val_loss": val_loss,
                    "val_accuracy": val_acc, "learning_rate": lr,
                    "seconds": time.perf_counter() - t0}
            history.append(info)
            if xv is not None and val_loss < best_loss * (1 - 1e-6):
                best_loss, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(net.state_dict())
            if progress is not None:
                progress(epoch, cfg.epochs, dict(info))
            if xv is not None and epoch - best_epoch >= cfg.patience:
                break
        if best_state is None:  # no validation set, or its loss was never finite
            best_epoch, best_state = len(history), copy.deepcopy(net.state_dict())
        net.load_state_dict(best_state)
        net.eval()
        temperature = temperature_single = 1.0
        if xv is not None:
            with torch.inference_mode():
                temperature = _fit_temperature(_forward(net, xv, 8).double().numpy(), y_val)
                temperature_single = _fit_temperature(_forward(net, xv, 1).double().numpy(),
                                                      y_val)
    model = FittedCNN(config=cfg, n_bands=X.shape[1], n_classes=n_classes, centre=centre,
                      scale=scale, state=best_state, temperature=temperature,
                      temperature_single=temperature_single, history=history,
                      best_epoch=best_epoch, n_parameters=n_params,
                      seconds=time.perf_counter() - t_start)
    model._net = net
    return model
