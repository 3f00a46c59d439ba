"""Synthetic galaxies and surveys with known truth.

- :func:`make_galaxy` — one multi-band galaxy stamp (components with distinct
  SED families, PSF, noise at a requested S/N) with its per-pixel truth.
- :func:`make_survey` — a whole survey delivered as files (FITS mosaics,
  segmentation map, catalog, labels, manifest) plus truth, rendered in strips
  so it scales past memory; ``layout="separated"`` gives galaxies whose
  components are spatially distinct, for validating pixel clustering.
- :func:`sed_fluxes` and :data:`NIRCAM_BANDS` — the SED families and bands.
- :func:`make_cluster_field` — labelled gri cutouts of a galaxy-cluster field
  (red-sequence and dwarf members; background, foreground, stars and
  confounders), ``family="heldout"`` a variant for validation;
  :func:`make_cluster_survey` writes such a field as a survey with
  ``members.csv``.
- :func:`make_blend_scenes` — multi-band scenes of blended galaxies with
  truth (``family="heldout"`` for validation); :func:`score_detection`
  matches a segmentation map to their true sources one-to-one.
- :func:`make_mixture_galaxy` — a galaxy of 1-5 components whose light mixes
  (layouts separated, overlapping, nested; ``family="heldout"`` for
  validation) with the true fraction maps: the pixel-clustering suite.
- :func:`make_clumpy_galaxy` — a clumpy multi-band galaxy (clumps of distinct
  SEDs on a diffuse host) with its true clump cores; :func:`score_clumps`
  matches a structure map to them (``family="heldout"`` for validation).
- :func:`make_emission_galaxy` — a galaxy in NIRCam broad + medium bands with
  extended line emission in the medium band holding Hα/[OIII]/Paβ at z (or a
  control), with the true region (``family="heldout"`` for validation).
"""

from __future__ import annotations

from galclust.synth.artefacts import REASONS
from galclust.synth.blends import (
    BLEND_FAMILIES,
    BlendScene,
    make_blend_scenes,
    score_detection,
)
from galclust.synth.clumps import (
    CLUMP_FAMILIES,
    ClumpyGalaxy,
    make_clumpy_galaxy,
    score_clumps,
)
from galclust.synth.cluster_field import (
    FIELD_FAMILIES,
    SDSS_BANDS,
    ClusterField,
    make_cluster_field,
)
from galclust.synth.cluster_field import KINDS as CLUSTER_KINDS
from galclust.synth.cluster_survey import ClusterSurvey, make_cluster_survey
from galclust.synth.emission import (
    EMISSION_BANDS,
    EMISSION_FAMILIES,
    EmissionGalaxy,
    make_emission_galaxy,
)
from galclust.synth.galaxy import (
    DETECT_NSIGMA,
    LAYOUTS,
    SyntheticGalaxy,
    footprint,
    galaxy_snr,
    half_light_mask,
    make_galaxy,
)
from galclust.synth.mixtures import (
    MIXTURE_FAMILIES,
    MIXTURE_LAYOUTS,
    MixtureGalaxy,
    make_mixture_galaxy,
    mixture_sky,
)
from galclust.synth.seds import FAMILIES, NIRCAM_BANDS, sed_fluxes
from galclust.synth.survey import SyntheticSurvey, make_survey

__all__ = [
    "BLEND_FAMILIES",
    "CLUMP_FAMILIES",
    "CLUSTER_KINDS",
    "DETECT_NSIGMA",
    "EMISSION_BANDS",
    "EMISSION_FAMILIES",
    "FAMILIES",
    "FIELD_FAMILIES",
    "LAYOUTS",
    "MIXTURE_FAMILIES",
    "MIXTURE_LAYOUTS",
    "MixtureGalaxy",
    "NIRCAM_BANDS",
    "REASONS",
    "SDSS_BANDS",
    "BlendScene",
    "ClumpyGalaxy",
    "ClusterField",
    "ClusterSurvey",
    "EmissionGalaxy",
    "SyntheticGalaxy",
    "SyntheticSurvey",
    "footprint",
    "galaxy_snr",
    "half_light_mask",
    "make_clumpy_galaxy",
    "make_cluster_field",
    "make_cluster_survey",
    "make_emission_galaxy",
    "make_blend_scenes",
    "make_galaxy",
    "make_mixture_galaxy",
    "mixture_sky",
    "make_survey",
    "score_clumps",
    "score_detection",
    "sed_fluxes",
]
