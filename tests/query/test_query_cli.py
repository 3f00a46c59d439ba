"""``galclust query`` through argparse: the answers equal the Python API's."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from astropy.coordinates import Angle

from galclust.errors import InputError
from galclust.query import Query, to_json
from galclust.query_cli import add_query_parser, cmd_query


def run(argv, capsys=None):
    """Parse ``galclust query ARGV`` with the sub-parser and run it; returns stdout."""
    parser = argparse.ArgumentParser(prog="galclust")
    add_query_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["query", *argv])
    assert cmd_query(args) == 0
    return capsys.readouterr().out if capsys is not None else None


@pytest.fixture(scope="module")
def q(published):
    return Query(published.results)


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        run(["--help"], capsys)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--cone 214.9,52.9,3" in out and "--n-clusters A[:B]" in out


def test_id_as_table(published, q, capsys):
    gid = int(q.select(n_clusters=(3, None))["id"].iloc[0])
    out = run(["--results", published.results, "--id", str(gid)], capsys)
    rec = q.galaxy(gid)
    assert out.startswith(f"galaxy {gid}  (run {q.run_id}")
    fields = dict((line.split(None, 1) + [""])[:2]  # an empty value (flag_names) prints blank
                  for line in out.split("\n\n")[0].splitlines()[1:])
    assert int(fields["n_clusters"]) == rec.pixels["n_clusters"] >= 3
    assert float(fields["ra"]) == pytest.approx(rec.catalog["ra"], abs=1e-6)
    sed = out.split("composite SEDs\n")[1].splitlines()
    assert sed[0].split() == ["cluster", "band", "wavelength", "flux", "err", "n_pixels"]
    assert len(sed) == 1 + len(rec.composites) == 1 + 8 * rec.pixels["n_clusters"]


def test_id_as_json_file_equals_the_record(published, q, tmp_path):
    gid = int(q.catalog["id"].iloc[3])
    path = tmp_path / "g.json"
    run(["--store", published.store, "--id", str(gid), "--format", "json", "--output", str(path)])
    assert json.loads(path.read_text()) == json.loads(to_json(q.galaxy(gid)))


def test_id_as_png(published, q, tmp_path, capsys):
    gid = int(q.select(n_clusters=(2, None))["id"].iloc[0])
    path = tmp_path / "g.png"
    out = run(["--results", published.results, "--id", str(gid), "--format", "png",
               "--output", str(path)], capsys)
    assert f"galaxy {gid}" in out and str(path) in out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_png_named_after_galaxy_method_and_run(published, q, tmp_path, capsys, monkeypatch):
    gid = int(q.select(n_clusters=(2, None))["id"].iloc[0])
    monkeypatch.chdir(tmp_path)
    run(["--results", published.results, "--id", str(gid), "--format", "png"], capsys)
    pix = q.galaxy(gid).pixels
    name = (f"galaxy-{gid}_{pix['method']}-{pix['normalize']}-{pix['metric']}-"
            f"k{pix['n_clusters']}_run-{q.run_id}.png")
    assert [p.name for p in tmp_path.glob("*.png")] == [name]


def test_cone_in_degrees_and_sexagesimal(published, q, capsys):
    row = q.catalog.iloc[10]
    ra, dec, radius = float(row["ra"]) + 1e-4, float(row["dec"]), 2.5
    out = run(["--results", published.results, "--cone", f"{ra!r},{dec!r},{radius}",
               "--format", "json"], capsys)
    got = json.loads(out)
    want = q.cone(ra, dec, radius)
    assert [r["id"] for r in got] == want["id"].tolist() and len(got) > 0
    np.testing.assert_allclose([r["sep_arcsec"] for r in got], want["sep_arcsec"], atol=1e-9)
    hms = Angle(ra, unit="deg").to_string(unit="hourangle", sep=":", precision=5)
    dms = Angle(dec, unit="deg").to_string(unit="deg", sep=":", precision=4, alwayssign=True)
    out = run(["--results", published.results, "--cone", f"{hms},{dms},{radius}",
               "--format", "json"], capsys)
    assert [r["id"] for r in json.loads(out)] == want["id"].tolist()


def test_selection_as_table_and_json(published, q, capsys):
    want = q.select(n_clusters=(2, 3), spurious=False, z=(1.0, 6.0))
    assert len(want) > 3
    base = ["--results", published.results, "--n-clusters", "2:3", "--spurious", "no",
            "--z-range", "1,6"]
    got = json.loads(run([*base, "--format", "json"], capsys))
    assert [r["id"] for r in got] == want["id"].tolist()
    assert set(got[0]) == set(want.columns)  # json: every column unless --columns
    out = run(base, capsys).splitlines()
    assert out[0].split() == ["id", "ra", "dec", "z", "n_pixels", "n_clusters", "flag_names",
                              "p_spurious", "spurious", "spurious_reason"]
    assert [int(line.split()[0]) for line in out[1:-1]] == want["id"].tolist()
    assert out[-1] == f"({len(want)} rows; run {q.run_id})"
    out = run([*base, "--columns", "id,n_clusters", "--limit", "2"], capsys).splitlines()
    assert out[0].split() == ["id", "n_clusters"] and len(out) == 4
    assert out[-1].startswith(f"({len(want)} rows")


def test_flags_and_single_cluster_count(published, q, capsys):
    for option, crit in ((["--flags", "any"], {"flags": True}),
                         (["--flags", "TOO_FEW_PIXELS"], {"flags": ["TOO_FEW_PIXELS"]}),
                         (["--n-clusters", "2"], {"n_clusters": 2}),
                         (["--n-clusters", "3:"], {"n_clusters": (3, None)})):
        got = json.loads(run(["--results", published.results, *option, "--format", "json",
                              "--columns", "id"], capsys))
        assert [r["id"] for r in got] == q.select(**crit)["id"].tolist()


def test_every_source_without_a_criterion(published, q, capsys):
    out = run(["--store", published.store], capsys).splitlines()
    assert out[-1] == f"({len(q.catalog)} rows; run {q.run_id})"


@pytest.mark.parametrize("argv, match", [
    (["--id", "3", "--cone", "214.9,52.9,3"], "give one of --id, --cone or a selection"),
    (["--cone", "214.9,52.9"], "give RA,DEC,RADIUS"),
    (["--z-range", "1,x"], "--z-range '1,x'"),
    (["--n-clusters", "3", "--format", "png"], "png draws one galaxy"),
    (["--columns", "n_cluster"], "Did you mean 'n_clusters'"),
    (["--flags", "NOPE"], "flags='NOPE'"),
])
def test_bad_options_are_refused(published, argv, match):
    with pytest.raises(InputError, match=match):
        run(["--results", published.results, *argv])


def test_results_or_store_is_required():
    with pytest.raises(InputError, match="give --results URL"):
        run(["--id", "3"])
