"""Validation against synthetic truth: shape clustering recovers components, raw fluxes do not."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.evaluation.pixels import ari_vs_snr, run_validation, separated_galaxy
from galclust.synth import galaxy_snr

SHAPE_CONFIGS = [("kmeans", "l2", "euclidean"), ("kmeans", "median_sed", "euclidean"),
                 ("agglomerative", "sum", "wavelength"), ("gmm", "l2", "xcorr")]
RAW = ("kmeans", "none", "euclidean")


@pytest.fixture(scope="module")
def separated_runs():
    return run_validation(kind="separated", snrs=(10, 30), configs=[*SHAPE_CONFIGS, RAW],
                          n_components=(1, 2, 3), n_galaxies=3, seed=0)


def test_separated_galaxy_has_the_requested_snr_and_truth():
    g = separated_galaxy(n_components=3, snr=12.0, seed=4)
    model_free_snr = galaxy_snr(g.sci, g.err)  # noisy, so only close
    assert model_free_snr == pytest.approx(12.0, rel=0.25)
    assert set(np.unique(g.truth[g.mask])) == {0, 1, 2} and (g.truth[~g.mask] == -1).all()
    assert len(set(g.families)) == 3
    with pytest.raises(InputError, match="must be 1, 2 or 3"):
        separated_galaxy(n_components=4)


def test_shape_normalisations_recover_components(separated_runs):
    table = ari_vs_snr(separated_runs)
    for method, normalize, metric in SHAPE_CONFIGS:
        rows = table[(table.method == method) & (table.normalize == normalize)
                     & (table.metric == metric)]
        assert len(rows) == 2
        assert (rows["median_ari"] >= 0.8).all(), rows
        assert (rows["frac_single_k1"] == 1.0).all(), rows


def test_raw_fluxes_recover_brightness_not_components(separated_runs):
    table = ari_vs_snr(separated_runs)
    raw = table[table.normalize == "none"].set_index("snr")["median_ari"]
    best = table[table.normalize != "none"].groupby("snr")["median_ari"].min()
    assert (raw <= 0.3).all(), raw
    assert ((best - raw) >= 0.5).all()


def test_auto_k_finds_the_number_of_components(separated_runs):
    runs = separated_runs[(separated_runs.method == "kmeans")
                          & (separated_runs.normalize == "l2")]
    assert runs["k_correct"].mean() >= 0.7
    assert (runs[runs.n_components == 1]["n_clusters"] == 1).all()


def test_make_galaxy_single_components_get_k1_and_blends_split():
    runs = run_validation(kind="blended", snrs=(10, 40), configs=[("kmeans", "l2", "euclidean")],
                          n_components=(1, 2), n_galaxies=3, seed=10)
    single = runs[runs.n_components == 1]
    assert (single["n_clusters"] == 1).all()
    bright_blends = runs[(runs.n_components == 2) & (runs.snr == 40)]
    assert (bright_blends["n_clusters"] >= 2).mean() >= 2 / 3
    table = ari_vs_snr(runs)
    assert list(table.columns) == ["kind", "snr", "method", "normalize", "metric", "median_ari",
                                   "frac_k_correct", "frac_single_k1", "median_coverage",
                                   "n_galaxies"]
    assert len(table) == 2 and (table["n_galaxies"] == 6).all()
