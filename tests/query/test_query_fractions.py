"""Fraction maps of an unmixing run, through the query API, its JSON and its pictures."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from galclust.errors import InputError
from galclust.query import Query
from galclust.query_cli import add_query_parser, cmd_query


@pytest.fixture(scope="module")
def unmixed(published, tmp_path_factory):
    """A second results store: the same cube's pixel stage with --unmix on."""
    import galclust
    from galclust.pixels.survey import run_pixels
    from galclust.store.cube import open_catalog
    from galclust.store.results import RunWriter

    results = str(tmp_path_factory.mktemp("unmixed") / "results")
    run = RunWriter.begin(results, params={"store": published.store})
    run_pixels(galclust.open_cube(published.store), open_catalog(published.store), run,
               unmix=True)
    run.publish()
    return Query(results)


def test_galaxy_record_holds_fraction_maps_and_seds(unmixed, published):
    gal = unmixed.results.table("pixels/galaxies")
    gid = int(gal.loc[gal["n_clusters"] >= 2, "id"].iloc[0])
    rec = unmixed.galaxy(gid)
    k = int(gal.set_index("id").loc[gid, "n_clusters"])
    assert rec.fractions.dims == ("component", "y", "x") and rec.fractions.sizes["component"] == k
    # the fraction maps sit on the label stamp's grid and sum to 1 where defined
    assert (rec.fractions["y"].values == rec.labels["y"].values).all()
    inside = np.isfinite(rec.fractions.values[0])
    np.testing.assert_allclose(rec.fractions.values.sum(axis=0)[inside], 1.0, atol=5e-3)
    assert not inside[rec.labels.values < 0].all()  # faint footprint pixels have fractions
    assert set(rec.components["component"]) == set(range(k))
    np.testing.assert_allclose(rec.components.groupby("component")["sed"].sum(), 1.0)
    js = json.loads(json.dumps(rec.to_dict()))
    assert len(js["fractions"]["values"]) == k and len(js["components"]) == k * 8
    # a run without unmixing has none, and says how to get them
    plain = Query(published.results).galaxy(gid)
    assert plain.fractions is None and plain.components is None
    with pytest.raises(InputError, match="--unmix on"):
        plain.fraction_figure()


def test_png_of_an_unmixing_run_draws_the_fraction_maps_too(unmixed, tmp_path, capsys):
    gal = unmixed.results.table("pixels/galaxies")
    gid = int(gal.loc[gal["n_clusters"] >= 2, "id"].iloc[0])
    parser = argparse.ArgumentParser(prog="galclust")
    add_query_parser(parser.add_subparsers(dest="command", required=True))
    path = tmp_path / "g.png"
    args = parser.parse_args(["query", "--results", unmixed.results.url, "--id", str(gid),
                              "--format", "png", "--output", str(path)])
    assert cmd_query(args) == 0
    out = capsys.readouterr().out
    more = tmp_path / "g-fractions.png"
    assert "fraction maps to" in out and more.read_bytes()[:4] == b"\x89PNG"
    fig = unmixed.galaxy(gid).fraction_figure()
    k = int(gal.set_index("id").loc[gid, "n_clusters"])
    assert len(fig.axes) == k + 2  # k maps, the SED panel, the colour bar
    assert f"galaxy {gid}" in fig._suptitle.get_text()
    assert fig.axes[k].get_xlabel() == "wavelength (µm)"
    args = parser.parse_args(["query", "--results", unmixed.results.url, "--id", str(gid)])
    assert cmd_query(args) == 0
    assert "unmixed components" in capsys.readouterr().out
