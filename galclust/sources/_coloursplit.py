"""The colour split of the colour deblender (:func:`galclust.sources.deblend.colour_deblend`).

Two neighbours closer than any saddle but of different colour: a fragment's bright pixels'
normalised SEDs are split in two along their first weighted principal component, two SED
templates are refined by per-pixel non-negative two-template fits, and each pixel goes to
the template carrying more of its flux (:func:`_colour_split`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


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
