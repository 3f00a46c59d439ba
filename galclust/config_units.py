"""Flux units of a manifest's bands: the recognised spellings and the warning for the rest."""

from __future__ import annotations

import warnings
from typing import Any

from galclust.errors import GalclustWarning

__all__ = ["FLUX_UNITS", "canonical_unit", "unit_warning", "warn_units"]

#: Flux units of a band's science image that galclust recognises (a band's
#: ``unit`` in the manifest; case and spaces are ignored, and ``µJy`` is
#: ``uJy``). Flux densities per pixel: ``nJy``, ``uJy``, ``mJy``, ``Jy``; surface
#: brightness: ``MJy/sr`` (JWST/HST pipeline ``_i2d`` images); AB-zeropoint
#: counts: ``nanomaggy`` (zeropoint 22.5, 1 nanomaggy = 3.631 uJy; SDSS,
#: DECaLS); instrument count rates (calibrated with the band's AB zeropoint):
#: ``e-/s``, ``DN/s``. Another unit is recorded as given, with a warning.
FLUX_UNITS: tuple[str, ...] = ("nJy", "uJy", "mJy", "Jy", "MJy/sr", "nanomaggy", "e-/s",
                               "DN/s")



def canonical_unit(unit: Any) -> str | None:
    """The :data:`FLUX_UNITS` spelling of ``unit``, or None if it is not one of them.

    Case and spaces are ignored; ``µJy`` (micro sign or Greek mu) is ``uJy``.
    """
    key = str(unit).replace(" ", "").replace("\u00b5", "u").replace("\u03bc", "u").lower()
    return next((u for u in FLUX_UNITS if u.lower() == key), None)


def unit_warning(manifest: Any) -> str | None:
    """What is wrong with the bands' units, or None if each is one of :data:`FLUX_UNITS`.

    Parameters
    ----------
    manifest : galclust.config.Manifest

    Returns
    -------
    str or None
        One message naming the bands without a ``unit`` and those whose unit
        is not recognised, with the recognised units.
    """
    missing = [b.name for b in manifest.bands if not str(b.unit or "").strip()]
    unknown = [f"{b.name} ({b.unit!r})" for b in manifest.bands
               if str(b.unit or "").strip() and canonical_unit(b.unit) is None]
    if not (missing or unknown):
        return None
    parts = []
    if missing:
        parts.append(f"band{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                     f"give{'' if len(missing) > 1 else 's'} no unit, so their fluxes are "
                     "recorded and plotted as plain 'flux per pixel'")
    if unknown:
        parts.append(f"band{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                     f"give{'' if len(unknown) > 1 else 's'} a unit galclust does not "
                     "recognise (recorded as given)")
    return (f"{manifest.source}: " + "; ".join(parts) + ". Set unit in each [[bands]] "
            f"table to one of: {', '.join(FLUX_UNITS)} (e.g. unit = \"nJy\").")


def warn_units(manifest: Any) -> None:
    """Warn once (:class:`~galclust.errors.GalclustWarning`) if :func:`unit_warning` finds
    bands without a unit or with an unrecognised one."""
    message = unit_warning(manifest)
    if message is not None:
        warnings.warn(message, GalclustWarning, stacklevel=3)
