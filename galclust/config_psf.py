"""The manifest's PSF keys: a PSF image per band, or ``psf_matched = true``.

A survey either names a PSF image for every band (``psf`` in each
``[[bands]]`` table, with an optional ``psf_hdu``): ingest then matches every
band to the broadest PSF (:mod:`galclust.store.psfmatch`); or declares in
``[survey]`` that its mosaics are already PSF-matched (``psf_matched =
true``); or says nothing, and the cube records that the PSFs are unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from galclust.errors import ManifestError

__all__ = ["PSF_STATUSES", "check_psf_keys", "psf_matched_flag"]

#: What a cube's ``psf`` attribute says: PSFs matched at ingest from the
#: manifest's PSF images, declared matched by the manifest, or unknown.
PSF_STATUSES = ("matched", "declared", "none")


def psf_matched_flag(survey: dict[str, Any], source: str) -> bool:
    """Pop and check ``psf_matched`` from the ``[survey]`` table (default False)."""
    value = survey.pop("psf_matched", False)
    if not isinstance(value, bool):
        raise ManifestError(
            f"{source}: [survey].psf_matched={value!r} must be true or false (true: every "
            "band's mosaic already has the same PSF).")
    return value


def check_psf_keys(bands: Sequence[Any], psf_matched: bool, source: str) -> None:
    """Refuse a manifest whose PSF keys contradict each other.

    Raises
    ------
    ManifestError
        When some bands name a PSF and others do not (naming the latter), when
        ``psf_hdu`` is given without ``psf``, or when PSF images are given and
        ``psf_matched = true`` is declared too.
    """
    for b in bands:
        if b.psf is None and b.psf_hdu is not None:
            raise ManifestError(f"{source}: band {b.name!r} gives psf_hdu but no psf; add "
                                "psf = \"<the band's PSF image>.fits\" or remove psf_hdu.")
    given = [b.name for b in bands if b.psf is not None]
    if not given:
        return
    if psf_matched:
        raise ManifestError(
            f"{source}: [survey] declares psf_matched = true and bands {', '.join(given)} give "
            "a psf image: give one or the other (PSF images: ingest matches the bands; "
            "psf_matched = true: the mosaics are already matched and nothing is convolved).")
    missing = [b.name for b in bands if b.psf is None]
    if missing:
        raise ManifestError(
            f"{source}: bands {', '.join(missing)} give no psf while "
            f"{', '.join(given)} do: PSF matching needs a PSF image for every band. Add psf "
            "= \"...fits\" to each of them, or remove psf from every band (and set "
            "psf_matched = true in [survey] if the mosaics are already matched).")
