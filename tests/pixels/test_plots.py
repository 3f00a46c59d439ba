"""Pictures of pixel clusters (galclust.plots.pixels)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from galclust.errors import InputError
from galclust.pixels import cluster_galaxy, composites_to_frame
from galclust.plots.pixels import (
    cluster_colours,
    colour_image,
    plot_composites,
    plot_labels,
    plot_result,
)


@pytest.fixture
def result(make_halves, wavelength):
    sci, err, mask, _ = make_halves()
    return sci, cluster_galaxy(sci, err, mask, wavelength), wavelength


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def test_label_map_beside_colour_image(result):
    sci, res, wl = result
    fig = plot_labels(sci, res.labels, wavelength=wl, title="halves")
    img_ax, lab_ax = fig.axes[:2]
    shown = lab_ax.images[0]
    np.testing.assert_array_equal(shown.get_array(), res.labels)
    # discrete colours: cluster c is drawn in cluster_colours()[c], unclustered in grey
    colours = shown.cmap(shown.norm(np.array([-1, 0, 1])))
    np.testing.assert_allclose(colours[1:], cluster_colours(2))
    assert not np.allclose(colours[0], colours[1])
    assert img_ax.images[0].get_array().shape == (*sci.shape[1:], 3)
    assert _png(fig).startswith(b"\x89PNG")


def test_colour_image_puts_the_red_band_in_red(result):
    sci, res, wl = result
    rgb = colour_image(sci, wavelength=wl)
    red_half = res.composites["shape"].values.argmax(axis=0)[-1]  # cluster bright in F444W
    pix = res.labels == red_half
    assert rgb[pix, 0].mean() > rgb[pix, 2].mean()
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_composite_seds_with_error_bars(result):
    _, res, wl = result
    for source in (res.composites, composites_to_frame(res.composites)):
        fig = plot_composites(source)
        ax = fig.axes[0]
        assert len(ax.containers) == res.n_clusters  # one errorbar container per cluster
        line = ax.containers[0].lines[0]
        np.testing.assert_allclose(line.get_xdata(), np.sort(wl))
        per_pixel = res.composites["flux"].values[0] / res.composites["n_pixels"].values[0]
        np.testing.assert_allclose(line.get_ydata(), per_pixel)
        assert ax.get_xlabel() == "wavelength [µm]"


def test_result_figure_and_bad_input(result):
    sci, res, wl = result
    fig = plot_result(sci, res, wavelength=wl)
    assert len(fig.axes) == 3 and _png(fig).startswith(b"\x89PNG")
    with pytest.raises(InputError, match="must share"):
        plot_labels(sci, res.labels[:3])
    with pytest.raises(InputError, match="composites must be"):
        plot_composites([1, 2])
