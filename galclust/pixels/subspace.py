"""Pixel-SED arrays: their validation, and the dimension of their signal subspace.

:func:`hysime` is the noise-whitened subspace identification of
Bioucas-Dias & Nascimento (2008), which :func:`galclust.pixels.unmix.unmix`
offers as a rule for the number of components (``n_components="hysime"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from galclust.errors import InputError

__all__ = ["check_seds", "hysime"]


def check_seds(flux: Any, err: Any) -> tuple[np.ndarray, np.ndarray]:
    """``flux`` and ``err`` as float (pixel, band) arrays, or an InputError saying what is wrong."""
    flux = np.asarray(flux, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    if flux.ndim != 2 or flux.shape != err.shape:
        raise InputError(f"flux and err must both be (pixel, band) arrays of one shape; got "
                         f"{flux.shape} and {err.shape}.")
    if not np.all(np.isfinite(flux)):
        raise InputError("flux holds non-finite values; drop those pixels or bands first.")
    if not np.all((err > 0) & ~np.isnan(err)):
        raise InputError("err must be positive (+inf for a missing band); got zero, negative "
                         "or NaN errors.")
    return flux, err


def hysime(flux: Any, err: Any) -> int:
    """Signal-subspace dimension of pixel SEDs (HySime, Bioucas-Dias & Nascimento 2008).

    The SEDs are whitened by their errors, so the noise correlation is the
    identity; the signal correlation is the data's minus the noise's. Its
    eigenvectors ``e_i`` enter the subspace while the signal power along them
    exceeds twice the noise power, ``e_i' R_y e_i > 2 e_i' R_n e_i`` (the
    mean-square-error criterion of the paper).

    Parameters
    ----------
    flux, err : array_like, (pixel, band)

    Returns
    -------
    int
        The number of components (>= 1).
    """
    flux, err = check_seds(flux, err)
    finite = np.isfinite(err)
    scale = np.where(finite, err, 1.0)
    y = np.where(finite, flux / scale, 0.0)
    n = y.shape[0]
    r_y = y.T @ y / n
    r_n = np.diag(finite.mean(axis=0))
    vals, vecs = np.linalg.eigh(r_y - r_n)
    order = np.argsort(vals)[::-1]
    vecs = vecs[:, order]
    p_y = np.einsum("bi,bc,ci->i", vecs, r_y, vecs)
    p_n = np.einsum("bi,bc,ci->i", vecs, r_n, vecs)
    return max(int(np.sum(p_y > 2.0 * p_n)), 1)
