"""cluster_galaxy's sky rescaling, faint-pixel binning, FAINT flag and unmixing, and the
fraction maps through the survey mapping."""

from __future__ import annotations

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.pixels import PixelFlag, cluster_galaxy
from galclust.pixels.mixing import rescale_from_sky
from galclust.pixels.survey import decode_fractions, decode_labels, pixel_tables
from galclust.synth.mixtures import make_mixture_galaxy


def test_errors_are_rescaled_from_the_sky_before_the_k_test():
    g = make_mixture_galaxy(1, snr=40, family="heldout", seed=8)  # error map too small
    plain = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands)
    fixed = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands, sky=g.sky)
    got = np.array([fixed.error_scale[b] for b in g.bands])
    np.testing.assert_allclose(got, g.err_scale, rtol=0.1)
    assert plain.error_scale == {} and fixed.summary()["err_scale"].count("=") == 6
    # with the true noise the single population is not split
    assert fixed.n_clusters == 1 and fixed.chi2_single < plain.chi2_single


def test_too_little_sky_is_flagged_and_errors_kept():
    g = make_mixture_galaxy(1, snr=40, seed=8)
    sky = np.zeros_like(g.sky)
    sky[:3, :3] = True
    res = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, sky=sky)
    assert res.flags & PixelFlag.SKY_TOO_SMALL
    assert set(res.error_scale.values()) == {1.0}


def test_faint_galaxy_is_flagged_and_binning_clusters_its_outskirts():
    g = make_mixture_galaxy(2, snr=6, layout="separated", seed=9)
    cut = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, sky=g.sky)
    assert cut.flags & PixelFlag.FAINT and cut.n_bins == 0
    binned = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, sky=g.sky, bin_snr=8)
    assert binned.n_bins > 5
    assert (binned.labels >= 0).sum() > 1.5 * (cut.labels >= 0).sum()
    assert not (binned.flags & PixelFlag.FAINT)
    # with unmixing: selected pixels take their dominant component, and the bins are labelled
    mixed = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, sky=g.sky, bin_snr=8,
                           unmix=True)
    sel = mixed.selection
    # (a separated pair: the colour classes and the fraction maps' argmax agree)
    np.testing.assert_array_equal(mixed.labels[sel],
                                  np.nanargmax(mixed.fractions[:, sel], axis=0))
    assert mixed.n_bins == binned.n_bins and ((mixed.labels >= 0) & ~sel).sum() > 20
    # every labelled pixel is in the footprint; a bin's pixels share one label
    assert not ((binned.labels >= 0) & ~g.mask).any()
    assert binned.composites["n_pixels"].sum() == binned.n_pixels
    with pytest.raises(InputError, match="bin_snr"):
        cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bin_snr=2.0)


