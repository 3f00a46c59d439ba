"""The deblender's area rule: a fragment on a bright neighbour's wing stays split when its
saddle is at least ``area_sigma`` deep *and* it has ``npixels`` pixels above the saddle.

A faint companion on an extended galaxy's wing rises only 1-3 sigma above the saddle it
shares with the galaxy, below the 3-sigma contrast test, but it does so over many pixels; a
noise peak of the same depth is one or two pixels wide. photutils' multi-threshold deblending
keeps the first (a branch of ``npixels`` above the level) and so must the colour deblender.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import watershed

from galclust.sources.deblend import _merge, _pairs

YY, XX = np.mgrid[:48, :64].astype(float)
#: a bright extended galaxy, detection image in sigma (peak 40, 10 px Gaussian)
HOST = 40 * np.exp(-0.5 * ((YY - 24) ** 2 + (XX - 20) ** 2) / 10.0**2)
#: same colour in both bands, so the colour test cannot keep anything apart
KW = dict(npixels=5, contrast_sigma=3.0, colour_sigma=1.0, colour_chi2=4.0, colour_min=0.1)


def _merged(det, **kw):
    """Fragments of the host and the bump at x = 38 (two markers), merged; and the bump's
    depth below its saddle and its pixels above the saddle."""
    inside = det > 4
    markers = np.zeros(det.shape, np.int32)
    markers[24, 20], markers[24, 38] = 1, 2
    lab = watershed(-det, markers, mask=inside).astype(np.int32)
    sci = np.stack([det * 0.5, det * 0.5])
    surfaces = np.concatenate([det[None], sci])
    saddle = _pairs(lab, surfaces)[1][0, 0]
    depth = det[lab == 2].max() - saddle
    above = int(((lab == 2) & (det > saddle)).sum())
    out = _merge(lab.copy(), surfaces, sci, np.ones_like(sci), **KW, **kw)
    return int(out.max()), depth, above


def test_a_wide_companion_on_the_wing_stays_split():
    det = HOST + 12.5 * np.exp(-0.5 * ((YY - 24) ** 2 + (XX - 38) ** 2) / 3.0**2)
    n_without, depth, above = _merged(det)
    assert 1.0 <= depth < KW["contrast_sigma"] and above >= KW["npixels"]   # the case
    assert n_without == 1                              # the contrast test alone merges it
    assert _merged(det, area_sigma=1.0, area_npixels=5)[0] == 2
    # the depth floor: the same bump is merged when the floor is above its depth
    assert _merged(det, area_sigma=depth + 0.1, area_npixels=5)[0] == 1
    # and the area: merged when more pixels above the saddle are asked for than it has
    assert _merged(det, area_sigma=1.0, area_npixels=above + 1)[0] == 1


@pytest.mark.parametrize("height", [3.0, 3.5, 4.0])
def test_a_one_pixel_peak_of_the_same_depth_is_merged(height):
    det = HOST.copy()
    det[24, 38] += height
    n, depth, above = _merged(det, area_sigma=1.0, area_npixels=5)
    assert depth >= 1.0 and above < 5                  # as deep, but one pixel wide
    assert n == 1
