"""A synthetic galaxy-cluster field: labelled cutouts for membership classification.

:func:`make_cluster_field` draws sources towards a nearby cluster (Perseus-like
by default) and returns one gri cutout per source with its truth;
:func:`make_cluster_survey` delivers such a field as a survey (FITS mosaics,
segmentation map, catalog, ``members.csv``, manifest) as
:func:`~galclust.synth.make_survey` does. The label ``member`` is 1 for early-type
and dwarf cluster members (kinds ``member``, ``dwarf_member``), 0 otherwise.

Physics (simple, each choice stated)
------------------------------------
Distances: ``D_L = cz/H0 (1 + 0.775 z)`` (H0 = 70), ``D_A = D_L / (1+z)^2``;
sizes are drawn in kpc and seen at the source's ``D_A``. Magnitudes are AB,
fluxes nanomaggies (zeropoint 22.5, SDSS's unit). A source's SED is ``r``,
``g-r``, ``r-i``; any band's magnitude is linear in ``log lambda`` through g, r,
i (extrapolated for u, z).

- ``member``: M_r -21.8 to -16.8 (counts rising to the faint end) on the red
  sequence ``g-r = zp + slope (M_r + 20)`` (zp 0.76, slope -0.03 mag/mag,
  scatter 0.045), ``r-i = 0.38 + 0.35 (g-r - zp)`` (scatter 0.03); Sersic
  n 2.5-4.5 (higher when brighter); ``log R_e/kpc = 0.45 - 0.13 (M_r + 20.5)``
  (0.1 dex); axis ratio 0.55-1.
- ``dwarf_member``: M_r -18.3 to -14.3, 0.04 mag bluer than the sequence with
  0.07 mag scatter, n 0.8-1.5, ``log R_e = 0.05 - 0.06 (M_r + 16)`` (0.12 dex):
  larger than an elliptical of the same magnitude, low surface brightness.
- ``background``: 45 % passive at z 0.04-0.18, redder than the sequence by
  ``3 (z - z_cl)`` (0.07-0.5 mag: the 4000 A break entering r; the low-z tail
  overlaps it), with the members' size relation, hence smaller at fixed
  apparent magnitude; the rest star-forming disks at z 0.02-0.3 (n 0.7-1.5,
  ``g-r = 0.3 + 0.9 z``, 0.1 mag scatter, a dusty tail reaching the sequence).
- ``foreground``: dwarfs at z 0.002-0.008, blue (g-r ~ 0.35), large at fixed
  magnitude.
- ``star``: the PSF, r 13-21, on a locus ``r-i = 0.4 (g-r) - 0.03`` (steeper
  past g-r = 1.3), 40 % of them around the sequence colour (g-r ~ 0.78).
  Every model is clipped at the peak of an r = 13.8 star (saturation).
- ``compact_galaxy``: z 0.1-0.5, stellar-locus colours, ``r_e`` 0.3-0.8 PSF
  FWHM: barely resolved. ``edge_on``: disks at z 0.015-0.12 (some at the
  cluster's redshift: late types are not members in this label), axis ratio
  0.1-0.25, dust reddening ``E(g-r)`` 0.15-0.5 bringing them onto the sequence.

Imaging: a Moffat PSF per band (beta 2.5, r FWHM 1.3", ``∝ lambda^-0.2``);
sky noise per band from a 5-sigma point-source depth (r 22.8; u -0.9, g +0.2,
i -0.4, z -1.3) through the PSF's noise-equivalent area, each stamp's noise
scaled by 0.85-1.2. The pixel scale is ``42" / size`` (a median member's
``r_e`` ~ size/10-size/12 px at any size), the PSF FWHM floored at 1.6 px (all bands
broadened together, and the compact galaxies with them) so small stamps stay
sampled. A source sits at pixel ``size // 2`` plus a uniform sub-pixel offset;
25 % of stamps hold a second source (background galaxy or star, r 15-21)
0.2-0.45 stamp sides away. ``snr`` is the matched-filter S/N of the source's
noise-free model in the middle band, ``sqrt(sum (model / err)^2)``: ~10 to
thousands.

``family="heldout"`` changes every knob but the label: cluster z 0.0231
(Coma-like), sequence zp 0.80, slope -0.045, scatter 0.05; Moffat beta 4.5,
FWHM 1.15" ``∝ lambda^-0.3``; depth r 23.1, other band offsets, stamp noise
0.8-1.3; galaxies as a de Vaucouleurs bulge plus an exponential disk (bulge
fraction 0.5-0.95 members, 0.45-0.9 passive, 0-0.3 star-forming, 0-0.15
edge-on; half of the dwarfs nucleated) instead of one Sersic; 50 % of the
background passive; another mixture of kinds, a shifted stellar locus, 35 %
neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.fft

from galclust.errors import InputError, check_choice
from galclust.synth.profiles import moffat, sersic

__all__ = ["FIELD_FAMILIES", "KINDS", "SDSS_BANDS", "ClusterField",
           "make_cluster_field"]

#: Source kinds of a cluster field (``member`` and ``dwarf_member`` have label 1).
KINDS = ("member", "dwarf_member", "background", "foreground", "star", "compact_galaxy",
         "edge_on")
#: Generator variants: ``"default"`` (tune on it), ``"heldout"`` (validate on it).
FIELD_FAMILIES = ("default", "heldout")
#: SDSS bands and pivot wavelengths (micron).
SDSS_BANDS = {"u": 0.3557, "g": 0.4702, "r": 0.6175, "i": 0.7491, "z": 0.8946}

_C_H0 = 299792.458 / 70.0   # Mpc
_FIELD_ARCSEC = 42.0        # stamp side at every size
_MIN_FWHM_PX = 1.6
_SAT_MAG = 13.8


@dataclass(frozen=True)
class _Family:
    z_cluster: float
    rs: tuple[float, float, float]                 # zero point at M_r=-20, slope, scatter
    psf: tuple[float, float, float]                # r FWHM arcsec, Moffat beta, lambda exponent
    depth: float                                   # 5-sigma point-source r depth
    depth_offsets: tuple[float, ...]               # u, g, r, i, z
    jitter: tuple[float, float]                    # per-stamp noise factor range
    mix: tuple[float, float, float, float, float]  # background, foreground, star, compact, edge
    dwarf_share: float
    passive_share: float
    neighbours: float
    two_component: bool
    locus_shift: float = 0.0


_FAMILIES = {
    "default": _Family(0.0179, (0.76, -0.03, 0.045), (1.3, 2.5, 0.2), 22.8,
                       (-0.9, 0.2, 0.0, -0.4, -1.3), (0.85, 1.2),
                       (0.42, 0.06, 0.24, 0.13, 0.15), 0.35, 0.45, 0.25, False),
    "heldout": _Family(0.0231, (0.80, -0.045, 0.05), (1.15, 4.5, 0.3), 23.1,
                       (-1.0, 0.3, 0.0, -0.5, -1.2), (0.8, 1.3),
                       (0.38, 0.08, 0.26, 0.14, 0.14), 0.35, 0.5, 0.35, True, 0.03),
}


@dataclass(frozen=True)
class ClusterField:
    """Cutouts of a synthetic cluster field with their truth.

    Attributes
    ----------
    cutouts : numpy.ndarray
        ``(n, band, size, size)`` float32 sky-subtracted flux (nanomaggies) with
        noise; the source at pixel ``size // 2`` plus a sub-pixel offset.
    err : numpy.ndarray
        ``(n, band)`` float32 per-pixel 1-sigma noise of each stamp.
    table : pandas.DataFrame
        Per stamp: id (1..n), kind, member (0/1), z, mag (middle band, AB),
        colour (first minus middle band, true), mag_<band>, sersic_n
        (flux-weighted for two components; NaN for stars), bulge_fraction (NaN
        for one profile), r_eff (px, major axis; 0 for stars), axis_ratio,
        position_angle (radians from +x towards +y), snr, neighbour (bool),
        dy, dx (offset of the centre from pixel ``size // 2``).
    bands, wavelength, psf_fwhm, pixel_scale
        Band names; ``(band,)`` pivot wavelengths (micron) and PSF FWHM (px);
        arcsec per pixel.
    family, random_state
        The generator variant and seed.
    """

    cutouts: np.ndarray
    err: np.ndarray
    table: pd.DataFrame
    bands: tuple[str, ...]
    wavelength: np.ndarray
    psf_fwhm: np.ndarray
    pixel_scale: float
    family: str
    random_state: int


def _distance(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance modulus and kpc per arcsec at redshift ``z`` (low-z expansion)."""
    z = np.maximum(np.asarray(z, dtype=float), 1e-4)
    d_l = _C_H0 * z * (1.0 + 0.775 * z)
    return 5.0 * np.log10(d_l * 1e5), d_l / (1.0 + z) ** 2 * 1e3 * np.pi / 648000.0


def _lf(rng: np.random.Generator, n: int, lo: float, hi: float, alpha: float) -> np.ndarray:
    """Magnitudes in [lo, hi] with density ``∝ 10^(alpha m)``."""
    span = 10.0 ** (alpha * (hi - lo)) - 1.0
    return lo + np.log10(1.0 + rng.uniform(size=n) * span) / alpha


def _locus(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """``g-r``, ``r-i`` on the stellar locus, 40 % bunched at the sequence's colour."""
    gr = np.where(rng.uniform(size=n) < 0.4, rng.normal(0.78, 0.08, n), rng.uniform(0.2, 1.5, n))
    ri = 0.4 * gr - 0.03 + shift + 2.0 * np.clip(gr - 1.3, 0, None) + rng.normal(0, 0.04, n)
    return gr, ri


def _draw(kinds: np.ndarray, fam: _Family, rng: np.random.Generator, fwhm_arcsec: float
          ) -> pd.DataFrame:
    """Physical parameters of sources of the given kinds (module docstring)."""
    n = len(kinds)
    col = {k: np.full(n, np.nan) for k in ("z", "mag_r", "gr", "ri", "n", "reff", "bt", "q")}
    col["pa"] = rng.uniform(0.0, np.pi, n)
    kpc = np.zeros(n)
    zp, slope, scatter = fam.rs
    two = fam.two_component
    for kind in KINDS:
        sel = np.flatnonzero(kinds == kind)
        m = len(sel)
        if m == 0:
            continue

        def unif(lo: float, hi: float, m: int = m) -> np.ndarray:
            return rng.uniform(lo, hi, m)

        def gauss(s: float, m: int = m) -> np.ndarray:
            return rng.normal(0.0, s, m)

        u, bt, size = rng.uniform(size=m), np.full(m, np.nan), np.zeros(m)
        if kind in ("member", "dwarf_member"):
            z = fam.z_cluster + gauss(0.0033)
            dwarf = kind == "dwarf_member"
            big = _lf(rng, m, -18.3, -14.3, 0.2) if dwarf else _lf(rng, m, -21.8, -16.8, 0.25)
            mag, seq = big + float(_distance(fam.z_cluster)[0]), zp + slope * (big + 20.0)
            if dwarf:
                gr, sn = seq - 0.04 + gauss(0.07), unif(0.8, 1.5)
                size = 10 ** (0.05 - 0.06 * (big + 16.0) + gauss(0.12))
                bt = np.where(u < 0.5, unif(0.03, 0.08), 0.0) if two else bt
            else:
                gr = seq + gauss(scatter)
                sn = np.clip(4.0 - 0.35 * (big + 20.0) + gauss(0.3), 2.5, 4.5)
                size = 10 ** (0.45 - 0.13 * (big + 20.5) + gauss(0.1))
                bt = unif(0.5, 0.95) if two else bt
            ri, q = 0.38 + 0.35 * (gr - zp) + gauss(0.03), unif(0.5 if dwarf else 0.55, 1.0)
        elif kind == "background":
            passive = u < fam.passive_share
            z = np.where(passive, unif(0.04, 0.18), unif(0.02, 0.3))
            mag = _lf(rng, m, 15.5, 21.0, 0.3)
            big, delta = mag - _distance(z)[0], 3.0 * (z - fam.z_cluster)
            dusty = np.where(rng.uniform(size=m) < 0.2, np.abs(gauss(0.25)), 0.0)
            gr = np.where(passive, zp + slope * (big + 20.0) + delta + gauss(0.05),
                          0.3 + 0.9 * z + gauss(0.1) + dusty)
            ri = np.where(passive, 0.38 + 0.35 * (gr - delta - zp) + 0.5 * delta,
                          0.12 + 0.3 * gr) + gauss(0.03)
            sn = np.where(passive, unif(2.5, 4.5), unif(0.7, 1.5))
            size = np.where(passive, 10 ** (0.45 - 0.13 * (big + 20.5) + gauss(0.1)),
                            10 ** (0.55 - 0.1 * (big + 20.5) + gauss(0.15)))
            q = np.where(passive, unif(0.55, 1.0), unif(0.3, 1.0))
            bt = np.where(passive, unif(0.45, 0.9), unif(0.0, 0.3)) if two else bt
        elif kind == "foreground":
            z, mag = unif(0.002, 0.008), _lf(rng, m, 14.5, 19.5, 0.3)
            gr = 0.35 + gauss(0.1)
            ri, sn = 0.12 + 0.3 * gr + gauss(0.04), unif(0.7, 1.3)
            size = 10 ** (0.1 - 0.08 * (mag - _distance(z)[0] + 16.0) + gauss(0.15))
            q, bt = unif(0.35, 1.0), np.zeros(m) if two else bt
        elif kind == "star":
            z, mag = np.zeros(m), _lf(rng, m, 13.0, 21.0, 0.15)
            (gr, ri), sn, q = _locus(rng, m, fam.locus_shift), np.full(m, np.nan), np.ones(m)
        elif kind == "compact_galaxy":
            z, mag = unif(0.1, 0.5), _lf(rng, m, 16.5, 20.5, 0.3)
            gr, ri = _locus(rng, m, fam.locus_shift)
            sn, q = unif(1.0, 2.5), unif(0.6, 1.0)
            size = unif(0.3, 0.8) * fwhm_arcsec * _distance(z)[1]
            bt = np.zeros(m) if two else bt
        else:  # edge_on
            z, mag = unif(0.015, 0.12), _lf(rng, m, 15.0, 19.5, 0.3)
            red = unif(0.15, 0.5)
            gr, ri = 0.45 + red + gauss(0.05), 0.22 + 0.6 * red + gauss(0.03)
            sn, q = unif(0.8, 1.3), unif(0.1, 0.25)
            size = 10 ** (0.6 - 0.1 * (mag - _distance(z)[0] + 20.5) + gauss(0.12))
            bt = unif(0.0, 0.15) if two else bt
        for key, val in (("z", z), ("mag_r", mag), ("gr", gr), ("ri", ri), ("n", sn),
                         ("q", q), ("bt", bt)):
            col[key][sel] = val
        kpc[sel] = size
    col["reff"] = np.minimum(kpc / _distance(col["z"])[1], _FIELD_ARCSEC / 5.0)  # arcsec
    return pd.DataFrame(col)


def _band_mags(p: pd.DataFrame, lam: np.ndarray) -> np.ndarray:
    """``(n, band)`` magnitudes, linear in log wavelength through g, r, i."""
    x = np.log(lam / SDSS_BANDS["r"])[None, :]
    xg, xi = np.log(SDSS_BANDS["g"] / SDSS_BANDS["r"]), np.log(SDSS_BANDS["i"] / SDSS_BANDS["r"])
    gr, ri = p["gr"].to_numpy()[:, None], p["ri"].to_numpy()[:, None]
    return p["mag_r"].to_numpy()[:, None] + np.where(x < 0, gr * x / xg, -ri * x / xi)


@lru_cache(maxsize=16)
def _otf(shape: tuple[int, int], fwhm: tuple[float, ...], beta: float) -> np.ndarray:
    """Real FFT of the pixel-centred, unit-sum Moffat PSF of each band, origin at (0, 0)."""
    psf = moffat(shape, shape[0] // 2, shape[1] // 2, np.asarray(fwhm), beta=beta)
    psf /= psf.sum(axis=(-2, -1), keepdims=True)
    return scipy.fft.rfft2(np.fft.ifftshift(psf, axes=(-2, -1)), axes=(-2, -1))


class _Imager:
    """Noise-free source models of one field: PSF, pixel scale, noise, saturation."""

    def __init__(self, fam: _Family, bands: tuple[str, ...], size: int) -> None:
        self.fam, self.size, self.scale = fam, size, _FIELD_ARCSEC / size
        self.lam = np.array([SDSS_BANDS[b] for b in bands])
        fw = fam.psf[0] * (self.lam / SDSS_BANDS["r"]) ** -fam.psf[2] / self.scale
        self.boost = max(1.0, _MIN_FWHM_PX / fw.min())  # PSF broadened for small stamps
        self.fwhm = fw * self.boost
        psf = moffat((size, size), size // 2, size // 2, self.fwhm, beta=fam.psf[1])
        psf /= psf.sum(axis=(-2, -1), keepdims=True)
        offset = np.array([fam.depth_offsets["ugriz".index(b)] for b in bands])
        f_lim = 10.0 ** (-0.4 * (fam.depth + offset - 22.5))
        self.sigma = f_lim / (5.0 * np.sqrt(1.0 / (psf**2).sum(axis=(-2, -1))))  # NEA
        self.saturation = 10.0 ** (-0.4 * (_SAT_MAG - 22.5)) * psf.max(axis=(-2, -1))

    def model(self, row: pd.Series, flux: np.ndarray, cy: float, cx: float) -> np.ndarray:
        """``(band, size, size)`` PSF-convolved, saturated model of one source."""
        shape, beta = (self.size, self.size), self.fam.psf[1]
        if row["reff"] <= 0:  # a star: the PSF itself at the sub-pixel position
            img = moffat(shape, cy, cx, self.fwhm, beta=beta)
            img /= img.sum(axis=(-2, -1), keepdims=True)
        else:
            r, q, pa = row["reff"] / self.scale, row["q"], row["pa"]
            if not self.fam.two_component:
                unit = sersic(shape, cy, cx, r_eff=r, n=row["n"], q=q, theta=pa)
            else:  # exponential disk + de Vaucouleurs bulge (or a dwarf's nucleus)
                bt = row["bt"]
                unit = (1.0 - bt) * sersic(shape, cy, cx, r_eff=1.1 * r, n=1.0, q=q, theta=pa)
                if bt > 0:
                    nuc = row.get("kind") == "dwarf_member"
                    unit += bt * sersic(shape, cy, cx, r_eff=max((0.1 if nuc else 0.45) * r, 0.3),
                                        n=2.0 if nuc else 4.0, q=max(q, 0.6), theta=pa)
            spec = scipy.fft.rfft2(unit)[None] * _otf(shape, tuple(self.fwhm), beta)
            img = scipy.fft.irfft2(spec, s=shape, axes=(-2, -1))
        return np.minimum(img * flux[:, None, None], self.saturation[:, None, None])


def _field(n_sources: int, size: int, bands: tuple[str, ...], member_fraction: float,
           family: str, rng: np.random.Generator) -> tuple[_Imager, pd.DataFrame, np.ndarray]:
    """Check the arguments; the imager, truth parameters and ``(n, band)`` fluxes."""
    check_choice("family", family, FIELD_FAMILIES)
    for b in bands:
        check_choice("bands", b, SDSS_BANDS)
    if len(set(bands)) != len(bands) or len(bands) < 2:
        raise InputError(f"bands={bands!r}: give at least two distinct SDSS bands, e.g. "
                         "('g', 'r', 'i').")
    if int(n_sources) != n_sources or n_sources < 1:
        raise InputError(f"n_sources={n_sources!r} must be a positive whole number.")
    if int(size) != size or size < 16:
        raise InputError(f"size={size!r} must be a whole number of pixels >= 16.")
    if not 0.0 < member_fraction < 1.0:
        raise InputError(f"member_fraction={member_fraction!r} must be in (0, 1).")
    n, fam = int(n_sources), _FAMILIES[family]
    imager = _Imager(fam, bands, int(size))
    share = np.concatenate([member_fraction * np.array([1 - fam.dwarf_share, fam.dwarf_share]),
                            (1 - member_fraction) * np.array(fam.mix) / sum(fam.mix)])
    counts = np.floor(share * n).astype(int)  # exact counts: largest remainders
    counts[np.argsort(counts - share * n, kind="stable")[: n - counts.sum()]] += 1
    kinds = rng.permutation(np.repeat(np.array(KINDS), counts))
    p = _draw(kinds, fam, rng, fam.psf[0] * imager.boost)
    p.insert(0, "kind", kinds)
    return imager, p, 10.0 ** (-0.4 * (_band_mags(p, imager.lam) - 22.5))


def _table(p: pd.DataFrame, imager: _Imager, flux: np.ndarray, bands: tuple[str, ...],
           snr: np.ndarray) -> pd.DataFrame:
    mags, mid = 22.5 - 2.5 * np.log10(flux), len(bands) // 2
    n_eff = (1 - p["bt"]) + 4.0 * p["bt"] if imager.fam.two_component else p["n"]
    out = pd.DataFrame({
        "id": np.arange(1, len(p) + 1, dtype=np.int64), "kind": p["kind"].to_numpy(),
        "member": p["kind"].isin(KINDS[:2]).astype(np.int64).to_numpy(), "z": p["z"],
        "mag": mags[:, mid], "colour": mags[:, 0] - mags[:, mid],
        **{f"mag_{b}": m for b, m in zip(bands, mags.T, strict=True)},
        "sersic_n": np.where(p["kind"] == "star", np.nan, n_eff), "bulge_fraction": p["bt"],
        "r_eff": p["reff"] / imager.scale, "axis_ratio": p["q"], "position_angle": p["pa"],
        "snr": snr})
    return out


def make_cluster_field(n_sources: int = 600, *, size: int = 64,
                       bands: tuple[str, ...] = ("g", "r", "i"),
                       member_fraction: float = 0.35, family: str = "default",
                       random_state: int = 0) -> ClusterField:
    """Cutouts of a synthetic cluster field with known membership (module docstring).

    Parameters
    ----------
    n_sources : int
        Number of stamps (one source each).
    size : int
        Stamp side in pixels (>= 16); the pixel scale is ``42" / size``.
    bands : tuple of str
        At least two SDSS bands (:data:`SDSS_BANDS`).
    member_fraction : float
        Fraction of members (early types and dwarfs); counts are exact.
    family : {"default", "heldout"}
        Generator variant: tune on ``"default"``, validate on ``"heldout"``.
    random_state : int
        Seed; the output is a deterministic function of all arguments.

    Returns
    -------
    ClusterField

    Raises
    ------
    InputError
        For an unknown band or family, or an out-of-range argument.
    """
    bands = tuple(bands)
    rng = np.random.default_rng([int(random_state), 7])
    imager, p, flux = _field(n_sources, size, bands, member_fraction, family, rng)
    n, nb, mid, c = len(p), len(bands), len(bands) // 2, int(size) // 2
    offsets = rng.uniform(-0.5, 0.5, (n, 2))
    has_nb = rng.uniform(size=n) < imager.fam.neighbours
    nb_p = _draw(np.where(rng.uniform(size=n) < 0.7, "background", "star"), imager.fam, rng,
                 imager.fam.psf[0] * imager.boost)
    nb_p["mag_r"] = rng.uniform(15.0, 21.0, n)
    nb_flux = 10.0 ** (-0.4 * (_band_mags(nb_p, imager.lam) - 22.5))
    radius, angle = rng.uniform(0.2, 0.45, n) * size, rng.uniform(0.0, 2.0 * np.pi, n)
    err = (imager.sigma[None, :] * rng.uniform(*imager.fam.jitter, (n, nb))).astype(np.float32)
    cutouts = np.empty((n, nb, size, size), dtype=np.float32)
    snr = np.empty(n)
    for i in range(n):
        model = imager.model(p.iloc[i], flux[i], c + offsets[i, 0], c + offsets[i, 1])
        snr[i] = np.sqrt(np.sum((model[mid] / err[i, mid]) ** 2))
        if has_nb[i]:
            model += imager.model(nb_p.iloc[i], nb_flux[i], c + radius[i] * np.sin(angle[i]),
                                  c + radius[i] * np.cos(angle[i]))
        cutouts[i] = model + err[i][:, None, None] * rng.standard_normal((nb, size, size))
    table = _table(p, imager, flux, bands, snr).assign(
        neighbour=has_nb, dy=offsets[:, 0], dx=offsets[:, 1])
    return ClusterField(cutouts=cutouts, err=err, table=table, bands=bands,
                        wavelength=imager.lam, psf_fwhm=imager.fwhm, pixel_scale=imager.scale,
                        family=family, random_state=int(random_state))
