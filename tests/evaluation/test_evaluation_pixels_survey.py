"""Survey-level validation: the real pipeline on a synthetic survey against its per-pixel truth.

make_survey(layout="separated") -> galclust.ingest -> pixel_tables -> survey_ari.
Thresholds come from seeds 0-4 of this very setup (512 x 512 px, 73 galaxies,
S/N 5-100, PSF-matched), measured when these tests were written; the test uses
seed 0 and each threshold leaves a margin below the worst seed:

=====================================  ===========  =========
quantity (S/N >= 10)                   seeds 0-4    threshold
=====================================  ===========  =========
2 components, l2: median ARI           0.88-0.91    >= 0.80
2 components, l2: k == 2               0.92-1.00    >= 0.85
3 components, l2, k = 3 given: ARI     0.76-0.80    >= 0.70
3 components, l2, auto k: median ARI   0.76-0.79    >= 0.70
3 components, l2, auto k: k == 3       0.77-1.00    >= 0.65
raw fluxes: median ARI per S/N bin     <= 0.09      <= 0.20
1 component: k == 1 (all S/N)          1.00         >= 0.90
=====================================  ===========  =========

The automatic k with errors is the χ² rule of :mod:`galclust.pixels.nclusters`
(one more cluster must remove >= 70 % of the χ² excess). The silhouette it
replaced merged two of three components for ~80 % of 3-component galaxies
(auto-k ARI 0.50-0.53 on these seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import galclust
from galclust.errors import InputError
from galclust.evaluation.pixels import SNR_BINS, ari_table, survey_ari
from galclust.pixels.survey import decode_labels, pixel_tables
from galclust.store.cube import open_catalog
from galclust.synth import make_survey


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation-survey")
    survey = make_survey(root / "survey", shape=(512, 512), seed=0, psf_matched=True,
                         layout="separated", snr_range=(5.0, 100.0))
    cube = galclust.ingest(survey.manifest_path, str(root / "field.zarr"), tile=256)
    catalog = open_catalog(str(root / "field.zarr"))
    truth = pd.read_parquet(survey.truth_sources_path)
    truth_map = fits.getdata(survey.truth_components_path)
    out = {"truth": truth, "truth_map": truth_map,
           "brightness": cube["sci"].sum("band").values}
    for name, kwargs in (("l2", {"normalize": "l2"}), ("none", {"normalize": "none"})):
        gal, _, stamps, *_ = pixel_tables(cube, catalog, method="kmeans",
                                      **kwargs).compute(scheduler="synchronous")
        out[name] = survey_ari(stamps, gal, truth_map, truth)
        out[f"{name}_stamps"] = stamps
    three = truth.loc[(truth["kind"] == "galaxy") & (truth["n_components"] == 3), "id"]
    gal, _, stamps, *_ = pixel_tables(cube, catalog, ids=three.tolist(), normalize="l2",
                                  n_clusters=3).compute(scheduler="synchronous")
    out["l2_k3"] = survey_ari(stamps, gal, truth_map, truth)
    return out


def _bright(per, n_components):
    return per[(per["snr"] >= 10) & (per["n_components"] == n_components)]


def test_every_galaxy_is_compared(run):
    per = run["l2"]
    truth = run["truth"]
    assert set(per["id"]) == set(truth.loc[truth["kind"] == "galaxy", "id"])
    assert len(_bright(per, 2)) >= 20 and len(_bright(per, 3)) >= 12
    assert (per["n_components"] == 1).sum() >= 15
    assert per["ari"].notna().all() and (per["n_compared"] >= 30).all()


def test_shape_clustering_recovers_two_separated_components(run):
    two = _bright(run["l2"], 2)
    assert two["ari"].median() >= 0.8, two
    assert two["k_correct"].mean() >= 0.85, two
    by_n = ari_table(run["l2"], by_components=True)
    rows = by_n[(by_n["n_components"] == 2) & by_n["snr_bin"].isin(["[10, 20)", "[20, 40)",
                                                                    "[40, inf)"])]
    assert len(rows) == 3 and (rows["median_ari"] >= 0.75).all(), rows


def test_three_components_are_found_and_separated(run):
    given = _bright(run["l2_k3"], 3)
    assert (given["n_clusters"] == 3).all()
    assert given["ari"].median() >= 0.7, given
    auto = _bright(run["l2"], 3)
    assert auto["ari"].median() >= 0.7, auto
    assert auto["k_correct"].mean() >= 0.65, auto
    # the automatic k loses little against being told k
    assert auto["ari"].median() >= given["ari"].median() - 0.1


def test_single_component_galaxies_get_one_cluster(run):
    for name in ("l2", "none"):
        single = run[name][run[name]["n_components"] == 1]
        assert (single["n_clusters"] == 1).mean() >= 0.9, single
    table = ari_table(run["l2"])
    assert table["single"].sum() == (run["l2"]["n_components"] == 1).sum()
    assert (table["single_k1"] >= 0.9).all()


def _brightness_share(stamps, per, brightness):
    """Per galaxy: fraction of the variance of pixel brightness explained by the labels."""
    multi = set(per.loc[per["n_components"] >= 2, "id"])
    shares = []
    for st in stamps.itertuples():
        labels = decode_labels(st.labels, st.ny, st.nx)
        if st.id not in multi or len(np.unique(labels[labels >= 0])) < 2:
            continue
        flux = brightness[st.y0:st.y0 + st.ny, st.x0:st.x0 + st.nx][labels >= 0]
        lab = labels[labels >= 0]
        between = sum((lab == k).sum() * (flux[lab == k].mean() - flux.mean()) ** 2
                      for k in np.unique(lab))
        shares.append(between / ((flux - flux.mean()) ** 2).sum())
    return np.array(shares)


def test_raw_fluxes_recover_brightness_not_components(run):
    raw = ari_table(run["none"])
    shape = ari_table(run["l2"])
    assert (raw["median_ari"] <= 0.2).all(), raw
    assert (shape["median_ari"] - raw["median_ari"]).min() >= 0.4
    assert _bright(run["l2"], 2)["ari"].median() - _bright(run["none"], 2)["ari"].median() >= 0.6
    # what raw-flux clusters do follow: brightness (measured median share 0.71 for
    # raw fluxes, 0.01 for l2 shapes)
    raw_share = _brightness_share(run["none_stamps"], run["none"], run["brightness"])
    shape_share = _brightness_share(run["l2_stamps"], run["l2"], run["brightness"])
    assert len(raw_share) >= 20 and np.median(raw_share) >= 0.5
    assert np.median(shape_share) <= 0.15


def test_ari_table_summarises_the_per_galaxy_rows(run):
    per = run["l2"]
    table = ari_table(per)
    assert list(table.columns) == ["snr_bin", "galaxies", "median_ari", "k_correct", "single",
                                   "single_k1"]
    assert table["snr_bin"].tolist() == ["[0, 10)", "[10, 20)", "[20, 40)", "[40, inf)"]
    multi = per[per["n_components"] >= 2]
    assert table["galaxies"].sum() == len(multi)
    row = table.set_index("snr_bin").loc["[20, 40)"]
    sel = multi[(multi["snr"] >= 20) & (multi["snr"] < 40)]
    assert row["median_ari"] == pytest.approx(sel["ari"].median())
    assert row["k_correct"] == pytest.approx((sel["n_clusters"] == sel["n_components"]).mean())
    rebinned = ari_table(per, bins=(0, 30, np.inf))
    assert rebinned["snr_bin"].tolist() == ["[0, 30)", "[30, inf)"]
    assert rebinned["galaxies"].sum() == len(multi)


# --------------------------------------------------------------------------- small, exact
def _stamp(gid, y0, x0, labels):
    labels = np.asarray(labels, dtype=np.int16)
    return {"id": gid, "y0": y0, "x0": x0, "ny": labels.shape[0], "nx": labels.shape[1],
            "labels": labels.astype("<i2").tobytes()}


def test_survey_ari_on_a_hand_made_truth():
    truth_map = np.full((20, 30), -1, np.int16)
    truth_map[2:8, 2:8] = 0
    truth_map[2:8, 8:14] = 1          # galaxy 1: two components side by side
    truth_map[10:16, 20:26] = 0       # galaxy 2: one component
    truth_map[12:18, 2:8] = 0         # galaxy 3: two components, top and bottom
    truth_map[15:18, 2:8] = 1
    truth = pd.DataFrame({"id": [1, 2, 3, 4, 9], "kind": ["galaxy"] * 4 + ["star"],
                          "n_components": [2, 1, 2, 2, 1], "snr": [12.0, 50.0, 7.0, 30.0, 9.0]})
    perfect = np.where(truth_map[1:9, 1:15] >= 0, 1 - truth_map[1:9, 1:15], -1)  # relabelled
    across = np.where(truth_map[11:19, 1:9] >= 0, 0, -1)
    across[:, 4:][across[:, 4:] >= 0] = 1          # left | right across a top / bottom truth
    stamps = pd.DataFrame([_stamp(1, 1, 1, perfect), _stamp(2, 9, 19, np.zeros((8, 8))),
                           _stamp(3, 11, 1, across), _stamp(9, 0, 0, np.zeros((2, 2)))])
    galaxies = pd.DataFrame({"id": [1, 2, 3, 4, 9], "n_clusters": [2, 1, 2, 0, 1]})
    per = survey_ari(stamps, galaxies, truth_map, truth).set_index("id")
    assert list(per.index) == [1, 2, 3, 4]                  # the star is left out
    assert per.at[1, "ari"] == pytest.approx(1.0) and per.at[1, "n_compared"] == 72
    assert per.at[2, "ari"] == pytest.approx(1.0) and per.at[2, "n_compared"] == 36
    # a 2 x 2 contingency of 9 pixels each: ARI = (4 C(9,2) - E) / (C(18,2) 2 - E),
    # E = (2 C(18,2))**2 / C(36,2)
    e = (2 * 153) ** 2 / 630
    assert per.at[3, "ari"] == pytest.approx((4 * 36 - e) / (2 * 153 - e))
    assert per.at[3, "n_compared"] == 36
    assert np.isnan(per.at[4, "ari"]) and per.at[4, "n_compared"] == 0  # flagged: no stamp
    assert per["k_correct"].tolist() == [True, True, True, False]
    assert per["snr_bin"].astype(str).tolist() == ["[10, 20)", "[40, inf)", "[0, 10)",
                                                   "[20, 40)"]
    table = ari_table(per.reset_index()).set_index("snr_bin")
    assert table.loc["[10, 20)", "median_ari"] == pytest.approx(1.0)
    assert table.loc["[20, 40)", "galaxies"] == 1 and np.isnan(table.loc["[20, 40)",
                                                                          "median_ari"])
    assert table.loc["[40, inf)", "single"] == 1 and table.loc["[40, inf)", "single_k1"] == 1.0
    assert list(SNR_BINS) == [0.0, 10.0, 20.0, 40.0, np.inf]


def test_survey_ari_refuses_mismatched_inputs():
    truth_map = np.zeros((10, 10), np.int16)
    truth = pd.DataFrame({"id": [1], "kind": ["galaxy"], "n_components": [1], "snr": [10.0]})
    galaxies = pd.DataFrame({"id": [1], "n_clusters": [1]})
    outside = pd.DataFrame([_stamp(1, 5, 5, np.zeros((8, 8)))])
    with pytest.raises(InputError, match="reach outside the 10x10 truth map"):
        survey_ari(outside, galaxies, truth_map, truth)
    with pytest.raises(InputError, match=r"truth_sources lacks column\(s\) \['snr'\]"):
        survey_ari(outside, galaxies, truth_map, truth.drop(columns="snr"))
    with pytest.raises(InputError, match="truth_components must be the"):
        survey_ari(outside, galaxies, truth_map[None], truth)
    with pytest.raises(InputError, match="increasing S/N edges"):
        survey_ari(outside, galaxies, truth_map, truth, bins=(10, 5))
