"""Defaults of detection and morphology, declared once (the options and the functions
read them from here)."""

from __future__ import annotations

#: Detection threshold (sigma of the smoothed S/N-weighted stack) and fewest pixels; 4
#: was chosen on the default blend family (3 gave noise detections in empty sky).
NSIGMA = 4.0
NPIXELS = 5
#: Deblending methods; ``"colour"`` uses the pixels' SED shapes as well as topography.
DEBLENDS = ("colour", "watershed", "none")
DEBLEND = "colour"
#: Pixels read around each detection tile.
HALO = 64
#: What the morphology stage measures: catalog segments, detections, SED clusters.
LEVELS = ("galaxies", "detections", "clusters")
#: Pixels read around each segment for morphology.
MARGIN = 16
#: Version of the detection method: part of the key of every stored detection (the
#: ``detect`` stage's checkpoint and the part of a cube an ingest detects), so raising it
#: when the deblender returns something else for the same options makes a stored
#: detection be redone once, not reused (2: the colour deblender's area rule when merging,
#: and its symmetry split's second start and template region; 3: a symmetry fit whose
#: companion ends on its centre no longer displaces the other start's fit, and the
#: companion search's prescreen is its acceptance threshold; 4: a companion need differ in
#: colour only from the fragments whose light at its position outweighs it; 5: the merge's
#: bright-peak rule keeps two bright maxima apart on any saddle).
DETECT_VERSION = 5
