"""make_cluster_field / make_cluster_survey: a cluster field with known membership."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import galclust
from galclust.errors import InputError
from galclust.store.cube import open_catalog
from galclust.synth import CLUSTER_KINDS, make_cluster_field, make_cluster_survey
from galclust.synth.profiles import moffat

COLUMNS = ["id", "kind", "member", "z", "mag", "colour", "sersic_n", "r_eff", "axis_ratio",
           "position_angle", "snr"]
BETA = {"default": 2.5, "heldout": 4.5}  # the families' Moffat PSFs


@pytest.fixture(scope="module", params=["default", "heldout"])
def field(request):
    return make_cluster_field(400, size=32, family=request.param, random_state=0)


def _moments(img: np.ndarray, iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive elliptical-Gaussian-weighted moments of ``(n, y, x)`` stamps centred on
    pixel ``size // 2``: size ``sqrt(trace / 2)`` (px) and axis ratio."""
    n, s = len(img), img.shape[-1]
    yy, xx = np.mgrid[:s, :s] - s // 2
    cyy, cxx, cxy, cy, cx = np.full(n, 2.0), np.full(n, 2.0), np.zeros(n), np.zeros(n), \
        np.zeros(n)
    for _ in range(iters):
        dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
        a, b, c = (v[:, None, None] for v in (cyy, cxx, cxy))
        w = img * np.exp(-0.5 * (b * dy**2 - 2 * c * dx * dy + a * dx**2) / (a * b - c**2))
        m0 = w.sum((1, 2))
        cy, cx = cy + (w * dy).sum((1, 2)) / m0, cx + (w * dx).sum((1, 2)) / m0
        cyy, cxx, cxy = (2 * (w * v).sum((1, 2)) / m0 for v in (dy * dy, dx * dx, dx * dy))
        cyy, cxx = np.clip(cyy, 0.05, s * s), np.clip(cxx, 0.05, s * s)
        cxy = np.clip(cxy, -0.99 * np.sqrt(cyy * cxx), 0.99 * np.sqrt(cyy * cxx))
    d = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    return np.sqrt((cxx + cyy) / 2), np.sqrt((cxx + cyy - 2 * d) / (cxx + cyy + 2 * d))


def test_same_seed_same_field_other_seed_other_field():
    a = make_cluster_field(40, size=24, random_state=3)
    b = make_cluster_field(40, size=24, random_state=3)
    c = make_cluster_field(40, size=24, random_state=4)
    np.testing.assert_array_equal(a.cutouts, b.cutouts)
    np.testing.assert_array_equal(a.err, b.err)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not np.array_equal(a.cutouts, c.cutouts)
    assert not a.table["mag"].equals(c.table["mag"])
    h = make_cluster_field(40, size=24, family="heldout", random_state=3)
    assert not np.allclose(h.psf_fwhm, a.psf_fwhm) and h.family == "heldout"


def test_shapes_dtypes_columns_and_exact_member_fraction(field):
    n = 400
    assert field.cutouts.shape == (n, 3, 32, 32) and field.cutouts.dtype == np.float32
    assert field.err.shape == (n, 3) and field.err.dtype == np.float32
    assert np.all(field.err > 0) and np.isfinite(field.cutouts).all()
    assert field.bands == ("g", "r", "i")
    np.testing.assert_allclose(field.wavelength, [0.4702, 0.6175, 0.7491])
    assert field.psf_fwhm.shape == (3,) and np.all(field.psf_fwhm >= 1.6 - 1e-9)
    assert np.all(np.diff(field.psf_fwhm) < 0)  # seeing improves to the red
    t = field.table
    assert list(t.columns[:6]) == COLUMNS[:6] and set(COLUMNS) <= set(t.columns)
    assert t["id"].tolist() == list(range(1, n + 1))
    assert (t["member"] == t["kind"].isin(["member", "dwarf_member"])).all()
    assert t["member"].sum() == round(0.35 * n)
    assert set(t["kind"]) == set(CLUSTER_KINDS)  # every kind in both families
    stars = t["kind"] == "star"
    assert (t.loc[stars, "r_eff"] == 0).all() and t.loc[~stars, "r_eff"].gt(0).all()
    # magnitudes from bright to near the detection limit
    assert t["mag"].min() < 14.5 and t["mag"].max() > 20.0
    assert t["snr"].min() < 25 and t["snr"].quantile(0.1) < 40  # matched-filter S/N
    assert t["snr"].quantile(0.9) > 500
    # colour is first-minus-middle band
    np.testing.assert_allclose(t["colour"], t["mag_g"] - t["mag_r"])


