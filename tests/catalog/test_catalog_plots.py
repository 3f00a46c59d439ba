"""Embedding pictures: component colours, reason markers, non-overlapping thumbnails."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from galclust.errors import InputError
from galclust.plots.catalog import (
    grid_sample,
    plot_embedding,
    plot_imaged_embedding,
    save_figure,
    thumbnail_rgb,
)


@pytest.fixture(scope="module")
def flagged(embedded, labels_25):
    from galclust.catalog.survey import flag_catalog

    return flag_catalog(embedded, labels_25)[0]


def test_plot_embedding_marks_labelled_reasons(flagged, labels_25, tmp_path):
    fig = plot_embedding(flagged, labels_25)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    spur = labels_25[labels_25.reliable == 0]
    for reason, n in spur.reason.value_counts().items():
        assert f"labelled: {reason} ({n})" in texts
    assert f"flagged ({int(flagged.flag.sum())})" in texts
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatter[0].get_offsets()) == len(flagged)
    out = save_figure(fig, str(tmp_path / "emb.png"))
    assert (tmp_path / "emb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.endswith(".png")


def test_grid_sample_one_per_cell():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=5000), rng.normal(size=5000)
    idx, cells = grid_sample(x, y, 10)
    assert len(idx) == len({tuple(c) for c in cells}) <= 100
    assert len(idx) > 50  # most cells of a Gaussian cloud are occupied
    # every chosen source lies in its cell
    cx = np.clip(((x[idx] - x.min()) / ((x.max() - x.min()) / 10)).astype(int), 0, 9)
    np.testing.assert_array_equal(cx, cells[:, 1])


def test_grid_sample_clip_keeps_outliers_from_squeezing_the_map():
    """Three bright-star outliers far out on one axis: spanning them leaves the
    cloud in a few cells; clipping 1% per side spreads it over the lattice and
    puts the outliers in the edge column."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=3000), rng.normal(size=3000)
    x[:3] = 500.0
    idx_all, cells_all = grid_sample(x, y, 10)
    idx, cells = grid_sample(x, y, 10, clip=1.0)
    assert len(np.unique(cells_all[:, 1])) == 2  # the cloud's column and the outliers'
    assert len(idx) > 60 and len(np.unique(cells[:, 1])) == 10
    edge = idx[cells[:, 1] == 9]
    assert len(edge) >= 1 and set(cells[np.isin(idx, [0, 1, 2]), 1]) <= {9}
    assert np.all(x[edge] > np.percentile(x, 90))  # the edge column holds the far right
    with pytest.raises(InputError, match="clip"):
        grid_sample(x, y, 10, clip=50)


def test_imaged_embedding_thumbnails_do_not_overlap(flagged, cube, catalog, tmp_path):
    from galclust.catalog.survey import survey_cutouts

    cut = survey_cutouts(cube, catalog, size=31)
    fig = plot_imaged_embedding(flagged, cut.stamps, cut.ids, grid=12)
    images = [a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)]
    assert 20 <= len(images) <= 144
    boxes = {tuple(np.round(im.get_extent(), 6)) for im in images}
    assert len(boxes) == len(images)  # one thumbnail per grid cell: no overlaps
    for im in images:
        x0, x1, y0, y1 = im.get_extent()
        assert x1 - x0 == 1 and y1 - y0 == 1 and float(x0).is_integer()
        arr = im.get_array()
        assert arr.shape == (31, 31, 3) and 0 <= arr.min() and arr.max() <= 1
    save_figure(fig, str(tmp_path / "imaged.pdf"))
    assert (tmp_path / "imaged.pdf").read_bytes()[:4] == b"%PDF"


def test_thumbnail_colours_and_errors():
    st = np.zeros((2, 3, 9, 9), dtype=np.float32)
    st += np.random.default_rng(1).normal(0, 1, st.shape).astype(np.float32)
    st[0, 2, 4, 4] = 100.0  # bright only in the last (reddest) band
    rgb = thumbnail_rgb(st)
    assert rgb.shape == (2, 9, 9, 3)
    assert rgb[0, 4, 4, 0] == 1.0 and rgb[0, 4, 4, 2] < 0.5  # red, not blue
    with pytest.raises(InputError, match="out of range"):
        thumbnail_rgb(st, bands=(0, 1, 5))
    with pytest.raises(InputError, match="no column"):
        plot_embedding(pd.DataFrame({"id": [1]}))
    with pytest.raises(InputError, match="rows but ids"):
        plot_imaged_embedding(pd.DataFrame({"id": [1], "map_x": [0.0], "map_y": [0.0]}),
                              da.zeros((2, 1, 5, 5)), [1])
    with pytest.raises(InputError, match=".png, .pdf"):
        save_figure(Figure(), "out.gif")


RUN = "20261201T031500Z-a1b2c3"


def test_embedding_titles_name_options_and_run(flagged, labels_25, cube, catalog):
    opts = {"embedding": "pca", "model": "combined"}
    ax = plot_embedding(flagged, labels_25, run_id=RUN, options=opts).axes[0]
    title = ax.get_title().replace("\n", " — ")
    assert title.startswith(f"{len(flagged)} sources, ")
    assert title.endswith(f" — pca, combined — run {RUN}")
    assert plot_embedding(flagged, labels_25, title="mine", run_id=RUN).axes[0].get_title() == \
        "mine"
    assert "run" not in plot_embedding(flagged, labels_25).axes[0].get_title()


def test_embedding_pictures_named_by_options_and_run(flagged, labels_25, cube, catalog,
                                                     tmp_path):
    from galclust.plots.survey import write_embedding_pictures

    small = flagged.nsmallest(60, "id")
    kw = {"size": 15, "grid": 4}
    paths = write_embedding_pictures(small, labels_25, cube, catalog, str(tmp_path),
                                     run_id=RUN, options={"embedding": "pca", "model": "gmm"},
                                     **kw)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        f"embedding_pca-gmm_run-{RUN}.png", f"embedding-imaged_pca-gmm_run-{RUN}.png"]
    other = write_embedding_pictures(small, labels_25, cube, catalog, str(tmp_path),
                                     run_id="20261202T000000Z-000000",
                                     options={"embedding": "umap", "model": "gmm"}, **kw)
    assert not set(paths) & set(other)
    # a caller that names neither keeps the old names
    plain = write_embedding_pictures(small, labels_25, cube, catalog, str(tmp_path), **kw)
    assert [p.rsplit("/", 1)[-1] for p in plain] == ["embedding.png", "embedding-imaged.png"]
    assert len(list(tmp_path.glob("*.png"))) == 6  # nothing overwritten
    for p in paths:
        assert (tmp_path / p.rsplit("/", 1)[-1]).read_bytes()[:4] == b"\x89PNG"


def test_imaged_embedding_title_names_the_run(flagged, cube, catalog):
    from galclust.catalog.survey import survey_cutouts

    small = flagged.nsmallest(40, "id")
    cut = survey_cutouts(cube, catalog[catalog["id"].isin(small["id"])], size=15)
    fig = plot_imaged_embedding(small, cut.stamps, cut.ids, grid=4, run_id=RUN,
                                options={"embedding": "pca", "model": "gmm"})
    assert fig.axes[0].get_title().replace("\n", " — ").endswith(f"pca, gmm — run {RUN}")
