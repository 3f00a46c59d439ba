"""Density structures (AstroLink / HDBSCAN on luminosity-sampled point clouds).

Recovery is measured on synthetic clumpy galaxies (:func:`galclust.synth.make_clumpy_galaxy`):
a clump is found when one structure covers most of its core (one-to-one, see
:func:`galclust.synth.score_clumps`). The defaults of :func:`find_structures`
(AstroLink 400 points per pixel, HDBSCAN 10, colours smoothed by one PSF sigma,
colour_weight 0.5) were chosen on the ``default`` family only; ``heldout`` is never
used to choose a setting.
The recovery table is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galclust.errors import InputError
from galclust.structures._significance import image_snr, luminosity_noise_factor, prune
from galclust.structures.density import (
    Structures,
    find_structures,
    merge_tile_structures,
    warm_astrolink,
)
from galclust.synth import make_clumpy_galaxy, score_clumps

DATA = Path(__file__).resolve().parents[1] / "data"
N_SCENES = 6
#: floors (found fraction, false per scene): measured on these 6 scenes minus a margin,
#: with the per-galaxy stage's settings (host subtracted, min_snr 5, AstroLink 400 and
#: HDBSCAN 10 points per pixel): default AstroLink 100 %/0.0, HDBSCAN 100 %/0.0; heldout
#: AstroLink 93 %/0.33, HDBSCAN 100 %/0.0. The issue's target (>= 92 %, <= 1 false) is
#: asserted on default AstroLink (test_issue_target_on_default), on held-out AstroLink
#: (test_min_snr_cuts_...) and on held-out HDBSCAN (test_host_subtraction_...); heldout
#: is a validation family, nothing tuned on it.
FLOORS = {("default", "astrolink"): (0.92, 0.5), ("default", "hdbscan"): (0.9, 0.5),
          ("heldout", "astrolink"): (0.85, 1.0), ("heldout", "hdbscan"): (0.9, 0.5)}


@pytest.fixture(scope="module")
def warm():
    """Compile AstroLink's numba kernels once for this module."""
    return warm_astrolink()


def _recovery(family, method, **kw):
    kw.setdefault("host", "subtract")   # the per-galaxy stage's choice (host="auto")
    found = distinct = false = 0
    for seed in range(N_SCENES):
        g = make_clumpy_galaxy(family=family, random_state=seed)
        st = find_structures(g.sci, err=g.err, method=method, random_state=0, **kw)
        sc = score_clumps(st.labels, g.clump_map, g.clumps)
        found += sc["found_distinct"]
        distinct += sc["n_distinct"]
        false += sc["false"]
    return found / distinct, false / N_SCENES


@pytest.fixture(scope="module")
def recovery(warm):
    table = {(f, m): _recovery(f, m) for f in ("default", "heldout")
             for m in ("astrolink", "hdbscan")}
    print("\nclump recovery (colour-distinct clumps found, false structures per scene):")
    for (f, m), (frac, fp) in table.items():
        print(f"  {f:8s} {m:9s} found {frac:6.1%}  false/scene {fp:.2f}")
    return table


def test_warm_astrolink_returns_seconds(warm):
    assert isinstance(warm, float) and warm >= 0
    assert warm_astrolink() < 5.0          # already compiled in this process


@pytest.mark.slow
@pytest.mark.parametrize("family", ["default", "heldout"])
@pytest.mark.parametrize("method", ["astrolink", "hdbscan"])
def test_clump_recovery_floors(recovery, family, method):
    frac, fp = recovery[family, method]
    min_found, max_false = FLOORS[family, method]
    assert frac >= min_found, (family, method, frac)
    assert fp <= max_false, (family, method, fp)


@pytest.mark.slow
def test_issue_target_on_default(recovery):
    """The issue's target: >= 92 % of colour-distinct clumps, <= 1 false structure per scene."""
    frac, fp = recovery["default", "astrolink"]
    assert frac >= 0.92 and fp <= 1.0


