"""Supervised classification of catalog sources from their cutouts.

Any labelled property (cluster membership, morphological class, star/galaxy,
spurious/reliable) learnt from multi-band stamps, as the Perseus-cluster
membership study did with a ResNet on SDSS gri cutouts.

Pure numpy / scikit-learn / torch modules work on arrays:

- :mod:`galclust.classify.features` — photometry and morphology measured on
  the cutouts themselves (aperture colours and magnitudes, concentration,
  Gini, asymmetry, second-moment shape).
- :mod:`galclust.classify.cnn` — a residual network sized for CPUs (PyTorch,
  the optional ``[cnn]`` extra) that knows where the cutout's centre is, with
  dihedral augmentation, early stopping and temperature calibration; its layers and tensor plumbing are
  :mod:`galclust.classify.resnet`.
- :mod:`galclust.classify.estimator` — :class:`SourceClassifier`, the
  scikit-learn estimator that chooses between them (``model="auto"``).
- :mod:`galclust.classify.labels` — checking a label table against a catalog.

:mod:`galclust.classify.survey` is the one module that maps them over a
survey with Dask. Scoring is evaluation: :mod:`galclust.evaluation.classify`.
"""
