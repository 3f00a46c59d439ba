"""The deblender's bright-peak rule: two fragments whose fainter peak is bright (``bright_sigma``
or more on the detection image, and ``bright_ratio`` or more of the brighter peak) stay split
on any saddle at least ``bright_depth`` deep.

Two galaxies of comparable brightness closer than ~1.5 PSF FWHM leave a saddle of a fraction of
a sigma and few pixels above it, so the contrast test (3 sigma) and the area rule (1 sigma and
``npixels`` above the saddle) merge them. Noise makes a second maximum only where the light is
nearly flat: in a faint source's outskirts (a low peak) or on the broad halo of a much brighter
galaxy (a low ratio), and there the pair is still merged.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import watershed

from galclust.sources.deblend import _merge, _pairs

YY, XX = np.mgrid[:48, :64].astype(float)
#: contrast, area and colour tests as the deblender's defaults; the pair has one colour
KW = dict(npixels=5, contrast_sigma=3.0, colour_sigma=1.0, colour_chi2=4.0, colour_min=0.1,
          area_sigma=1.0, area_npixels=5)


def _blob(peak, y, x, width):
    return peak * np.exp(-0.5 * ((YY - y) ** 2 + (XX - x) ** 2) / width**2)


def _merged(det, at, **kw):
    """Fragments grown from markers at ``at`` (two (y, x)), merged; and the pair's saddle
    depth, the fainter and the brighter fragment's peaks, and the smaller one's area."""
    markers = np.zeros(det.shape, np.int32)
    for k, (y, x) in enumerate(at, start=1):
        markers[y, x] = k
    inside = det > 4
    lab = watershed(-det, markers, mask=inside).astype(np.int32)
    sci = np.stack([det * 0.5, det * 0.5])
    surfaces = np.concatenate([det[None], sci])
    peaks = sorted(det[lab == k].max() for k in (1, 2))
    depth = peaks[0] - _pairs(lab, surfaces)[1][0, 0]
    out = _merge(lab.copy(), surfaces, sci, np.ones_like(sci), **KW, **kw)
    return int(out.max()), depth, peaks[0], peaks[1], min(np.sum(lab == k) for k in (1, 2))


def _pair(scale=1.0):
    """Two galaxies (peaks 20 and 16 sigma, 3 px wide) 7.5 px apart: a shallow saddle."""
    det = scale * (_blob(20.0, 24, 28, 3.0) + _blob(16.0, 24, 35.5, 3.0))
    return det, [(24, 28), (24, 36)]


def test_a_bright_pair_on_a_shallow_saddle_stays_split():
    det, at = _pair()
    n_without, depth, low, high, _ = _merged(det, at)
    assert 0.1 <= depth < KW["area_sigma"] and low >= 6.0      # the case
    assert n_without == 1                       # contrast and area tests merge it
    assert _merged(det, at, bright_sigma=6.0)[0] == 2
    # the rule's three conditions, each alone, merge it back
    assert _merged(det, at, bright_sigma=low + 0.1)[0] == 1
    assert _merged(det, at, bright_sigma=6.0, bright_depth=depth + 0.01)[0] == 1
    assert _merged(det, at, bright_sigma=6.0, bright_ratio=low / high + 0.01)[0] == 1


@pytest.mark.parametrize("scale", [0.3, 0.34])
def test_a_faint_pair_of_the_same_shape_is_merged(scale):
    det, at = _pair(scale)
    n, depth, low, _, area = _merged(det, at, bright_sigma=6.0)
    assert depth >= 0.1 and low < 6.0 and area >= KW["npixels"]   # a saddle, faint light
    assert n == 1


def test_a_maximum_on_a_much_brighter_galaxys_halo_is_merged():
    # a 300-sigma galaxy 12 px wide; a 12-sigma knot on its halo, 30 px out
    det = _blob(300.0, 24, 20, 12.0) + _blob(12.0, 24, 50, 1.5)
    n, depth, low, high, area = _merged(det, [(24, 20), (24, 50)], bright_sigma=6.0)
    assert 0.1 <= depth < 3.0 and low >= 6.0 and low / high < 0.1   # bright, but on a halo
    assert area >= KW["npixels"] and n == 1
    assert _merged(det, [(24, 20), (24, 50)], bright_sigma=6.0, bright_ratio=0.0)[0] == 2