@pytest.mark.slow
def test_colour_scaling_matters(warm):
    """Colours in noise units add what positions alone miss when the host's light is kept
    (with it subtracted, positions alone find every default-family clump). Run at 100
    points per pixel, where the scaling rule was chosen (these 6 scenes: 97 % against
    50 %)."""
    kw = {"host": "keep", "points_per_pixel": 100}
    with_colour, _ = _recovery("default", "astrolink", **kw)
    positions_only, _ = _recovery("default", "astrolink", colour_weight=0.0, **kw)
    print(f"\ncolour_weight 0.5 (default): {with_colour:.1%}; positions only: {positions_only:.1%}")
    assert with_colour >= positions_only + 0.2


@pytest.mark.slow
def test_continuous_sampling_matters(recovery):
    """Uniform jitter within pixels (the research's sampling) gives every point of a pixel
    the same colour: pixel-sized spikes swamp AstroLink's noise model and little survives
    S = 5. Bilinear (continuous) sampling is what makes the colour axes usable."""
    found = distinct = 0
    for seed in range(2):
        g = make_clumpy_galaxy(random_state=seed)
        st = find_structures(g.sci, err=g.err, sampling="pixel", host="subtract")
        sc = score_clumps(st.labels, g.clump_map, g.clumps)
        found += sc["found_distinct"]
        distinct += sc["n_distinct"]
    print(f"\nsampling='pixel': {found}/{distinct} clumps; bilinear: "
          f"{recovery['default', 'astrolink'][0]:.1%}")
    assert found / distinct <= recovery["default", "astrolink"][0] - 0.5


_GAL = {}


def _galaxy():
    if not _GAL:
        _GAL["g"] = make_clumpy_galaxy(random_state=1)
    return _GAL["g"]


def test_labels_table_and_options(warm):
    g = _galaxy()
    st = find_structures(g.sci, err=g.err, bands=g.clumps.attrs["bands"])
    assert isinstance(st, Structures) and st.method == "astrolink"
    assert st.labels.shape == g.sci.shape[1:] and st.labels.dtype == np.int32
    t = st.table
    for col in ("id", "parent", "significance", "n_points", "n_pixels", "x", "y", "level"):
        assert col in t
    for b in g.clumps.attrs["bands"]:
        assert f"flux_{b}" in t and f"flux_err_{b}" in t
    assert len(t) >= 3
    assert set(np.unique(st.labels[st.labels > 0])) <= set(t["id"])
    assert (t.loc[t["parent"] == 0, "level"] == 1).all()
    assert (t["significance"] >= 5.0).all()
    # a pixel's flux sums to its structure's composite flux
    b0 = g.clumps.attrs["bands"][0]
    sid = int(t.sort_values("n_pixels").iloc[-1]["id"])
    sky = st.options["sky"][0]
    assert np.isclose(t.set_index("id").loc[sid, f"flux_{b0}"],
                      (g.sci[0][st.labels == sid] - sky).sum(), rtol=1e-4)
    # sample-count rule: points per pixel above the cut (2 sigma), in [2000, 2x10^5]:
    # AstroLink 400 (capped on this stamp), HDBSCAN 10; in a small footprint, not capped
    def above(res, inside=True):
        lum = (g.sci - np.array(res.options["sky"])[:, None, None]).sum(0)
        return int(((lum - 2 * np.sqrt((g.err.astype(float) ** 2).sum(0)) > 0) & inside).sum())

    assert st.options["points_per_pixel"] == 400 and 400 * above(st) > 200_000
    assert st.options["n_samples"] == 200_000
    hd = find_structures(g.sci, err=g.err, method="hdbscan")
    assert hd.options["points_per_pixel"] == 10
    assert hd.options["n_samples"] == max(10 * above(hd), 2000)
    box = np.zeros(g.sci.shape[1:], bool)
    box[26:38, 26:38] = True
    small = find_structures(g.sci, err=g.err, mask=box)
    assert 2000 < small.options["n_samples"] == 400 * above(small, box) < 200_000
    assert len(st.options["colour_scale"]) == g.sci.shape[0] - 1


