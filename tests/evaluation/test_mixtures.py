"""The mixing-galaxy validation suite: the unmixing's k against today's χ² rule.

Both families, on a seed no setting was chosen on (the rules' constants were
set on ``family="default"`` seeds 0-2; ``"heldout"`` was never tuned on).
The bounds are what the suite supports. Issue #11's k target (right for >= 90 %
of overlapping galaxies) is not met: a tenth to a third of them do not show
all their components even on the smoothed stamp (``identifiable``), and k is
held at 0.9 over those that do (0.95-0.98 on fresh seeds).
Its fraction target (<= 0.1 RMS) is held on overlapping and separated layouts
here; see the module docstrings of :mod:`galclust.pixels.unmix`,
:mod:`galclust.pixels.pooling` and :mod:`galclust.pixels.profilefit` and the
demo's table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galclust.errors import InputError
from galclust.evaluation.mixtures import (
    fraction_rms,
    identifiable,
    mixture_table,
    run_mixture_suite,
    suite_errors,
)
from galclust.pixels.core import cluster_galaxy
from galclust.pixels.mixing import rescale_from_sky
from galclust.synth.mixtures import make_mixture_galaxy


@pytest.fixture(scope="module")
def suite():
    return pd.concat([run_mixture_suite(family=f, seeds=(11,), rules=("chi2", "unmix"))
                      for f in ("default", "heldout")], ignore_index=True)


def _k(runs, rule):
    return runs[runs["rule"] == rule]["k_right"].mean()


def test_unmixing_finds_k_more_often_than_the_chi2_rule(suite):
    multi = suite[suite["n_components"] >= 2]
    for family, runs in multi.groupby("family"):
        assert _k(runs, "unmix") >= 0.55, family
    # measured 0.67-0.89 against 0.44 on 27 multi-component galaxies per family (0.63-0.85
    # before the k test asked owning fits and took the drop's tail as a scaled χ²; 0.65-0.78
    # before the smoothed-stamp k test)
    assert _k(multi, "unmix") >= _k(multi, "chi2") + 0.1
    hard = multi[multi["n_components"] >= 3]
    assert _k(hard, "unmix") > _k(hard, "chi2")


def test_single_components_stay_single_and_separated_layouts_are_no_worse(suite):
    single = suite[suite["n_components"] == 1]
    assert _k(single, "unmix") >= 0.9
    sep = suite[(suite["layout"] == "separated") & (suite["n_components"] >= 2)]
    assert _k(sep, "unmix") >= _k(sep, "chi2")


def test_labels_and_fractions_are_scored(suite):
    un = suite[(suite["rule"] == "unmix") & (suite["n_components"] >= 2)]
    assert un["ari"].median() >= 0.7
    # dominant-component labels of the pooled unmixing (measured 1.00 in all four cells;
    # the chi2 rule's clustering 0.89-0.97)
    apart = un[un["layout"] != "nested"].groupby(["family", "layout"])["ari"].median()
    assert apart.min() >= 0.9, apart
    assert un["frac_rms"].notna().all() and un["frac_rms"].median() <= 0.2
    # pooled fractions with SEDs placed by the light's profiles: measured 0.033-0.079 on
    # seed 11 (0.088-0.114 with the narrowest cone's SEDs, 0.22-0.27 pixel by pixel)
    layouts = un[un["layout"] != "nested"].groupby(["family", "layout"])["frac_rms"].median()
    assert layouts.max() <= 0.1, layouts
    assert suite[suite["rule"] == "chi2"]["frac_rms"].isna().all()  # no fractions
    table = mixture_table(suite)
    assert table.index.names == ["n_components", "snr", "layout"]
    assert {("k_right", "unmix"), ("ari", "chi2"), ("frac_rms", "unmix")} <= set(table.columns)
    assert len(table) == 4 * 3 * 3


def test_fraction_rms_matches_components_and_counts_missing_ones():
    t = np.zeros((2, 4, 4))
    t[0, :, :2], t[1, :, 2:] = 1.0, 1.0
    where = np.ones((4, 4), bool)
    assert fraction_rms(t, t[::-1], where) == 0.0  # order does not matter
    assert fraction_rms(t, t[:1], where) == pytest.approx(np.sqrt(0.5 / 2))
    assert np.isnan(fraction_rms(t, None, where))
    with pytest.raises(InputError, match="unknown rule"):
        run_mixture_suite(rules=("vote",))


def test_identifiable_needs_the_data_to_show_every_component():
    g = make_mixture_galaxy(2, snr=100, layout="overlapping", seed=11)
    assert identifiable(g)
    assert identifiable(make_mixture_galaxy(1, snr=15, seed=11))
    # the same light with one SED: the data hold one component, whatever the truth claims
    rng = np.random.default_rng(0)
    sigma = g.err[:, 0, 0] * g.err_scale
    one = (g.fractions.sum(axis=0) * g.sci.sum(axis=0))[None] * g.seds[0][:, None, None]
    flat = g._replace(sci=one + rng.normal(0.0, 1.0, g.sci.shape) * sigma[:, None, None])
    assert not identifiable(flat)


def test_k_is_right_on_the_galaxies_whose_data_show_k(suite):
    multi = suite[(suite["n_components"] >= 2) & (suite["rule"] == "unmix")]
    shown = multi[multi["identifiable"]]
    assert 0.3 <= len(shown) / len(multi) <= 0.9   # the suite holds both kinds (0.796)
    assert shown["k_right"].mean() >= 0.9          # measured 0.977 (0.909 at stop 28)
    table = mixture_table(suite)
    assert {("k_right_shown", "unmix"), ("shown", "unmix")} <= set(table.columns)


def test_a_disc_that_fills_its_stamp_has_its_errors_rescaled_from_the_sky_beside_it():
    """Held-out nested single component at S/N 100: its disc leaves under 200 sky pixels in
    the stamp, so the stamp's errors stay as delivered (0.71-0.87 of the true noise) and
    the unmixing splits one SED into 5. The suite takes the sky beside the stamp, as the
    pixel stage takes the sky around every stamp, and the component stays single."""
    g = make_mixture_galaxy(1, snr=100, layout="nested", family="heldout", seed=183)
    assert not rescale_from_sky(g.sci, g.err, g.sky, g.bands)[2]   # too little sky
    err, corr, stamp_sky = suite_errors(g, seed=183)
    assert not stamp_sky
    np.testing.assert_allclose(err[:, 0, 0], g.err[:, 0, 0] * g.err_scale, rtol=0.1)
    assert 4.0 < corr < 8.0                                          # 3 x 3 drizzle-like noise
    wide = cluster_galaxy(g.sci, err, g.mask, g.wavelength, bands=g.bands,
                          noise_correlation=corr, unmix="pixel")
    stamp = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands, sky=g.sky,
                           unmix="pixel")
    assert wide.n_clusters == 1 and stamp.n_clusters > 2
    # enough sky for each band's scale (263 pixels) but too little for the correlation
    # (white noise assumed, and the single component split into 6): the sky beside it
    g3 = make_mixture_galaxy(1, snr=100, layout="nested", family="heldout", seed=198)
    assert rescale_from_sky(g3.sci, g3.err, g3.sky, g3.bands, correlation=False)[2]
    assert rescale_from_sky(g3.sci, g3.err, g3.sky, g3.bands)[2:] == (False, 1.0)
    err3, corr3, own3 = suite_errors(g3, seed=198)
    assert not own3 and 4.0 < corr3 < 8.0
    # a stamp with enough sky keeps its own
    g2 = make_mixture_galaxy(1, snr=100, layout="overlapping", family="heldout", seed=183)
    err2, corr2, own = suite_errors(g2, seed=183)
    assert own
    np.testing.assert_array_equal(err2, rescale_from_sky(g2.sci, g2.err, g2.sky, g2.bands)[0])
