"""The residual CNN classifier: accuracy, determinism, D4 invariance, serialisation,
early stopping, calibration and input checks, on small synthetic stamps (one thread)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from galclust.classify.cnn import CNNConfig, FittedCNN, fit_cnn
from galclust.errors import InputError

CFG = CNNConfig(input_size=16, width=8, blocks=(1, 1), epochs=15, patience=5, max_shift=1,
                learning_rate=1e-2, threads=1)


def _stamps(n: int, seed: int, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of (3, size, size) noisy stamps on a sky level of 10: a round white
    blob, an elongated white blob at a random angle, a round red blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    y = rng.permutation(np.arange(n) % 3)
    X = np.empty((n, 3, size, size), dtype=np.float32)
    for i, k in enumerate(y):
        dy, dx = rng.uniform(-1.5, 1.5, 2)
        a, b = (4.5, 1.3) if k == 1 else (2.5, 2.5)
        th = rng.uniform(0, np.pi)
        u = (xx - dx) * np.cos(th) + (yy - dy) * np.sin(th)
        v = (yy - dy) * np.cos(th) - (xx - dx) * np.sin(th)
        blob = np.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2))
        colour = np.array([1.6, 1.0, 0.4]) if k == 2 else np.ones(3)
        X[i] = rng.uniform(5, 20) * colour[:, None, None] * blob + 10
    X += rng.normal(0, 1, X.shape).astype(np.float32)
    return X, y


@pytest.fixture(scope="module")
def data():
    return _stamps(240, seed=0), _stamps(300, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    """The model, the (epoch, n_epochs, info, torch threads) progress calls and whether the
    fit left torch's global state alone (threads set to 2 before it; the fit uses 1)."""
    (X, y), _ = data
    calls = []
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    rng = torch.random.get_rng_state()
    try:
        model = fit_cnn(X, y, config=CFG, random_state=0,
                        progress=lambda e, n, info: calls.append((e, n, info,
                                                                  torch.get_num_threads())))
        restored = (torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()
                    and torch.equal(torch.random.get_rng_state(), rng))
    finally:
        torch.set_num_threads(old)
    return model, calls, restored


def test_accuracy_above_chance(data, fitted):
    model, _, _ = fitted
    _, (Xt, yt) = data
    p = model.predict_proba(Xt)
    assert p.shape == (len(yt), 3) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    accuracy = (p.argmax(axis=1) == yt).mean()
    majority = np.bincount(yt).max() / len(yt)
    assert accuracy >= 0.9 and accuracy > majority + 0.5
    assert (model.predict_logits(Xt).argmax(axis=1) == yt).mean() >= 0.9


def test_history_progress_and_threads(fitted):
    model, calls, restored = fitted
    assert restored, "fit restores torch's threads, RNG state and deterministic flag"
    assert [c[0] for c in calls] == [h["epoch"] for h in model.history]
    assert [c[0] for c in calls] == list(range(1, len(model.history) + 1))
    assert all(n == CFG.epochs and threads == CFG.threads for _, n, _, threads in calls)
    assert calls[-1][2] == model.history[-1]
    assert set(model.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy",
                                     "learning_rate", "seconds"}
    losses = [h["val_loss"] for h in model.history]
    assert model.history[model.best_epoch - 1]["val_loss"] == min(losses)
    assert losses[-1] < losses[0] and model.history[-1]["train_loss"] < losses[0]
    assert model.n_parameters > 1000 and model.seconds > 0
    assert 0 < model.temperature < np.inf
    old = torch.get_num_threads()
    model.predict_proba(np.zeros((2, 3, 24, 24)), threads=1)
    assert torch.get_num_threads() == old


def test_same_seed_same_model_other_seed_differs(data, fitted):
    model, _, _ = fitted
    (X, y), (Xt, _) = data
    again = fit_cnn(X, y, config=CFG, random_state=0)
    other = fit_cnn(X, y, config=CFG, random_state=1)
    p = model.predict_proba(Xt)
    assert again == model
    assert np.array_equal(again.predict_proba(Xt), p)
    assert not np.allclose(other.predict_proba(Xt), p, atol=1e-6)
    assert other != model


def test_tta_is_invariant_under_rotations_and_flips(data, fitted):
    model, _, _ = fitted
    _, (Xt, _) = data
    Xt = Xt[:60]
    p = model.predict_proba(Xt)
    for moved in (np.rot90(Xt, 1, axes=(2, 3)), np.rot90(Xt, 2, axes=(2, 3)), Xt[..., ::-1],
                  np.swapaxes(Xt, 2, 3)):
        np.testing.assert_allclose(model.predict_proba(moved), p, atol=1e-5)
        np.testing.assert_allclose(model.predict_logits(moved), model.predict_logits(Xt),
                                   atol=1e-4)
    # without TTA a single network is not invariant: the check above is not vacuous
    # (logits: this easy task's probabilities saturate at 0 and 1)
    one = model.predict_logits(Xt, tta=False)
    assert np.abs(model.predict_logits(np.rot90(Xt, 1, axes=(2, 3)), tta=False) - one).max() > 1e-3


