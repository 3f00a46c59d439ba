"""Quality flags of a pixel-clustering result, declared in one place.

A degenerate galaxy is never an exception: it gets a result (possibly with no
clusters) whose ``flags`` say why. Flags are a bitmask (:class:`PixelFlag`,
an :class:`enum.IntFlag`), stored as an integer column in survey tables;
:func:`flag_names` turns a value back into names.
"""

from __future__ import annotations

import enum

__all__ = ["FLAG_DESCRIPTIONS", "PixelFlag", "flag_names"]


class PixelFlag(enum.IntFlag):
    """Bitmask of conditions met while clustering one galaxy (0 = none)."""

    NO_PIXELS = 1
    TOO_FEW_PIXELS = 2
    SINGLE_BAND = 4
    ALL_NAN = 8
    BANDS_DROPPED = 16
    K_REDUCED = 32
    SNR_TARGET_UNMET = 64
    NOISE_PIXELS = 128
    SUBSAMPLED = 256
    NOT_IN_SEGMENTATION = 512
    FAILED = 1024
    INVALID_PIXELS = 2048
    FAINT = 4096
    SKY_TOO_SMALL = 8192
    PSF_UNMATCHED = 16384


#: What each flag means (documentation and ``flag_names(..., describe=True)``).
FLAG_DESCRIPTIONS: dict[PixelFlag, str] = {
    PixelFlag.NO_PIXELS: "no pixel passed the selection (footprint, coverage, S/N); no clusters",
    PixelFlag.TOO_FEW_PIXELS: "fewer than min_pixels selected pixels; all of them form one cluster",
    PixelFlag.SINGLE_BAND: "at most one usable band: no SED shape; all pixels form one cluster",
    PixelFlag.ALL_NAN: "no finite, covered value in the footprint (all-NaN or no coverage)",
    PixelFlag.BANDS_DROPPED: "some bands had (too little) coverage and were not used",
    PixelFlag.K_REDUCED: "the requested number of clusters exceeded the selected pixels",
    PixelFlag.SNR_TARGET_UNMET: "even one cluster does not reach the S/N target",
    PixelFlag.NOISE_PIXELS: "the density-based method left selected pixels unclustered (-1)",
    PixelFlag.SUBSAMPLED: "pairwise method fitted on a pixel subsample, rest assigned to nearest",
    PixelFlag.NOT_IN_SEGMENTATION: "the galaxy id has no pixel in the segmentation map",
    PixelFlag.FAILED: "clustering raised an unexpected error (see the error column)",
    PixelFlag.INVALID_PIXELS: "some selected pixels could not be normalised (e.g. sum <= 0)",
    PixelFlag.FAINT: "the S/N cut kept under a quarter of the covered footprint (or under "
                     "2 min_pixels): set bin_snr (e.g. 5) to cluster the faint outskirts as "
                     "Voronoi bins, or lower snr_threshold",
    PixelFlag.SKY_TOO_SMALL: "too little empty sky around the galaxy to rescale some band's "
                             "errors (used as given), or, when unmixing, to measure the noise "
                             "correlation (taken as white): widen the stamp margin",
    PixelFlag.PSF_UNMATCHED: "the bands are not PSF-matched (the manifest gives no psf and does "
                             "not declare psf_matched): colour gradients may be PSF artefacts",
}


def flag_names(flags: int, *, describe: bool = False) -> list[str]:
    """Names (or descriptions) of the flags set in ``flags``.

    Parameters
    ----------
    flags : int
        A :class:`PixelFlag` value or the integer stored in a table.
    describe : bool
        Return the descriptions instead of the names.

    Returns
    -------
    list of str
        In bit order; empty when no flag is set.
    """
    value = int(flags)
    out = []
    for flag in PixelFlag:
        if value & flag:
            out.append(FLAG_DESCRIPTIONS[flag] if describe else str(flag.name))
    return out
