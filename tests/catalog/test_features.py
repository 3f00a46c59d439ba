"""Interpretable features: brute-force checks and synthetic truth."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.catalog.features import (
    estimate_spike_angle,
    feature_matrix,
    neighbour_features,
    spike_features,
    stamp_features,
)
from galclust.errors import InputError


def test_nearest_brighter_matches_brute_force():
    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.uniform(0, 500, n), rng.uniform(0, 500, n)
    flux = rng.lognormal(0, 2, n)
    got = neighbour_features(x, y, flux, k=4)  # small k forces the re-query rounds
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    d[flux[None, :] <= flux[:, None]] = np.inf
    j = np.argmin(d, axis=1)
    want = d[np.arange(n), j]
    np.testing.assert_allclose(got["brighter_distance"], want)
    top = np.argmax(flux)
    assert got["brighter_distance"][top] == np.inf and got["brighter_ratio"][top] == 1.0
    other = np.arange(n) != top
    np.testing.assert_allclose(got["brighter_ratio"][other], (flux[j] / flux)[other])


def _spike_field(angle_deg: float, rng: np.random.Generator):
    """A bright star, faint sources on its spikes and at random angles between them."""
    star = np.array([[500.0, 500.0]])
    on, off = [], []
    for k in range(6):
        a = np.radians(angle_deg + 60 * k)
        for r in rng.uniform(15, 80, 4):
            on.append([500 + r * np.cos(a), 500 + r * np.sin(a)])
            b = a + np.radians(rng.uniform(15, 45))  # between spikes
            off.append([500 + r * np.cos(b), 500 + r * np.sin(b)])
    field = rng.uniform(0, 1000, (300, 2))  # isotropic background galaxies
    xy = np.vstack([star, on, off, field])
    flux = np.concatenate([[1e6], np.full(len(on) + len(off), 10.0), rng.lognormal(3, 1, 300)])
    return xy[:, 0], xy[:, 1], flux, slice(1, 1 + len(on)), slice(1 + len(on), 1 + 2 * len(on))


@pytest.mark.parametrize("angle", [90.0, 17.0])
def test_spike_angle_and_score(angle):
    x, y, flux, on, off = _spike_field(angle, np.random.default_rng(4))
    est = estimate_spike_angle(x, y, flux)
    assert abs((est - angle + 30) % 60 - 30) < 3.0
    score = spike_features(x, y, flux)["spike_score"]
    assert score[on].min() > score[off].max()
    # a given angle is used as is
    assert spike_features(x, y, flux, spike_angle=angle + 30)["spike_angle"] == angle + 30


def test_spike_score_separates_synthetic_spike_artefacts(catalog, truth):
    flux = catalog.filter(like="flux_").sum(axis=1).to_numpy()
    score = spike_features(catalog.x, catalog.y, flux)["spike_score"]
    t = truth.set_index("id").loc[catalog.id]
    spikes = (t.artefact == "diffraction spike").to_numpy()
    galaxies = (t.kind == "galaxy").to_numpy()
    assert spikes.sum() >= 15
    assert np.mean(score[spikes] > np.percentile(score[galaxies], 95)) >= 0.9


def test_stamp_features_on_shapes():
    n, s = 4, 31
    yy, xx = np.mgrid[:s, :s] - s // 2
    st = np.zeros((n, 2, s, s), dtype=np.float32)
    st[0] = 5 * np.exp(-(xx**2 + yy**2) / 8.0)  # round source
    st[1] = st[0] + 2 * (np.abs(yy - 0.5 * xx) < 1)  # source on a ridge
    st[2] = st[0] + 20 * np.exp(-((xx - 9) ** 2 + (yy - 5) ** 2) / 6.0)  # bright neighbour
    st[3] = st[0]
    st[3][:, :, :12] = 0.0  # no coverage on the left
    f = stamp_features(st)
    assert f["ridge_m2"][1] > 0.5 > 0.2 > f["ridge_m2"][0]
    assert f["stamp_neighbour"][2] > 10 and f["stamp_neighbour"][0] < 0
    assert f["zero_fraction"][3] > 0.35 and f["zero_fraction"][0] < 0.3
    X, names = feature_matrix({**f, "brighter_distance": np.array([np.inf, 3, 0.1, 50])})
    assert X.shape == (4, 6) and np.all(np.isfinite(X))
    assert X[0, names.index("brighter_distance")] == pytest.approx(3.0)  # log10(1000)


def test_feature_errors():
    with pytest.raises(InputError, match="same length"):
        neighbour_features([1, 2], [1, 2], [1])
    with pytest.raises(InputError, match="missing"):
        feature_matrix({"ridge_m2": np.zeros(2)}, columns=("ridge_m2", "spike_score"))
