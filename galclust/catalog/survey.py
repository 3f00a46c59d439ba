"""Catalog-wide cutouts, embedding and spurious flags with Dask (the one Dask module).

The work is batched by sky position: sources are grouped by spatial tile, and
one task cuts the stamps of every source of a tile from the cube region
around it (:func:`survey_cutouts`). Scaling, binning and stamp features are
mapped over those chunks; the linear embedding is dask-ml's
``IncrementalPCA`` fitted batch by batch (the stamps of a big catalog never
exist in memory at once); the fitted mixture / classifier is mapped over
blocks of the embedding (``map_blocks`` with explicit chunks; dask-ml's
``ParallelPostFit(GaussianMixture).predict_proba`` does not work).
Every function given to Dask is module-level.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask_ml.decomposition import IncrementalPCA

from galclust.catalog import defaults
from galclust.catalog.cutouts import cut_stamps
from galclust.catalog.embedding import StampEmbedding
from galclust.catalog.features import STAMP_FEATURES, stamp_features
from galclust.catalog.labels import normalise_labels
from galclust.catalog.pipeline import (
    CatalogEmbedding,
    FittedFlags,
    FlagOptions,
    SurveyCutouts,
    align_labels,
    assemble_table,
    catalog_features,
    catalog_flux,
    component_summary,
    fit_models,
    predict_columns,
    run_flagging,
    single_thread_blas,
)
from galclust.catalog.scaling import asinh_scale, band_noise, bin_stamps, border_noise
from galclust.catalog.schema import (
    DATASET_NAME,
    TABLE_NAME,
    embedding_dataset,
)
from galclust.errors import InputError
from galclust.products import COMPONENTS
from galclust.progress import Progress

__all__ = ["CatalogEmbedding", "SurveyCutouts", "component_summary", "embed_catalog",
           "embed_cutouts", "flag_catalog", "flag_spurious", "predict_blocks", "run_catalog",
           "survey_cutouts"]

#: Stamps below this many bytes are kept in (worker) memory between passes.
PERSIST_BYTES = 2 * 2**30


def _tile_stamps(sci: np.ndarray, err: np.ndarray, centres: np.ndarray, size: int,
                 origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Stamps and per-source aux values of the sources of one tile (a Dask task)."""
    stamps, coverage, level = cut_stamps(sci, err, centres, size=size, origin=origin)
    h = size // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    ap = (yy**2 + xx**2) <= 9
    flux = stamps[:, :, ap].sum(axis=(1, 2)) if len(stamps) else np.zeros(0)
    aux = np.column_stack([coverage, flux, level]).astype(np.float32)
    return stamps, aux.reshape(len(stamps), 2 + sci.shape[0])


def _group_by_tile(y: np.ndarray, x: np.ndarray, tile: int, max_per_task: int) -> list[np.ndarray]:
    ty = np.floor(y / tile).astype(np.int64)
    tx = np.floor(x / tile).astype(np.int64)
    order = np.lexsort((x, y, tx, ty))
    key = ty[order] * (1 << 32) + tx[order]
    cuts = np.flatnonzero(np.diff(key)) + 1
    groups = []
    for g in np.split(order, cuts):
        groups.extend(np.array_split(g, int(np.ceil(len(g) / max_per_task))))
    return [g for g in groups if len(g)]


