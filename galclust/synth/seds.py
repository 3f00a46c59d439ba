"""Physically motivated SED families, evaluated as broad-band fluxes.

Each family is a rest-frame continuum (plus emission lines for star-forming
galaxies) redshifted, attenuated by the intergalactic medium blueward of
Lyman-alpha, and averaged over a top-hat band around each pivot wavelength.
Fluxes are ``f_nu`` in arbitrary units; only the *shape* matters, callers scale
them.

Families
--------
``"starforming"``
    Young population: UV-continuum power law ``f_lambda ∝ lambda**beta``
    (``beta`` ≈ -2.2) plus nebular lines Hα 0.6563, [OIII] 0.5007, Hβ 0.4861
    and [OII] 0.3727 µm (rest) with large equivalent widths; a line adds
    ``EW_rest * (1 + z) / bandwidth`` times the local continuum to every band
    whose top-hat contains it.
``"old"`` (alias ``"quiescent"``)
    Evolved population: a broad log-normal hump in ``f_nu`` (peak ``peak`` ≈
    0.8 µm rest, log-width ``width``) with a Balmer/4000 Å break of strength
    ``d4000`` and a steep fall-off blueward of it.
``"dusty"``
    A young continuum reddened by Calzetti et al. (2000) attenuation with
    colour excess ``ebv`` (A_V = 4.05 ebv), with moderate emission lines.

Stars (``stellar_fluxes``) are black bodies at ``z = 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from galclust.errors import InputError, check_choice

__all__ = [
    "FAMILIES",
    "LINES",
    "NIRCAM_BANDS",
    "band_widths",
    "calzetti_k",
    "canonical_family",
    "draw_params",
    "sed_fluxes",
    "sed_fluxes_batch",
    "stellar_fluxes",
]

#: JWST NIRCam bands and their pivot wavelengths (micron).
NIRCAM_BANDS: dict[str, float] = {
    "F090W": 0.901,
    "F115W": 1.154,
    "F150W": 1.501,
    "F200W": 1.988,
    "F277W": 2.776,
    "F356W": 3.565,
    "F410M": 4.083,
    "F444W": 4.402,
}

#: The SED families understood by :func:`sed_fluxes` (``"quiescent"`` = ``"old"``).
FAMILIES: tuple[str, ...] = ("starforming", "old", "dusty")
_ALIASES = {"quiescent": "old"}

#: Rest-frame emission lines (micron) of the star-forming family.
LINES: dict[str, float] = {
    "halpha": 0.6563,
    "oiii": 0.5007,
    "hbeta": 0.4861,
    "oii": 0.3727,
}

_LINE_LAM = np.array(list(LINES.values()))
_LYA = 0.1216
_LYLIMIT = 0.0912
_HC_K = 14387.77  # h c / k in micron kelvin
_OFFSETS = np.linspace(-0.5, 0.5, 15)  # continuum samples across each top-hat band


def band_widths(wavelengths: Sequence[float], names: Sequence[str] | None = None) -> np.ndarray:
    """Top-hat widths (micron) of bands: R ≈ 4 for wide, 10 for medium, 50 for narrow.

    Parameters
    ----------
    wavelengths : sequence of float
        Pivot wavelengths in micron.
    names : sequence of str, optional
        Band names; a trailing ``M`` (``N``) marks a medium (narrow) band.

    Returns
    -------
    numpy.ndarray
        ``(band,)`` widths in micron.
    """
    lam = np.asarray(wavelengths, dtype=float)
    resolving = np.full(lam.shape, 4.0)
    if names is not None:
        for i, name in enumerate(names):
            suffix = str(name).upper()[-1:]
            resolving[i] = {"M": 10.0, "N": 50.0}.get(suffix, 4.0)
    return lam / resolving


def calzetti_k(lam_rest: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) starburst attenuation curve ``k(lambda)``.

    Parameters
    ----------
    lam_rest : numpy.ndarray
        Rest-frame wavelength in micron.

    Returns
    -------
    numpy.ndarray
        ``k`` (``A_lambda = k * E(B-V)``, R_V = 4.05), extrapolated linearly in
        ``1/lambda`` beyond 2.2 µm and clipped at zero.
    """
    lam = np.asarray(lam_rest, dtype=float)
    lam_c = np.clip(lam, 0.09, None)
    inv = 1.0 / lam_c
    blue = 2.659 * (-2.156 + 1.509 * inv - 0.198 * inv**2 + 0.011 * inv**3) + 4.05
    red = 2.659 * (-1.857 + 1.040 * inv) + 4.05
    return np.clip(np.where(lam_c < 0.63, blue, red), 0.0, None)