def test_deterministic_and_seeded(warm):
    g = _galaxy()
    a = find_structures(g.sci, err=g.err, random_state=3, n_samples=20000)
    b = find_structures(g.sci, err=g.err, random_state=3, n_samples=20000)
    np.testing.assert_array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.table, b.table)


def test_background_keep_samples_more(warm):
    g = _galaxy()
    sub = find_structures(g.sci, err=g.err, points_per_pixel=20)
    keep = find_structures(g.sci, err=g.err, background="keep", points_per_pixel=20)
    assert keep.options["n_samples"] > sub.options["n_samples"]
    assert (keep.labels > 0).sum() >= 0.8 * (sub.labels > 0).sum()
    fixed = find_structures(g.sci, err=g.err, n_samples=5000, background_level=1e9)
    assert (fixed.labels > 0).sum() == 0 and len(fixed.table) == 0


def test_mask_footprint(warm):
    g = _galaxy()
    mask = g.clumps.attrs["host_map"]
    st = find_structures(g.sci, mask, err=g.err, n_samples=20000)
    assert (st.labels[~mask] == -1).all() and (st.labels[mask] >= 0).all()
    assert len(st.table) >= 2
    assert abs(st.options["sky"][0]) < 3 * g.err[0].mean()   # sky from outside the footprint


def test_hdbscan_is_flat(warm):
    g = _galaxy()
    st = find_structures(g.sci, err=g.err, method="hdbscan", n_samples=8000)
    assert st.method == "hdbscan" and len(st.table) >= 2
    assert (st.table["parent"] == 0).all() and (st.table["level"] == 1).all()


def test_real_hsc_blend(warm):
    d = np.load(DATA / "hsc_cosmos" / "hsc_cosmos_35.npz")
    sci, err = d["images"], np.sqrt(d["variance"])
    runs = [find_structures(sci, err=err, bands=list(d["filters"]), random_state=0,
                            n_samples=50000) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].labels, runs[1].labels)
    pd.testing.assert_frame_equal(runs[0].table, runs[1].table)
    st = runs[0]
    assert st.labels.shape == sci.shape[1:] and len(st.table) >= 2
    assert np.isfinite(st.table.filter(like="flux_").to_numpy()).all()
    h = find_structures(sci, err=err, method="hdbscan", random_state=0, n_samples=10000)
    assert h.labels.shape == sci.shape[1:]


def test_real_hst_single_band(warm):
    from astropy.io import fits

    base = DATA / "hst_abell2744"
    with gzip.open(base / "abell_2744_dwarf_galaxy_f105w.fits.gz") as f:
        img = fits.getdata(f).astype(float)
    with gzip.open(base / "abell_2744_dwarf_galaxy_f105w_rms.fits.gz") as f:
        rms = fits.getdata(f).astype(float)
    st = find_structures(img, err=rms, random_state=0, n_samples=50000)
    again = find_structures(img, err=rms, random_state=0, n_samples=50000)
    np.testing.assert_array_equal(st.labels, again.labels)
    assert st.labels.shape == img.shape and len(st.table) >= 1
    assert st.options["colour_scale"] == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"mask": np.ones((3, 3), bool)}, "mask"),
    ({"method": "dbscan"}, "method"),
    ({"err": np.ones((2, 64, 64))}, "err"),
    ({"background": "drop"}, "background"),
    ({"psf_fwhm": 0}, "psf_fwhm"),
])
def test_bad_inputs(kwargs, match):
    g = _galaxy()
    with pytest.raises(InputError, match=match):
        find_structures(g.sci, **kwargs)


def test_all_nan_refused():
    with pytest.raises(InputError, match="finite"):
        find_structures(np.full((3, 10, 10), np.nan))