def survey_cutouts(cube: xr.Dataset, catalog: pd.DataFrame, *, size: int = defaults.CUTOUT_SIZE,
                   tile: int = 256, max_per_task: int = 2000) -> SurveyCutouts:
    """Lazy (source, band, y, x) stamps around every catalog source, one task per tile.

    Parameters
    ----------
    cube : xarray.Dataset
        ``sci`` and ``err`` (band, y, x), dask-backed (see the data model).
    catalog : DataFrame
        With ``id``, ``x``, ``y`` (0-based pixel positions on the cube).
    size : int
        Odd stamp side in pixels.
    tile : int
        Side (pixels) of the spatial tiles sources are grouped by.
    max_per_task : int
        Tiles with more sources are split.

    Returns
    -------
    SurveyCutouts
        Stamps are padded with 0 (and counted as uncovered) where they run
        off the mosaic or its coverage.
    """
    for var in ("sci", "err"):
        if var not in cube:
            raise InputError(f"cube has no {var!r} variable (it has {list(cube.data_vars)}); "
                             "open it with galclust.open_cube.")
    missing = [c for c in ("id", "x", "y") if c not in catalog.columns]
    if missing:
        raise InputError(f"catalog has no column {missing} (it has "
                         f"{[str(c) for c in catalog.columns][:20]}); use "
                         "galclust.store.cube.open_catalog, which adds pixel x, y.")
    if size % 2 == 0 or size < 3:
        raise InputError(f"size={size!r} must be an odd number of pixels >= 3 (e.g. 51).")
    if tile < 1 or max_per_task < 1:
        raise InputError(f"tile={tile!r} and max_per_task={max_per_task!r} must be >= 1.")
    sci, err = cube["sci"].data, cube["err"].data
    if not isinstance(sci, da.Array):
        sci, err = da.from_array(sci), da.from_array(err)
    nb, ny, nx = sci.shape
    x = catalog["x"].to_numpy(np.float64)
    y = catalog["y"].to_numpy(np.float64)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise InputError(f"catalog: {int(bad.sum())} sources have no finite x, y (e.g. ids "
                         f"{catalog['id'].to_numpy()[bad][:5].tolist()}).")
    h = size // 2
    stamps, auxes, orders = [], [], []
    for g in _group_by_tile(y, x, tile, max_per_task):
        cy = np.floor(y[g] + 0.5).astype(int)
        cx = np.floor(x[g] + 0.5).astype(int)
        y0, y1 = int(np.clip(cy.min() - h, 0, ny)), int(np.clip(cy.max() + h + 1, 0, ny))
        x0, x1 = int(np.clip(cx.min() - h, 0, nx)), int(np.clip(cx.max() + h + 1, 0, nx))
        task = dask.delayed(_tile_stamps, nout=2, pure=True)(
            sci[:, y0:y1, x0:x1], err[:, y0:y1, x0:x1], np.column_stack([y[g], x[g]]),
            size, (y0, x0))
        stamps.append(da.from_delayed(task[0], shape=(len(g), nb, size, size),
                                      dtype=np.float32))
        auxes.append(da.from_delayed(task[1], shape=(len(g), 2 + nb), dtype=np.float32))
        orders.append(g)
    order = np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64)
    if not stamps:
        raise InputError("catalog is empty: no sources to cut out.")
    return SurveyCutouts(stamps=da.concatenate(stamps), aux=da.concatenate(auxes),
                         ids=catalog["id"].to_numpy(np.int64)[order], x=x[order], y=y[order],
                         order=order)


def _noise_block(block: np.ndarray) -> np.ndarray:
    return border_noise(block)


def _embed_block(block: np.ndarray, noise: np.ndarray, softening: float, bin: int
                 ) -> np.ndarray:
    """Scaled, binned, flattened stamps and the stamp features, side by side."""
    scaled = asinh_scale(block, noise, softening=softening)
    feats = stamp_features(scaled)
    vec = bin_stamps(scaled, bin).reshape(len(block), -1)
    return np.hstack([vec, np.column_stack([feats[k] for k in STAMP_FEATURES])]
                     ).astype(np.float32)


