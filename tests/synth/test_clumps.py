"""Tests of the clumpy-galaxy generator and its scoring."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.synth import CLUMP_FAMILIES, make_clumpy_galaxy, score_clumps


@pytest.mark.parametrize("family", CLUMP_FAMILIES)
def test_shapes_truth_and_determinism(family):
    g = make_clumpy_galaxy(family=family, n_clumps=5, n_bands=5, size=64, random_state=3)
    sci, err, cmap, clumps = g
    assert sci.shape == err.shape == (5, 64, 64)
    assert cmap.shape == (64, 64) and set(np.unique(cmap)) <= set(range(6))
    assert len(clumps) == 5 and clumps["colour_distinct"].all()
    assert (err > 0).all() and np.isfinite(sci).all()
    # every clump has a core of several pixels around its centre
    for _, c in clumps.iterrows():
        core = cmap == c["id"]
        assert core.sum() >= 3
        yy, xx = np.nonzero(core)
        assert abs(yy.mean() - c["y"]) < 2 and abs(xx.mean() - c["x"]) < 2
    again = make_clumpy_galaxy(family=family, n_clumps=5, n_bands=5, size=64, random_state=3)
    np.testing.assert_array_equal(again.sci, sci)
    # truth scores itself perfectly: every clump found, nothing false
    sc = score_clumps(cmap, cmap, clumps)
    assert sc["found"] == [1, 2, 3, 4, 5] and sc["false"] == 0


def test_heldout_differs_from_default():
    d = make_clumpy_galaxy(family="default", random_state=1)
    h = make_clumpy_galaxy(family="heldout", random_state=1)
    assert not np.allclose(d.clumps.attrs["fwhm"], h.clumps.attrs["fwhm"])
    # correlated noise in heldout: neighbouring residuals correlate
    def lag1(g):
        model_free = g.sci[0][:8, :] / g.err[0][:8, :]      # sky rows, noise-dominated
        return np.corrcoef(model_free[:, :-1].ravel(), model_free[:, 1:].ravel())[0, 1]
    assert lag1(h) > 0.3 > abs(lag1(d))


def test_bad_arguments():
    with pytest.raises(InputError, match="family"):
        make_clumpy_galaxy(family="nope")
    with pytest.raises(InputError, match="n_clumps"):
        make_clumpy_galaxy(n_clumps=0)
    with pytest.raises(InputError, match="size"):
        make_clumpy_galaxy(size=8)
