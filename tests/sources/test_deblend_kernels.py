"""The deblender's fast kernels against the plain implementations they replaced.

``_merge`` updates fragment saddles, peaks and colour sums as fragments merge
instead of recomputing them from the pixels after every merge, and the
symmetry split reads its cubic-spline reflections with a numba kernel instead
of ``scipy.ndimage.map_coordinates``. Both must give the same result as the
plain versions (kept here as references) on inputs that exercise them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed

from galclust.sources._coloursplit import _colour_stats
from galclust.sources._smooth import convolve_separable, gaussian_1d
from galclust.sources._symmetry import _antisym, _reflect, _spline
from galclust.sources.deblend import _merge, _pairs


def _merge_reference(lab, surfaces, sci, var, *, npixels, contrast_sigma, colour_sigma,
                     colour_chi2, colour_min, area_sigma=None, area_npixels=None,
                     bright_sigma=None, bright_depth=0.1, bright_ratio=0.1):
    """The pass-over-the-pixels merge: every statistic recomputed after each merge."""
    nb = sci.shape[0]
    while lab.max() > 1:
        pairs, saddle = _pairs(lab, surfaces)
        if not len(pairs):
            break
        m = int(lab.max())
        flat = lab.ravel()
        peaks = np.full((len(surfaces), m + 1), -np.inf)
        for i, surf in enumerate(surfaces):
            np.maximum.at(peaks[i], flat, surf.ravel())
        area = np.bincount(flat, minlength=m + 1)
        depth = np.minimum(peaks[:, pairs[:, 0]], peaks[:, pairs[:, 1]]) - saddle
        n, e = _colour_stats(lab, sci, var)
        dn = n[pairs[:, 0]] - n[pairs[:, 1]]
        chi2 = (dn**2 / (e[pairs[:, 0]] ** 2 + e[pairs[:, 1]] ** 2 + 1e-30)).sum(1) / max(nb - 1, 1)
        colour = (chi2 >= colour_chi2) & (np.abs(dn).sum(1) >= colour_min)
        small = np.minimum(area[pairs[:, 0]], area[pairs[:, 1]]) < npixels
        keep = ((depth[0] >= contrast_sigma)
                | (colour & (depth[1:].max(axis=0) >= colour_sigma))) & ~small
        if area_sigma is not None:      # pixels of each fragment above the pair's saddle
            above = np.array([min(np.sum(surfaces[0][lab == a] > t),
                                  np.sum(surfaces[0][lab == b] > t))
                              for (a, b), t in zip(pairs, saddle[0], strict=True)])
            keep |= (depth[0] >= area_sigma) & (above >= area_npixels) & ~small
        if bright_sigma is not None:    # the fainter peak bright, on any saddle
            low = np.minimum(peaks[0, pairs[:, 0]], peaks[0, pairs[:, 1]])
            high = np.maximum(peaks[0, pairs[:, 0]], peaks[0, pairs[:, 1]])
            keep |= ((low >= bright_sigma) & (low >= bright_ratio * high)
                     & (depth[0] >= bright_depth) & ~small)
        if keep.all():
            break
        cand = np.flatnonzero(~keep)
        score = np.where(small[cand], -1e9 - saddle[0, cand], depth[0, cand])
        k = cand[np.lexsort((pairs[cand, 1], pairs[cand, 0], score))[0]]
        a, b = pairs[k]
        lab[lab == b] = a
        lab[lab > b] -= 1
    return lab


def _fragments(seed):
    """A blob of several sources of different colours, cut into many watershed fragments."""
    rng = np.random.default_rng(seed)
    nb, ny, nx = 4, 48, 56
    yy, xx = np.mgrid[:ny, :nx]
    sci = np.zeros((nb, ny, nx))
    for _ in range(rng.integers(2, 6)):
        y0, x0, r = rng.uniform(12, 36), rng.uniform(12, 44), rng.uniform(2, 6)
        sed = rng.uniform(0.2, 1.0, nb)
        sci += sed[:, None, None] * rng.uniform(20, 200) * np.exp(
            -0.5 * ((yy - y0) ** 2 + (xx - x0) ** 2) / r**2)
    sci += rng.normal(size=sci.shape)
    var = rng.uniform(0.5, 2.0, size=sci.shape) * 400.0   # colours uncertain: errors matter
    snr = np.stack([ndimage.gaussian_filter(b, 1.0) for b in sci]) / 0.28
    det = snr.sum(0) / 2.0
    inside = det > 4
    markers = np.zeros((ny, nx), np.int32)
    pts = np.argwhere(inside)
    pick = pts[rng.choice(len(pts), size=min(25, len(pts)), replace=False)]
    markers[tuple(pick.T)] = np.arange(1, len(pick) + 1)
    lab = watershed(-np.where(inside, det, 0), markers, mask=inside).astype(np.int32)
    surfaces = np.concatenate([np.where(inside, det, -np.inf)[None],
                               np.where(inside, snr, -np.inf)])
    return lab, surfaces, np.where(inside, sci, 0.0), np.where(inside, var, 0.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("contrast_sigma, colour_sigma, colour_chi2, area_sigma, bright", [
    (3.0, 1.0, 4.0, None, None), (1.0, 0.5, 1.0, None, None), (8.0, 3.0, 20.0, None, None),
    (np.inf, 0.5, 2.0, None, None),                    # only colour keeps fragments apart
    (np.inf, 0.5, 60.0, None, None),
    (3.0, 1.0, 4.0, 1.0, None), (np.inf, np.inf, np.inf, 0.5, None),  # the area rule; it alone
    (3.0, 1.0, 4.0, 1.0, (6.0, 0.1)),                  # the bright-peak rule
    (np.inf, np.inf, np.inf, None, (30.0, 0.1)),       # it alone, and its peak ratio
    (np.inf, np.inf, np.inf, None, (30.0, 0.6))])
def test_incremental_merge_equals_the_pixel_pass_reference(seed, contrast_sigma, colour_sigma,
                                                           colour_chi2, area_sigma, bright):
    lab, surfaces, sci, var = _fragments(seed)
    assert lab.max() >= 10                             # many fragments to merge
    kw = dict(npixels=5, contrast_sigma=contrast_sigma, colour_sigma=colour_sigma,
              colour_chi2=colour_chi2, colour_min=0.1, area_sigma=area_sigma, area_npixels=5,
              bright_sigma=None if bright is None else bright[0],
              bright_ratio=0.1 if bright is None else bright[1])
    ref = _merge_reference(lab.copy(), surfaces, sci, var, **kw)
    got = _merge(lab.copy(), surfaces, sci, var, **kw)
    assert ref.max() < lab.max()                       # some pairs merged
    np.testing.assert_array_equal(got, ref)


def test_reflection_equals_scipy_map_coordinates_inside_and_past_the_edges():
    rng = np.random.default_rng(3)
    cube = rng.normal(size=(3, 21, 26))
    sp = _spline(cube)
    coef, (nb, h, w, pad) = sp
    gy, gx = (a.ravel() for a in np.indices((h, w)))
    for c in ([10.3, 12.7], [0.2, 25.6], [20.9, 0.4], [-3.0, 30.0], [10.0, 13.0]):
        c = np.asarray(c)
        ry = np.clip(2 * c[0] - gy, 1 - pad, h + pad - 2) + pad
        rx = np.clip(2 * c[1] - gx, 1 - pad, w + pad - 2) + pad
        xs = (rx[None, :] + (np.arange(nb) * (w + 2 * pad))[:, None]).ravel()
        ys = np.broadcast_to(ry, (nb, len(ry))).ravel()
        want = ndimage.map_coordinates(coef, [ys, xs], order=3,
                                       prefilter=False).reshape(nb, -1)
        np.testing.assert_allclose(_reflect(sp, c, gy, gx), want, rtol=0, atol=1e-12)
        img = cube[:, gy, gx]
        np.testing.assert_allclose(_antisym(sp, img, c, gy, gx), img - want, rtol=0, atol=1e-12)
    # a centre on a pixel reflects the grid onto itself: the spline returns the pixels
    c = np.array([10.0, 13.0])
    inner = (np.abs(gy - 10) <= 8) & (np.abs(gx - 13) <= 8)
    np.testing.assert_allclose(_reflect(sp, c, gy[inner], gx[inner]),
                               cube[:, 20 - gy[inner], 26 - gx[inner]], atol=1e-9)


@pytest.mark.parametrize("fwhm", [1.0, 2.0, 3.5])
def test_separable_smoothing_equals_the_2d_convolution(fwhm):
    rng = np.random.default_rng(int(fwhm * 10))
    img = rng.normal(size=(2, 33, 40))
    g = gaussian_1d(fwhm)
    k = np.outer(g, g)
    assert np.isclose(k.sum(), 1.0) and len(g) % 2 == 1
    want = np.stack([ndimage.convolve(b, k, mode="reflect") for b in img])
    np.testing.assert_allclose(convolve_separable(img, g), want, rtol=0, atol=1e-12)
    # the noise of a smoothed unit-variance image is the kernel's L2 norm
    white = rng.normal(size=(400, 400))
    assert np.std(convolve_separable(white, g)) == pytest.approx(np.sqrt((k**2).sum()), rel=0.03)


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
@pytest.mark.parametrize("maxfev", [13, 29, 200])
def test_compiled_simplex_search_is_scipys_nelder_mead(seed, maxfev):
    """Step for step scipy's Nelder-Mead: same minimum, including when it runs out of
    evaluations in the middle of an expansion, a contraction or a shrink.

    Vertices of exactly equal cost (where the companion's fluxes all clip to 0, the cost
    does not depend on its position) are ordered stably by the compiled search and by
    numpy's SIMD argsort in scipy, which is not stable and differs between CPUs; these
    cases have none (asserted), so the two must agree bit for bit."""
    from scipy.optimize import minimize

    from galclust.sources._symkernels import _companion_cost, _companion_simplex

    rng = np.random.default_rng(seed)
    nb, h, w = 3, 24, 24
    yy, xx = np.mgrid[:h, :w]
    host = np.exp(-0.5 * ((yy - 11.6) ** 2 + (xx - 12.3) ** 2) / 3.0**2)
    comp = np.exp(-0.5 * ((yy - 14.0) ** 2 + (xx - 16.0) ** 2) / 1.5**2)
    cube = (rng.uniform(50, 100, nb)[:, None, None] * host
            + rng.uniform(5, 30, nb)[:, None, None] * comp + rng.normal(size=(nb, h, w)))
    sp = _spline(cube)
    coef, (nb, h, w, pad) = sp
    gy, gx = (a.ravel().astype(float) for a in np.nonzero(host > 0.05))
    img = cube[:, gy.astype(int), gx.astype(int)].copy()
    wts = 1.0 / rng.uniform(0.8, 1.2, nb)
    x0 = np.array([11.6, 12.3, 14.0, 16.0, 0.0]) + rng.normal(0, 0.3, 5)
    simplex = np.array([x0, x0 + [0.4, 0, 0, 0, 0], x0 + [0, 0.4, 0, 0, 0],
                        x0 + [0, 0, 0.7, 0, 0], x0 + [0, 0, 0, 0.7, 0],
                        x0 + [0, 0, 0, 0, 0.3]])

    values = []

    def cost(t):
        values.append(_companion_cost(coef, nb, h, w, pad, img, gy, gx, wts, t, 2.0))
        return values[-1]

    want = minimize(cost, x0, method="Nelder-Mead",
                    options=dict(xatol=0.02, fatol=1e-3, maxfev=maxfev,
                                 initial_simplex=simplex)).x
    assert len(set(values)) == len(values)           # no two vertices of equal cost
    if maxfev < 200:                                  # stopped by the evaluation budget
        assert len(values) == maxfev
    got = _companion_simplex(coef, nb, h, w, pad, img, gy, gx, wts, simplex, 2.0, maxfev,
                             0.02, 1e-3)
    np.testing.assert_array_equal(got, want)
    if maxfev == 200:                                 # it found the companion
        assert np.hypot(got[2] - 14.0, got[3] - 16.0) < 1.0