def test_other_sizes_dtypes_and_bad_pixels(data, fitted):
    model, _, _ = fitted
    _, (Xt, _) = data
    Xt = Xt[:20]
    assert np.array_equal(model.predict_proba(Xt.astype(np.float64)), model.predict_proba(Xt))
    # another batch size: the same up to rounding (on AVX-512 CPUs torch's convolution takes
    # another kernel path for a batch of 7 than of 20; they differ by ~1e-17)
    np.testing.assert_allclose(model.predict_proba(Xt.astype(np.float64), batch_size=7),
                               model.predict_proba(Xt), rtol=0, atol=1e-9)
    bad = Xt.copy()
    bad[:, 0, :3] = np.nan
    bad[:, 1, 5, 5] = np.inf
    for X in (bad, Xt[:, :, :, 2:22], Xt[:, :, ::3, ::3]):  # NaN/inf, 24x20, 8x8 (upsampled)
        p = model.predict_proba(X)
        assert p.shape == (20, 3) and np.isfinite(p).all()
    assert model.predict_proba(np.zeros((0, 3, 24, 24))).shape == (0, 3)


def test_bytes_round_trip(data, fitted):
    model, _, _ = fitted
    _, (Xt, _) = data
    blob = model.to_bytes()
    assert isinstance(blob, bytes)
    back = FittedCNN.from_bytes(blob)
    assert back == model and back.config == CFG and back.history == model.history
    assert (back.temperature, back.best_epoch, back.n_parameters) == (
        model.temperature, model.best_epoch, model.n_parameters)
    assert np.array_equal(back.predict_proba(Xt), model.predict_proba(Xt))
    with pytest.raises(InputError, match="not a serialised FittedCNN"):
        FittedCNN.from_bytes(b"not a model")


def test_early_stopping_and_calibration_on_random_labels(data):
    (X, _), (Xv, _) = data
    rng = np.random.default_rng(5)
    y, yv = rng.integers(0, 2, len(X)), rng.integers(0, 2, 120)
    cfg = dataclasses.replace(CFG, epochs=40, patience=3, learning_rate=1e-2)
    model = fit_cnn(X, y, config=cfg, X_val=Xv[:120], y_val=yv)
    n = len(model.history)
    assert n < cfg.epochs and model.best_epoch < n
    assert n == model.best_epoch + cfg.patience
    losses = [h["val_loss"] for h in model.history]
    assert losses[model.best_epoch - 1] == min(losses)
    assert 0 < model.temperature < np.inf and model.temperature != 1.0

    def nll(m):
        p = m.predict_proba(Xv[:120])
        return -np.log(p[np.arange(len(yv)), yv]).mean()

    assert nll(model) <= nll(dataclasses.replace(model, temperature=1.0)) + 1e-12


def test_no_validation_trains_every_epoch(data):
    (X, y), _ = data
    cfg = dataclasses.replace(CFG, epochs=2, validation_fraction=0.0)
    model = fit_cnn(X[:60], y[:60], config=cfg)
    assert len(model.history) == model.best_epoch == 2 and model.temperature == 1.0
    assert np.isnan(model.history[0]["val_loss"])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"X": np.zeros((4, 24, 24))}, "X must be a 4-D array"),
    ({"X": np.zeros((0, 3, 24, 24)), "y": np.zeros(0, dtype=int)}, "X has an empty axis"),
    ({"X": np.zeros((6, 3, 24, 24), dtype=complex)}, "X must hold real numbers"),
    ({"y": np.zeros(5, dtype=int)}, "y must be 1-D with one label per cutout"),
    ({"y": np.zeros(6) + 0.5}, "y must hold integer class codes"),
    ({"y": np.array([0, 1, 2, 0, 1, 2]), "n_classes": 2}, r"y holds codes 0..2, outside 0..1"),
    ({"y": np.array([0, 1, -1, 0, 1, 0])}, "y holds negative codes"),
    ({"y": np.zeros(6, dtype=int)}, "y holds fewer than 2 classes"),
    ({"n_classes": 1}, "n_classes=1 must be"),
    ({"X_val": np.zeros((2, 3, 8, 8))}, "both X_val and y_val"),
    ({"X_val": np.zeros((2, 2, 8, 8)), "y_val": np.array([0, 1])}, "X_val has 2 bands"),
    ({"X_val": np.zeros((2, 3, 8, 8)), "y_val": np.array([0, 1, 1])}, "y_val must be 1-D"),
    ({"config": {"epochs": 3}}, "config must be a CNNConfig"),
])
def test_fit_rejects_bad_input(kwargs, match):
    args = {"X": np.zeros((6, 3, 24, 24), dtype=np.float32), "y": np.array([0, 1] * 3)}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        fit_cnn(args.pop("X"), args.pop("y"), **args)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"width": 0}, "CNNConfig.width=0"), ({"blocks": ()}, "CNNConfig.blocks"),
    ({"blocks": (1, 0)}, "CNNConfig.blocks"), ({"epochs": 2.5}, "CNNConfig.epochs"),
    ({"validation_fraction": 1.0}, "CNNConfig.validation_fraction"),
    ({"learning_rate": 0.0}, "CNNConfig.learning_rate"),
    ({"max_shift": 8, "input_size": 16}, "CNNConfig.max_shift=8"),
    ({"threads": True}, "CNNConfig.threads"),
])
def test_config_rejects_bad_fields(kwargs, match):
    with pytest.raises(InputError, match=match):
        CNNConfig(**kwargs)


def test_predict_rejects_other_bands(fitted):
    model, _, _ = fitted
    with pytest.raises(InputError, match="X has 2 bands; the model was trained on 3"):
        model.predict_proba(np.zeros((1, 2, 24, 24)))
    with pytest.raises(InputError, match="X must be a 4-D array"):
        model.predict_logits(np.zeros((3, 24, 24)))
