"""make_survey(layout=...): the default stays as it was; "separated" gives distinct components."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from scipy import ndimage

from galclust.config import load_manifest
from galclust.errors import InputError
from galclust.synth import FAMILIES, NIRCAM_BANDS, make_survey
from galclust.synth.galaxy import draw_separated_components
from galclust.synth.profiles import psf_fwhm_px

BANDS = ["F090W", "F150W", "F277W", "F444W"]


def _sha(path, dtype):
    return hashlib.sha256(np.ascontiguousarray(fits.getdata(path), dtype=dtype).tobytes()
                          ).hexdigest()


def test_default_layout_output_is_unchanged(tmp_path):
    # Fingerprint of make_survey's default output, recorded when layout= was added
    # (the files were then byte-identical to those written before the option
    # existed). Other tests and stored demo runs depend on these exact data.
    s = make_survey(tmp_path / "a", shape=(160, 192), bands=["F150W", "F356W"], seed=1)
    assert s.layout == "mixed"
    assert _sha(s.seg_path, "<i4") == \
        "09c23b76c3907ea4458ca1542cc2683c923e0b9777611f406b9a5031fac5e006"
    assert _sha(s.truth_components_path, "<i2") == \
        "ef9830fde08a40c148e2ffe5bc51dca7ec6dfaf12e8b7bd146ab3a9637c19ccd"
    truth = pd.read_parquet(s.truth_sources_path)
    assert truth["n_components"].tolist() == [0, 2, 3, 4, 3, 1, 0, 2, 1, 2, 0, 2, 4, 2]
    assert truth["families"].tolist()[:5] == [
        "", "old,dusty", "old,dusty,starforming", "old,starforming,dusty,starforming",
        "old,starforming,dusty"]
    sums = {b: float(np.nansum(fits.getdata(p).astype(float))) for b, p in s.sci_paths.items()}
    assert sums["F150W"] == pytest.approx(1205475.389166736, rel=1e-6)
    assert sums["F356W"] == pytest.approx(445902.89307863754, rel=1e-6)
    # asking for the default by name writes the same files
    m = make_survey(tmp_path / "m", shape=(160, 192), bands=["F150W", "F356W"], seed=1,
                    layout="mixed")
    for a, b in zip([*s.sci_paths.values(), s.seg_path, s.truth_components_path],
                    [*m.sci_paths.values(), m.seg_path, m.truth_components_path], strict=True):
        np.testing.assert_array_equal(fits.getdata(a), fits.getdata(b))


@pytest.fixture(scope="module")
def separated(tmp_path_factory):
    path = tmp_path_factory.mktemp("sep") / "field"
    s = make_survey(path, shape=(384, 384), bands=BANDS, seed=11, psf_matched=True,
                    layout="separated")
    return s, pd.read_parquet(s.truth_sources_path), fits.getdata(s.seg_path), \
        fits.getdata(s.truth_components_path)


def test_separated_survey_is_a_normal_delivery(separated):
    s, truth, seg, _ = separated
    assert s.layout == "separated"
    m = load_manifest(s.manifest_path)
    assert m.band_names == BANDS
    cat = pd.read_parquet(s.catalog_path)
    assert set(np.unique(seg)) - {0} == set(cat["id"]) == set(truth["id"])
    # noise still comes from the error map: sky pulls are unit normal
    sky = ~ndimage.binary_dilation(seg > 0, iterations=8)
    pull = fits.getdata(s.sci_paths["F150W"]) / fits.getdata(s.noise_paths["F150W"])
    pull = pull[sky & np.isfinite(pull)]
    assert pull.size > 20000 and abs(pull.mean()) < 0.05 and pull.std() == pytest.approx(1, abs=0.05)
    assert s.n_galaxies >= 35 and set(truth["kind"]) == {"galaxy", "star", "artefact"}


def test_separated_galaxies_have_distinct_families(separated):
    _, truth, _, _ = separated
    gal = truth[truth["kind"] == "galaxy"]
    assert set(gal["n_components"]) == {1, 2, 3}
    fams = gal["families"].str.split(",")
    assert (fams.str.len() == gal["n_components"]).all()
    assert fams.map(lambda f: len(set(f)) == len(f)).all()        # one family per component
    assert set(fams.explode()) == set(FAMILIES)


def test_separated_truth_regions_are_compact_and_apart(separated):
    _, truth, seg, comp = separated
    gal = truth[(truth["kind"] == "galaxy") & (truth["n_components"] >= 2)]
    fwhm = psf_fwhm_px(np.array([NIRCAM_BANDS["F444W"]]))[0]
    checked = 0
    for row in gal.itertuples():
        own = seg == row.id
        blobs = []
        for c in range(row.n_components):
            labels, n = ndimage.label(own & (comp == c))
            assert n >= 1, row.id                                # every component is seen
            sizes = np.bincount(labels.ravel())[1:]
            blobs.append(labels == 1 + sizes.argmax())
        # one blob per component (not a ring around a bulge); a neighbour's segment
        # may cut off a few outskirt pixels
        assert sum(b.sum() for b in blobs) >= 0.9 * (own & (comp >= 0)).sum(), row.id
        centres = [np.array(ndimage.center_of_mass(b)) for b in blobs]
        for a, b in itertools.combinations(centres, 2):
            # component centres are >= 2 FWHM apart, so their regions' centroids too
            assert np.hypot(*(a - b)) > 2.0 * fwhm, row.id
        checked += 1
    assert checked >= 20


def test_separated_components_are_drawn_apart_with_distinct_seds():
    lam = np.array(list(NIRCAM_BANDS.values()))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n = 1 + seed % 3
        comps = draw_separated_components(rng, n, lam, 2.0, separation=7.0)
        assert len({c.family for c in comps}) == n
        assert sum(c.weight for c in comps) == pytest.approx(1.0)
        pos = np.array([[c.dy, c.dx] for c in comps])
        if n == 1:
            assert np.all(pos == 0)
            continue
        gaps = [np.hypot(*(a - b)) for a, b in itertools.combinations(pos, 2)]
        assert 7.0 * (1 - 1e-9) <= min(gaps) <= 7.0 * 1.3 * (1 + 1e-9)
        assert max(c.size for c in comps) <= 2.0
        seds = np.stack([c.sed / np.linalg.norm(c.sed) for c in comps])
        assert np.all(np.abs(seds @ seds.T - np.eye(n)) < 0.999)  # not the same shape
    with pytest.raises(InputError, match="n_components=4"):
        draw_separated_components(np.random.default_rng(0), 4, lam, 2.0, separation=7.0)
    with pytest.raises(InputError, match="separation"):
        draw_separated_components(np.random.default_rng(0), 2, lam, 2.0, separation=0.0)


def test_bad_layout_is_refused_before_writing(tmp_path):
    with pytest.raises(InputError, match="Did you mean 'separated'"):
        make_survey(tmp_path / "never", layout="seperated")
    assert not (tmp_path / "never").exists()