def _igm(lam_rest: np.ndarray, z: float | np.ndarray) -> np.ndarray:
    """Mean IGM transmission: Lyman-alpha forest (Madau-like) and Lyman-limit cut."""
    tau = 0.0036 * (1.0 + z) ** 3.46
    trans = np.where(lam_rest < _LYA, np.exp(-tau), 1.0)
    return np.where(lam_rest < _LYLIMIT, 0.0, trans)


def _planck_nu(lam: np.ndarray, temperature: float) -> np.ndarray:
    """Black body ``B_nu`` up to a constant, at wavelength ``lam`` (micron)."""
    x = np.clip(_HC_K / (lam * temperature), None, 600.0)
    return lam**-3 / np.expm1(x)


def _continuum(family: str, lam: np.ndarray, p: Mapping[str, float | np.ndarray]
               ) -> np.ndarray:
    if family == "starforming":
        return (lam / 0.15) ** (p["beta"] + 2.0) * np.where(lam > 0.3646, 1.15, 1.0)
    if family == "old":
        hump = np.exp(-0.5 * (np.log(lam / p["peak"]) / p["width"]) ** 2)
        step = 1.0 / (1.0 + np.exp(-(lam - 0.40) / 0.008))
        uv = np.where(lam < 0.40, (np.clip(lam, 1e-3, None) / 0.40) ** 4, 1.0)
        return hump * (uv / p["d4000"] + (1.0 - uv / p["d4000"]) * step)
    # dusty
    intrinsic = (lam / 0.15) ** (p["beta"] + 2.0)
    return intrinsic * 10.0 ** (-0.4 * p["ebv"] * calzetti_k(lam))


_DEFAULTS: dict[str, dict[str, float]] = {
    "starforming": {"beta": -2.2, "ew_halpha": 500.0, "ew_oiii": 700.0,
                    "ew_hbeta": 150.0, "ew_oii": 120.0},
    "old": {"peak": 0.8, "width": 0.6, "d4000": 2.5},
    "dusty": {"beta": -2.0, "ebv": 0.25, "ew_halpha": 300.0, "ew_oiii": 200.0,
              "ew_hbeta": 60.0, "ew_oii": 40.0},
}
_JITTER: dict[str, dict[str, tuple[float, float]]] = {
    "starforming": {"beta": (-2.6, -1.9), "ew_halpha": (300.0, 900.0),
                    "ew_oiii": (400.0, 1200.0), "ew_hbeta": (80.0, 250.0),
                    "ew_oii": (60.0, 200.0)},
    "old": {"peak": (0.7, 0.9), "width": (0.55, 0.7), "d4000": (2.0, 3.0)},
    "dusty": {"beta": (-2.2, -1.8), "ebv": (0.2, 0.32), "ew_halpha": (200.0, 400.0),
              "ew_oiii": (120.0, 300.0), "ew_hbeta": (40.0, 90.0), "ew_oii": (20.0, 60.0)},
}


def sed_fluxes(family: str, wavelengths: Sequence[float] | np.ndarray, z: float, *,
               rng: np.random.Generator | None = None,
               bandwidths: Sequence[float] | np.ndarray | None = None,
               **params: float) -> np.ndarray:
    """Band fluxes ``f_nu`` (arbitrary units) of an SED family at redshift ``z``.

    Parameters
    ----------
    family : {"starforming", "old", "quiescent", "dusty"}
        SED family (see the module docstring).
    wavelengths : array-like
        ``(band,)`` observed pivot wavelengths in micron.
    z : float
        Redshift (>= 0).
    rng : numpy.random.Generator, optional
        If given, parameters not set explicitly are drawn uniformly from the
        family's plausible range instead of taking their defaults.
    bandwidths : array-like, optional
        ``(band,)`` top-hat widths in micron; default ``wavelength / 4``.
    **params : float
        Family parameters: ``beta``, ``ew_halpha``, ``ew_oiii``, ``ew_hbeta``,
        ``ew_oii`` (rest-frame Å; starforming); ``peak`` (micron), ``width``,
        ``d4000`` (old); ``beta``, ``ebv`` and the same ``ew_*`` (dusty).

    Returns
    -------
    numpy.ndarray
        ``(band,)`` float64 fluxes, non-negative, not normalised.

    Raises
    ------
    InputError
        For an unknown family, an unknown parameter, a negative redshift or
        non-positive wavelengths.
    """
    family = canonical_family(family)
    for key in params:
        if key not in _DEFAULTS[family]:
            raise InputError(
                f"sed_fluxes: unknown parameter {key!r} for family {family!r}; "
                f"valid: {', '.join(sorted(_DEFAULTS[family]))}."
            )
    lam_obs = np.atleast_1d(np.asarray(wavelengths, dtype=float))
    if lam_obs.ndim != 1 or not np.all(lam_obs > 0):
        raise InputError("sed_fluxes: wavelengths must be a 1-D array of positive microns.")
    if not z >= 0:
        raise InputError(f"sed_fluxes: z={z!r} must be a non-negative redshift.")
    widths = lam_obs / 4.0 if bandwidths is None else np.asarray(bandwidths, dtype=float)
    if widths.shape != lam_obs.shape:
        raise InputError("sed_fluxes: bandwidths must have one entry per wavelength.")

    p = draw_params(family, rng) if rng is not None else dict(_DEFAULTS[family])
    p.update({k: float(v) for k, v in params.items()})
    return sed_fluxes_batch(family, lam_obs, np.array([float(z)]),
                            {k: np.array([v]) for k, v in p.items()}, widths)[0]


