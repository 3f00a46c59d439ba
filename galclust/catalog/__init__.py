"""Catalog-wide cutout embeddings and spurious-source flagging.

Pure numpy/scikit-learn modules work on arrays:

- :mod:`galclust.catalog.cutouts` — multi-band stamps around given centres.
- :mod:`galclust.catalog.scaling` — noise estimates, asinh scaling, flattening.
- :mod:`galclust.catalog.embedding` — linear (PCA) and non-linear (t-SNE/UMAP)
  embeddings of in-memory arrays.
- :mod:`galclust.catalog.features` — interpretable per-source features.
- :mod:`galclust.catalog.model` — :class:`SpuriousModel` (a Gaussian mixture
  calibrated on inspection labels) and :func:`flag_spurious`.
- :mod:`galclust.catalog.classifier` — a supervised alternative.
- :mod:`galclust.catalog.schema` — the per-source output table's columns.
- :mod:`galclust.catalog.pipeline` — options and the in-memory pipeline
  behind :func:`galclust.flag_spurious`.

:mod:`galclust.catalog.survey` is the one module that maps them over a whole
survey with Dask. Scoring flags against synthetic truth is evaluation, not
science: :mod:`galclust.evaluation.catalog`.
"""
