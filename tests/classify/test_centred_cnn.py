"""The centred network knows which source the cutout is about.

Catalog cutouts are centred on their source, and a neighbour is often brighter.
Here the label is the colour of a faint central source; in most stamps a
neighbour of random colour, often brighter, sits off-centre. A plain ResNet ending in a
global average pool sees both colours mixed; the centred network (radius
channel, centre-weighted pool, aperture colours) must read the central one.
Also: models saved before the centred network (format version 1) still load and
predict.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from galclust.classify.cnn import CNNConfig, FittedCNN, fit_cnn

CFG = CNNConfig(input_size=40, width=8, blocks=(1, 1), epochs=25, patience=6, max_shift=1,
                learning_rate=1e-2, threads=1)
RED, BLUE = np.array([0.6, 1.0, 1.35]), np.array([1.35, 1.0, 0.6])


def _stamps(n: int, seed: int, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Label 1: a red central source (0: blue), peak S/N 5-12; with probability 0.95 a
    neighbour of the same kind, 0.7-2.5x as bright, of either colour, 8-11 px from the
    centre: nothing but its place tells the central source apart."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    y = rng.permutation(np.arange(n) % 2)
    X = np.empty((n, 3, size, size), dtype=np.float32)
    for i, k in enumerate(y):
        dy, dx = rng.uniform(-0.5, 0.5, 2)
        peak = rng.uniform(5, 12)
        img = peak * (RED if k else BLUE)[:, None, None] * np.exp(
            -0.5 * ((yy - dy) ** 2 + (xx - dx) ** 2) / 1.5 ** 2)
        if rng.uniform() < 0.95:
            r, a = rng.uniform(8, 11), rng.uniform(0, 2 * np.pi)
            col = RED if rng.uniform() < 0.5 else BLUE
            img = img + rng.uniform(0.7, 2.5) * peak * col[:, None, None] * np.exp(
                -0.5 * ((yy - r * np.sin(a)) ** 2 + (xx - r * np.cos(a)) ** 2) / 1.5 ** 2)
        X[i] = img
    X += rng.normal(0, 1, X.shape).astype(np.float32)
    return X, y


@pytest.fixture(scope="module")
def data():
    return _stamps(400, seed=0), _stamps(400, seed=1)


@pytest.fixture(scope="module")
def models(data):
    (X, y), _ = data
    return {centred: fit_cnn(X, y, config=dataclasses.replace(CFG, centred=centred),
                             random_state=0) for centred in (True, False)}


def test_centred_network_reads_the_central_source_not_the_brighter_neighbour(data, models):
    _, (Xt, yt) = data
    acc = {c: float(np.mean(m.predict_proba(Xt, tta=False).argmax(1) == yt))
           for c, m in models.items()}
    print(f"central colour, held-out 400: centred {acc[True]:.3f}, plain {acc[False]:.3f}")
    assert acc[True] >= 0.9
    assert acc[True] >= acc[False] + 0.1


def test_version_1_plain_model_loads_and_predicts_the_same(data, models):
    """A file written before version 2 has no ``centred`` in its config: it is a plain
    ResNet, and loads as one."""
    _, (Xt, _) = data
    plain = models[False]
    d = torch.load(io.BytesIO(plain.to_bytes()), weights_only=True)
    d["version"] = 1
    del d["config"]["centred"]
    buf = io.BytesIO()
    torch.save(d, buf)
    old = FittedCNN.from_bytes(buf.getvalue())
    assert old.config.centred is False and old == plain
    assert np.array_equal(old.predict_proba(Xt), plain.predict_proba(Xt))
    # the centred model's state does not fit a plain network: the flag decides the network
    assert models[True].state.keys() != plain.state.keys()