def _hand(labels, rows):
    t = pd.DataFrame(rows)
    return Structures(np.asarray(labels, np.int32), t, "astrolink", {})


def _row(i, fluxes, **kw):
    r = {"id": i, "parent": 0, "significance": 6.0, "n_points": 100, "n_pixels": 4,
         "x": 0.0, "y": 0.0, "level": 1, "flux_a": fluxes[0], "flux_b": fluxes[1],
         "flux_err_a": 1.0, "flux_err_b": 1.0}
    r.update(kw)
    return r


def test_merge_tile_structures():
    # tile A (left) has structure 1 touching its right edge; tile B (right) has 1 (same SED,
    # touching the left edge) and 2 (different SED, also touching A's structure 2)
    la = np.array([[0, 1], [0, 1], [2, 2], [0, 0]])
    lb = np.array([[1, 0], [1, 0], [2, 0], [0, 0]])
    a = _hand(la, [_row(1, (10.0, 20.0), x=1.0, y=0.5), _row(2, (10.0, 1.0), x=0.5, y=2.0)])
    b = _hand(lb, [_row(1, (5.0, 10.0), x=2.0, y=0.5), _row(2, (1.0, 10.0), x=2.0, y=2.0)])
    labels, table = merge_tile_structures([(0, 0, a), (0, 2, b)], (4, 4))
    assert labels.shape == (4, 4)
    assert labels[0, 1] == labels[0, 2] > 0           # same SED across the edge: one
    assert labels[2, 1] != labels[2, 2]               # different SED: kept apart
    assert len(table) == 3
    merged = table.set_index("id").loc[int(labels[0, 1])]
    assert merged["flux_a"] == 15.0 and merged["n_pixels"] == 8
    assert np.isclose(merged["flux_err_a"], np.sqrt(2.0))
    with pytest.raises(InputError, match="overlap"):
        merge_tile_structures([(0, 0, a), (0, 1, b)], (4, 4))


def test_host_subtraction_finds_the_clumps_a_concentrated_host_swallows():
    """``host="subtract"`` (an unsharp mask of 1.5 PSF FWHM, chosen a priori) on 15 held-out
    scenes (seeds 200-214; measured on 200-229: HDBSCAN 86 % -> 95 %, false 0.13 -> 0.07
    per scene). HDBSCAN needs no compilation, so this runs in seconds."""
    found = {"keep": 0, "subtract": 0}
    false = dict(found)
    distinct = 0
    for seed in range(200, 215):
        g = make_clumpy_galaxy(family="heldout", random_state=seed)
        for host in found:
            st = find_structures(g.sci, err=g.err, method="hdbscan", points_per_pixel=10,
                                 host=host, random_state=0)
            sc = score_clumps(st.labels, g.clump_map, g.clumps)
            found[host] += sc["found_distinct"]
            false[host] += sc["false"]
            distinct += sc["n_distinct"] if host == "keep" else 0
            assert st.options["host"] == host
    frac = {h: found[h] / distinct for h in found}
    print(f"held-out, HDBSCAN: keep {frac['keep']:.3f} / {false['keep'] / 15:.2f}, "
          f"subtract {frac['subtract']:.3f} / {false['subtract'] / 15:.2f}")
    assert frac["subtract"] >= 0.92 and false["subtract"] / 15 <= 1.0  # the issue's target
    assert frac["subtract"] >= frac["keep"] + 0.04


@pytest.mark.parametrize("kwargs, match", [({"host": "model"}, "host"),
                                           ({"host_scale": 0}, "host_scale"),
                                           ({"min_snr": -1.0}, "min_snr"),
                                           ({"min_snr": "5"}, "min_snr"),
                                           ({"points_per_pixel": 0}, "points_per_pixel")])
