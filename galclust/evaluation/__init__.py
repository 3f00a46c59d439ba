"""Evaluation against synthetic truth, kept apart from the science it scores.

- :mod:`galclust.evaluation.pixels` — pixel clustering against per-pixel truth
  (adjusted Rand index, number of clusters) as a function of S/N, for single
  synthetic galaxies and for a whole synthetic survey's run.
- :mod:`galclust.evaluation.catalog` — recall, flagged fraction and precision of
  spurious flags against the injected artefacts, and the published reference.

Nothing in :mod:`galclust.pixels` or :mod:`galclust.catalog` imports this
package; it imports them (and :mod:`galclust.synth`).
"""

from __future__ import annotations

from galclust.evaluation.catalog import REFERENCE, evaluate_flags
from galclust.evaluation.pixels import (
    SNR_BINS,
    ari_table,
    ari_vs_snr,
    run_validation,
    separated_galaxy,
    survey_ari,
)

__all__ = [
    "REFERENCE",
    "SNR_BINS",
    "ari_table",
    "ari_vs_snr",
    "evaluate_flags",
    "run_validation",
    "separated_galaxy",
    "survey_ari",
]
