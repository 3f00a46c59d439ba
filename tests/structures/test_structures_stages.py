"""The structures and emission stages on the one run path: per-galaxy products, tile
mode, reuse, skips with reasons, the commands, queries and pictures, on a synthetic
survey ingested for real."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import galclust
from flows.cli import main
from galclust.options import RunSettings
from galclust.pixels.survey import decode_labels
from galclust.stages import execute
from galclust.structures.emission import band_for_redshift
from galclust.structures_stage import EmissionOptions, StructuresOptions
from galclust.synth import make_survey

pytestmark = pytest.mark.slow

#: Density structures are off by default in runs (costly); these tests ask for them.
ON = RunSettings(structures=StructuresOptions(method="astrolink"))


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("structures")
    survey = make_survey(root / "survey", shape=(256, 256), seed=8, psf_matched=True,
                         layout="separated")   # components: the structures to find
    store = str(root / "field.zarr")
    galclust.ingest(survey.manifest_path, store, tile=128)
    report = execute(store, stages=["structures", "emission"], settings=ON)
    return survey, store, report


def test_structures_per_galaxy(field):
    _, store, report = field
    s = report.stages["structures"]
    assert s["action"] == "compute" and s["method"] == "astrolink"
    res = galclust.open_results(report.results, run=report.run)
    gal = res.table("structures/galaxies")
    cat = galclust.open_cube(store)
    seg_ids = set(np.unique(cat["seg"].values)) - {0}
    assert set(gal["id"]) == seg_ids & set(res.table("structures/galaxies")["id"])
    table = res.table("structures/table")
    assert s["structures"] == len(table) > 0
    # the per-galaxy count is the table's, and each stamp holds its galaxy's leaves
    counts = table.groupby("id").size()
    good = gal[gal["flag"] == 0].set_index("id")
    assert (counts.reindex(good.index).fillna(0).astype(int) == good["n_structures"]).all()
    stamps = res.table("structures/stamps").set_index("id")
    seg = cat["seg"].values
    for gid in counts.index[:5]:
        r = stamps.loc[gid]
        lab = decode_labels(r["labels"], r["ny"], r["nx"])
        foot = seg[r["y0"]:r["y0"] + r["ny"], r["x0"]:r["x0"] + r["nx"]] == gid
        assert (lab[~foot] == -1).all()  # outside the footprint: not measured
        ids = set(np.unique(lab[lab > 0]))
        assert ids <= set(table[table["id"] == gid]["structure"])
        # centroids lie in the galaxy's stamp (mosaic pixels)
        t = table[table["id"] == gid]
        assert t["x"].between(r["x0"], r["x0"] + r["nx"]).all()


def test_emission_band_follows_each_redshift(field):
    _, store, report = field
    res = galclust.open_results(report.results, run=report.run)
    gal = res.table("emission/galaxies").set_index("id")
    cube = galclust.open_cube(store)
    bands = [str(b) for b in cube["band"].values]
    wl = cube["wavelength"].values
    cat = pd.read_parquet(f"{store}/tables/catalog.parquet")
    for row in cat.itertuples():
        if row.id not in gal.index:
            continue
        idx, line = band_for_redshift(row.z, bands, wl)
        g = gal.loc[row.id]
        if idx is None:
            assert g["flag"] == 1 and "no medium band" in g["reason"]
        else:
            assert g["flag"] == 0 and g["band"] == bands[idx] and g["line"] == line
    assert (gal["flag"] == 0).any()


def test_reuse_skip_and_tile_mode(field):
    _, store, report = field
    again = execute(store, stages=["structures", "emission"], settings=ON)
    assert {k: v["action"] for k, v in again.stages.items()} == {
        "structures": "reuse", "emission": "reuse"}
    off = execute(store, stages=["structures"])  # the default: off, saying how to ask
    assert off.stages["structures"]["action"] == "skip"
    assert "--structure-method astrolink" in off.stages["structures"]["reason"]
    res = galclust.open_results(off.results, run=off.run)
    assert "structures/table" in res.products  # the last structures are kept
    # a band not in the cube fails the plan; a catalog without redshifts skips emission
    from galclust.errors import InputError

    with pytest.raises(InputError, match="F999M"):
        execute(store, stages=["emission"],
                settings=RunSettings(emission=EmissionOptions(band="F999M")))
    tile = execute(store, stages=["structures"], settings=RunSettings(
        structures=StructuresOptions(method="astrolink", mode="tile", n_samples=20000)))
    assert tile.stages["structures"]["mode"] == "tile"
    res = galclust.open_results(tile.results, run=tile.run)
    labels = res.dataset("structures/labels")["labels"].values
    table = res.table("structures/table")
    assert labels.shape == (256, 256)
    assert set(np.unique(labels[labels > 0])) <= set(table["structure"])


def test_commands_queries_and_pictures(field, tmp_path, capsys):
    _, store, report = field
    for cmd in ("structures", "emission"):
        assert main([cmd, "--help"]) == 0
        assert "usage: galclust " + cmd in capsys.readouterr().out
    figs = tmp_path / "figs"
    assert main(["structures", "--store", store, "--plots", str(figs), "-q"]) == 0
    assert "structures reuse" in capsys.readouterr().out.replace("  ", " ")
    assert main(["emission", "--store", store, "--plots", str(figs), "-q"]) == 0
    capsys.readouterr()
    pngs = sorted(p.name for p in figs.glob("*.png"))
    assert any("structures_run-" in p for p in pngs), pngs
    assert any("dendrogram" in p for p in pngs), pngs
    assert any("excess" in p for p in pngs) and any("emission-sizes" in p for p in pngs), pngs
    res = galclust.open_results(report.results)
    gal = res.table("structures/galaxies")
    want = set(gal[(gal["flag"] == 0) & (gal["n_structures"] >= 2)]["id"])
    assert main(["query", "--results", report.results, "--structures", "2:",
                 "--format", "json"]) == 0
    got = pd.read_json(io.StringIO(capsys.readouterr().out))
    assert set(got["id"] if len(got) else []) == want
    em = res.table("emission/galaxies")
    with_regions = set(em[(em["flag"] == 0) & (em["n_regions"] > 0)]["id"])
    q = galclust.query.Query(report.results)
    assert set(q.select(emission="yes")["id"]) == with_regions
    assert not set(q.select(emission="no")["id"]) & with_regions