def test_host_options_are_checked(kwargs, match):
    with pytest.raises(InputError, match=match):
        find_structures(np.ones((2, 16, 16)), method="hdbscan", **kwargs)


def test_numpy_numbers_are_accepted():
    rng = np.random.default_rng(0)
    st = find_structures(rng.normal(size=(2, 16, 16)), method="hdbscan", min_snr=np.int64(5),
                         points_per_pixel=np.float32(10), host_scale=np.int32(2))
    assert st.options["points_per_pixel"] == 10.0 and st.options["host_scale"] == 2.0


def test_prune_gives_pixels_to_the_nearest_kept_ancestor():
    # 1 root; 2 child of 1; 3 child of 2; 4 another root. Drop 2 and 4.
    labels = np.array([[1, 2, 3, 4, -1, 0]])
    parent = np.array([0, 1, 2, 0])
    out, new_parent, index = prune(labels, parent, np.array([True, False, True, False]))
    np.testing.assert_array_equal(out, [[1, 1, 2, 0, -1, 0]])
    np.testing.assert_array_equal(new_parent, [0, 1])      # 3 (now 2) hangs from 1
    np.testing.assert_array_equal(index, [0, 2])


def test_image_snr_sums_descendants():
    labels = np.array([[1, 1, 2, 2, 0]])
    lum = np.array([[1.0, 1.0, 4.0, 4.0, 100.0]])
    var = np.ones_like(lum)
    snr = image_snr(labels, lum, var, np.array([0, 1]), factor=2.0)
    np.testing.assert_allclose(snr, [10.0 / (2 * 2.0), 8.0 / (2 * np.sqrt(2.0))])


def test_noise_factor_measures_correlated_noise():
    """White noise with true errors gives ~1; the same noise smoothed (correlated) and
    rescaled to unit per-pixel RMS, with ``err`` still 1, gives the factor by which a
    PSF-smoothed sum's error is understated (> 1.5 for a 0.7 px kernel)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    white = rng.normal(size=(256, 256))
    corr = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 0.7)
    corr /= corr.std()
    ones, fin = np.ones_like(white), np.ones(white.shape, bool)
    f_white = luminosity_noise_factor(white, ones, fin, fin, 2.0)
    f_corr = luminosity_noise_factor(corr, ones, fin, fin, 2.0)
    assert f_white < 1.05
    assert f_corr > 1.5


def test_min_snr_cuts_false_structures_on_heldout(warm):
    """AstroLink's S measures density noise in the point cloud, blind to the image's
    noise: on the held-out family's correlated noise (never tuned on) its residual noise
    peaks pass S = 5, the more so the more points (seeds 400-414, host subtracted: 1.7
    false per scene at 100 points per pixel, 17 at 400; seeds 400-404 here). The
    image-S/N cut (5, chosen a priori) removes them; what is left meets the issue's
    target (measured on 400-414: 93 % found, 0.27 false per scene; without the cut 96 %
    found, 2 of 75 clumps more)."""
    res = {}
    for min_snr, seeds in ((5.0, range(400, 415)), (None, range(400, 405))):
        found = distinct = false = 0
        for seed in seeds:
            g = make_clumpy_galaxy(family="heldout", random_state=seed)
            st = find_structures(g.sci, err=g.err, host="subtract", min_snr=min_snr,
                                 random_state=0)
            sc = score_clumps(st.labels, g.clump_map, g.clumps)
            found, distinct = found + sc["found_distinct"], distinct + sc["n_distinct"]
            false += sc["false"]
            if min_snr:
                assert (st.table["snr"] >= 5.0).all() and st.options["noise_factor"] > 1.3
        res[min_snr] = (found / distinct, false / len(seeds))
    print(f"held-out AstroLink, host subtracted: min_snr 5 {res[5.0]}, none {res[None]}")
    assert res[None][1] >= 5.0                              # noise peaks pass S = 5
    assert res[5.0][0] >= 0.92 and res[5.0][1] <= 0.5       # the issue's target
