"""The symmetry split of the colour deblender (:func:`galclust.sources.deblend.colour_deblend`).

A single galaxy is point-symmetric about its centre (disc and bulge share it,
and the PSF is symmetric) whatever its colour gradient or ellipticity; a faint
companion closer than any saddle breaks the symmetry. Each fragment is fitted
as a symmetric shape about a sub-pixel centre, free per band, plus one Gaussian
companion with its own SED: the companion is found by a matched filter on the
antisymmetric residual ``I(x) - I(2c - x)``, its significance summed over the
bands where it stands out (so a companion of another colour counts), and it
takes the pixels where its light in excess of the host's symmetric template
``min(I(x), I(2c - x))`` carries a third or more of the stacked S/N.

The centre of symmetry that fits the fragment best is pulled towards a
companion (the pair is more symmetric about a point between the two), which
hides it; so the fit starts both from that centre and from the peak of the
stacked light, and keeps the one that leaves the smaller residual.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from galclust.sources._symkernels import _asym, _companion_cost, _companion_simplex


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
    gy = np.asarray(gy, dtype=np.float64)
    gx = np.asarray(gx, dtype=np.float64)
    return -_asym(coef, nb, h, w, pad, np.zeros((nb, len(gy))), gy, gx, float(c[0]), float(c[1]))


def _antisym(sp, img, c, gy, gx):
    """``img - I(2c - x)`` (band, point): the antisymmetric residual about ``c``."""
    coef, (nb, h, w, pad) = sp
    return _asym(coef, nb, h, w, pad, np.ascontiguousarray(img, dtype=np.float64),
                 np.asarray(gy, dtype=np.float64), np.asarray(gx, dtype=np.float64),
                 float(c[0]), float(c[1]))


def _centre(coef, cube, var, inside, c0=None):
    """Centre about which the fragment is most point-symmetric (robust, sub-pixel).

    Two 3 x 3 grids of trial centres (steps 0.5 and 0.2 pixel) around the
    brightest pixel, each followed by the minimum of a quadratic fitted to
    the robust cost ``sum log(1 + r^2 / 2)`` of the S/N-weighted
    antisymmetric residual ``r``.
    """
    gy, gx = np.nonzero(inside)
    fy, fx = gy.astype(np.float64), gx.astype(np.float64)    # converted once, read per trial
    img = cube[:, gy, gx]
    w = 1.0 / np.sqrt(np.maximum(var[:, gy, gx].mean(1), 1e-300))
    if c0 is None:
        k0 = np.argmax((img * w[:, None]).sum(0))
        c0 = np.array([gy[k0], gx[k0]], float)

    def robust(c):
        r = _antisym(coef, img, c, fy, fx) * w[:, None]
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


def _peak_centre(cube, w, inside):
    """Sub-pixel peak of the stack ``sum_b w_b cube_b`` inside the fragment (a parabola per
    axis); ``w`` are the per-band weights (1 / sigma) of the symmetry fit."""
    st = np.where(inside, (cube * w[:, None, None]).sum(0), -np.inf)
    y, x = np.unravel_index(np.argmax(st), st.shape)
    c = np.array([y, x], float)
    for ax, (lo, hi) in enumerate((((y - 1, x), (y + 1, x)), ((y, x - 1), (y, x + 1)))):
        if all(0 <= lo[i] < st.shape[i] and 0 <= hi[i] < st.shape[i] for i in (0, 1)):
            a, b, m = st[lo], st[hi], st[y, x]
            den = a - 2 * m + b
            if np.isfinite(den) and den < 0:
                c[ax] += float(np.clip(0.5 * (a - b) / den, -0.5, 0.5))
    return c


def _off_centre(x, min_dist):
    """Whether a fit ``(cy, cx, py, px, log width)`` put its companion ``min_dist`` or more
    from its centre of symmetry."""
    return bool(np.hypot(x[2] - x[0], x[3] - x[1]) >= min_dist)


def _symmetry_split(inside, cube, coef, var, c, *, npixels, min_chi2, min_dist,
                    kernel_sigma, other=None, raw=None, refs=None, colour_chi2=4.0,
                    colour_min=0.1, comp_sigma=2.0, depth_min=1.5, dominance=1 / 3,
                    prescreen=1.0, ref_templates=None, ref_level=1.0):
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
    refinement, which usually raises it: a prescreen above the acceptance
    threshold rejected faint companions the refined fit accepts), ``p``
    lies ``min_dist`` pixels or more from ``c`` and ``depth_min`` pixels
    inside the fragment (a neighbour's wing rises to the border). When the
    fragment has neighbours, ``cube`` is the image minus their templates and
    the companion must also reach ``min_chi2`` on the image before that
    subtraction (``raw``: cube and coefficients) and
    its SED must differ (``colour_chi2``, ``colour_min``, as for fragments)
    from the SED in ``refs`` of every fragment whose symmetric template
    (``ref_templates``) at ``p`` carries more than ``ref_level`` times the
    companion's fitted amplitude (both S/N-weighted over bands): an
    imperfect removal of a neighbour leaves a residual of its and the host's
    colours, but only a fraction of that fragment's light there, so a
    companion brighter than it is not such a residual, whatever its colour.

    The search starts from ``c`` and from the peak of the stacked light
    (:func:`_peak_centre`, when more than 0.1 pixel from ``c``; ``c`` is
    pulled towards a companion, which makes the pair look symmetric), and
    the fit of lower cost is kept among those whose companion ends
    ``min_dist`` or more from their centre (a companion fitted onto the
    centre is no companion; it would otherwise displace the other start's
    fit that found one).

    The companion's pixels are those, connected to ``p``, where the image in
    excess of the host's symmetric template ``max(0, min(I(x), I(2c - x)))``
    carries more than ``dominance`` of the stacked S/N (a third: the excess
    is at least half the template); both parts must keep ``npixels``.
    Returns ``(y, x)`` labels 1 (host) / 2 (companion) inside the fragment,
    0 elsewhere.
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

    gyf, gxf = gy.astype(np.float64), gx.astype(np.float64)   # converted once, not per call

    def antisym(c):
        return _antisym(coef, img, c, gyf, gxf)

    h, wd = inside.shape
    depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
    yy, xx = np.indices(inside.shape)

    def model_q(c, p, sg):
        g1 = np.exp(-0.5 * ((gy - p[0]) ** 2 + (gx - p[1]) ** 2) / sg**2)
        q2 = 2 * c - p
        g2 = np.exp(-0.5 * ((gy - q2[0]) ** 2 + (gx - q2[1]) ** 2) / sg**2)
        return g1, g1 - g2

    def stats(c, p, sg=comp_sigma, a=None):
        if a is None:
            a = antisym(c)
        g, q = model_q(c, p, sg)
        qq = np.zeros(inside.shape)
        qq[iy, ix] = q
        kq = ndimage.gaussian_filter(qq, kernel_sigma, mode="constant") if kernel_sigma else qq
        num = a @ q
        z = num / np.sqrt(4 * v * (kq**2).sum() + 1e-300)
        alpha = np.clip(num / max(q @ q, 1e-30), 0, None)
        return z, alpha, g

    sp_coef, (sp_nb, sp_h, sp_w, sp_pad) = coef
    img64 = np.ascontiguousarray(img, dtype=np.float64)
    starts = [np.asarray(c, float)]
    peak = _peak_centre(cube, w, inside)
    if np.hypot(*(peak - starts[0])) > 0.1:     # closer starts gave the same fits (tuning)
        starts.append(peak)
    fits = []
    for c_s in starts:
        a = antisym(c_s)
        # candidates: peaks of the Gaussian-filtered antisymmetric residual (band S/N, positive)
        cub = np.zeros((nb, h, wd))
        cub[:, iy, ix] = a * w[:, None]
        filt = np.stack([ndimage.gaussian_filter(b, comp_sigma, mode="constant") for b in cub])
        score = (np.clip(filt, 0, None) ** 2).sum(0)
        ok = inside & (depth >= depth_min) & (np.hypot(yy - c_s[0], xx - c_s[1]) >= min_dist)
        ok &= score >= ndimage.maximum_filter(score, 3)
        if not ok.any():
            continue
        cand = np.argwhere(ok)
        cand = cand[np.argsort(-score[ok], kind="stable")][:3]
        best = None
        for py, px in cand:
            p = np.array([py, px], float)
            z = stats(c_s, p, a=a)[0]
            chi = float((np.clip(z, 0, None) ** 2).sum())
            if best is None or chi > best[0]:
                best = (chi, p)
        if best[0] < prescreen * min_chi2:
            continue
        x0 = np.r_[c_s, best[1], 0.0]
        simplex = np.array([x0, x0 + [0.4, 0, 0, 0, 0], x0 + [0, 0.4, 0, 0, 0],
                            x0 + [0, 0, 0.7, 0, 0], x0 + [0, 0, 0, 0.7, 0],
                            x0 + [0, 0, 0, 0, 0.3]])
        x = _companion_simplex(sp_coef, sp_nb, sp_h, sp_w, sp_pad, img64, gyf, gxf, w,
                               simplex, float(comp_sigma), 200, 0.02, 1e-3)
        if np.hypot(*(x[:2] - x0[:2])) > 2.0 or np.hypot(*(x[2:4] - x0[2:4])) > 3.0:
            x = x0                     # the search ran off: keep its start
        cost = _companion_cost(sp_coef, sp_nb, sp_h, sp_w, sp_pad, img64, gyf, gxf, w, x,
                               float(comp_sigma))
        # a fit that put its companion on the centre (closer than min_dist) found none, and
        # must not win against the other start's fit that did
        if _off_centre(x, min_dist):
            fits.append((cost, len(fits), x))
    if not fits:
        return None
    x = min(fits)[2]                   # the lower cost; ties keep the first start
    c, p, sg = x[:2], x[2:4], comp_sigma * np.exp(np.clip(x[4], -0.7, 0.7))
    sp_img = coef                      # the image's spline (``coef`` is rebound below)
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
        check = np.ones(len(refs), bool)
        if ref_templates is not None:
            # only a fragment whose light at p outweighs the companion can leave it as a
            # residual (a companion brighter than that light there is no part of it)
            pi_ = np.clip(np.round(p).astype(int), 0, [h - 1, wd - 1])
            there = (ref_templates[:, :, pi_[0], pi_[1]] * w[None]).sum(1)
            check = there > ref_level * float((alpha * w).sum())
        for ref in refs[check]:
            dn = n_c - ref
            chi_c = (dn**2 / (e_c**2 + 1e-30)).sum() / max(nb - 1, 1)
            if chi_c < colour_chi2 or np.abs(dn).sum() < colour_min:
                return None
    if chi < min_chi2:             # (every kept fit is off-centre: _off_centre)
        return None
    pi = np.round(p).astype(int)
    if not (0 <= pi[0] < h and 0 <= pi[1] < wd) or not inside[pi[0], pi[1]]:
        return None
    ay, ax = np.nonzero(inside)
    ref = _reflect(sp_img, c, ay, ax)                          # I(2c - x), (band, pixel)
    tot_s = (cube[:, ay, ax] * w[:, None]).sum(0)
    host_s = (np.clip(np.minimum(cube[:, ay, ax], ref), 0, None) * w[:, None]).sum(0)
    lab = np.where(inside, 1, 0).astype(np.int32)
    sel = np.zeros(inside.shape, bool)
    sel[ay, ax] = tot_s - host_s > dominance * tot_s
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
                                    ref_templates=tpl if nf > 1 else None,
                                    min_chi2=min_chi2, min_dist=min_dist,
                                    kernel_sigma=kernel_sigma)
            if parts is not None:
                grown[parts == 2] = grown.max() + 1
        if grown.max() == labp.max():
            break
        labp = grown
    return labp[oy:oy + lab.shape[0], ox:ox + lab.shape[1]]
