"""make_blend_scenes: shapes, truth, determinism, families, and score_detection."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.synth import make_blend_scenes, score_detection


def test_scene_contents_and_truth():
    scenes = make_blend_scenes(12, random_state=3)
    counts = {s.meta["n_sources"] for s in scenes}
    assert counts <= {1, 2, 3} and len(counts) >= 2
    for s in scenes:
        n = s.meta["n_sources"]
        assert s.sci.shape == (6, 64, 64) == s.err.shape
        assert s.models.shape == (n, 6, 64, 64) and s.positions.shape == (n, 2)
        assert set(np.unique(s.true_seg)) <= set(range(n + 1))
        assert len(s.meta["snr"]) == n and s.meta["colours"].shape == (n, 6)
        np.testing.assert_allclose(s.meta["colours"].sum(1), 1, rtol=1e-5)
        assert (s.meta["snr"] >= 12).all()
        if n > 1:
            assert 0.4 <= s.meta["separation_fwhm"] <= 6
            assert s.meta["flux_ratio"] >= 1
        # each source dominates the pixel at its own centre
        for k, (x, y) in enumerate(s.positions):
            assert s.true_seg[int(round(y)), int(round(x))] in (k + 1, *range(1, n + 1))
        # noise: sci - models is unit-variance noise in units of err
        resid = (s.sci - s.models.sum(0)) / s.err
        assert abs(resid.std() - 1) < 0.1


def test_deterministic_and_families_differ():
    a = make_blend_scenes(2, random_state=1)
    b = make_blend_scenes(2, random_state=1)
    np.testing.assert_array_equal(a[1].sci, b[1].sci)
    h = make_blend_scenes(2, family="heldout", random_state=1)
    assert h[0].meta["family"] == "heldout"
    assert not np.array_equal(a[0].sci, h[0].sci)
    # heldout noise is correlated: neighbouring noise pixels are correlated
    s = make_blend_scenes(4, family="heldout", random_state=2)[0]
    r = (s.sci - s.models.sum(0)) / s.err
    assert np.corrcoef(r[:, :, :-1].ravel(), r[:, :, 1:].ravel())[0, 1] > 0.3


def test_score_detection_truth_is_perfect():
    for s in make_blend_scenes(6, random_state=4):
        r = score_detection(s, s.true_seg)
        assert r["n_true"] == s.meta["n_sources"]
        assert r["n_matched_segments"] == r["n_detected"]
        assert r["matched"].sum() >= r["n_true"] - 1      # a faint source may dominate no pixel
        merged = score_detection(s, (s.true_seg > 0).astype(int))
        assert merged["n_detected"] == 1 and merged["matched"].sum() == 1


def test_bad_arguments():
    with pytest.raises(InputError, match="family"):
        make_blend_scenes(1, family="hard")
    with pytest.raises(InputError, match="n_bands"):
        make_blend_scenes(1, n_bands=9)
    with pytest.raises(InputError, match="size"):
        make_blend_scenes(1, size=8)
    assert make_blend_scenes(1, n_bands=3)[0].sci.shape[0] == 3