def canonical_family(family: str) -> str:
    """Validate an SED family name and resolve aliases (``"quiescent"`` -> ``"old"``).

    Raises
    ------
    InputError
        For an unknown name (with the closest valid one).
    """
    check_choice("family", family, (*FAMILIES, *_ALIASES))
    return _ALIASES.get(family, family)


def draw_params(family: str, rng: np.random.Generator) -> dict[str, float]:
    """Parameters of an SED family drawn uniformly from their plausible ranges.

    Parameters
    ----------
    family : str
        A name in :data:`FAMILIES` (or ``"quiescent"``).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    dict
        Parameter name -> value, as accepted by :func:`sed_fluxes`.
    """
    family = _ALIASES.get(family, family)
    return {key: float(rng.uniform(lo, hi)) for key, (lo, hi) in _JITTER[family].items()}


def sed_fluxes_batch(family: str, wavelengths: np.ndarray, z: np.ndarray,
                     params: Mapping[str, np.ndarray],
                     bandwidths: np.ndarray) -> np.ndarray:
    """:func:`sed_fluxes` for many objects of one family at once (no validation).

    Parameters
    ----------
    family : str
        A name in :data:`FAMILIES` (or ``"quiescent"``).
    wavelengths, bandwidths : numpy.ndarray
        ``(band,)`` pivots and top-hat widths, micron.
    z : numpy.ndarray
        ``(n,)`` redshifts.
    params : mapping
        Every parameter of the family, each an ``(n,)`` array.

    Returns
    -------
    numpy.ndarray
        ``(n, band)`` fluxes.
    """
    family = _ALIASES.get(family, family)
    lam_obs = np.asarray(wavelengths, dtype=float)
    widths = np.asarray(bandwidths, dtype=float)
    z = np.asarray(z, dtype=float)
    grid = (lam_obs[:, None] + widths[:, None] * _OFFSETS[None, :])[None]   # (1, band, sub)
    zz = z[:, None, None]
    lam_rest = grid / (1.0 + zz)
    cont = _continuum(family, lam_rest, {k: np.asarray(v)[:, None, None]
                                         for k, v in params.items()})
    flux = (cont * _igm(lam_rest, zz)).mean(axis=-1)                    # (n, band)
    if family in ("starforming", "dusty"):
        ew_obs = np.stack([np.asarray(params[f"ew_{name}"]) for name in LINES], axis=1)
        ew_obs = ew_obs * 1e-4 * (1.0 + z)[:, None]                         # micron, (n, line)
        line_obs = _LINE_LAM[None, :] * (1.0 + z)[:, None]
        inside = np.abs(line_obs[:, :, None] - lam_obs[None, None, :]) < widths / 2.0
        cont_line = _continuum(family, _LINE_LAM[None, :],
                               {k: np.asarray(v)[:, None] for k, v in params.items()})
        flux = flux + (inside * (cont_line * ew_obs)[:, :, None]).sum(axis=1) / widths
    return np.clip(flux, 0.0, None)


def stellar_fluxes(wavelengths: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """Band fluxes ``f_nu`` of a star (black body, ``z = 0``), peak-normalised to 1.

    Parameters
    ----------
    wavelengths : array-like
        ``(band,)`` pivot wavelengths in micron.
    temperature : float
        Effective temperature in kelvin.

    Returns
    -------
    numpy.ndarray
        ``(band,)`` float64 fluxes with maximum 1.
    """
    lam = np.atleast_1d(np.asarray(wavelengths, dtype=float))
    f = _planck_nu(lam, float(temperature))
    return f / f.max()