def embed_cutouts(stamps: da.Array, *, noise: Any = None, softening: float = 3.0, bin: int = 5,
                  n_components: int = 16, batch_size: int | None = None,
                  random_state: int | None = 0,
                  persist_bytes: int = PERSIST_BYTES) -> StampEmbedding:
    """Embed Dask stamps with dask-ml ``IncrementalPCA``, chunk by chunk.

    Parameters
    ----------
    stamps : dask.array.Array, shape (source, band, y, x)
    noise : array (band,), optional
        Per-band noise; default the median border MAD over all stamps.
    softening, bin : see :func:`galclust.catalog.scaling.stamp_vectors`
    n_components : int
        PCA components.
    batch_size : int, optional
        Rows per IncrementalPCA batch (default ``max(2000, 4 * n_features)``,
        at most the catalog).
    random_state : int, optional
    persist_bytes : int
        The scaled vectors are persisted between the fit and the transform
        when smaller than this; otherwise they are recomputed per pass.

    Returns
    -------
    StampEmbedding
        Components and stamp features as numpy arrays (small: n x k).
    """
    if stamps.ndim != 4:
        raise InputError(f"cutouts must be (source, band, y, x); got shape {stamps.shape}.")
    stamps = stamps.rechunk({1: -1, 2: -1, 3: -1})
    n, nb, sy, sx = stamps.shape
    if noise is None:
        per = stamps.map_blocks(_noise_block, drop_axis=[2, 3], chunks=(stamps.chunks[0], (nb,)),
                                dtype=np.float32)
        noise = band_noise(per.compute())
    noise = np.asarray(noise, dtype=np.float64)
    if bin < 1 or bin > min(sy, sx):
        raise InputError(f"bin={bin!r} must be an integer between 1 and the stamp size.")
    d = nb * (sy // bin) * (sx // bin)
    both = stamps.map_blocks(_embed_block, noise, softening, bin, drop_axis=[2, 3],
                             chunks=(stamps.chunks[0], (d + len(STAMP_FEATURES),)),
                             dtype=np.float32)
    if n * (d + len(STAMP_FEATURES)) * 4 <= persist_bytes:
        both = both.persist()
    k = int(min(n_components, n, d))
    batch = int(batch_size or min(n, max(2000, 4 * d)))
    batch = max(batch, k + 1)
    vec = both[:, :d].rechunk({0: batch, 1: -1})
    feats = both[:, d:]
    ipca = IncrementalPCA(n_components=k, batch_size=batch, svd_solver="full",
                          random_state=random_state)
    with warnings.catch_warnings():
        # dask-ml's incremental variance divides 0 / 0 on the first batch and then
        # discards that value; its np.errstate does not reach the lazy compute
        warnings.filterwarnings("ignore", "invalid value encountered in divide",
                                RuntimeWarning)
        ipca.fit(vec)
    comps, feat_vals = dask.compute(ipca.transform(vec), feats)
    features = {name: feat_vals[:, i] for i, name in enumerate(STAMP_FEATURES)}
    return StampEmbedding(components=np.asarray(comps, dtype=np.float64), features=features,
                          noise=noise,
                          explained_variance_ratio=np.asarray(ipca.explained_variance_ratio_))


def _predict_block(block: np.ndarray, fitted: FittedFlags, n_space: int) -> np.ndarray:
    cols = predict_columns(fitted, block[:, :n_space], block[:, n_space:])
    vocab = {r: i for i, r in enumerate(_reason_vocabulary(fitted))}
    code = np.asarray([vocab.get(r, -1) for r in cols["reason"]], dtype=np.float64)
    return np.column_stack([cols["component"], cols["p_spurious"],
                            cols["flag"].astype(np.float64), code])


def _reason_vocabulary(fitted: FittedFlags) -> list[str]:
    known = set(fitted.mixture.reasons_.tolist()) | set(fitted.labelled_reasons[1].tolist())
    return ["", *sorted(r for r in known if r)]


def predict_blocks(fitted: FittedFlags, space: np.ndarray, clf_space: np.ndarray, *,
                   block: int = 5000) -> dict[str, np.ndarray]:
    """Apply the fitted models block by block with ``map_blocks`` (explicit chunks).

    Returns
    -------
    dict
        ``component``, ``p_spurious``, ``flag``, ``reason`` arrays.
    """
    both = np.hstack([space, clf_space])
    arr = da.from_array(both, chunks=(block, both.shape[1]))
    out = arr.map_blocks(_predict_block, fitted, space.shape[1], dtype=np.float64,
                         chunks=(arr.chunks[0], (4,))).compute()
    vocab = np.asarray(_reason_vocabulary(fitted), dtype=object)
    code = out[:, 3].astype(int)
    return {"component": out[:, 0].astype(np.int32), "p_spurious": out[:, 1],
            "flag": out[:, 2] > 0.5, "reason": np.where(code >= 0, vocab[np.clip(code, 0, None)],
                                                        "")}


def embed_catalog(cube: xr.Dataset, catalog: pd.DataFrame, *, size: int = defaults.CUTOUT_SIZE,
                  tile: int = 256, noise: Any = "err", softening: float = 3.0, bin: int = 5,
                  n_components: int = 16, batch_size: int | None = None,
                  random_state: int | None = 0, client: Any = None) -> CatalogEmbedding:
    """Cut, scale and embed every catalog source; measure its features.

    Parameters
    ----------
    cube, catalog : see :func:`run_catalog`
    size, tile : int
        Stamp side; spatial tile of the cutout tasks.
    noise : "err", "mad" or array (band,)
        Per-band noise for the asinh scaling: median of the error map around
        the sources, median MAD of the stamp borders, or given.
    softening, bin, n_components, batch_size, random_state :
        See :func:`embed_cutouts`.
    client : distributed.Client, optional

    Returns
    -------
    CatalogEmbedding
    """
    if "id" not in catalog.columns:
        raise InputError(f"catalog has no 'id' column (it has {list(catalog.columns)[:20]}).")
    if not (isinstance(noise, str) and noise in ("err", "mad")):
        noise = np.asarray(noise, dtype=np.float64)
    ctx = dask.config.set(scheduler=client) if client is not None else contextlib.nullcontext()
    with ctx, single_thread_blas():
        cut = survey_cutouts(cube, catalog, size=size, tile=tile)
        if cut.stamps.nbytes <= PERSIST_BYTES:
            cut.stamps, cut.aux = dask.persist(cut.stamps, cut.aux)
        aux = cut.aux.compute()
        band_sigma = (band_noise(aux[:, 2:]) if isinstance(noise, str) and noise == "err"
                      else None if isinstance(noise, str) else noise)
        emb = embed_cutouts(cut.stamps, noise=band_sigma, softening=softening, bin=bin,
                            n_components=n_components, batch_size=batch_size,
                            random_state=random_state)
    back = np.argsort(cut.order, kind="stable")  # stamp order -> catalog order
    emb.components = emb.components[back]
    emb.features = {k: v[back] for k, v in emb.features.items()}
    aux = aux[back]
    emb.features["zero_fraction"] = (1.0 - aux[:, 0]).astype(np.float32)
    ids = catalog["id"].to_numpy(np.int64)
    x, y = catalog["x"].to_numpy(np.float64), catalog["y"].to_numpy(np.float64)
    flux = catalog_flux(catalog, [str(b) for b in cube["band"].values])
    flux = flux if flux is not None else aux[:, 1].astype(np.float64)
    pos = pd.DataFrame({"id": ids, "x": x, "y": y, "flux": flux})
    nan = np.full(len(ids), np.nan)
    positions = {"ra": catalog["ra"].to_numpy(np.float64) if "ra" in catalog else nan,
                 "dec": catalog["dec"].to_numpy(np.float64) if "dec" in catalog else nan,
                 "x": x, "y": y}
    return CatalogEmbedding(ids=ids, embedding=emb,
                            features={**emb.features, **catalog_features(pos, ids)},
                            coverage=aux[:, 0].astype(np.float32), positions=positions)


def flag_catalog(embedded: CatalogEmbedding, labels: pd.DataFrame | None, *,
                 random_state: int | None = 0, client: Any = None,
                 **options: Any) -> tuple[pd.DataFrame, FittedFlags]:
    """Fit the spurious model on an embedded catalog and flag every source.

    Parameters
    ----------
    embedded : CatalogEmbedding
    labels : DataFrame or None
    random_state : int, optional
    client : distributed.Client, optional
    **options
        :class:`galclust.catalog.pipeline.FlagOptions` settings.

    Returns
    -------
    table : DataFrame
        The per-source table (catalog order); ``flag`` is null where
        ``p_spurious`` is NaN, and ``table.attrs["summary"]`` holds
        :func:`galclust.catalog.pipeline.label_summary`.
    fitted : FittedFlags

    Warns
    -----
    GalclustWarning
        Too few labels to calibrate the model (see :func:`galclust.flag_spurious`).
    LabelConflictWarning
        Sources labelled reliable that the model flags, or labelled spurious
        that it does not, naming their ids.
    """
    opts = FlagOptions.from_kwargs(random_state=random_state, **options)
    y_lab, reasons = align_labels(labels, embedded.ids)
    ctx = dask.config.set(scheduler=client) if client is not None else contextlib.nullcontext()
    with ctx, single_thread_blas():
        fitted = fit_models(embedded.embedding.components, embedded.features, y_lab, reasons,
                            opts)
        cols = predict_blocks(fitted, fitted.space, fitted.clf_space)
    table = assemble_table(embedded.ids, cols, fitted, embedded.embedding.components,
                           embedded.coverage, embedded.features, y_lab,
                           positions=embedded.positions, stacklevel=4)
    return table, fitted


def run_catalog(cube: xr.Dataset, catalog: pd.DataFrame, labels: pd.DataFrame | None,
                run: Any = None, *, size: int = defaults.CUTOUT_SIZE, tile: int = 256, client: Any = None,
                random_state: int | None = 0, **options: Any) -> pd.DataFrame:
    """Cutouts, embedding, features and spurious flags of a whole survey.

    Parameters
    ----------
    cube : xarray.Dataset
        From :func:`galclust.open_cube`.
    catalog : DataFrame
        From :func:`galclust.store.cube.open_catalog` (id, ra, dec, x, y, ...).
    labels : DataFrame or None
        Inspection labels (id, reliable, reason).
    run : RunWriter, optional
        If given, the table is written with ``run.write_table``
        (:data:`galclust.catalog.schema.TABLE_NAME`), plus a per-component
        summary (``catalog_components``) and the embedding as a dataset
        (:data:`galclust.catalog.schema.DATASET_NAME`, ``run.write_dataset``).
    size, tile : int
        Stamp side and spatial tile of the cutout tasks.
    client : distributed.Client, optional
        Runs every Dask computation on that cluster.
    random_state : int, optional
    **options
        ``noise`` (see :func:`embed_catalog`; default ``"err"``) and the
        :class:`galclust.catalog.pipeline.FlagOptions` settings (``method``,
        ``embedding``, ``n_pca``, ``bin``, ``threshold`` ...).

    Returns
    -------
    DataFrame
        The per-source spurious table, in catalog order, with ra, dec, x, y
        (see :func:`flag_catalog`); ``table.attrs["summary"]``
        (:func:`galclust.catalog.pipeline.label_summary`) counts the labelled
        sources the model contradicts, and is stored with the parquet table.

    Warns
    -----
    GalclustWarning, LabelConflictWarning
        See :func:`flag_catalog`.
    """
    noise = options.pop("noise", "err")
    opts = FlagOptions.from_kwargs(random_state=random_state, **options)  # validate first
    if labels is not None:
        normalise_labels(labels, what="labels")  # a bad table fails before any compute
    with Progress(3, what="steps", desc=f"catalog of {len(catalog)} sources") as progress:
        embedded = embed_catalog(cube, catalog, size=size, tile=tile, noise=noise,
                                 softening=opts.softening, bin=opts.bin,
                                 n_components=opts.n_pca, batch_size=opts.batch_size,
                                 random_state=random_state, client=client)
        progress.update(2)  # cutouts and embedding: the bulk of the work
        table, fitted = flag_catalog(embedded, labels, random_state=random_state,
                                     client=client, **options)
        progress.update(1)
    if run is not None:
        run.write_table(TABLE_NAME, table)
        run.write_table(COMPONENTS, component_summary(fitted))
        run.write_dataset(DATASET_NAME, embedding_dataset(table))
    return table


# --------------------------------------------------------------------------- public API
def _embed_dask(cutouts: da.Array, opts: FlagOptions) -> StampEmbedding:
    return embed_cutouts(cutouts, noise=opts.noise, softening=opts.softening, bin=opts.bin,
                         n_components=opts.n_pca, batch_size=opts.batch_size,
                         random_state=opts.random_state)


def flag_spurious(cutouts: Any, ids: Any, labels: pd.DataFrame | None, *,
                  random_state: int | None = 0, **options: Any) -> pd.DataFrame:
    """Flag spurious sources from their multi-band cutouts and a labelled subset.

    The cutouts are asinh-scaled with a robust per-band noise (median MAD of
    the stamp borders), binned (5 x 5), flattened and embedded with PCA
    (dask-ml's IncrementalPCA for Dask arrays), optionally mapped to 2-D with
    t-SNE or UMAP. With the default ``method="combined"`` a
    :class:`SpuriousModel` mixture is fitted over the first ``mixture_pcs``
    linear components plus the interpretable features (zero-weight fraction,
    ridge m=2 / m=6 structure, brightest off-centre structure, central S/N;
    and, given ``positions``, the nearest brighter source and the spike
    score); ``method="mixture"`` uses the embedding alone (the reference's
    approach), ``method="classifier"`` a classifier trained on the labelled
    subset. On synthetic surveys the combined mixture recovers >= 95% of all
    spurious sources flagging <= 20% of the catalog, with all or 25% of the
    sources labelled; the embedding-only mixture does not (see
    :mod:`galclust.evaluation.catalog`).

    Parameters
    ----------
    cutouts : array, shape (source, band, y, x)
        numpy or Dask array.
    ids : array-like, shape (source,)
        Catalog ids, unique.
    labels : DataFrame or None
        ``id``, ``reliable`` (1/0; common spellings accepted), ``reason`` for a
        labelled subset (e.g. from :func:`galclust.store.labels.read_labels`).
    random_state : int, optional
        Seeds PCA, t-SNE, the mixture and the classifier.
    **options
        Keyword-only settings of :class:`galclust.catalog.pipeline.FlagOptions`
        (``method``, ``embedding``, ``n_pca``, ``threshold``, ``min_labels``,
        ``positions``: id, x, y, flux for the neighbour and spike features, ...).

    Returns
    -------
    DataFrame
        One row per source in ``ids`` order with the columns of
        :func:`galclust.catalog.schema.spurious_schema`: ``id, component,
        p_spurious, flag, reason, map_x, map_y``, the linear coordinates
        ``pc_*``, ``coverage`` and the features. ``reason`` is "" for sources
        that are not flagged. ``flag`` is a nullable boolean: null (``<NA>``)
        wherever ``p_spurious`` is NaN (unknown). ``table.attrs["summary"]``
        counts the labelled sources and those the model contradicts (see
        :func:`galclust.catalog.pipeline.label_summary`).

    Raises
    ------
    InputError
        Bad shapes, repeated ids, a labels table without a required column
        (naming the columns it has), unknown options (with a suggestion).

    Warns
    -----
    GalclustWarning
        Labelled ids absent from ``ids`` (how many, the first few). And with
        fewer than ``min_labels`` labelled sources of either class (or no
        labels): the model cannot be calibrated, so the table still holds the
        embedding, mixture components and features, with ``p_spurious`` NaN
        and ``flag`` null — a nightly run keeps its features rather than
        failing.
    LabelConflictWarning
        Sources labelled reliable that the model flags, or labelled spurious
        that it does not (naming their ids).
    """
    opts = FlagOptions.from_kwargs(random_state=random_state, **options)
    return run_flagging(cutouts, ids, labels, opts,
                        embed=_embed_dask if hasattr(cutouts, "dask") else None)
