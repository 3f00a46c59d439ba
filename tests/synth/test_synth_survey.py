"""make_survey: files that look like a real survey delivery, and the truth behind them."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from galclust.config import load_manifest, manifest_from_dict
from galclust.errors import InputError
from galclust.synth import NIRCAM_BANDS, REASONS, make_survey

BANDS = ["F115W", "F200W", "F356W", "F444W"]
SHAPE = (256, 288)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("s") / "field", shape=SHAPE, bands=BANDS,
                       seed=3, strip_rows=100)


@pytest.fixture(scope="module")
def tables(survey):
    cat = pd.read_parquet(survey.catalog_path)
    truth = pd.read_parquet(survey.truth_sources_path)
    labels = pd.read_csv(survey.labels_path, keep_default_na=False)
    return cat, truth, labels


def _data(path):
    return fits.getdata(path)


def test_manifest_validates_and_points_at_the_files(survey):
    m = load_manifest(survey.manifest_path)
    assert m.name == "field"
    assert m.band_names == BANDS
    assert m.wavelengths == [NIRCAM_BANDS[b] for b in BANDS]
    for band, spec in zip(BANDS, m.bands, strict=True):
        assert spec.sci == survey.sci_paths[band] and spec.err == survey.noise_paths[band]
        assert spec.noise_kind == "err" and spec.unit == "nJy"
    assert m.segmentation.path == survey.seg_path
    assert (m.catalog.path, m.catalog.id, m.catalog.ra, m.catalog.dec, m.catalog.redshift) == \
        (survey.catalog_path, "id", "ra", "dec", "z")
    assert m.labels is not None and m.labels.path == survey.labels_path
    with open(survey.manifest_path, "rb") as fh:
        raw = tomllib.load(fh)
    assert raw["bands"][0]["sci"] == "F115W_sci.fits"  # relative paths
    manifest_from_dict(raw, base=survey.path)


def test_fits_headers_carry_a_tan_wcs_and_photometry_keywords(survey):
    for band in BANDS:
        h = fits.getheader(survey.sci_paths[band])
        assert (h["NAXIS2"], h["NAXIS1"]) == SHAPE and h["BITPIX"] == -32
        assert (h["CTYPE1"], h["CTYPE2"]) == ("RA---TAN", "DEC--TAN")
        assert h["CD1_1"] == pytest.approx(-0.04 / 3600) and h["CD2_2"] == pytest.approx(0.04 / 3600)
        assert (h["CRVAL1"], h["CRVAL2"]) == (214.9, 52.9)
        assert (h["CRPIX1"], h["CRPIX2"]) == ((SHAPE[1] + 1) / 2, (SHAPE[0] + 1) / 2)
        assert h["FILTER"] == band and h["BUNIT"] == "nJy"
        assert h["PHOTPLAM"] == pytest.approx(NIRCAM_BANDS[band] * 1e4)
        assert fits.getheader(survey.noise_paths[band])["BUNIT"] == "nJy"
    assert fits.getheader(survey.seg_path)["BITPIX"] == 32
    assert fits.getheader(survey.truth_components_path)["BITPIX"] == 16


def test_catalog_sky_positions_round_trip_through_the_wcs(survey, tables):
    cat = tables[0]
    assert str(cat["id"].dtype) == "int64" and cat["id"].min() >= 1 and cat["id"].is_unique
    wcs = WCS(fits.getheader(survey.sci_paths["F200W"]))
    x, y = wcs.all_world2pix(cat["ra"], cat["dec"], 0)
    assert np.max(np.abs(x - cat["x"])) < 0.01 and np.max(np.abs(y - cat["y"])) < 0.01
    ra, dec = wcs.all_pix2world(cat["x"], cat["y"], 0)
    np.testing.assert_allclose(ra, cat["ra"], atol=1e-9)
    centre = wcs.all_pix2world((SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2, 0)
    np.testing.assert_allclose(centre, (214.9, 52.9))


def test_catalog_ids_are_exactly_the_segmentation_labels(survey, tables):
    cat, truth, _ = tables
    seg = _data(survey.seg_path)
    assert seg.dtype.kind == "i"
    assert set(np.unique(seg)) - {0} == set(cat["id"])
    assert list(truth["id"]) == list(cat["id"])
    # a real source owns the pixel it sits on
    real = truth[~truth["spurious"]]
    own = seg[np.round(real["y"]).astype(int), np.round(real["x"]).astype(int)] == real["id"]
    assert own.mean() > 0.9
    assert {f"flux_{b}" for b in BANDS} <= set(cat.columns)
    assert (cat.loc[~truth["spurious"].to_numpy(), [f"flux_{b}" for b in BANDS]] > 0).all().all()


def test_truth_components_lie_inside_galaxy_segments(survey, tables):
    _, truth, _ = tables
    seg = _data(survey.seg_path)
    comp = _data(survey.truth_components_path)
    gal = truth[truth["kind"] == "galaxy"].set_index("id")
    in_gal = np.isin(seg, gal.index.to_numpy())
    assert np.all(comp[~in_gal] == -1)
    assert np.all(comp[in_gal] >= 0)
    ncomp = gal["n_components"].reindex(seg[in_gal]).to_numpy()
    assert np.all(comp[in_gal] < ncomp)
    fams = gal["families"].str.split(",")
    assert (fams.str.len() == gal["n_components"]).all()
    assert set(fams.explode()) <= {"starforming", "old", "dusty"}
    assert gal["z"].between(0.5, 7.0).all()
    assert gal["snr"].between(5.0 * (1 - 1e-5), 100.0 * (1 + 1e-5)).all()


def test_every_artefact_class_is_present_and_labelled(survey, tables):
    cat, truth, labels = tables
    assert set(labels["reason"]) == {"", *REASONS}
    lab = labels.merge(truth, on="id")
    assert np.array_equal(lab["reliable"] == 0, lab["spurious"])
    assert np.array_equal(lab["reason"], lab["artefact"])
    assert survey.n_labelled == len(labels) == len(cat)  # label_fraction = 1
    for reason in REASONS:
        assert (truth["artefact"] == reason).sum() >= 1
    assert set(truth.loc[~truth["spurious"], "artefact"]) == {""}
    assert set(truth["kind"]) == {"galaxy", "star", "artefact"}


def test_spike_detections_sit_on_the_spikes_of_bright_stars(survey, tables):
    truth = tables[1].set_index("id")
    spikes = truth[truth["artefact"] == "diffraction spike"]
    seg = _data(survey.seg_path)
    for fid, row in spikes.iterrows():
        star = truth.loc[row["parent"]]
        assert star["kind"] == "star"
        dy, dx = row["y"] - star["y"], row["x"] - star["x"]
        angle = np.degrees(np.arctan2(dy, dx)) % 60.0  # spikes at 30 + k * 60 degrees
        assert abs(angle - 30.0) < 1.0 and np.hypot(dy, dx) > 9.0
        # its segment touches the star's (the spike) segment
        own = seg == fid
        assert own.any()
        assert np.any(seg[ndimage.binary_dilation(own, iterations=2)] == star.name)


def test_close_detections_are_shredded_from_a_bright_galaxy(survey, tables):
    truth = tables[1].set_index("id")
    seg = _data(survey.seg_path)
    close = truth[truth["artefact"] == "close to another source"]
    for fid, row in close.iterrows():
        parent = truth.loc[row["parent"]]
        assert parent["kind"] == "galaxy"
        own = seg == fid
        assert np.any(seg[ndimage.binary_dilation(own)] == parent.name)


def test_edge_detections_straddle_the_coverage_edge(survey, tables):
    truth = tables[1]
    err = _data(survey.noise_paths["F444W"])
    for _, row in truth[truth["artefact"] == "edge data"].iterrows():
        y, x = int(round(row["y"])), int(round(row["x"]))
        assert np.isfinite(err[y, x])
        box = err[max(0, y - 6): y + 7, max(0, x - 6): x + 7]
        assert np.isnan(box).any()  # no coverage within 6 px


def test_coverage_edges_are_encoded_like_real_products(survey):
    sci = _data(survey.sci_paths["F150W" if "F150W" in BANDS else "F200W"])
    err = _data(survey.noise_paths["F200W"])
    seg = _data(survey.seg_path)
    nocov = np.isnan(err)
    assert 0.05 < nocov.mean() < 0.4                  # not the full rectangle
    assert nocov[0, 0] or nocov[0, -1] or nocov[-1, 0] or nocov[-1, -1]
    np.testing.assert_array_equal(np.isnan(sci), nocov)  # NaN sci exactly where NaN err
    assert np.all(seg[nocov] == 0)
    assert np.all(err[~nocov] > 0)
    # noise rises towards the edge of the data
    edge = ndimage.binary_dilation(nocov, iterations=2) & ~nocov
    assert np.median(err[edge]) > 2.0 * np.median(err[~nocov])


def test_sky_noise_is_drawn_from_the_error_map(survey):
    seg = _data(survey.seg_path)
    sky = ~ndimage.binary_dilation(seg > 0, iterations=8)
    for band in BANDS:
        pull = _data(survey.sci_paths[band]) / _data(survey.noise_paths[band])
        pull = pull[sky & np.isfinite(pull)]
        assert pull.size > 5000
        assert abs(np.mean(pull)) < 0.1 and np.std(pull) == pytest.approx(1.0, abs=0.05)


def test_spurious_fraction_is_as_requested(tmp_path):
    s = make_survey(tmp_path / "f", shape=(768, 768), bands=["F200W", "F444W"], seed=5)
    assert s.n_spurious / s.n_sources == pytest.approx(0.04, abs=0.01)
    assert s.n_undetected == 0
    for reason in REASONS:
        assert s.n_artefacts[reason] >= 2
    none = make_survey(tmp_path / "g", shape=(128, 128), bands=["F200W"], seed=5,
                       spurious_fraction=0.0, label_fraction=0.0)
    assert none.n_spurious == 0 and none.labels_path is None
    assert "labels" not in tomllib.loads(open(none.manifest_path).read())


def _all_data(s):
    paths = [*s.sci_paths.values(), *s.noise_paths.values(), s.seg_path,
             s.truth_components_path]
    return [_data(p) for p in paths]


def test_strips_leave_no_seams(tmp_path):
    kw = {"shape": (200, 160), "bands": ["F090W", "F444W"], "seed": 8}
    one = make_survey(tmp_path / "one", strip_rows=10_000, **kw)
    for rows in (64, 37):
        strips = make_survey(tmp_path / f"s{rows}", strip_rows=rows, **kw)
        for a, b in zip(_all_data(one), _all_data(strips), strict=True):
            np.testing.assert_array_equal(a, b)  # bit-identical, NaN included
        pd.testing.assert_frame_equal(pd.read_parquet(one.catalog_path),
                                      pd.read_parquet(strips.catalog_path))


def test_deterministic_for_a_seed(tmp_path):
    kw = {"shape": (160, 192), "bands": ["F150W", "F356W"]}
    a = make_survey(tmp_path / "a", seed=1, **kw)
    b = make_survey(tmp_path / "b", seed=1, **kw)
    c = make_survey(tmp_path / "c", seed=2, **kw)
    for x, y in zip(_all_data(a), _all_data(b), strict=True):
        np.testing.assert_array_equal(x, y)
    for name in ("catalog_path", "truth_sources_path", "labels_path"):
        with open(getattr(a, name), "rb") as fa, open(getattr(b, name), "rb") as fb:
            assert fa.read() == fb.read()
    assert not np.array_equal(_data(a.sci_paths["F150W"]), _data(c.sci_paths["F150W"]))


def test_noise_modes_write_what_they_say(tmp_path):
    kw = {"shape": (160, 160), "bands": ["F090W", "F150W", "F277W"], "seed": 4}
    err = make_survey(tmp_path / "e", noise="err", **kw)
    wht = make_survey(tmp_path / "w", noise="weight", **kw)
    mixed = make_survey(tmp_path / "m", noise="mixed", **kw)
    assert set(err.noise_kinds.values()) == {"err"} and set(wht.noise_kinds.values()) == {"weight"}
    assert mixed.noise_kinds == {"F090W": "err", "F150W": "weight", "F277W": "err"}
    assert mixed.noise_paths["F150W"].endswith("F150W_wht.fits")
    assert load_manifest(mixed.manifest_path).bands[1].weight == mixed.noise_paths["F150W"]
    for band in kw["bands"]:
        e, s_e = _data(err.noise_paths[band]), _data(err.sci_paths[band])
        w, s_w = _data(wht.noise_paths[band]), _data(wht.sci_paths[band])
        assert fits.getheader(wht.noise_paths[band])["BUNIT"] == "nJy**-2"
        cov = np.isfinite(e)
        np.testing.assert_allclose(w[cov], 1.0 / e[cov] ** 2, rtol=1e-6)
        np.testing.assert_array_equal(s_w[cov], s_e[cov])
        # no coverage: NaN sci + NaN err, or zero weight + zero sci
        assert np.all(w[~cov] == 0) and np.all(s_w[~cov] == 0) and np.all(np.isnan(s_e[~cov]))
        assert not np.isnan(w).any() and not np.isnan(s_w).any()
    for band, kind in mixed.noise_kinds.items():
        np.testing.assert_array_equal(_data(mixed.noise_paths[band]),
                                      _data((err if kind == "err" else wht).noise_paths[band]))


def test_label_fraction_picks_a_deterministic_subset(tmp_path):
    kw = {"shape": (192, 192), "bands": ["F200W"], "seed": 6, "label_fraction": 0.4}
    a = make_survey(tmp_path / "a", **kw)
    b = make_survey(tmp_path / "b", **kw)
    la = pd.read_csv(a.labels_path, keep_default_na=False)
    lb = pd.read_csv(b.labels_path, keep_default_na=False)
    pd.testing.assert_frame_equal(la, lb)
    assert len(la) == a.n_labelled == round(0.4 * a.n_sources)
    assert set(la["id"]) <= set(pd.read_parquet(a.catalog_path)["id"])


def test_psf_matched_mosaics_share_one_psf(tmp_path):
    s = make_survey(tmp_path / "p", shape=(128, 128), bands=["F090W", "F444W"], seed=2,
                    psf_matched=True, spurious_fraction=0.0)
    fw = [fits.getheader(p)["PSFFWHM"] for p in s.sci_paths.values()]
    assert fw[0] == fw[1] == pytest.approx(0.0318 * 4.402, rel=1e-3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"noise": "wieght"}, "Did you mean 'weight'"),
    ({"shape": (64, 512)}, "both >= 128"),
    ({"spurious_fraction": 0.7}, "spurious_fraction"),
    ({"label_fraction": 1.5}, "label_fraction"),
    ({"snr_range": (10, 5)}, "snr_range"),
    ({"bands": ["F150X"]}, "Did you mean 'F150W'"),
    ({"strip_rows": 0}, "strip_rows"),
    ({"shape": (128, 128), "n_galaxies": 500}, "do not fit"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        make_survey(tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()
