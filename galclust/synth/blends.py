"""Multi-band scenes of blended galaxies with known truth, and detection scoring.

:func:`make_blend_scenes` draws small multi-band scenes (default 6 JWST-like
bands, 64 x 64 pixels) holding one isolated galaxy or a blended pair or
triplet, convolved band by band with a Moffat PSF, with per-band Gaussian
noise. Every source has its own SED, so neighbours differ in colour.
:func:`score_detection` matches a segmentation map to a scene's truth.

Families
--------
``"default"`` (tune on this one)
    Sersic disk (n = 1) plus a de Vaucouleurs bulge of a redder SED
    (bulge fraction 0-0.5, so single galaxies have colour gradients);
    SEDs from :func:`galclust.synth.sed_fluxes` (starforming / old / dusty at
    z 0.3-4); 30 % isolated, 50 % pairs, 20 % triplets; disk r_eff 1-2.5 px; separations
    0.5-3 reference FWHM (log-uniform), flux ratios 1-10 (log-uniform);
    white noise.
``"heldout"`` (validate only; choose no setting on it)
    Moffat-like and irregular galaxies (an exponential or Moffat body plus
    2-4 bluer Gaussian clumps), power-law-plus-break SEDs, noise smoothed by
    a Gaussian kernel (correlated; ``err`` gives the per-pixel RMS), 20 %
    isolated, 45 % pairs, 25 % triplets, 10 % quadruplets; separations
    uniform in 0.8-2.5 FWHM, flux ratios 1-6 (uniform).

Truth and S/N
-------------
- The *reference FWHM* of a scene is the largest band FWHM (the reddest band).
- A source's ``snr`` is its matched-filter S/N over all bands,
  ``sqrt(sum_b sum_pix (m_b / e_b)**2)`` for its noise-free model ``m``.
- ``true_seg`` labels each pixel with the source (1-based) contributing most
  to the noise-free S/N-weighted stack ``sum_b m_b / e_b / sqrt(B)``,
  where that stack of all sources exceeds 0.5 (noise units); 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from galclust.errors import InputError, check_choice
from galclust.synth.profiles import convolve_psf, gaussian, psf_fwhm_px, sersic
from galclust.synth.seds import NIRCAM_BANDS, sed_fluxes

__all__ = ["BLEND_BANDS", "BLEND_FAMILIES", "BlendScene", "make_blend_scenes",
           "score_detection"]

#: Scene families understood by :func:`make_blend_scenes`.
BLEND_FAMILIES: tuple[str, ...] = ("default", "heldout")

#: The default 6 bands (JWST NIRCam) and their pivot wavelengths (micron).
BLEND_BANDS: dict[str, float] = {k: NIRCAM_BANDS[k] for k in
                                 ("F090W", "F115W", "F150W", "F200W", "F277W", "F444W")}


@dataclass
class BlendScene:
    """One synthetic multi-band scene and its truth.

    Attributes
    ----------
    sci, err : numpy.ndarray
        ``(band, y, x)`` float32 image and per-pixel 1-sigma error.
    models : numpy.ndarray
        ``(source, band, y, x)`` float32 noise-free PSF-convolved model of
        each source.
    positions : numpy.ndarray
        ``(source, 2)`` true centres ``(x, y)`` in 0-based pixels.
    true_seg : numpy.ndarray
        ``(y, x)`` int32 dominant source (1-based), 0 for sky.
    bands : list of str
        Band names.
    fwhm : numpy.ndarray
        ``(band,)`` PSF FWHM in pixels.
    meta : dict
        ``family``, ``n_sources``, ``fwhm_ref``, ``separation_fwhm`` (minimum
        pairwise, NaN if isolated), ``flux_ratio`` (brightest / faintest stack
        flux), ``snr`` (per source), ``colours`` (per source, normalised SED).
    """

    sci: np.ndarray
    err: np.ndarray
    models: np.ndarray
    positions: np.ndarray
    true_seg: np.ndarray
    bands: list[str]
    fwhm: np.ndarray
    meta: dict = field(default_factory=dict)


def _default_sed(rng: np.random.Generator, lam: np.ndarray, family: str | None = None
                 ) -> np.ndarray:
    fam = family or str(rng.choice(["starforming", "old", "dusty"]))
    z = float(rng.uniform(0.3, 4.0))
    f = sed_fluxes(fam, lam, z, rng=rng) + 1e-3
    return f / f.sum()


def _heldout_sed(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """Power law in f_nu with a smooth break at a random wavelength."""
    slope = rng.uniform(-1.5, 2.5)
    brk = rng.uniform(lam.min(), lam.max())
    jump = rng.uniform(0.2, 3.0)
    f = (lam / lam.mean()) ** slope * (1.0 + (jump - 1.0) / (1.0 + np.exp(-(lam - brk) / 0.15)))
    return f / f.sum()


def _default_galaxy(rng, shape, y0, x0, lam):
    """Disk + redder bulge: images (2, y, x), seds (2, band)."""
    r_eff = rng.uniform(1.0, 2.5)
    q, th = rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)
    disk = sersic(shape, y0, x0, r_eff=r_eff, n=1.0, q=q, theta=th)
    bulge = sersic(shape, y0, x0, r_eff=max(0.6, 0.35 * r_eff), n=4.0,
                   q=min(1.0, q + 0.2), theta=th)
    frac = rng.uniform(0.0, 0.5)
    sed_d = _default_sed(rng, lam)
    red = sed_d * (lam / lam.mean()) ** rng.uniform(0.5, 1.5)   # bulge redder than its disk
    return np.stack([disk, bulge]), np.stack([(1 - frac) * sed_d, frac * red / red.sum()])


def _heldout_galaxy(rng, shape, y0, x0, lam):
    """Moffat-like or exponential body plus bluer clumps."""
    r = rng.uniform(1.0, 3.0)
    yy = np.arange(shape[0])[:, None] - y0
    xx = np.arange(shape[1])[None, :] - x0
    if rng.random() < 0.5:
        body = (1 + (xx**2 + yy**2 * rng.uniform(1.0, 2.0)) / r**2) ** -rng.uniform(1.8, 3.0)
        body /= body.sum()
    else:
        body = sersic(shape, y0, x0, r_eff=r, n=rng.uniform(0.5, 1.5), q=rng.uniform(0.4, 1),
                      theta=rng.uniform(0, np.pi))
    sed = _heldout_sed(rng, lam)
    imgs, seds = [body], [sed]
    n_clump = int(rng.integers(2, 5))
    cfrac = rng.uniform(0.05, 0.25)
    blue = sed * (lam / lam.mean()) ** rng.uniform(-1.2, -0.3)
    blue /= blue.sum()
    for _ in range(n_clump):
        rr, ang = r * rng.uniform(0.2, 1.0), rng.uniform(0, 2 * np.pi)
        imgs.append(gaussian(shape, y0 + rr * np.sin(ang), x0 + rr * np.cos(ang),
                             sigma=rng.uniform(0.4, 0.9)))
        seds.append(blue * cfrac / n_clump)
    seds[0] = sed * (1 - cfrac)
    return np.stack(imgs), np.stack(seds)


def _layout(rng, n, fwhm_ref, family, centre):
    """Positions (n, 2) as (y, x): each new source at a drawn separation from a placed one."""
    pos = [np.asarray(centre, float) + rng.uniform(-2, 2, 2)]
    for _ in range(1, n):
        for _try in range(50):
            if family == "default":
                sep = np.exp(rng.uniform(np.log(0.5), np.log(3.0))) * fwhm_ref
            else:
                sep = rng.uniform(0.8, 2.5) * fwhm_ref
            ang = rng.uniform(0, 2 * np.pi)
            base = pos[int(rng.integers(len(pos)))]
            p = base + sep * np.array([np.sin(ang), np.cos(ang)])
            if min(np.hypot(*(p - q)) for q in pos) >= 0.45 * fwhm_ref:
                break
        pos.append(p)
    return np.array(pos)


def make_blend_scenes(n_scenes: int, *, family: str = "default", n_bands: int = 6,
                      size: int = 64, random_state: int = 0) -> list[BlendScene]:
    """Draw multi-band scenes of isolated and blended galaxies with truth.

    Parameters
    ----------
    n_scenes : int
        Number of scenes.
    family : {"default", "heldout"}
        Scene family (see the module docstring). Tune on ``"default"`` only.
    n_bands : int
        Number of bands (2-6), the first ``n_bands`` of :data:`BLEND_BANDS`
        spread over its wavelength range.
    size : int
        Side of each square scene in pixels (>= 32).
    random_state : int
        Seed; the same arguments give the same scenes.

    Returns
    -------
    list of BlendScene
        The scenes.

    Raises
    ------
    InputError
        For an unknown family, ``n_bands`` outside 2-6, ``size`` < 32 or
        ``n_scenes`` < 1.
    """
    check_choice("family", family, BLEND_FAMILIES)
    if not 2 <= int(n_bands) <= 6:
        raise InputError(f"n_bands={n_bands!r} must be between 2 and 6.")
    if int(size) < 32:
        raise InputError(f"size={size!r} must be at least 32 pixels.")
    if int(n_scenes) < 1:
        raise InputError(f"n_scenes={n_scenes!r} must be at least 1.")
    names = list(BLEND_BANDS)
    idx = np.unique(np.round(np.linspace(0, 5, int(n_bands))).astype(int))
    bands = [names[i] for i in idx]
    lam = np.array([BLEND_BANDS[b] for b in bands])
    fwhm = psf_fwhm_px(lam, 0.04, minimum=1.6)
    fwhm_ref = float(np.max(fwhm))
    rng = np.random.default_rng([int(random_state), 0 if family == "default" else 1])
    shape = (int(size), int(size))
    centre = (size / 2.0, size / 2.0)
    nb = len(bands)
    if family == "default":
        counts, probs = [1, 2, 3], [0.30, 0.50, 0.20]
    else:
        counts, probs = [1, 2, 3, 4], [0.20, 0.45, 0.25, 0.10]
    scenes = []
    for _ in range(int(n_scenes)):
        n = int(rng.choice(counts, p=probs))
        pos = _layout(rng, n, fwhm_ref, family, centre)
        sigma_b = rng.uniform(0.5, 1.5, nb)
        models, snr = [], []
        if family == "default":
            snr0 = np.exp(rng.uniform(np.log(30.0), np.log(400.0)))
            ratios = np.exp(rng.uniform(0, np.log(10.0), n))
        else:
            snr0 = np.exp(rng.uniform(np.log(25.0), np.log(300.0)))
            ratios = rng.uniform(1.0, 6.0, n)
        ratios[0] = 1.0
        for k in range(n):
            make = _default_galaxy if family == "default" else _heldout_galaxy
            imgs, seds = make(rng, shape, pos[k, 0], pos[k, 1], lam)
            m, _ = convolve_psf(imgs, fwhm, seds)
            m = m.astype(np.float64)
            target = max(snr0 / ratios[k], 12.0)
            cur = np.sqrt(np.sum((m / sigma_b[:, None, None]) ** 2))
            models.append(m * target / cur)
            snr.append(target)
        models = np.array(models)
        total = models.sum(axis=0)
        if family == "default":
            noise = rng.normal(size=total.shape)
        else:
            noise = ndimage.gaussian_filter(rng.normal(size=total.shape), (0, 0.8, 0.8))
            noise /= noise.std(axis=(1, 2), keepdims=True)
        sci = total + sigma_b[:, None, None] * noise
        err = np.broadcast_to(sigma_b[:, None, None], total.shape)
        stack = (models / sigma_b[None, :, None, None]).sum(axis=1) / np.sqrt(nb)
        seg = (np.argmax(stack, axis=0) + 1) * (stack.sum(axis=0) > 0.5)
        if n > 1:
            d = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
            sep = float(d[np.triu_indices(n, 1)].min() / fwhm_ref)
        else:
            sep = float("nan")
        flux_stack = stack.sum(axis=(1, 2))
        colours = models.sum(axis=(2, 3))
        colours = colours / colours.sum(axis=1, keepdims=True)
        scenes.append(BlendScene(
            sci=sci.astype(np.float32), err=np.array(err, dtype=np.float32),
            models=models.astype(np.float32), positions=pos[:, ::-1].copy(),
            true_seg=seg.astype(np.int32), bands=bands, fwhm=fwhm,
            meta={"family": family, "n_sources": n, "fwhm_ref": fwhm_ref,
                  "separation_fwhm": sep,
                  "flux_ratio": float(flux_stack.max() / flux_stack.min()),
                  "snr": np.array(snr), "colours": colours}))
    return scenes


def score_detection(scene: BlendScene, seg: np.ndarray, *, radius: float | None = None
                    ) -> dict:
    """Match a detected segmentation map to a scene's true sources, one-to-one.

    A true source ``s`` and a detected segment ``d`` match when (1) ``d``
    holds the largest share of ``s``'s noise-free stack flux inside ``s``'s
    dominant-pixel region (``true_seg == s``), (2) ``s`` is the true source
    whose region contributes the largest such flux to ``d`` (mutual best, so
    one-to-one), and (3) the flux-weighted centroid of ``d`` on the
    noise-free total stack lies within ``radius`` of ``s``'s true centre.

    Parameters
    ----------
    scene : BlendScene
        The scene.
    seg : numpy.ndarray
        ``(y, x)`` integer segmentation, 0 for sky.
    radius : float, optional
        Matching radius in pixels; default 1 reference FWHM of the scene
        (at least 2 pixels).

    Returns
    -------
    dict
        ``matched`` (bool per true source), ``n_true``, ``n_detected``,
        ``n_matched_segments``, ``resolved`` (every true source matched and no
        unmatched segment touches a true region), ``blended`` (n_sources > 1).
    """
    seg = np.asarray(seg)
    n = scene.meta["n_sources"]
    radius = max(2.0, scene.meta["fwhm_ref"]) if radius is None else float(radius)
    nb = scene.sci.shape[0]
    w = 1.0 / scene.err[:, 0, 0]
    stack = (scene.models * w[None, :, None, None]).sum(axis=1) / np.sqrt(nb)   # (s, y, x)
    ids = np.unique(seg[seg > 0])
    nd = len(ids)
    lut = np.zeros(int(seg.max()) + 1, dtype=int)
    lut[ids] = np.arange(1, nd + 1)
    dseg = lut[seg]                                                  # 0..nd
    tseg = scene.true_seg
    # flux[s, d]: stack flux of source s in its own region that falls in segment d
    flux = np.zeros((n, nd + 1))
    for s in range(n):
        own = tseg == s + 1
        flux[s] = np.bincount(dseg[own], weights=stack[s][own], minlength=nd + 1)
    total = stack.sum(axis=0)
    yy, xx = np.indices(seg.shape)
    wsum = np.bincount(dseg.ravel(), weights=np.clip(total, 0, None).ravel(), minlength=nd + 1)
    cx = np.bincount(dseg.ravel(), weights=(np.clip(total, 0, None) * xx).ravel(),
                     minlength=nd + 1) / np.maximum(wsum, 1e-12)
    cy = np.bincount(dseg.ravel(), weights=(np.clip(total, 0, None) * yy).ravel(),
                     minlength=nd + 1) / np.maximum(wsum, 1e-12)
    matched = np.zeros(n, bool)
    seg_matched = np.zeros(nd + 1, bool)
    if nd:
        f = flux[:, 1:]
        best_d = np.argmax(f, axis=1) + 1
        best_s = np.argmax(f, axis=0)
        for s in range(n):
            d = best_d[s]
            if f[s, d - 1] <= 0 or best_s[d - 1] != s:
                continue
            px, py = scene.positions[s]
            if np.hypot(cx[d] - px, cy[d] - py) <= radius:
                matched[s] = True
                seg_matched[d] = True
    return {"matched": matched, "n_true": n, "n_detected": nd,
            "n_matched_segments": int(seg_matched.sum()),
            "resolved": bool(matched.all()), "blended": n > 1}
