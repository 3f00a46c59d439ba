"""Which parts of a cube store an ingest rewrites.

A part (a band, the segmentation, the tables) is keyed by the checksums of its
inputs (and, for a PSF-matched band, of its PSF and the target's); a part
whose key is not among those the store wrote completely is rewritten.
"""

from __future__ import annotations

from typing import Any

from galclust.config import Manifest
from galclust.store.fits import CHECKSUM
from galclust.store.ingest_detect import detect_part
from galclust.store.psfmatch import PsfPlan, band_psf_key

__all__ = ["_parts", "_todo"]


def _parts(manifest: Manifest, prov: dict[str, dict[str, Any]], psf: PsfPlan | None = None
           ) -> tuple[dict[int, str], str, str]:
    """Each part of the store (a band, the segmentation, the tables) keyed by the
    checksums of its inputs: a part is rewritten when its key changes.

    When galclust detects, the segmentation part is the detection (``seg`` and
    the catalog), keyed by every band's key and the options; the tables part is
    then the labels alone. A PSF-matched band's key adds its PSF's and the
    target band's PSF's checksums (:func:`galclust.store.psfmatch.band_psf_key`).
    """

    def key(*names: str) -> str:
        return "|".join(f"{k}:{prov[k][CHECKSUM]}" for k in names)

    def psf_checksum(name: str) -> str:
        return prov[name][CHECKSUM]

    plan = psf if psf is not None else PsfPlan("none")
    bands = {i: key(f"{b.name}.sci", f"{b.name}.{'err' if b.estimated else b.noise_kind}")
             + band_psf_key(b.name, plan, psf_checksum) for i, b in enumerate(manifest.bands)}
    labels = ["labels"] if manifest.labels else []
    if manifest.detects:
        return bands, detect_part(list(bands.values()), manifest), key(*labels) or "no-labels"
    return bands, key("seg"), key("catalog", *labels)


def _todo(manifest: Manifest, prov: dict[str, dict[str, Any]], previous: dict[str, Any],
          fresh: bool, psf: PsfPlan | None = None) -> tuple[list[int], bool, bool, list[str]]:
    """Bands to write, whether to write the segmentation and the tables, parts kept."""
    if fresh:
        return list(range(len(manifest.bands))), True, True, []
    done = set(previous.get("written", []))  # parts written completely, by checksum key
    band_parts, seg_part, table_part = _parts(manifest, prov, psf)
    bands = [i for i, key in band_parts.items() if key not in done]
    kept = [k for k in done if k in band_parts.values() or k in (seg_part, table_part)]
    return bands, seg_part not in done, table_part not in done, kept
