"""Defaults of the spurious flagging shared by the array API and the run's options.

Declared once, here, in a module that imports nothing: both
:class:`galclust.catalog.pipeline.FlagOptions` and
:class:`galclust.options.CatalogOptions` take them from here, and building the
command line does not import scikit-learn.
"""

#: Flagging method: "combined", "mixture" or "classifier".
METHOD = "combined"
#: Non-linear embedding on the PCA components: "none", "tsne" or "umap".
EMBEDDING = "none"
#: Flag mixture components whose labelled spurious fraction exceeds this.
THRESHOLD = 0.05
#: Side of a source's cutout, pixels.
CUTOUT_SIZE = 51
