"""Pictures of pixel clusters (galclust.plots.pixels, .seds, .naming, .survey)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.path import Path

from galclust.errors import InputError
from galclust.pixels import cluster_galaxy, composites_to_frame
from galclust.plots.naming import picture_stem, picture_title
from galclust.plots.pixels import (
    cluster_colours,
    colour_image,
    plot_composites,
    plot_labels,
    plot_result,
    rgb_bands,
    scale_bar_length,
)
from galclust.plots.seds import pixel_spread
from galclust.synth import NIRCAM_BANDS

BANDS = list(NIRCAM_BANDS)
NOISE = "noise (unclustered)"


@pytest.fixture
def result(make_halves, wavelength):
    sci, err, mask, _ = make_halves()
    return sci, cluster_galaxy(sci, err, mask, wavelength, bands=BANDS), wavelength


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def _contours(ax) -> list[ContourSet]:
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def _inside(cs: ContourSet, xy: np.ndarray) -> np.ndarray:
    polys = [Path(p) for path in cs.get_paths() for p in path.to_polygons()]
    return np.any([p.contains_points(xy) for p in polys], axis=0)


def _noise_patches(ax) -> list:
    return [p for p in ax.patches if p.get_label() == NOISE]


def test_cluster_contours_over_the_colour_image(result):
    sci, res, wl = result
    fig = plot_labels(sci, res.labels, wavelength=wl, bands=BANDS, title="halves")
    (ax,) = fig.axes
    assert ax.images[0].get_array().shape == (*sci.shape[1:], 3)  # the colour image itself
    sets = _contours(ax)
    assert len(sets) == res.n_clusters == 2  # one level set per cluster
    yy, xx = np.nonzero(np.ones(res.labels.shape, bool))
    centres = np.column_stack([xx, yy])
    for c, cs in enumerate(sets):
        assert list(cs.levels) == [0.5]
        np.testing.assert_allclose(cs.get_edgecolor()[0], cluster_colours(2)[c])
        # the contour encloses exactly the cluster's pixels
        np.testing.assert_array_equal(_inside(cs, centres), res.labels[yy, xx] == c)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"cluster {c} ({int((res.labels == c).sum())} px)" for c in range(2)]
    assert _png(fig).startswith(b"\x89PNG")


def test_band_key_names_the_rgb_bands(result):
    sci, res, wl = result
    ax = plot_labels(sci, res.labels, wavelength=wl, bands=BANDS).axes[0]
    key = [t for t in ax.texts if t.get_gid() == "band key"]
    r, g, b = rgb_bands(len(wl), wl)
    assert [t.get_text() for t in key] == [BANDS[r], BANDS[g], BANDS[b]] == \
        ["F444W", BANDS[g], "F090W"]
    assert key[0].get_position()[1] > key[2].get_position()[1]  # R on top
    # without names, the wavelengths name the bands
    ax = plot_labels(sci, res.labels, wavelength=wl).axes[0]
    assert f"{wl.max():.4g}um" in [t.get_text() for t in ax.texts]


@pytest.mark.parametrize(("scale", "text", "pixels"), [(0.04, "0.2″", 5.0), (0.1, "0.5″", 5.0),
                                                       (0.03, "0.1″", 0.1 / 0.03)])
def test_scale_bar_in_arcsec(result, scale, text, pixels):
    sci, res, wl = result  # 20 px wide
    ax = plot_labels(sci, res.labels, wavelength=wl, pixel_scale=scale).axes[0]
    (label,) = [t for t in ax.texts if t.get_gid() == "scale bar"]
    (bar,) = [ln for ln in ax.lines if ln.get_gid() == "scale bar"]
    assert label.get_text() == text
    assert np.ptp(bar.get_xdata()) == pytest.approx(pixels)
    assert not [t for t in plot_labels(sci, res.labels).axes[0].texts
                if t.get_gid() == "scale bar"]


def test_noise_pixels_are_hatched_apart_from_sky(result):
    sci, res, wl = result
    labels = np.maximum(res.labels, 0)  # every pixel in a cluster, then
    noise = np.zeros(labels.shape, bool)
    noise[2:5, 3:9] = True  # selected pixels that no cluster took
    labels[noise] = -1
    footprint = np.zeros(labels.shape, bool)
    footprint[1:19, 1:19] = True  # outside it: sky
    labels[~footprint] = -1
    ax = plot_labels(sci, labels, wavelength=wl, footprint=footprint).axes[0]
    (patch,) = _noise_patches(ax)
    assert patch.get_hatch() and patch.get_facecolor()[3] == 0  # hatched, image still seen
    polys = patch.get_path().to_polygons()
    centres = np.array([p[:4].mean(axis=0) for p in polys])
    assert sorted(map(tuple, centres)) == sorted((x, y) for y, x in zip(*np.nonzero(noise),
                                                                          strict=True))
    assert NOISE in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title() == "2 clusters, 18 noise px"
    # without a footprint -1 is all sky, as before: no noise artist, no legend entry
    ax = plot_labels(sci, labels, wavelength=wl).axes[0]
    assert not _noise_patches(ax) and NOISE not in [t.get_text() for t in
                                                    ax.get_legend().get_texts()]
    with pytest.raises(InputError, match="footprint"):
        plot_labels(sci, labels, footprint=footprint[:5])


def test_colour_image_puts_the_red_band_in_red(result):
    sci, res, wl = result
    rgb = colour_image(sci, wavelength=wl)
    red_half = res.composites["shape"].values.argmax(axis=0)[-1]  # cluster bright in F444W
    pix = res.labels == red_half
    assert rgb[pix, 0].mean() > rgb[pix, 2].mean()
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_sed_shapes_are_one_at_the_reference_band(result):
    _, res, wl = result
    flux = res.composites["flux"].values
    for source in (res.composites, composites_to_frame(res.composites)):
        ax = plot_composites(source).axes[0]
        assert ax.get_ylabel() == r"$f_\nu$ / $f_\nu$(F444W)"  # the reddest band
        assert ax.get_xlabel() == "wavelength [µm]" and ax.get_xscale() == "log"
        assert len(ax.containers) == res.n_clusters  # one errorbar container per cluster
        for c, cont in enumerate(ax.containers):
            line = cont.lines[0]
            np.testing.assert_allclose(line.get_xdata(), np.sort(wl))
            np.testing.assert_allclose(line.get_ydata(), flux[c] / flux[c, -1])
            assert line.get_ydata()[-1] == 1.0
    ax = plot_composites(res.composites, reference="F200W").axes[0]
    i = BANDS.index("F200W")
    for cont in ax.containers:
        assert cont.lines[0].get_ydata()[i] == pytest.approx(1.0)
    assert "F200W" in ax.get_ylabel()
    ax = plot_composites(res.composites, normalize="l2").axes[0]
    assert "L2" in ax.get_ylabel()
    for cont in ax.containers:
        assert np.sum(cont.lines[0].get_ydata() ** 2) == pytest.approx(1.0)
    with pytest.raises(InputError, match="reference='F999W' is not a band"):
        plot_composites(res.composites, reference="F999W")
    with pytest.raises(InputError, match="normalize"):
        plot_composites(res.composites, normalize="peak")


def test_absolute_fluxes_on_request(result):
    _, res, _ = result
    ax = plot_composites(res.composites, normalize=None, unit="nJy").axes[0]
    per_pixel = res.composites["flux"].values[0] / res.composites["n_pixels"].values[0]
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), per_pixel)
    assert ax.get_ylabel() == "flux per pixel [nJy]"
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # no shapes: no band


def _band(ax, c) -> np.ndarray:
    (poly,) = [p for p in ax.collections if p.get_gid() == f"spread {c}"]
    return poly.get_paths()[0].vertices[:, 1]


def test_spread_band_lies_between_p16_and_p84(result):
    sci, res, wl = result
    ds = res.composites
    p16, p84, flux = ds["p16"].values, ds["p84"].values, ds["flux"].values
    assert np.all(p16 <= p84) and np.all(p84 - p16 > 0)
    unit = flux / np.linalg.norm(flux, axis=1, keepdims=True)
    assert np.all((p16 < unit) & (unit < p84))  # the composite's shape lies within the spread
    ax = plot_composites(ds, normalize="l2").axes[0]
    for c in range(res.n_clusters):
        y = _band(ax, c)
        assert y.min() == pytest.approx(p16[c].min()) and y.max() == pytest.approx(p84[c].max())
        assert np.all(np.isclose(y[:, None], np.r_[p16[c], p84[c]][None]).any(axis=1))
    ax = plot_composites(ds).axes[0]  # f / f(F444W): the spread scaled like the composite
    for c in range(res.n_clusters):
        y, curve = _band(ax, c), ax.containers[c].lines[0].get_ydata()
        lo, hi = p16[c] / unit[c, -1], p84[c] / unit[c, -1]
        assert y.min() == pytest.approx(lo.min()) and y.max() == pytest.approx(hi.max())
        assert np.all((lo < curve) & (curve < hi))  # the band surrounds the curve
    assert ax.get_legend().get_title().get_text().startswith("shaded: 16–84 % of pixel")
    # the spread recomputed from the pixels (for stored tables, which lack it) is the same
    table = composites_to_frame(ds).drop(columns=["p16", "p84"])
    spread = pixel_spread(sci, res.labels, table, wavelength=wl)
    np.testing.assert_allclose(spread["p16"].to_numpy().reshape(p16.shape), p16)
    ax = plot_composites(table, normalize="l2", spread=spread).axes[0]
    assert _band(ax, 1).max() == pytest.approx(p84[1].max())
    assert not [p for p in plot_composites(table).axes[0].collections
                if isinstance(p, PolyCollection)]
    with pytest.raises(InputError, match="spread lacks"):
        plot_composites(table, spread=spread.drop(columns="p84"))


def test_shape_percentiles_weigh_pixels_by_their_light():
    from galclust.pixels.composites import shape_percentiles

    blue, red = np.array([2.0, 1.0, 5.0]), np.array([1.0, 2.0, 5.0])
    flux = np.array([blue * 100, red, red, red])  # one bright blue pixel, three faint red
    p = shape_percentiles(flux, np.array([0, 0, 0, 0]), n_clusters=2,
                          used_bands=np.array([True, True, False]))
    total = flux[:, :2].sum(axis=0)
    scale = (100 + 3) * np.sqrt(5) / np.linalg.norm(total)  # sum of |f_i| over |F|
    # most of the light is blue, so the blue shape (on the F/|F| scale) bounds the 16-84 %
    # range on its side in each band, though three of the four pixels are red
    u_blue = blue[:2] / np.sqrt(5) * scale
    assert p[1, 0, 0] == pytest.approx(u_blue[0]) and p[0, 0, 1] == pytest.approx(u_blue[1])
    assert p[0, 0, 0] < u_blue[0] and p[1, 0, 1] > u_blue[1]
    assert np.isnan(p[:, 0, 2]).all() and np.isnan(p[:, 1]).all()  # unused band, empty cluster
    with pytest.raises(InputError, match="one label per pixel"):
        shape_percentiles(flux, np.zeros(3, int), n_clusters=1)


def test_result_figure_and_bad_input(result, make_halves):
    sci, res, wl = result
    fig = plot_result(sci, res, wavelength=wl, pixel_scale=0.04, title="galaxy 7")
    ax_img, ax_lab, ax_sed = fig.axes[:3]
    assert [t.get_text() for t in ax_img.texts if t.get_gid() == "band key"] == \
        ["F444W", "F277W", "F090W"]  # from the composites' band names
    assert len(_contours(ax_lab)) == 2 and not _contours(ax_img)
    assert len(ax_sed.containers) == 2 and _png(fig).startswith(b"\x89PNG")
    # result.selection is the footprint: selected pixels left at -1 are noise
    hole = res.labels.copy()
    hole[8:11, 8:11] = -1
    fig = plot_result(sci, SimpleNamespace(labels=hole, composites=res.composites,
                                           selection=res.selection), wavelength=wl)
    (patch,) = _noise_patches(fig.axes[1])
    assert len(patch.get_path().to_polygons()) == 9
    with pytest.raises(InputError, match="must share"):
        plot_labels(sci, res.labels[:3])
    with pytest.raises(InputError, match="composites must be"):
        plot_composites([1, 2])


def test_names_and_titles_carry_method_options_and_run():
    opts = {"method": "kmeans", "normalize": "l2", "metric": "euclidean", "n_clusters": 3}
    run = "20261201T031500Z-a1b2c3"
    assert picture_stem("galaxy-1042", options=opts, run_id=run) == \
        "galaxy-1042_kmeans-l2-euclidean-k3_run-20261201T031500Z-a1b2c3"
    assert picture_title("galaxy 1042", options=opts, run_id=run) == \
        "galaxy 1042 — kmeans, l2, euclidean, k=3 — run 20261201T031500Z-a1b2c3"
    assert picture_stem("embedding") == "embedding"  # nothing known: the old name
    assert picture_stem("e", options={"model": "a/b", "threshold": 0.05}, kind="x") == \
        "e_a-b-threshold0.05_x"


class _Run:
    """The part of a published run (galclust.store.results.Results) the pictures read."""

    def __init__(self, tables: dict[str, pd.DataFrame], run_id: str, params: dict):
        self.tables, self.run_id, self.params = tables, run_id, params

    def table(self, name, filters=None):
        df = self.tables[name]
        for col, _, values in filters or []:
            df = df[df[col].isin(values)]
        return df


def test_two_runs_with_different_methods_write_different_files(small_cube, tmp_path,
                                                               monkeypatch):
    import galclust.plots.catalog as catalog_plots
    from galclust.pixels.survey import pixel_tables
    from galclust.plots.survey import write_label_maps

    cube, cat, _ = small_cube
    saved = catalog_plots.save_figure
    figures: dict[str, Figure] = {}

    def keep(fig, path, **kw):
        figures[path.rsplit("/", 1)[-1]] = fig
        return saved(fig, path, **kw)

    monkeypatch.setattr(catalog_plots, "save_figure", keep)
    names = {}
    runs = (("kmeans", "20261201T031500Z-a1b2c3"), ("hdbscan", "20261202T031500Z-d4e5f6"))
    for method, run in runs:
        params = {"method": method, "normalize": "l2", "metric": "euclidean",
                  "n_clusters": "auto"}
        gal, comp, stamps, *_ = pixel_tables(cube, cat, **params).compute(scheduler="sync")
        stored = {"pixels": params} if method == "kmeans" else {"settings": {"pixels": params}}
        results = _Run({"pixels/galaxies": gal, "pixels/composites": comp,
                        "pixels/stamps": stamps}, run, {"store": "x", **stored})
        paths = write_label_maps(cube, results, str(tmp_path), n=2)
        names[method] = [p.rsplit("/", 1)[-1] for p in paths]
        gid = int(gal[gal["n_clusters"] > 0].nlargest(1, "n_pixels")["id"].iloc[0])
        stem = f"galaxy-{gid}_{method}-l2-euclidean-kauto_run-{run}"
        assert {f"{stem}_labels.png", f"{stem}_seds.png"} <= set(names[method])
        assert len(names[method]) == 4
        fig = figures[f"{stem}_labels.png"]
        k = int(gal.set_index("id").loc[gid, "n_clusters"])
        assert fig.get_suptitle().replace("\n", " — ") == \
            f"galaxy {gid} — {method}, l2, euclidean, k={k} (auto) — run {run}"
        ax = fig.axes[0]
        assert len(_contours(ax)) == k
        bar = scale_bar_length(ax.images[0].get_array().shape[1] * 0.04)  # cube pixel_scale
        assert [t.get_text() for t in ax.texts if t.get_gid() == "scale bar"] == [f"{bar:g}″"]
        # a density method's footprint is known: its noise is counted (kmeans has none)
        assert ("noise px" in ax.get_title()) == (method == "hdbscan")
        sed_ax = figures[f"{stem}_seds.png"].axes[0]
        assert [p.get_gid() for p in sed_ax.collections if isinstance(p, PolyCollection)] == \
            [f"spread {c}" for c in range(k)]
    assert not set(names["kmeans"]) & set(names["hdbscan"])
    assert len(list(tmp_path.glob("galaxy-*.png"))) == 8  # nothing overwritten
