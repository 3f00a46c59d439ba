"""Query by id, cone and property against the tables and the cube they came from."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

import galclust
from galclust.errors import InputError, StoreError
from galclust.pixels.flags import PixelFlag
from galclust.pixels.survey import decode_labels
from galclust.query import CUTOUT_SIZE, Query, to_json
from galclust.store.results import RunWriter


@pytest.fixture(scope="module")
def q(published):
    return Query(published.results)


@pytest.fixture(scope="module")
def catalog(q):
    return q.catalog


def _astropy_cone(catalog, ra, dec, radius):
    """Independent answer: ids within radius (arcsec) by astropy, nearest first."""
    sep = SkyCoord(catalog["ra"].to_numpy() * u.deg, catalog["dec"].to_numpy() * u.deg) \
        .separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
    inside = sep <= radius
    order = np.lexsort((catalog["id"].to_numpy()[inside], sep[inside]))
    return catalog["id"].to_numpy()[inside][order], sep[inside][order]


def test_lazy_module_attribute_is_this_module():
    assert galclust.query.Query is Query


def test_query_is_bound_to_the_published_run(q, published):
    assert q.run_id == published.run_id and q.store == published.store
    assert len(q.catalog) >= 40 and q.catalog["id"].is_monotonic_increasing


def test_galaxy_stamp_and_composites_match_the_tables_and_the_cube(q, tables, sci):
    gal = tables["pixels/galaxies"].set_index("id")
    stamps = tables["pixels/stamps"].set_index("id")
    spur = tables["catalog_spurious"].set_index("id")
    clustered = gal.index[gal["n_clusters"] > 0]
    assert len(clustered) >= 30
    checked_clusters = 0
    for gid in clustered:
        rec = q.galaxy(int(gid))
        s = stamps.loc[gid]
        expected = decode_labels(s["labels"], s["ny"], s["nx"])
        np.testing.assert_array_equal(rec.labels.values, expected)
        assert int(rec.labels["y"][0]) == s["y0"] and int(rec.labels["x"][-1]) == s["x0"] + \
            s["nx"] - 1
        assert rec.pixels["n_clusters"] == gal.loc[gid, "n_clusters"] == \
            len(np.unique(expected[expected >= 0]))
        assert rec.spurious["p_spurious"] == spur.loc[gid, "p_spurious"]
        # each composite flux is the sum of the cube's pixels of that cluster, band by band
        box = sci[:, s["y0"]:s["y0"] + s["ny"], s["x0"]:s["x0"] + s["nx"]].astype(np.float64)
        bands = list(q.cube["band"].values)
        for row in rec.composites.itertuples():
            mask = expected == row.cluster
            assert row.n_pixels == mask.sum()
            if row.band in gal.loc[gid, "used_bands"].split(","):
                np.testing.assert_allclose(row.flux, box[bands.index(row.band)][mask].sum(),
                                           rtol=1e-9, atol=1e-9)
                checked_clusters += 1
        order = rec.composites.sort_values(["cluster", "wavelength"], ignore_index=True)
        pd.testing.assert_frame_equal(rec.composites, order)
    assert checked_clusters >= 8 * clustered.size


def test_cutout_holds_the_stamp_and_is_the_cube(q, tables, sci):
    for gid in tables["pixels/galaxies"]["id"]:
        rec = q.galaxy(int(gid))
        c = rec.cutout
        y, x = c["y"].values, c["x"].values
        np.testing.assert_array_equal(c.values, sci[:, y[0]:y[-1] + 1, x[0]:x[-1] + 1])
        assert list(c.dims) == ["band", "y", "x"] and c.sizes["band"] == 8
        for d, have in (("y", y), ("x", x)):  # the smallest box holding both, in the cube
            centre, half = round(rec.catalog[d]), CUTOUT_SIZE // 2
            want = set(range(max(centre - half, 0), min(centre + half + 1, 256)))
            if rec.labels is not None:
                want |= set(rec.labels[d].values.tolist())
            assert set(have.tolist()) == set(range(min(want), max(want) + 1))


def test_unknown_id_is_refused_with_nearby_ids(q, published, catalog):
    top = int(catalog["id"].max())
    with pytest.raises(InputError) as err:
        q.galaxy(top + 1000)
    msg = str(err.value)
    assert f"galaxy id {top + 1000} is not in the catalog" in msg
    assert published.store in msg and published.results in msg
    assert str(top) in msg.split("nearest:")[1] and "galclust query --results" in msg
    with pytest.raises(InputError, match="integer catalog id"):
        q.galaxy("3")


@pytest.mark.parametrize("seed", range(6))
def test_cone_is_exactly_the_sources_within_the_radius(q, catalog, seed):
    rng = np.random.default_rng(seed)
    ra = catalog["ra"].min() + rng.random() * np.ptp(catalog["ra"])
    dec = catalog["dec"].min() + rng.random() * np.ptp(catalog["dec"])
    radius = float(rng.uniform(0.5, 4.0))
    ids, seps = _astropy_cone(catalog, ra, dec, radius)
    got = q.cone(ra, dec, radius)
    np.testing.assert_array_equal(got["id"].to_numpy(), ids)
    np.testing.assert_allclose(got["sep_arcsec"].to_numpy(), seps, rtol=0, atol=1e-7)
    assert got["sep_arcsec"].is_monotonic_increasing
    pix = q.sources(ids)  # the joined columns are those of the same sources
    pd.testing.assert_frame_equal(got.drop(columns="sep_arcsec").sort_values("id")
                                  .reset_index(drop=True), pix)


def test_cone_on_a_source_finds_it_first(q, catalog):
    row = catalog.iloc[len(catalog) // 2]
    got = q.cone(row["ra"], row["dec"], 1.0)
    assert got["id"].iloc[0] == row["id"] and got["sep_arcsec"].iloc[0] < 1e-6
    assert {"n_clusters", "p_spurious", "spurious"} <= set(got.columns)


def test_empty_cone_inside_the_survey_is_an_empty_table(q, published, catalog):
    wcs = WCS(dict(q.cube.attrs["wcs"]))
    yy, xx = np.mgrid[10:246:4, 10:246:4]
    ra, dec = wcs.pixel_to_world_values(xx.ravel(), yy.ravel())
    nearest = SkyCoord(ra * u.deg, dec * u.deg).match_to_catalog_sky(
        SkyCoord(catalog["ra"].to_numpy() * u.deg, catalog["dec"].to_numpy() * u.deg))[1]
    best = int(np.argmax(nearest.arcsec))
    radius = 0.5 * float(nearest.arcsec[best])
    got = q.cone(ra[best], dec[best], radius)
    assert got.empty and "sep_arcsec" in got.columns and "n_clusters" in got.columns


def test_cone_outside_the_survey_names_its_extent(q):
    e = q.sky["extent"]
    with pytest.raises(InputError, match="outside survey") as err:
        q.cone(e["ra_max"] + 0.01, 0.5 * (e["dec_min"] + e["dec_max"]), 3.0)
    msg = str(err.value)
    assert f"RA {e['ra_min']:.5f} to {e['ra_max']:.5f} deg" in msg
    assert f"Dec {e['dec_min']:+.5f} to {e['dec_max']:+.5f} deg" in msg
    assert e["ra_max"] - e["ra_min"] == pytest.approx(256 * 0.04 / 3600 / np.cos(
        np.radians(52.9)), rel=0.01)
    with pytest.raises(InputError, match="outside survey"):
        q.cone(34.9, -52.9, 60.0)  # other side of the sky


def test_cone_overlapping_the_edge_from_outside_is_no_error(q, catalog):
    wcs = WCS(dict(q.cube.attrs["wcs"]))
    ra, dec = wcs.pixel_to_world_values(255.5 + 25, 128.0)  # 1 arcsec beyond the right edge
    got = q.cone(float(ra), float(dec), 1.5)
    ids, _ = _astropy_cone(catalog, float(ra), float(dec), 1.5)
    np.testing.assert_array_equal(got["id"].to_numpy(), ids)
    with pytest.raises(InputError, match="outside survey"):
        q.cone(float(ra), float(dec), 0.9)


def test_cone_arguments_are_checked(q):
    with pytest.raises(InputError, match="positive radius"):
        q.cone(214.9, 52.9, -1)
    with pytest.raises(InputError, match="-90 <= Dec <= 90"):
        q.cone(214.9, 95.0, 1)


def test_select_by_property_matches_the_tables(q, tables, catalog):
    gal, spur = tables["pixels/galaxies"], tables["catalog_spurious"]

    def ids(df):
        return sorted(df["id"].tolist())

    assert ids(q.select()) == ids(catalog)
    assert ids(q.select(n_clusters=2)) == ids(gal[gal["n_clusters"] == 2])
    assert ids(q.select(n_clusters=(2, 3))) == ids(gal[gal["n_clusters"].between(2, 3)])
    assert ids(q.select(n_clusters=(3, None))) == ids(gal[gal["n_clusters"] >= 3])
    assert ids(q.select(spurious=True)) == ids(spur[spur["flag"]])
    assert ids(q.select(spurious=False)) == ids(spur[~spur["flag"]])
    assert ids(q.select(z=(2.0, 5.0))) == ids(catalog[catalog["z"].between(2.0, 5.0)])
    assert ids(q.select(flags=True)) == ids(gal[gal["flags"] != 0])
    assert ids(q.select(flags=False)) == ids(gal[gal["flags"] == 0])
    few = int(PixelFlag.TOO_FEW_PIXELS)
    assert ids(q.select(flags="too_few_pixels")) == ids(gal[gal["flags"] & few == few])
    both = q.select(n_clusters=(2, 4), spurious=False, z=(1.0, 7.0))
    m = gal.merge(spur[["id", "flag"]], on="id").merge(catalog[["id"]], on="id")
    m = m[m["n_clusters"].between(2, 4) & ~m["flag"] & m["z"].between(1.0, 7.0)]
    assert ids(both) == ids(m) and len(both) > 0
    assert both["id"].is_monotonic_increasing
    assert str(both["n_clusters"].dtype) == "Int64" and str(both["spurious"].dtype) == "boolean"
    for crit in ({"n_clusters": 2}, {"spurious": True}, {"flags": True}):
        assert len(q.select(**crit)) > 0  # the comparisons above are not all empty


def test_select_refuses_bad_criteria(q):
    with pytest.raises(InputError, match="exceeds max"):
        q.select(n_clusters=(3, 1))
    with pytest.raises(InputError, match="number or a"):
        q.select(z="high")
    with pytest.raises(InputError, match="Did you mean 'TOO_FEW_PIXELS'"):
        q.select(flags="TOO_FEW_PIXEL")


def test_json_round_trip_keeps_values_and_nulls(q, tables):
    df = q.select(flags=True)  # degenerate galaxies: NaN scores
    assert df["score"].isna().any()
    text = to_json(df)
    assert "NaN" not in text and "Infinity" not in text
    back = pd.DataFrame(json.loads(text))
    assert back["id"].tolist() == df["id"].tolist()
    for col in ("ra", "dec", "z", "score", "p_spurious", "n_clusters"):
        np.testing.assert_array_equal(back[col].isna(), df[col].isna())
        np.testing.assert_allclose(back[col].astype(float), df[col].astype(float), rtol=1e-15)
    assert back["flag_names"].tolist() == df["flag_names"].tolist()

    gid = int(tables["pixels/galaxies"].sort_values("n_pixels")["id"].iloc[-1])
    rec = q.galaxy(gid)
    doc = json.loads(to_json(rec))
    assert doc["id"] == gid and doc["run"] == q.run_id
    np.testing.assert_array_equal(np.array(doc["labels"]["values"]), rec.labels.values)
    assert pd.DataFrame(doc["composites"])["flux"].tolist() == rec.composites["flux"].tolist()
    assert doc["pixels"]["n_clusters"] == rec.pixels["n_clusters"]
    assert doc["spurious"]["flag"] == bool(rec.spurious["flag"])


def test_png_of_a_galaxy(q, tables, tmp_path):
    from PIL import Image

    from galclust.plots.catalog import save_figure

    gid = int(tables["pixels/galaxies"].sort_values("n_pixels")["id"].iloc[-1])
    rec = q.galaxy(gid)
    from matplotlib.contour import ContourSet

    fig = rec.figure()
    ax_img, ax_lab, ax_sed = fig.axes[:3]
    lab = rec.labels.reindex(y=rec.cutout["y"], x=rec.cutout["x"], fill_value=-1).values
    assert ax_lab.images[0].get_array().shape == (*lab.shape, 3)  # contours over the image
    contours = [c for c in ax_lab.collections if isinstance(c, ContourSet)]
    assert len(contours) == rec.pixels["n_clusters"] == len(np.unique(lab[lab >= 0]))
    n_lines = len([c for c in ax_sed.containers])  # one error-bar set per cluster
    assert n_lines == rec.pixels["n_clusters"] and "F444W" in ax_sed.get_ylabel()
    assert [t.get_text() for t in ax_img.texts if t.get_gid() == "band key"][0] == "F444W"
    assert [t.get_text() for t in ax_img.texts if t.get_gid() == "scale bar"][0].endswith("″")
    title = fig.get_suptitle().replace("\n", " — ")
    assert title.startswith(f"galaxy {gid}") and f"run {q.run_id}" in title
    assert f"{rec.pixels['method']}, {rec.pixels['normalize']}, " in title
    path = save_figure(fig, str(tmp_path / f"galaxy-{gid}.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    img = Image.open(io.BytesIO(data))
    assert img.width > 2 * img.height > 300


def test_a_run_with_only_the_catalog_table(published, tables, tmp_path):
    url = str(tmp_path / "catalog-only-results")
    run = RunWriter.begin(url, params={"store": published.store})
    run.write_table("catalog_spurious", tables["catalog_spurious"])
    run.publish()
    q = Query(url)
    gid = int(tables["catalog_spurious"]["id"].iloc[0])
    rec = q.galaxy(gid)
    assert rec.pixels is None and rec.labels is None and rec.composites.empty
    assert rec.spurious["id"] == gid and rec.cutout.sizes["band"] == 8
    fig = rec.figure()
    assert not [c for c in fig.axes[1].collections if c.get_gid()]  # nothing clustered
    assert fig.axes[1].get_title() == "0 clusters" and not fig.axes[2].containers
    assert "n_clusters" not in q.cone(rec.catalog["ra"], rec.catalog["dec"], 1.0).columns
    with pytest.raises(InputError, match="no 'pixels/galaxies' table"):
        q.select(n_clusters=2)


def test_a_query_sees_only_the_run_published_when_it_was_built(published, tmp_path):
    url = str(tmp_path / "results")
    shutil.copytree(published.results, url)
    before = Query(url)
    gid = int(before.select(n_clusters=(2, None))["id"].iloc[0])
    k = int(before.galaxy(gid).pixels["n_clusters"])

    nightly = RunWriter.begin(url, params={"store": published.store})
    gal = before.results.table("pixels/galaxies")
    gal["n_clusters"] += 100
    nightly.write_table("pixels/galaxies", gal)  # written, not yet published
    during = Query(url)
    assert during.run_id == before.run_id
    for query in (before, during):
        assert query.galaxy(gid).pixels["n_clusters"] == k
        assert query.select(n_clusters=(100, None)).empty

    nightly.publish()
    assert before.galaxy(gid).pixels["n_clusters"] == k  # resolved once, at construction
    after = Query(url)
    assert after.run_id == nightly.run_id != before.run_id
    assert after.galaxy(gid).pixels["n_clusters"] == k + 100
    assert len(after.select(n_clusters=(100, None))) == len(gal)
    # the new run inherited the other products of the previous one
    np.testing.assert_array_equal(after.galaxy(gid).labels, before.galaxy(gid).labels)
    assert Query(url, run=before.run_id).galaxy(gid).pixels["n_clusters"] == k
    with pytest.raises(StoreError, match="no published run"):
        Query(url, run="19990101T000000Z-000000")
