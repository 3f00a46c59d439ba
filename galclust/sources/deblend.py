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
       ``contrast_sigma``; or if it is at least ``area_sigma`` and each
       fragment has ``npixels`` or more pixels above the saddle (the rule of
       photutils' multi-threshold deblending, which keeps a faint companion
       on a bright neighbour's extended wing, with a depth floor against
       noise peaks); or if the fainter fragment peaks at ``bright_sigma`` or
       more and at ``bright_ratio`` or more of the brighter one's peak, and
       there is a saddle at all (depth at least ``bright_depth``): noise makes
       a second maximum only where the light is nearly flat, in the faint
       outskirts of a compact source or on the broad halo of a much brighter
       one, so a second maximum of bright light is taken for a source however
       shallow its saddle (two galaxies of comparable brightness closer than
       ~1.5 PSF FWHM leave a saddle of a fraction of a sigma); or if
       the colours differ significantly
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
       ``sum_b max(z_b, 0)^2`` reaches ``symmetry_chi2``. The fit starts
       from the best-fitting centre and from the stacked light's peak (a
       pair is most symmetric about a point between its sources) and keeps
       the lower cost; the companion takes the pixels where the light in
       excess of the host's symmetric template carries a third or more of
       the stacked S/N (see :func:`_symmetry_split`; neighbouring
       fragments' symmetric templates are removed first and the companion
       must then also differ in colour from them).

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
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from galclust.sources._coloursplit import _colour_split
from galclust.sources._smooth import convolve_separable, gaussian_1d
from galclust.sources._symmetry import _symmetry_rounds

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


def _merge(lab, surfaces, sci, var, *, npixels, contrast_sigma, colour_sigma, colour_chi2,
           colour_min, area_sigma=None, area_npixels=None, bright_sigma=None,
           bright_depth=0.1, bright_ratio=0.1):
    """Iteratively merge adjacent fragments that fail the saddle and colour tests.

    One pair is merged per step, the weakest failing pair first. The saddles,
    peaks, areas and colour sums of the fragments are computed once and
    updated as fragments merge (the saddle of a merged fragment with a
    neighbour is the larger of its parts' saddles; peaks are maxima; areas,
    fluxes and variances add; for the area rule each fragment keeps its
    ``area_npixels`` highest detection values, which decide whether that
    many pixels lie above a saddle), so a step costs O(fragments^2), not a
    pass over the pixels. Fragments keep their ids while merging (a merged pair
    keeps the lower id) and are numbered 1..k in id order at the end.
    """
    m = int(lab.max())
    if m < 2:
        return lab
    nb = sci.shape[0]
    pairs, saddle = _pairs(lab, surfaces)
    ns = surfaces.shape[0]
    sad = np.full((ns, m + 1, m + 1), -np.inf)
    adj = np.zeros((m + 1, m + 1), bool)
    if len(pairs):
        sad[:, pairs[:, 0], pairs[:, 1]] = saddle
        sad[:, pairs[:, 1], pairs[:, 0]] = saddle
        adj[pairs[:, 0], pairs[:, 1]] = adj[pairs[:, 1], pairs[:, 0]] = True
    flat = lab.ravel()
    peaks = np.full((ns, m + 1), -np.inf)
    for i, surf in enumerate(surfaces):  # per-label maxima: O(n), no sort
        np.maximum.at(peaks[i], flat, surf.ravel())
    area = np.bincount(flat, minlength=m + 1)
    fsum = np.stack([np.bincount(flat, weights=b.ravel(), minlength=m + 1) for b in sci], axis=1)
    vsum = np.stack([np.bincount(flat, weights=b.ravel(), minlength=m + 1) for b in var], axis=1)
    alive = np.ones(m + 1, bool)
    alive[0] = False
    rep = np.arange(m + 1)
    use_area = area_sigma is not None and area_npixels is not None
    if use_area:
        # a fragment has area_npixels pixels above a level t iff its area_npixels-th
        # highest detection value exceeds t: keep each fragment's top values (ascending)
        kth = max(int(area_npixels), 1)
        order = np.lexsort((surfaces[0].ravel(), flat))
        bounds = np.searchsorted(flat[order], np.arange(m + 2))
        dvals = surfaces[0].ravel()[order]
        top = np.full((m + 1, kth), -np.inf)
        for j in range(1, m + 1):
            v = dvals[max(bounds[j + 1] - kth, bounds[j]):bounds[j + 1]]
            top[j, kth - len(v):] = v
    while alive.sum() > 1:
        ia, ib = np.nonzero(np.triu(adj & alive[:, None] & alive[None, :], 1))
        if not len(ia):
            break
        low = np.minimum(peaks[:, ia], peaks[:, ib])                 # (surface, pair)
        depth = low - sad[:, ia, ib]
        tot = fsum.sum(axis=1, keepdims=True)
        tot = np.where(np.abs(tot) > 0, tot, 1.0)
        n = fsum / tot
        e = np.sqrt(vsum + n**2 * vsum.sum(axis=1, keepdims=True)) / np.abs(tot)
        dn = n[ia] - n[ib]
        chi2 = (dn**2 / (e[ia] ** 2 + e[ib] ** 2 + 1e-30)).sum(1) / max(nb - 1, 1)
        colour = (chi2 >= colour_chi2) & (np.abs(dn).sum(1) >= colour_min)
        small = np.minimum(area[ia], area[ib]) < npixels
        keep = ((depth[0] >= contrast_sigma)
                | (colour & (depth[1:].max(axis=0) >= colour_sigma))) & ~small
        if use_area:
            s0 = sad[0, ia, ib]
            keep |= ((depth[0] >= area_sigma) & (top[ia, 0] > s0) & (top[ib, 0] > s0)
                     & ~small)
        if bright_sigma is not None:
            high = np.maximum(peaks[0, ia], peaks[0, ib])
            keep |= ((low[0] >= bright_sigma) & (low[0] >= bright_ratio * high)
                     & (depth[0] >= bright_depth) & ~small)
        if keep.all():
            break
        # merge the weakest failing pair (smallest pieces first, then shallowest saddle)
        cand = np.flatnonzero(~keep)
        score = np.where(small[cand], -1e9 - sad[0, ia[cand], ib[cand]], depth[0, cand])
        k = cand[np.lexsort((ib[cand], ia[cand], score))[0]]
        a, b = ia[k], ib[k]
        sad[:, a, :] = np.maximum(sad[:, a, :], sad[:, b, :])
        sad[:, :, a] = sad[:, a, :]
        adj[a] |= adj[b]
        adj[:, a] = adj[a]
        adj[a, a] = False
        adj[b] = adj[:, b] = False
        peaks[:, a] = np.maximum(peaks[:, a], peaks[:, b])
        area[a] += area[b]
        fsum[a] += fsum[b]
        vsum[a] += vsum[b]
        if use_area:
            top[a] = np.sort(np.concatenate([top[a], top[b]]))[kth:]
        alive[b] = False
        rep[rep == b] = a
    new = np.zeros(m + 1, np.int32)
    new[alive] = np.arange(1, alive.sum() + 1)
    return new[rep][lab]