def test_members_on_a_red_sequence_and_passive_background_redder(field):
    t = field.table
    mem = t[t["kind"] == "member"]
    slope, zero = np.polyfit(mem["mag"], mem["colour"], 1)
    res = mem["colour"] - (zero + slope * mem["mag"])
    assert -0.07 < slope < -0.01  # -0.03 (default), -0.045 (heldout) + sampling noise
    assert abs(res.median()) < 0.02 and res.std() < 0.08
    passive = t[(t["kind"] == "background") & (t["sersic_n"] >= 2.4)]
    assert len(passive) > 20
    assert (passive["colour"] - (zero + slope * passive["mag"])).median() > 0.1
    # the confounders reach the sequence's colour
    for kind in ("edge_on", "star", "compact_galaxy"):
        col = t.loc[t["kind"] == kind, "colour"]
        assert (abs(col - mem["colour"].median()) < 0.1).sum() >= 3, kind


def test_stars_are_unresolved_and_edge_on_disks_elongated(field):
    t = field.table
    mid = len(field.bands) // 2
    size, q = _moments(field.cutouts[:, mid].astype(float))
    psf = moffat((32, 32), 16, 16, field.psf_fwhm[mid], beta=BETA[field.family])
    psf_size = _moments(psf[None])[0][0]
    clean = ~t["neighbour"] & t["snr"].between(50, 5000)  # bright, not saturated, alone
    ratio = {k: np.median(size[clean & (t["kind"] == k)] / psf_size)
             for k in ("star", "compact_galaxy", "member")}
    assert 0.9 < ratio["star"] < 1.35
    assert ratio["star"] < ratio["compact_galaxy"] < ratio["member"]
    assert np.median(q[clean & (t["kind"] == "edge_on")]) < 0.65  # measured 0.43-0.56
    assert np.median(q[clean & (t["kind"] == "member")]) > 0.75
    assert np.median(q[clean & (t["kind"] == "star")]) > 0.85


def test_pca_logistic_baseline_is_realistic_not_trivial():
    # Tuned on family="default": PCA + logistic regression on asinh pixels reaches
    # ~0.83 at 600 x 64 px (the research's pixel baseline); on 400 x 32 px fields it
    # measured 0.81 +- 0.03 over 8 seeds x 3 splits (this seed and split: 0.83; this
    # split of seeds 0-9: 0.74-0.89).
    # The band allows that spread, not a trivially easy or hopeless problem.
    f = make_cluster_field(400, size=32, random_state=0)
    y = f.table["member"].to_numpy()
    x = np.arcsinh(f.cutouts / np.median(f.err, axis=0)[None, :, None, None]).reshape(400, -1)
    tr, te = train_test_split(np.arange(400), test_size=0.25, stratify=y, random_state=0)
    model = make_pipeline(StandardScaler(), PCA(30, random_state=0),
                          LogisticRegression(max_iter=3000)).fit(x[tr], y[tr])
    acc = (model.predict(x[te]) == y[te]).mean()
    majority = max(y[te].mean(), 1 - y[te].mean())
    assert 0.72 <= acc <= 0.90
    assert majority < acc - 0.08


def test_bad_arguments_are_refused():
    with pytest.raises(InputError, match="family"):
        make_cluster_field(10, family="coma")
    with pytest.raises(InputError, match="bands"):
        make_cluster_field(10, bands=("g",))
    with pytest.raises(InputError, match="bands"):
        make_cluster_field(10, bands=("g", "F150W"))
    with pytest.raises(InputError, match="size"):
        make_cluster_field(10, size=8)


def test_survey_round_trips_through_ingest(tmp_path):
    s = make_cluster_survey(tmp_path / "field", 30, size=32, random_state=2)
    assert s.shape == (5 * 32, 6 * 32)  # 30 sources: 6 columns, 5 rows
    labels = pd.read_csv(s.labels_path)
    assert list(labels.columns) == ["id", "member", "kind"]
    assert s.truth["detected"].all()
    assert labels["id"].tolist() == s.truth["id"].tolist()
    assert set(labels["kind"]) <= set(CLUSTER_KINDS) and labels["member"].isin([0, 1]).all()
    cube = galclust.ingest(s.manifest_path, str(tmp_path / "cube.zarr"))
    assert cube["band"].values.tolist() == ["g", "r", "i"]
    assert cube["sci"].shape == (3, *s.shape)
    cat = open_catalog(str(tmp_path / "cube.zarr"))
    assert cat["id"].tolist() == labels["id"].tolist()
    seg = cube["seg"].values
    assert set(np.unique(seg[seg > 0]).tolist()) == set(labels["id"])
    # every source's own segment holds its position, within the grid cell
    xi, yi = np.round(cat["x"]).astype(int), np.round(cat["y"]).astype(int)
    assert (seg[yi, xi] == cat["id"]).mean() > 0.9
    np.testing.assert_allclose(cat["x"], s.truth["x"], atol=1e-6)
    # rewriting its own folder is fine; a foreign folder is refused
    make_cluster_survey(tmp_path / "field", 4, size=32)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a synthetic survey"):
        make_cluster_survey(tmp_path / "other", 4, size=32)