def _matched(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The true labels renamed to the labels they overlap most (one-to-one)."""
    from scipy.optimize import linear_sum_assignment

    k = max(truth.max(), labels.max()) + 1
    overlap = np.zeros((k, k))
    np.add.at(overlap, (truth, labels), 1)
    r, c = linear_sum_assignment(-overlap)
    return c[np.argsort(r)][truth]


def test_unmixing_gives_fractions_seds_and_the_dominant_labels():
    g = make_mixture_galaxy(3, snr=60, layout="overlapping", seed=12)
    res = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands, sky=g.sky,
                         unmix=True)
    assert res.criterion == "unmix-null" and res.n_clusters == res.fractions.shape[0]
    cov = np.isfinite(res.fractions[0])
    assert (cov == g.mask).all()
    np.testing.assert_allclose(np.nansum(res.fractions, axis=0)[g.mask], 1.0, atol=1e-5)
    sel = res.labels >= 0
    assert set(np.unique(res.labels[sel])) <= set(range(res.n_clusters))
    truth = g.labels[sel] >= 0

    def agree(labels):
        return np.mean(labels[truth] == _matched(g.labels[sel][truth], labels[truth]))

    # the labels are colour classes (dominant under the minimum-volume SEDs): measured 0.86.
    # The clustering's labels at that k agree 1.00 on this galaxy, one of the few where they
    # do better: over 292 never-tuned suite galaxies these labels' ARI is higher on 179 and
    # lower on 31
    assert agree(res.labels[sel]) > 0.8
    # the fraction maps, whose SEDs the light's profiles place: their dominant component
    # is the true one everywhere (measured 1.00; 0.86 with the minimum-volume SEDs)
    dominant = np.nanargmax(res.fractions[:, sel], axis=0)
    assert agree(dominant) > 0.97
    comps = res.components
    assert comps["sed"].shape == (res.n_clusters, 6)
    np.testing.assert_allclose(comps["sed"].sum("band"), 1.0)
    assert (comps["sed_err"] > 0).all() and (comps["sed_err"] < 0.05).all()  # S/N 60
    # a fixed k unmixes with that k but keeps the clustering's labels
    fixed = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, unmix=True, n_clusters=2)
    assert fixed.fractions.shape[0] == 2 and fixed.criterion != "unmix-null"
    with pytest.raises(InputError, match="unmix"):
        cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, unmix="nmf")


def test_survey_writes_fraction_maps_and_component_seds(small_cube):
    cube, cat, _ = small_cube
    gal, comp, stamps, fractions, components = pixel_tables(
        cube, cat, unmix=True).compute(scheduler="sync")
    assert set(fractions["id"]) == set(gal.loc[gal["n_clusters"] > 0, "id"])
    per = fractions.groupby("id").size()
    np.testing.assert_array_equal(per.sort_index().to_numpy(),
                                  gal.set_index("id").loc[per.index, "n_clusters"].to_numpy())
    for gid, rows in fractions.groupby("id"):
        maps = np.stack([decode_fractions(r.fractions, r.ny, r.nx) for r in rows.itertuples()])
        srow = stamps.set_index("id").loc[gid]
        labels = decode_labels(srow["labels"], srow["ny"], srow["nx"])
        inside = np.isfinite(maps[0])
        np.testing.assert_allclose(maps.sum(axis=0)[inside], 1.0, atol=5e-3)  # float16
        lab = labels >= 0
        assert labels.max() < len(maps) and np.isfinite(maps[:, lab]).all()
    assert len(components) == len(fractions) * cube.sizes["band"]
    sums = components.groupby(["id", "component"])["sed"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
    assert gal["criterion"].str.startswith("unmix").all()


@pytest.mark.parametrize("case", ["negative", "zeros", "tiny"])
def test_degenerate_galaxies_are_flagged_rows_without_fractions(case):
    """No pixel passes the selection (or too few): no unmixing, no warning, a flagged row."""
    import warnings

    g = make_mixture_galaxy(2, snr=30, seed=3)
    sci, mask = g.sci, g.mask
    if case == "negative":
        sci = -np.abs(g.sci)
    elif case == "zeros":
        sci = np.zeros_like(g.sci)
    else:
        mask = np.zeros_like(g.mask)
        mask[30:33, 30:33] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cluster_galaxy(sci, g.err, mask, g.wavelength, sky=g.sky, unmix=True)
    assert res.fractions is None and res.components is None
    assert res.flags & (PixelFlag.NO_PIXELS | PixelFlag.TOO_FEW_PIXELS)


def test_sky_too_small_for_the_noise_correlation_is_flagged_when_unmixing():
    """Held-out nested single (drizzle-like noise): its stamp's 263 sky pixels give every
    band's scale but too few 3 x 3 boxes for the correlation, which the unmixing's k test
    then takes as white. Said by SKY_TOO_SMALL, and only when unmixing."""
    g = make_mixture_galaxy(1, snr=100, layout="nested", family="heldout", seed=198)
    assert rescale_from_sky(g.sci, g.err, g.sky, g.bands, correlation=False)[2]
    _, _, ok, corr = rescale_from_sky(g.sci, g.err, g.sky, g.bands)
    assert not ok and corr == 1.0
    plain = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands, sky=g.sky)
    assert not plain.flags & PixelFlag.SKY_TOO_SMALL
    un = cluster_galaxy(g.sci, g.err, g.mask, g.wavelength, bands=g.bands, sky=g.sky,
                        unmix="pixel")
    assert un.flags & PixelFlag.SKY_TOO_SMALL
