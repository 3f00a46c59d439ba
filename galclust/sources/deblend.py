"""Deblending algorithms used by :func:`galclust.sources.detection.detect`.

``watershed_recipe``
    The research recipe, reproduced exactly: a threshold mask,
    ``scipy.ndimage.distance_transform_edt`` of the mask,
    ``skimage.feature.peak_local_max(distance, min_distance=5,
    labels=mask_labels)`` and ``skimage.segmentation.watershed(-distance,
    markers, mask=mask)``. It splits on the *shape* of the mask only.

``colour_deblend`` (the default of ``detect``)
    Uses the image's topography and the pixels' SEDs, one detection segment
    at a time:

    1. *Markers*: local maxima of the smoothed detection image and of every
       band's smoothed S/N image (a neighbour of a different colour can peak
       in one band only); candidates closer than ``peak_separation`` pixels
       to a brighter accepted one are dropped.
    2. *Fragments*: ``skimage.segmentation.watershed`` of the negative
       detection image from those markers, inside the segment.
    3. *Merging* (iterated, weakest pair first): for every pair of adjacent
       fragments the saddle (the highest ``min`` of the two sides over their
       common border) is compared with the lower of the two peaks, on the
       detection image and on every band's S/N image, all in units of their
       own noise (like SExtractor's / photutils' contrast test, but in sigma
       rather than a flux fraction). The colours of the two fragments are
       compared as normalised SEDs (fluxes divided by their sum, with errors
       propagated): ``chi2 / (B - 1)`` and the L1 distance of the two SEDs.
       A pair stays split if its detection-image saddle depth is at least
       ``contrast_sigma``, or if the colours differ significantly
       (``chi2/(B-1) >= colour_chi2`` and L1 >= ``colour_min``) *and* the
       saddle depth in some band is at least ``colour_sigma``. Otherwise it is
       merged; fragments with fewer than ``npixels`` pixels are always merged
       into the neighbour they share the highest saddle with.
    4. *Colour split* (two rounds over every fragment, for neighbours closer
       than any saddle): the fragment's bright pixels' normalised SEDs are
       split in two along their first weighted principal component; two SED
       templates are refined by per-pixel non-negative two-template fits and
       each pixel goes to the template carrying more of its flux. The split
       is kept only if the two groups' colours differ significantly, the two
       templates' flux maps are centred at least ``split_distance`` pixels
       apart and both peak inside the fragment (see :func:`_colour_split`).
    5. *Symmetry split* (one pass over every fragment, for companions closer
       than any saddle and of any colour): each fragment is modelled as a
       point-symmetric source about a fitted sub-pixel centre (non-parametric,
       per band) plus a Gaussian companion with a free flux in every band;
       the companion is the matched filter of the antisymmetric residual
       ``I(x) - I(2c - x)``, kept when its per-band significance
       ``sum_b max(z_b, 0)^2`` reaches ``symmetry_chi2`` (see
       :func:`_symmetry_split`; neighbouring fragments' symmetric templates
       are removed first and the companion must then also differ in colour
       from them).

    A single smooth galaxy with a colour gradient (a red bulge in a blue
    disk) has one peak in every band at the same place, so it gives one
    marker and is never split by step 3 (a noise peak on its slope gives a
    fragment whose saddle is shallow in every band and is merged back whatever
    its colour), its two colour maps share a centre so step 4 leaves it
    whole, and it is point-symmetric (disk and bulge share a centre and the
    PSF is symmetric) so step 5 finds no companion. Deterministic: no random numbers, markers sorted by value then
    position.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import minimize
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

__all__ = ["colour_deblend", "watershed_recipe"]

_SHIFTS = ((slice(None), slice(None, -1)), (slice(None), slice(1, None)),
           (slice(None, -1), slice(None)), (slice(1, None), slice(None)),
           (slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None)),
           (slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1)))


def watershed_recipe(mask: np.ndarray, *, min_distance: int = 5) -> np.ndarray:
    """Split a detection mask with the distance-transform watershed recipe.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        ``(y, x)`` detected pixels (the recipe uses a 3-sigma mask).
    min_distance : int
        ``min_distance`` of ``peak_local_max`` (5 in the recipe).

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` int32 labels, 0 outside the mask. Connected parts of the
        mask without a marker (smaller than the peak spacing) are kept as
        their own label, so no detected pixel is lost.
    """
    mask = np.asarray(mask, bool)
    mask_labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    distance = ndimage.distance_transform_edt(mask)
    coords = peak_local_max(distance, min_distance=min_distance, labels=mask_labels)
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    labels = watershed(-distance, markers, mask=mask)
    missing = mask & (labels == 0)
    if missing.any():
        extra, _ = ndimage.label(missing, structure=np.ones((3, 3)))
        labels = np.where(extra > 0, extra + labels.max(), labels)
    return labels.astype(np.int32)


def _markers(det, snr, inside, peak_separation, max_markers=40):
    """Marker coordinates (k, 2): detection-image peaks first, then band peaks."""
    lab = inside.astype(np.int32)
    cands = []
    for rank, surf in enumerate([det, *snr]):
        pk = peak_local_max(surf, min_distance=1, labels=lab, exclude_border=False)
        if len(pk):
            vals = surf[tuple(pk.T)]
            order = np.lexsort((pk[:, 1], pk[:, 0], -vals))
            cands.append(pk[order])
            if rank == 0:
                cands[-1] = cands[-1][: max_markers // 2]
    if not cands:
        return np.argwhere(det == det[inside].max())[:1]
    cands = np.concatenate(cands)
    keep = [cands[0]]
    for p in cands[1:]:
        if len(keep) >= max_markers:
            break
        if np.min(np.hypot(*(np.asarray(keep) - p).T)) >= peak_separation:
            keep.append(p)
    return np.asarray(keep)


def _pairs(lab, surfaces):
    """Adjacent label pairs (8-connectivity) and their saddle on every surface."""
    m = int(lab.max())
    keys, vals = [], []
    for s1, s2 in zip(_SHIFTS[0::2], _SHIFTS[1::2], strict=True):
        for a_sl, b_sl in ((s1, s2), (s2, s1)):
            a, b = lab[a_sl], lab[b_sl]
            sel = (a > 0) & (b > 0) & (a < b)
            if sel.any():
                keys.append(a[sel].astype(np.int64) * (m + 1) + b[sel])
                vals.append(np.minimum(surfaces[(slice(None), *a_sl)][:, sel],
                                       surfaces[(slice(None), *b_sl)][:, sel]))
    if not keys:
        return np.zeros((0, 2), int), np.zeros((surfaces.shape[0], 0))
    keys, vals = np.concatenate(keys), np.concatenate(vals, axis=1)
    uniq, inv = np.unique(keys, return_inverse=True)
    saddle = np.full((surfaces.shape[0], len(uniq)), -np.inf)
    for s in range(surfaces.shape[0]):
        np.maximum.at(saddle[s], inv, vals[s])
    return np.stack([uniq // (m + 1), uniq % (m + 1)], axis=1), saddle


def _colour_stats(lab, sci, var):
    """Normalised SED (m+1, band) and its error of every label."""
    m = int(lab.max())
    flat = lab.ravel()
    f = np.stack([np.bincount(flat, weights=b.ravel(), minlength=m + 1) for b in sci], axis=1)
    v = np.stack([np.bincount(flat, weights=b.ravel(), minlength=m + 1) for b in var], axis=1)
    tot = f.sum(axis=1, keepdims=True)
    tot = np.where(np.abs(tot) > 0, tot, 1.0)
    n = f / tot
    e = np.sqrt(v + n**2 * v.sum(axis=1, keepdims=True)) / np.abs(tot)
    return n, e


def _merge(lab, surfaces, sci, var, *, npixels, contrast_sigma, colour_sigma, colour_chi2,
           colour_min):
    """Iteratively merge adjacent fragments that fail the saddle and colour tests."""
    nb = sci.shape[0]
    while lab.max() > 1:
        pairs, saddle = _pairs(lab, surfaces)
        if not len(pairs):
            break
        m = int(lab.max())
        idx = np.arange(1, m + 1)
        peaks = np.stack([np.r_[-np.inf, ndimage.maximum(s, lab, idx)] for s in surfaces])
        area = np.bincount(lab.ravel(), minlength=m + 1)
        low = np.minimum(peaks[:, pairs[:, 0]], peaks[:, pairs[:, 1]])   # (surface, pair)
        depth = low - saddle
        n, e = _colour_stats(lab, sci, var)
        dn = n[pairs[:, 0]] - n[pairs[:, 1]]
        chi2 = (dn**2 / (e[pairs[:, 0]] ** 2 + e[pairs[:, 1]] ** 2 + 1e-30)).sum(1) / max(nb - 1, 1)
        l1 = np.abs(dn).sum(1)
        colour = (chi2 >= colour_chi2) & (l1 >= colour_min)
        small = np.minimum(area[pairs[:, 0]], area[pairs[:, 1]]) < npixels
        keep = ((depth[0] >= contrast_sigma)
                | (colour & (depth[1:].max(axis=0) >= colour_sigma))) & ~small
        if keep.all():
            break
        # merge the weakest failing pair (smallest pieces first, then shallowest saddle)
        cand = np.flatnonzero(~keep)
        score = np.where(small[cand], -1e9 - saddle[0, cand], depth[0, cand])
        k = cand[np.lexsort((pairs[cand, 1], pairs[cand, 0], score))[0]]
        a, b = pairs[k]
        lab[lab == b] = a
        _, inv = np.unique(lab, return_inverse=True)
        lab = inv.reshape(lab.shape).astype(np.int32)     # compact: 0 stays 0 (min label)
    return lab


def _solve2(x, w, s1, s2):
    """Per-pixel non-negative weighted least squares ``x ~ a s1 + b s2`` (x, w: (n, band))."""
    a11, a22, a12 = (w * s1 * s1).sum(1), (w * s2 * s2).sum(1), (w * s1 * s2).sum(1)
    y1, y2 = (w * x * s1).sum(1), (w * x * s2).sum(1)
    det = a11 * a22 - a12**2
    det = np.where(np.abs(det) > 0, det, 1e-30)
    a = (a22 * y1 - a12 * y2) / det
    b = (a11 * y2 - a12 * y1) / det
    a_only, b_only = np.clip(y1 / a11, 0, None), np.clip(y2 / a22, 0, None)
    a, b = np.where(a < 0, 0.0, np.where(b < 0, a_only, a)), np.where(b < 0, 0.0,
                                                                        np.where(a < 0, b_only, b))
    return a, b


def _colour_split(inside, det, sci_s, var_s, sci, var, *, npixels, colour_chi2, colour_min,
                  split_distance, min_snr=5.0, n_iter=3):
    """Split one fragment into two groups of different colour, or return None.

    Pixels brighter than ``min_snr`` (smoothed detection sigma) are split in
    two along the first weighted principal component of their normalised
    SEDs (1-D 2-means); the two mean SEDs are refined by per-pixel
    non-negative two-template fits (assigning each pixel to the template
    carrying more of its flux), each group is reduced to its largest
    connected part, and the split is accepted only if the groups' colours
    differ significantly (``colour_chi2``, ``colour_min``) *and* the
    flux-weighted centres of the two templates' fitted flux maps are at least
    ``split_distance`` pixels apart *and* both maps peak at least 2 pixels
    inside the fragment. A concentric colour gradient (a red bulge in a blue
    disk) gives two maps with the same centre and is never split; the wing of
    an already-deblended neighbour peaks on the border and is not split off.
    """
    bright = inside & (det > min_snr)
    if bright.sum() < 2 * npixels:
        return None
    x = sci_s[:, bright].T
    tot = x.sum(1)
    good = tot > 0
    if good.sum() < 2 * npixels:
        return None
    x, tot = x[good], tot[good]
    w = det[bright][good] ** 2
    nrm = x / tot[:, None]
    mean = (w[:, None] * nrm).sum(0) / w.sum()
    d = nrm - mean
    cov = (w[:, None] * d).T @ d / w.sum()
    _, vecs = np.linalg.eigh(cov)
    v = vecs[:, -1] * np.sign(vecs[np.argmax(np.abs(vecs[:, -1])), -1])
    t = d @ v
    order = np.argsort(t)
    cw = np.cumsum(w[order]) / w.sum()
    c1, c2 = t[order][np.searchsorted(cw, 0.25)], t[order][np.searchsorted(cw, 0.75)]
    for _ in range(10):
        g = np.abs(t - c1) <= np.abs(t - c2)
        if g.all() or not g.any():
            return None
        c1, c2 = np.average(t[g], weights=w[g]), np.average(t[~g], weights=w[~g])
    s1, s2 = x[g].sum(0), x[~g].sum(0)
    xa = sci_s[:, inside].T
    wa = 1.0 / np.maximum(var_s[:, inside].T, 1e-30)
    for _ in range(n_iter):
        s1, s2 = s1 / max(s1.sum(), 1e-30), s2 / max(s2.sum(), 1e-30)
        a, b = _solve2(xa, wa, s1, s2)
        one = a >= b
        core1 = one & (a > 0.7 * (a + b))
        core2 = ~one & (b > 0.7 * (a + b))
        if core1.sum() < npixels or core2.sum() < npixels:
            return None
        s1, s2 = xa[core1].sum(0), xa[core2].sum(0)
    lab = np.zeros(inside.shape, np.int32)
    lab[inside] = np.where(one, 1, 2)
    for k in (1, 2):                      # keep each group's largest connected part
        cc, n = ndimage.label(lab == k, structure=np.ones((3, 3)))
        if n > 1:
            big = np.argmax(np.bincount(cc.ravel())[1:]) + 1
            lab[(cc > 0) & (cc != big)] = 3 - k
    area = np.bincount(lab.ravel(), minlength=3)
    if area[1] < npixels or area[2] < npixels:
        return None
    n, e = _colour_stats(lab, sci, var)
    dn = n[1] - n[2]
    chi2 = (dn**2 / (e[1] ** 2 + e[2] ** 2 + 1e-30)).sum() / max(sci.shape[0] - 1, 1)
    if chi2 < colour_chi2 or np.abs(dn).sum() < colour_min:
        return None
    # the two templates' flux maps must be centred apart: a concentric colour gradient (a
    # red bulge in a blue disk) or noise gives two maps with the same centre
    py, px = np.nonzero(inside)
    cen = np.array([[np.sum(m * py), np.sum(m * px)] / max(m.sum(), 1e-30) for m in (a, b)])
    if np.hypot(*(cen[0] - cen[1])) < split_distance:
        return None
    # each map must peak inside the fragment, not on its border: the wing of a neighbour
    # already deblended gives a one-sided gradient that peaks on the border
    depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1][inside]
    if min(depth[np.argmax(a)], depth[np.argmax(b)]) < 2.0:
        return None
    return lab


def _spline(cube, pad=8):
    """Cubic B-spline coefficients of all bands side by side in one 2-D strip.

    Each band is edge-padded by ``pad`` pixels (so a point up to ``pad``
    pixels outside the cut-out reads its nearest pixel) and the bands are
    laid side by side, so one ``map_coordinates`` call serves every band.
    """
    nb, h, w = cube.shape
    strip = np.concatenate(list(np.pad(cube, ((0, 0), (pad, pad), (pad, pad)), mode="edge")),
                           axis=1)
    return ndimage.spline_filter(strip, order=3, mode="nearest"), (nb, h, w, pad)


def _reflect(sp, c, gy, gx):
    """Every band at the points ``2c - (gy, gx)`` (cubic spline; (band, point))."""
    coef, (nb, h, w, pad) = sp
    ry = np.clip(2 * c[0] - gy, 1 - pad, h + pad - 2) + pad
    rx = np.clip(2 * c[1] - gx, 1 - pad, w + pad - 2) + pad
    n = len(ry)
    xs = (rx[None, :] + (np.arange(nb) * (w + 2 * pad))[:, None]).ravel()
    ys = np.broadcast_to(ry, (nb, n)).ravel()
    return ndimage.map_coordinates(coef, [ys, xs], order=3, prefilter=False).reshape(nb, n)


def _centre(coef, cube, var, inside, c0=None):
    """Centre about which the fragment is most point-symmetric (robust, sub-pixel).

    Two 3 x 3 grids of trial centres (steps 0.5 and 0.2 pixel) around the
    brightest pixel, each followed by the minimum of a quadratic fitted to
    the robust cost ``sum log(1 + r^2 / 2)`` of the S/N-weighted
    antisymmetric residual ``r``.
    """
    gy, gx = np.nonzero(inside)
    img = cube[:, gy, gx]
    w = 1.0 / np.sqrt(np.maximum(var[:, gy, gx].mean(1), 1e-300))
    if c0 is None:
        k0 = np.argmax((img * w[:, None]).sum(0))
        c0 = np.array([gy[k0], gx[k0]], float)

    def robust(c):
        r = (img - _reflect(coef, c, gy, gx)) * w[:, None]
        return float(np.sum(np.log1p(0.5 * r**2)))

    c = np.asarray(c0, float)
    oy, ox = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], indexing="ij")
    design = np.stack([np.ones(9), oy.ravel(), ox.ravel(), oy.ravel() ** 2,
                       ox.ravel() ** 2, (oy * ox).ravel()], axis=1)
    for step in (0.5, 0.2):
        f = np.array([robust(c + step * np.array([dy, dx]))
                      for dy, dx in zip(oy.ravel(), ox.ravel(), strict=True)])
        k = np.argmin(f)
        best = c + step * np.array([oy.ravel()[k], ox.ravel()[k]])
        co = np.linalg.lstsq(design, f, rcond=None)[0]
        hess = np.array([[2 * co[3], co[5]], [co[5], 2 * co[4]]])
        if np.linalg.det(hess) > 0 and hess[0, 0] > 0:
            d = np.clip(np.linalg.solve(hess, -co[1:3]), -1.0, 1.0)
            c = c + step * d
        else:
            c = best
    return c if np.hypot(*(c - c0)) <= 2.5 else np.asarray(c0, float)


def _symmetry_split(inside, cube, coef, var, c, *, npixels, min_chi2, min_dist,
                    kernel_sigma, other=None, raw=None, refs=None, colour_chi2=4.0,
                    colour_min=0.1, comp_sigma=2.0, depth_min=1.5, dominance=0.35,
                    prescreen=1.5):
    """Split off a companion the fragment's point-symmetric model leaves, or return None.

    Model: ``I_b = T_b + alpha_b G(x - p)`` with ``T`` point-symmetric about
    a centre ``c`` (free and non-parametric: a Sersic disk + bulge of any
    colour gradient and ellipticity, convolved with a symmetric PSF, is
    point-symmetric) and ``G`` a circular Gaussian companion (width fitted,
    ``comp_sigma`` to start) of free flux ``alpha_b`` in every band. The
    least-squares ``T`` is the symmetric part of ``I - alpha G``, so the
    residual is the antisymmetric part ``a_b = I_b(x) - I_b(2c - x)`` minus
    ``alpha_b (G_p - G_{2c-p})``: the companion is found by a matched filter
    of the antisymmetric residual (cubic-spline reflection of the smoothed
    fluxes ``cube``; ``c``, ``p`` and the width refined by Nelder-Mead),
    using only pixels whose mirror is neither another fragment (``other``)
    nor off the cut-out.

    Significance: ``sum_b max(z_b, 0)^2``, ``z_b`` the filter's S/N in band
    ``b`` with the noise of the smoothed image propagated exactly
    (``Var = 4 var_b ||k * Q||^2``, ``k`` the smoothing kernel of width
    ``kernel_sigma``), so a neighbour of another colour counts in the bands
    where it stands out. Accepted when it reaches ``min_chi2`` (and
    ``prescreen * min_chi2`` at the best candidate pixel before the
    refinement), ``p`` lies ``min_dist`` pixels or more from ``c`` and
    ``depth_min`` pixels inside the fragment (a neighbour's wing rises to
    the border). When the fragment has neighbours, ``cube`` is the image
    minus their templates and the companion must also reach ``min_chi2`` on
    the image before that subtraction (``raw``: cube and coefficients) and
    its SED must differ (``colour_chi2``, ``colour_min``, as for fragments)
    from every fragment's SED in ``refs``: an imperfect removal of a
    neighbour leaves a residual of its and the host's colours.

    The companion's pixels are those where its model carries more than
    ``dominance`` of the stacked S/N, connected to ``p``; both parts must
    keep ``npixels``. Returns ``(y, x)`` labels 1 (host) / 2 (companion)
    inside the fragment, 0 elsewhere.
    """
    nb = cube.shape[0]
    if inside.sum() < 3 * npixels:
        return None
    # fit only where the mirror image about c is not another fragment's pixel
    # (or outside the cut-out: the image's edge)
    dom = inside.copy()
    ay, ax = np.nonzero(inside)
    ry, rx = np.round(2 * c[0] - ay).astype(int), np.round(2 * c[1] - ax).astype(int)
    out = (ry < 0) | (ry >= inside.shape[0]) | (rx < 0) | (rx >= inside.shape[1])
    dom[ay, ax] = ~out
    if other is not None and other.any():
        keep = ~out
        dom[ay[keep], ax[keep]] = ~other[ry[keep], rx[keep]]
    iy, ix = np.nonzero(dom)
    if len(iy) < 3 * npixels:
        return None
    gy, gx = iy, ix
    img = cube[:, gy, gx]                                  # (band, n)
    v = var[:, gy, gx].mean(1)                             # raw per-pixel variance
    if not np.all(v > 0):
        return None
    w = 1.0 / np.sqrt(v)
    opt = dict(xatol=0.02, fatol=1e-3, maxfev=150)

    def reflect(c):
        return _reflect(coef, c, gy, gx)

    a = img - reflect(c)
    # candidates: peaks of the Gaussian-filtered antisymmetric residual (band S/N, positive)
    h, wd = inside.shape
    cub = np.zeros((nb, h, wd))
    cub[:, iy, ix] = a * w[:, None]
    filt = np.stack([ndimage.gaussian_filter(b, comp_sigma, mode="constant") for b in cub])
    score = (np.clip(filt, 0, None) ** 2).sum(0)
    depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
    yy, xx = np.indices(inside.shape)
    ok = inside & (depth >= depth_min) & (np.hypot(yy - c[0], xx - c[1]) >= min_dist)
    ok &= score >= ndimage.maximum_filter(score, 3)
    if not ok.any():
        return None
    cand = np.argwhere(ok)
    cand = cand[np.argsort(-score[ok], kind="stable")][:3]

    def model_q(c, p, sg):
        g1 = np.exp(-0.5 * ((gy - p[0]) ** 2 + (gx - p[1]) ** 2) / sg**2)
        q2 = 2 * c - p
        g2 = np.exp(-0.5 * ((gy - q2[0]) ** 2 + (gx - q2[1]) ** 2) / sg**2)
        return g1, g1 - g2

    def stats(c, p, sg=comp_sigma, a=None):
        if a is None:
            a = img - reflect(c)
        g, q = model_q(c, p, sg)
        qq = np.zeros(inside.shape)
        qq[iy, ix] = q
        kq = ndimage.gaussian_filter(qq, kernel_sigma, mode="constant") if kernel_sigma else qq
        num = a @ q
        z = num / np.sqrt(4 * v * (kq**2).sum() + 1e-300)
        alpha = np.clip(num / max(q @ q, 1e-30), 0, None)
        return z, alpha, g

    def resid(c, p, sg):
        a = img - reflect(c)
        q = model_q(c, p, sg)[1]
        alpha = np.clip(a @ q / max(q @ q, 1e-30), 0, None)
        return float((((a - alpha[:, None] * q[None]) * w[:, None]) ** 2).sum())

    best = None
    for py, px in cand:
        p = np.array([py, px], float)
        z = stats(c, p, a=a)[0]
        chi = float((np.clip(z, 0, None) ** 2).sum())
        if best is None or chi > best[0]:
            best = (chi, p)
    if best[0] < prescreen * min_chi2:
        return None
    x0 = np.r_[c, best[1], 0.0]

    def cost(t):
        return resid(t[:2], t[2:4], comp_sigma * np.exp(np.clip(t[4], -0.7, 0.7)))

    x = minimize(cost, x0, method="Nelder-Mead",
                 options=dict(opt, maxfev=200, initial_simplex=[
                     x0, x0 + [0.4, 0, 0, 0, 0], x0 + [0, 0.4, 0, 0, 0],
                     x0 + [0, 0, 0.7, 0, 0], x0 + [0, 0, 0, 0.7, 0],
                     x0 + [0, 0, 0, 0, 0.3]])).x
    c, p, sg = x[:2], x[2:4], comp_sigma * np.exp(np.clip(x[4], -0.7, 0.7))
    if np.hypot(*(x[:2] - x0[:2])) > 2.0 or np.hypot(*(x[2:4] - x0[2:4])) > 3.0:
        c, p, sg = x0[:2], x0[2:4], comp_sigma
    z, alpha, g = stats(c, p, sg)
    chi = float((np.clip(z, 0, None) ** 2).sum())
    if raw is not None:        # the companion must also stand out before the neighbours' removal
        img, coef = raw[0][:, gy, gx], raw[1]
        zr = stats(c, p, sg)[0]
        chi = min(chi, float((np.clip(zr, 0, None) ** 2).sum()))
    if refs is not None and chi >= min_chi2:
        # the companion's SED must differ from the host's and the neighbours' (an imperfect
        # removal of a neighbour leaves a residual of their colours)
        g_, q_ = model_q(c, p, sg)
        qq = np.zeros(inside.shape)
        qq[iy, ix] = q_
        kq = ndimage.gaussian_filter(qq, kernel_sigma, mode="constant") if kernel_sigma else qq
        sd = np.sqrt(4 * v * (kq**2).sum()) / max(q_ @ q_, 1e-30)
        tot_a = alpha.sum()
        if tot_a <= 0:
            return None
        n_c = alpha / tot_a
        e_c = np.sqrt(sd**2 + n_c**2 * (sd**2).sum()) / tot_a
        for ref in refs:
            dn = n_c - ref
            chi_c = (dn**2 / (e_c**2 + 1e-30)).sum() / max(nb - 1, 1)
            if chi_c < colour_chi2 or np.abs(dn).sum() < colour_min:
                return None
    if chi < min_chi2 or np.hypot(*(p - c)) < min_dist:
        return None
    pi = np.round(p).astype(int)
    if not (0 <= pi[0] < h and 0 <= pi[1] < wd) or not inside[pi[0], pi[1]]:
        return None
    ay, ax = np.nonzero(inside)
    g = np.exp(-0.5 * ((ay - p[0]) ** 2 + (ax - p[1]) ** 2) / sg**2)
    comp_s = ((alpha * w)[:, None] * g[None]).sum(0)
    lab = np.where(inside, 1, 0).astype(np.int32)
    sel = np.zeros(inside.shape, bool)
    sel[ay, ax] = comp_s > dominance * (cube[:, ay, ax] * w[:, None]).sum(0)
    cc, _ = ndimage.label(sel, structure=np.ones((3, 3)))
    lid = cc[pi[0], pi[1]]
    if lid == 0:
        return None
    comp = cc == lid
    if comp.sum() < npixels or (inside & ~comp).sum() < npixels:
        return None
    lab[comp] = 2
    return lab


def _template(coef, cube, c, yy, xx):
    """Symmetric template about ``c``: ``max(0, min(I(x), I(2c - x)))`` per band."""
    ref = _reflect(coef, c, yy.ravel(), xx.ravel()).reshape(cube.shape)
    return np.clip(np.minimum(cube, ref), 0, None)


def _symmetry_rounds(lab, sl, sci_s, var, *, npixels, min_chi2, min_dist, kernel_sigma,
                     pad=8, n_rounds=1, n_iter=2):
    """Run :func:`_symmetry_split` on every fragment of one segment (``n_rounds`` passes).

    Works on the segment's box grown by ``pad`` pixels. Each fragment's
    centre is fitted (:func:`_centre`); when the segment has several
    fragments, each is analysed on the image minus the other fragments'
    symmetric templates ``max(0, min(I(x), I(2 c_g - x)))`` (their centres
    refitted once on the image minus the others' templates, ``n_iter`` = 2),
    so a neighbour's wing is not taken for a companion.
    """
    ny, nx = sci_s.shape[1:]
    y0, x0 = max(sl[0].start - pad, 0), max(sl[1].start - pad, 0)
    y1, x1 = min(sl[0].stop + pad, ny), min(sl[1].stop + pad, nx)
    cube = sci_s[:, y0:y1, x0:x1]
    vc = var[:, y0:y1, x0:x1]
    labp = np.zeros(cube.shape[1:], np.int32)
    oy, ox = sl[0].start - y0, sl[1].start - x0
    labp[oy:oy + lab.shape[0], ox:ox + lab.shape[1]] = lab
    coef = _spline(cube)
    yy, xx = np.indices(labp.shape)
    for _round in range(n_rounds):
        nf = int(labp.max())
        cen = [_centre(coef, cube, vc, labp == f) for f in range(1, nf + 1)]
        if nf > 1:
            for _it in range(n_iter):
                tpl = np.stack([_template(coef, cube, c, yy, xx) for c in cen])
                tot = tpl.sum(0)
                if _it == n_iter - 1:
                    break
                for f in range(1, nf + 1):
                    clean = cube - (tot - tpl[f - 1])
                    cen[f - 1] = _centre(_spline(clean), clean, vc, labp == f, cen[f - 1])
            fl = np.stack([np.bincount(labp.ravel(), weights=b.ravel(), minlength=nf + 1)
                           for b in cube], axis=1)[1:]            # fragments' SEDs
            refs = fl / np.where(fl.sum(1, keepdims=True) != 0, fl.sum(1, keepdims=True), 1)
        grown = labp.copy()
        for f in range(1, nf + 1):
            if nf > 1:
                clean = cube - (tot - tpl[f - 1])
                cf = _spline(clean)
                c = cen[f - 1]
            else:
                clean, cf, c = cube, coef, cen[0]
            parts = _symmetry_split(labp == f, clean, cf, vc, c, npixels=npixels,
                                    other=(labp > 0) & (labp != f),
                                    raw=(cube, coef) if nf > 1 else None,
                                    refs=refs if nf > 1 else None,
                                    min_chi2=min_chi2, min_dist=min_dist,
                                    kernel_sigma=kernel_sigma)
            if parts is not None:
                grown[parts == 2] = grown.max() + 1
        if grown.max() == labp.max():
            break
        labp = grown
    return labp[oy:oy + lab.shape[0], ox:ox + lab.shape[1]]


def colour_deblend(seg: np.ndarray, det: np.ndarray, snr: np.ndarray, sci: np.ndarray,
                   err: np.ndarray, *, npixels: int = 5, contrast_sigma: float = 3.0,
                   colour_sigma: float = 1.0, colour_chi2: float = 4.0,
                   colour_min: float = 0.1, peak_separation: float = 2.0,
                   split_distance: float | None = 2.5, kernel_fwhm: float | None = 2.0,
                   split_snr: float = 5.0, symmetry_chi2: float | None = 30.0,
                   symmetry_distance: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Colour-aware deblending of a segmentation map (see the module docstring).

    Parameters
    ----------
    seg : numpy.ndarray
        ``(y, x)`` int labels of the thresholded detection image (0 sky).
    det : numpy.ndarray
        ``(y, x)`` smoothed detection image in units of its noise.
    snr : numpy.ndarray
        ``(band, y, x)`` smoothed per-band S/N images in units of their noise.
    sci, err : numpy.ndarray
        ``(band, y, x)`` image and errors (for the fragments' colours);
        non-finite values must already be zeroed.
    npixels : int
        Minimum fragment size.
    contrast_sigma : float
        Saddle depth (detection-image sigma) that keeps two fragments apart
        whatever their colours.
    colour_sigma : float
        Saddle depth (in the band where it is deepest) that keeps two
        fragments of significantly different colour apart.
    colour_chi2 : float
        Reduced chi-square of the normalised-SED difference above which two
        fragments differ in colour.
    colour_min : float
        Minimum L1 distance of the normalised SEDs for a colour difference
        (guards against high-S/N colour gradients inside one galaxy).
    peak_separation : float
        Minimum distance (pixels) between two markers.
    split_distance : float or None
        Minimum distance (pixels) between the flux-weighted centroids of two
        colour groups for a fragment to be split by colour alone
        (:func:`_colour_split`, tried twice on every fragment after merging);
        None disables colour splitting.
    kernel_fwhm : float or None
        FWHM (pixels) of the Gaussian smoothing of the per-band fluxes whose
        pixel SEDs are clustered (as for the detection image).
    split_snr : float
        Only pixels above this smoothed detection S/N enter the clustering.
    symmetry_chi2 : float or None
        Significance (``sum_b max(z_b, 0)^2`` over bands) of the companion a
        fragment's point-symmetric model leaves for it to be split off
        (:func:`_symmetry_split`); None disables the symmetry split.
    symmetry_distance : float
        Minimum distance (pixels) of such a companion from the fragment's
        centre of symmetry.

    Returns
    -------
    labels : numpy.ndarray
        ``(y, x)`` int32 deblended labels ``1..N`` in the order of the input
        segments (renumbered by the caller).
    parent : numpy.ndarray
        ``(N + 1,)`` the input segment id of each output label.
    """
    out = np.zeros(seg.shape, dtype=np.int32)
    parent = [0]
    var = err.astype(np.float64) ** 2
    if kernel_fwhm:
        sig = kernel_fwhm / 2.3548
        r = max(1, int(np.ceil(3 * sig)))
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        k = np.exp(-0.5 * (xx**2 + yy**2) / sig**2)
        k /= k.sum()
        sci_s = np.stack([ndimage.convolve(b, k, mode="reflect") for b in sci])
        var_s = np.stack([ndimage.convolve(b, k**2, mode="reflect") for b in var])
    else:
        sci_s, var_s = sci, var
    nxt = 1
    for i, sl in enumerate(ndimage.find_objects(seg), start=1):
        if sl is None:
            continue
        inside = seg[sl] == i
        d = np.where(inside, det[sl], -np.inf)
        s = np.where(inside, snr[(slice(None), *sl)], -np.inf)
        markers = _markers(np.where(inside, det[sl], det[sl].min()),
                           np.where(inside, snr[(slice(None), *sl)], 0.0), inside,
                           peak_separation)
        if len(markers) > 1:
            mk = np.zeros(inside.shape, np.int32)
            mk[tuple(markers.T)] = np.arange(1, len(markers) + 1)
            lab = watershed(-np.where(inside, det[sl], 0.0), mk, mask=inside).astype(np.int32)
            surfaces = np.concatenate([d[None], s])
            sub_sci = np.where(inside, sci[(slice(None), *sl)], 0.0)
            sub_var = np.where(inside, var[(slice(None), *sl)], 0.0)
            lab = _merge(lab, surfaces, sub_sci, sub_var, npixels=npixels,
                         contrast_sigma=contrast_sigma, colour_sigma=colour_sigma,
                         colour_chi2=colour_chi2, colour_min=colour_min)
        else:
            lab = inside.astype(np.int32)
        if split_distance is not None:
            cut = (slice(None), *sl)
            sub = (np.where(inside, det[sl], 0.0), sci_s[cut], var_s[cut],
                   np.where(inside, sci[cut], 0.0), np.where(inside, var[cut], 0.0))
            for _round in range(2):
                grown = lab.copy()
                for f in range(1, int(lab.max()) + 1):
                    parts = _colour_split(lab == f, *sub, npixels=npixels,
                                          colour_chi2=colour_chi2, colour_min=colour_min,
                                          split_distance=split_distance, min_snr=split_snr)
                    if parts is not None:
                        grown[parts == 2] = grown.max() + 1
                if grown.max() == lab.max():
                    break
                lab = grown
        if symmetry_chi2 is not None:
            lab = _symmetry_rounds(lab, sl, sci_s, var, npixels=npixels,
                                   min_chi2=symmetry_chi2, min_dist=symmetry_distance,
                                   kernel_sigma=(kernel_fwhm or 0) / 2.3548)
        k = int(lab.max())
        view = out[sl]
        view[inside] = lab[inside] + nxt - 1
        parent.extend([i] * k)
        nxt += k
    return out, np.asarray(parent, dtype=np.int64)