def colour_deblend(seg: np.ndarray, det: np.ndarray, snr: np.ndarray, sci: np.ndarray,
                   err: np.ndarray, *, npixels: int = 5, contrast_sigma: float = 3.0,
                   colour_sigma: float = 1.0, colour_chi2: float = 4.0,
                   colour_min: float = 0.1, peak_separation: float = 2.0,
                   split_distance: float | None = 2.5, kernel_fwhm: float | None = 2.0,
                   split_snr: float = 5.0, symmetry_chi2: float | None = 30.0,
                   symmetry_distance: float = 1.0, area_sigma: float | None = 1.0,
                   bright_sigma: float | None = 6.0, bright_depth: float = 0.1,
                   bright_ratio: float = 0.1
                   ) -> tuple[np.ndarray, np.ndarray]:
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
    area_sigma : float or None
        Saddle depth (detection-image sigma) that keeps two fragments apart
        when each also has ``npixels`` or more pixels above the saddle
        (photutils' multi-threshold rule, with a depth floor against noise
        peaks); None disables that test.
    bright_sigma : float or None
        Peak (detection-image sigma) of the fainter of two fragments above
        which any saddle at least ``bright_depth`` deep keeps them apart,
        when that peak is also at least ``bright_ratio`` times the brighter
        fragment's (the bright-peak rule; see the module docstring); None
        disables that test.
    bright_depth : float
        Saddle depth (detection-image sigma) the bright-peak rule needs: a
        second maximum, not a plateau.
    bright_ratio : float
        Minimum ratio of the fainter fragment's peak to the brighter one's
        for the bright-peak rule (keeps the broad, nearly flat halo of a
        much brighter galaxy, where noise makes maxima, whole).

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
        g = gaussian_1d(float(kernel_fwhm))
        sci_s = convolve_separable(sci, g)
        var_s = convolve_separable(var, g**2)
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
                         colour_chi2=colour_chi2, colour_min=colour_min,
                         area_sigma=area_sigma, area_npixels=npixels,
                         bright_sigma=bright_sigma, bright_depth=bright_depth,
                         bright_ratio=bright_ratio)
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
