"""Run every case of ``safety_cases.py``: the refusal or repair it expects, one line, no
traceback, and every file that was there before still there, byte for byte."""

from __future__ import annotations

import re

import pytest
from safety_cases import CASES, Case
from safety_world import SETUPS, snapshot

from flows.cli import main


def test_the_case_list_is_complete_and_unique():
    """Ids are unique; each case is a command or a call, and names a setup that exists."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert all(c.setup is None or c.setup in SETUPS for c in CASES)
    assert all((c.argv is None) != (c.call is None) for c in CASES)


def _argv(case: Case, world, port: int) -> list[str]:
    fields = {**vars(world), "root": str(world.root), "port": port}
    return [a.format(**fields) for a in case.argv]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, world, capsys, unused_port):
    if case.setup:
        SETUPS[case.setup](world)
    before = snapshot(world.root)
    pointer = (world.root / world.results / "latest.json").read_bytes()
    if case.argv is not None:
        status = main(_argv(case, world, unused_port))
        out, err = capsys.readouterr()
        assert status == case.exit, (out, err)
        assert re.search(case.message, err), err
        assert "Traceback" not in out + err
        lines = [ln for ln in err.splitlines() if ln.startswith("galclust ")]
        assert len(lines) == 1, err  # one line says what is wrong
    else:
        with pytest.raises(case.exit, match=case.message):
            case.call(world)
    after = snapshot(world.root)
    changed = sorted(f for f in before if after.get(f) != before[f])
    assert not changed, f"files changed or removed: {changed}"
    if case.writes_nothing:
        assert sorted(set(after) - set(before)) == []
    else:  # a failed run is kept for inspection, and the published run stays latest
        assert (world.root / world.results / "latest.json").read_bytes() == pointer
