"""Extended emission-line regions (galclust.structures.emission).

Recovery: a true region is recovered when a detected region overlaps it by at
least 50 per cent of the smaller of the two. Targets on the default family (on
which the score thresholds were chosen): >= 85 % of injected regions recovered,
<= 10 % of controls with a region (no line) or a candidate (nuclear line following
the continuum). Held-out family: nothing was tuned on it, but the noise
calibration (``calibrate_noise``) was added after a first held-out run showed its
correlated noise defeating the given ``err``; the held-out assertions use seeds
that were not looked at then.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.structures.emission import (
    COLUMNS,
    MEDIUM_BANDS,
    band_for_redshift,
    default_dbscan,
    emission_regions,
)
from galclust.synth.emission import EMISSION_BANDS, make_emission_galaxy

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = list(EMISSION_BANDS)
LAM = np.array(list(EMISSION_BANDS.values()))


def recovered(labels: np.ndarray, region: np.ndarray) -> bool:
    """Whether any labelled region overlaps ``region`` by >= 50 % of the smaller."""
    for i in np.unique(labels[labels > 0]):
        r = labels == i
        if (r & region).sum() >= 0.5 * min(r.sum(), region.sum()):
            return True
    return False


def run(g, **kw):
    kw.setdefault("n_resample", 0)
    return emission_regions(g.sci, g.err, g.wavelength, None, z=g.meta["z"], bands=g.bands,
                            psf_fwhm=g.meta["psf_fwhm"], **kw)


def survey(family, snrs, sizes, n, seed0, snr_of="white", **kw):
    cells = {}
    for snr in snrs:
        for size in sizes:
            rec = cand = 0
            for s in range(n):
                g = make_emission_galaxy(snr=snr, size=size, family=family,
                                         random_state=seed0 + s, snr_of=snr_of)
                r = run(g, **kw)
                rec += recovered(r.labels, g.region)
                cand_lab = np.where(np.isin(r.labels, r.candidates["id"]), r.labels, 0)
                cand += recovered(cand_lab, g.region)
            cells[(snr, size)] = (rec / n, cand / n)
    return cells


def controls(family, n, seed0):
    empty = nuclear = region_empty = cand_nuclear = region_nuclear = 0
    for s in range(n):
        g = make_emission_galaxy(extended=False, family=family, random_state=seed0 + s)
        r = run(g)
        if g.meta["nuclear"]:
            nuclear += 1
            region_nuclear += r.n_regions > 0
            cand_nuclear += len(r.candidates) > 0
        else:
            empty += 1
            region_empty += r.n_regions > 0
    return region_empty / empty, cand_nuclear / nuclear, region_nuclear / nuclear


def test_recovery_default_by_snr_and_size():
    cells = survey("default", (10, 20, 40), (2, 3, 5), 8, 1000)
    rec = np.mean([v[0] for v in cells.values()])
    cand = np.mean([v[1] for v in cells.values()])
    assert rec >= 0.85, cells
    assert min(v[0] for v in cells.values()) >= 0.75, cells
    assert cand >= 0.7, cells
    # significant, well-resolved outflows are candidates almost always
    assert cells[(20, 3)][1] >= 0.85 and cells[(40, 5)][1] >= 0.85, cells


def test_controls_default():
    empty, cand_nuc, _ = controls("default", 40, 2000)
    assert empty <= 0.10
    assert cand_nuc <= 0.10


@pytest.mark.slow
def test_heldout_recovery_and_controls():
    """The issue's target on the held-out family (nothing tuned on it) at the same
    significance as the default family's grid: S/N 10-40 against the noise the image
    has (``snr_of="actual"``; its correlated noise makes a nominal white-noise S/N
    about twice the actual one). Measured on these seeds: 100 % (72 regions)."""
    cells = survey("heldout", (10, 20, 40), (2, 3, 5), 8, 3000, snr_of="actual")
    assert np.mean([v[0] for v in cells.values()]) >= 0.85, cells
    assert min(v[0] for v in cells.values()) >= 0.75, cells
    assert np.mean([v[1] for v in cells.values()]) >= 0.6, cells
    empty, cand_nuc, _ = controls("heldout", 40, 4000)
    assert empty <= 0.10
    assert cand_nuc <= 0.15


def test_smoothing_at_two_psf_widths_finds_faint_extended_emission():
    """The detection map at 1 and 2 PSF FWHM (``scales``, chosen on the default family)
    against the PSF alone: large (size 5 px) regions at S/N 7 are found (0 of 10 with
    the PSF alone when chosen, seeds 7000-7009; here other seeds), and controls stay
    clean."""
    one = survey("default", (7,), (5,), 10, 5000, scales=(1.0,))
    two = survey("default", (7,), (5,), 10, 5000)
    assert two[(7, 5)][0] >= one[(7, 5)][0] + 0.3, (one, two)
    empty, _, _ = controls("default", 20, 6000)
    assert empty <= 0.10


@pytest.mark.parametrize("fwhm", [1.2, 2.0, 3.5])
def test_dbscan_rule_holds_across_psf_sizes(fwhm):
    shape = int(max(64, 30 * fwhm))
    eps, min_samples = default_dbscan(fwhm)
    assert eps == 1.0 and min_samples == max(3, int(np.ceil(0.5 * np.pi * fwhm**2)))
    rec = false = 0
    for s in range(6):
        g = make_emission_galaxy(snr=15, size=1.5 * fwhm, psf_fwhm=fwhm, shape=shape,
                                 random_state=s)
        rec += recovered(run(g).labels, g.region)
        c = make_emission_galaxy(extended=False, nuclear=False, psf_fwhm=fwhm, shape=shape,
                                 random_state=100 + s)
        false += run(c).n_regions > 0
    assert rec >= 5 and false == 0


def test_rule_holds_across_noise_levels_and_units():
    # The same galaxy with its noise x0.5 ... x2 (snr 40 ... 10): recovered without
    # retuning; and rescaling the units of sci and err changes nothing.
    for snr in (10, 20, 40):
        g = make_emission_galaxy(snr=snr, size=3, random_state=7)
        r = run(g)
        assert recovered(r.labels, g.region)
    g = make_emission_galaxy(snr=20, size=3, random_state=8)
    a, b = run(g), emission_regions(g.sci * 1e-3, g.err * 1e-3, g.wavelength, "F410M",
                                    bands=g.bands, n_resample=0)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.table["S_excess"], b.table["S_excess"], rtol=1e-4)


@pytest.mark.parametrize(("z", "band", "line"), [
    (5.22, "F410M", "halpha"),      # 0.6563 * 6.22 = 4.08
    (4.13, "F335M", "halpha"),      # 3.37
    (2.19, "F210M", "halpha"),      # 2.09
    (7.17, "F410M", "oiii"),        # 0.5007 * 8.17 = 4.09 (Halpha beyond 5 um)
    (1.6, "F335M", "pabeta"),       # Paβ 3.33; Halpha 1.71 falls in no medium band
])
def test_band_for_redshift(z, band, line):
    i, name = band_for_redshift(z, NAMES, LAM)
    assert (NAMES[i], name) == (band, line)


def test_band_for_redshift_none_and_width_rule():
    assert band_for_redshift(0.05, NAMES, LAM) == (None, None)
    # unnamed bands: medium by fractional width (given widths)
    lam = [3.56, 4.09, 4.42]
    i, name = band_for_redshift(5.22, None, lam, widths=[0.79, 0.44, 1.02])
    assert (i, name) == (1, "halpha")
    # the caller may say which bands are medium
    assert band_for_redshift(5.22, None, lam, medium=[1])[0] == 1
    assert set(MEDIUM_BANDS) >= {"F335M", "F410M", "F480M"}


def test_band_none_picks_from_z():
    g = make_emission_galaxy(z=4.13, snr=30, size=3, random_state=3)
    r = run(g)
    assert NAMES[r.band] == "F335M" and r.line == "halpha"
    assert recovered(r.labels, g.region)
    with pytest.raises(InputError, match="band=None needs z"):
        emission_regions(g.sci, g.err, g.wavelength, None, bands=g.bands)


def test_continuum_and_error_propagation():
    # flat f_nu continuum, no noise: the excess is exactly the injected line, even when
    # the red neighbour (F444W) holds the line (only bands F356W, F410M, F444W).
    lam = np.array([3.563, 4.092, 4.421])
    names = ["F356W", "F410M", "F444W"]
    sci = np.ones((3, 20, 20))
    line = np.zeros((20, 20))
    line[8:12, 8:12] = 5.0
    sci[1] += line
    sci[2] += line * 0.436 / 1.024
    err = np.full_like(sci, 0.1)
    r = emission_regions(sci, err, lam, "F410M", bands=names, n_resample=0)
    np.testing.assert_allclose(r.excess, line, atol=1e-9)
    # clean neighbours: excess_err = sqrt(err_m^2 + err_C^2) and matches the scatter
    g = make_emission_galaxy(extended=False, nuclear=False, random_state=5)
    r = run(g, calibrate_noise=False)
    m, (b, rr) = r.band, r.neighbours
    x = np.log(g.wavelength[[b, rr]] / g.wavelength[m])
    wb, wr = x[1] / (x[1] - x[0]), -x[0] / (x[1] - x[0])
    np.testing.assert_allclose(r.excess_err, np.sqrt(1 + wb**2 + wr**2))
    resid = r.excess - np.median(r.excess)
    sky = r.host == 0
    assert abs(np.std(resid[sky]) / r.excess_err[sky].mean() - 1) < 0.1


def test_pixels_without_data_are_blank_and_warn_nothing():
    # an uncovered pixel (infinite error, NaN flux) is NaN in the maps; the other
    # pixels are exactly as without it, and no overflow warning reaches the user
    g = make_emission_galaxy(extended=False, nuclear=False, random_state=5)
    ref = run(g, calibrate_noise=False)
    sci, err = g.sci.copy(), g.err.copy()
    sci[:, 2, 3], err[:, 2, 3] = np.nan, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = emission_regions(sci, err, g.wavelength, None, z=g.meta["z"], bands=g.bands,
                             psf_fwhm=g.meta["psf_fwhm"], n_resample=0, calibrate_noise=False)
    assert np.isnan(r.excess[2, 3]) and np.isnan(r.excess_err[2, 3])
    keep = np.ones(sci.shape[1:], bool)
    keep[2, 3] = False
    np.testing.assert_allclose(r.excess[keep], ref.excess[keep])
    np.testing.assert_allclose(r.excess_err[keep], ref.excess_err[keep])
    # the same in a reference band outside the continuum fit: no data there is no host
    other = next(b for b in range(len(g.bands)) if b not in (ref.band, *ref.neighbours))
    sci, err = g.sci.copy(), g.err.copy()
    sci[other, 2, 3], err[other, 2, 3] = np.nan, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = emission_regions(sci, err, g.wavelength, None, z=g.meta["z"], bands=g.bands,
                             psf_fwhm=g.meta["psf_fwhm"], n_resample=0, calibrate_noise=False,
                             reference=g.bands[other])
    assert r.reference == other and r.host[2, 3] == 0


def test_power_law_continuum_leaves_small_residual():
    lam = LAM
    for beta in (-0.5, 0.5):
        f = (lam / 4.092) ** beta
        sci = np.broadcast_to(f[:, None, None], (len(lam), 8, 8)).copy()
        r = emission_regions(sci, np.full_like(sci, 0.01), lam, "F410M", bands=NAMES,
                             n_resample=0)
        assert np.max(np.abs(r.excess)) < 0.01


def test_reference_and_more_neighbours():
    g = make_emission_galaxy(snr=30, size=3, random_state=13)
    r = run(g, reference="F444W")
    assert g.bands[r.reference] == "F444W" and recovered(r.labels, g.region)
    assert g.bands[run(g).reference] in {g.bands[k] for k in run(g).neighbours}
    r2 = run(g, n_side=2)
    assert len(r2.neighbours) == 4 and recovered(r2.labels, g.region)
    # a power-law continuum fitted over four neighbours leaves a small residual
    f = (LAM / 4.092) ** 0.4
    sci = np.broadcast_to(f[:, None, None], (len(LAM), 8, 8)).copy()
    r3 = emission_regions(sci, np.full_like(sci, 0.01), LAM, "F410M", bands=NAMES, n_side=2,
                          n_resample=0)
    assert np.max(np.abs(r3.excess)) < 0.02


def test_table_measurements_and_determinism():
    g = make_emission_galaxy(snr=25, size=3, random_state=11)
    a, b = run(g, n_resample=3), run(g, n_resample=3)
    assert list(a.table.columns) == COLUMNS
    assert a.n_regions >= 1
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.table.equals(b.table)
    row = a.table.iloc[0]
    assert row["candidate"] and 0 <= row["outflow_score"] <= 1
    for col in ("gini", "asymmetry", "axis_ratio", "R_mf", "q_mf", "R_rf", "q_rf", "d_H"):
        assert np.isfinite(row[col]) and np.isfinite(row[col + "_err"]) and row[col + "_err"] >= 0
    assert row["S_excess"] == pytest.approx(row["flux"] / row["flux_err"])
    # the injected cone is offset from the nucleus by meta["offset"] (>= 0.8 size)
    assert row["d_H"] >= 0.5 * g.meta["offset"]
    assert a.table["outflow_score"].between(0, 1).all()
    assert a.table["candidate"].dtype == bool


def test_mask_removes_pixels():
    g = make_emission_galaxy(snr=30, size=3, random_state=12)
    mask = np.zeros(g.sci.shape[1:], bool)
    mask[g.region] = True
    r = run(g, mask=mask)
    assert not np.any(r.labels[mask])


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(band=99), "band=99 is not a band index"),
    (dict(band="F999M"), "not one of the cube's bands"),
    (dict(band="F090W"), "no bluer neighbour"),
    (dict(band="F480M"), "no redder neighbour"),
    (dict(mask=np.zeros((3, 3), bool)), "mask has shape"),
    (dict(err="short"), "err has shape"),
    (dict(wavelength="short"), "wavelength has"),
    (dict(reference="F410M"), "medium band itself"),
    (dict(psf_fwhm=0.0), "psf_fwhm"),
    (dict(band=None, z=0.01), "no medium band holds"),
    (dict(scales=()), "scales must be"),
    (dict(scales=(1.0, -2.0)), "scales must be"),
])
def test_bad_inputs(kwargs, match):
    g = make_emission_galaxy(random_state=0, shape=24)
    args = dict(sci=g.sci, err=g.err, wavelength=g.wavelength, band="F410M", bands=g.bands)
    if kwargs.get("err") == "short":
        kwargs["err"] = g.err[:-1]
    if kwargs.get("wavelength") == "short":
        kwargs["wavelength"] = g.wavelength[:-1]
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        emission_regions(args.pop("sci"), args.pop("err"), args.pop("wavelength"),
                         args.pop("band"), **args)


def test_real_hsc_cube_i_as_medium():
    """HSC g r i z y (scarlet, COSMOS): i treated as the medium band between r and z."""
    with np.load(DATA / "hsc_cosmos" / "hsc_cosmos_35.npz") as d:
        sci = d["images"].astype(np.float64)
        err = np.sqrt(d["variance"].astype(np.float64))
        bands = [str(b) for b in d["filters"]]
    lam = [0.477, 0.623, 0.775, 0.925, 0.980]
    kw = dict(bands=bands, psf_fwhm=3.0, n_resample=2)
    a = emission_regions(sci, err, lam, "i", **kw)
    b = emission_regions(sci, err, lam, "i", **kw)
    assert a.neighbours == [1, 3]
    assert a.table.equals(b.table) and np.array_equal(a.labels, b.labels)
    assert a.labels.shape == sci.shape[1:]
    assert np.isfinite(a.table[["flux", "S_excess", "R_mf", "d_H"]].to_numpy()).all()


def test_real_decals_cube_r_as_medium():
    """DECaLS g r z cutout (pysersic): r treated as the band between g and z."""
    fits = pytest.importorskip("astropy.io.fits")
    with fits.open(DATA / "decals" / "cutout_59.1067_-30.4848.fits") as hdul:
        img = [hdul[i].data.astype(np.float64) for i in (1, 3, 5)]
        ivar = [hdul[i].data.astype(np.float64) for i in (2, 4, 6)]
    sci = np.stack(img)
    with np.errstate(divide="ignore"):
        err = np.where(np.stack(ivar) > 0, 1 / np.sqrt(np.stack(ivar)), np.nan)
    lam = [0.48, 0.64, 0.92]
    a = emission_regions(sci, err, lam, 1, psf_fwhm=4.0, n_resample=0)
    b = emission_regions(sci, err, lam, 1, psf_fwhm=4.0, n_resample=0)
    assert a.table.equals(b.table) and np.array_equal(a.labels, b.labels)
    assert a.noise_factor >= 1.0
    assert (a.table["n_pixels"] >= a.min_samples).all()
