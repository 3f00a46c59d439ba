"""Strip-by-strip FITS writing for the synthetic survey generator.

The generator delivers files the way a survey does, so it is the one place
outside :mod:`galclust.store` that writes files. Images are written as a
primary HDU whose header declares the final shape; rows are then streamed in
order (``astropy.io.fits.StreamingHDU``), so no full-size array ever exists.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["StripImage", "wcs_cards"]

_BITPIX = {np.dtype(np.float32): -32, np.dtype(np.int32): 32, np.dtype(np.int16): 16}


def wcs_cards(shape: tuple[int, int], *, pixel_scale: float, ra0: float,
              dec0: float) -> dict[str, Any]:
    """A gnomonic (TAN) WCS centred on the image, north up, east left.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(ny, nx)``.
    pixel_scale : float
        Arcsec per pixel.
    ra0, dec0 : float
        Sky position (deg) of the image centre, the reference pixel.

    Returns
    -------
    dict
        FITS keywords: CTYPE, CUNIT, CRVAL, CRPIX (1-based centre), CD matrix,
        RADESYS.
    """
    ny, nx = shape
    deg = pixel_scale / 3600.0
    return {
        "WCSAXES": 2,
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
        "CUNIT1": "deg", "CUNIT2": "deg",
        "CRVAL1": float(ra0), "CRVAL2": float(dec0),
        "CRPIX1": (nx + 1) / 2.0, "CRPIX2": (ny + 1) / 2.0,
        "CD1_1": -deg, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": deg,
        "RADESYS": "ICRS",
    }


class StripImage:
    """A 2-D FITS image written row strip by row strip, in order.

    Parameters
    ----------
    path : str or path-like
        Output file (overwritten).
    shape : (int, int)
        Final ``(ny, nx)``.
    dtype : numpy dtype
        ``float32``, ``int32`` or ``int16``.
    cards : dict
        Extra header keywords (WCS, BUNIT, FILTER, ...).
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int], dtype: Any,
                 cards: dict[str, Any]) -> None:
        self.path = os.fspath(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        header = fits.Header()
        header["SIMPLE"] = True
        header["BITPIX"] = _BITPIX[self.dtype]
        header["NAXIS"] = 2
        header["NAXIS1"] = self.shape[1]
        header["NAXIS2"] = self.shape[0]
        for key, value in cards.items():
            header[key] = value
        if os.path.exists(self.path):
            os.remove(self.path)
        self._stream = fits.StreamingHDU(self.path, header)
        self._next_row = 0

    def write(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (``(h, nx)``) as image rows ``y0 .. y0 + h - 1``.

        Raises
        ------
        ValueError
            If the strip is not the next one or has the wrong width.
        """
        if y0 != self._next_row or rows.ndim != 2 or rows.shape[1] != self.shape[1]:
            raise ValueError(
                f"{self.path}: expected rows starting at {self._next_row} with width "
                f"{self.shape[1]}, got start {y0} and shape {rows.shape}."
            )
        self._stream.write(np.ascontiguousarray(rows, dtype=self.dtype))
        self._next_row += rows.shape[0]

    def close(self) -> None:
        """Close the file (all rows must have been written)."""
        self._stream.close()

    def __enter__(self) -> StripImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
