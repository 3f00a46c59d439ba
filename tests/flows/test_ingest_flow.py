"""The ingest flow runs for real under Prefect (a temporary local API on SQLite)."""

from __future__ import annotations

import numpy as np
import pytest

import galclust
from galclust.synth import make_survey


def test_ingest_flow_writes_the_cube_and_skips_unchanged(prefect_harness, tmp_path):
    from flows.ingest import ingest_flow

    survey = make_survey(tmp_path / "s", shape=(128, 128), seed=2,
                         bands={"F150W": 1.501, "F444W": 4.402})
    store = str(tmp_path / "field.zarr")
    first = ingest_flow(survey.manifest_path, store, tile=64)
    assert first["bands_written"] == ["F150W", "F444W"] and first["seg_written"]
    cube = galclust.open_cube(store)
    assert cube["sci"].shape == (2, 128, 128) and np.isfinite(cube["err"].values).any()
    second = ingest_flow(survey.manifest_path, store, tile=64)
    assert second["bands_written"] == [] and not second["seg_written"]


def test_bad_input_is_not_retried(prefect_harness, tmp_path):
    """A malformed manifest fails at once (retries are for transient storage faults)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.ingest import ingest_flow

    bad = tmp_path / "bad.toml"
    bad.write_text('[[bands]]\nname = "F150W"\nwavelenght = 1.5\nsci = "x.fits"\n'
                   'err = "e.fits"\n[segmentation]\npath = "s.fits"\n[catalog]\npath = "c.csv"\n')
    state = ingest_flow(str(bad), str(tmp_path / "c.zarr"), return_state=True)
    assert state.is_failed()
    with pytest.raises(galclust.ManifestError, match="Did you mean 'wavelength'"):
        state.result()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    assert [r.run_count for r in runs] == [1]  # tried once: the task has retries=2


def test_retry_condition_classifies_errors():
    from types import SimpleNamespace

    from flows.common import retry_transient

    def state(exc):
        return SimpleNamespace(data=exc)

    assert retry_transient(None, None, state(ConnectionResetError("peer reset")))
    assert retry_transient(None, None, state(TimeoutError("slow S3")))
    assert not retry_transient(None, None, state(galclust.InputError("bad FITS")))
    assert not retry_transient(None, None, state(galclust.StoreError("no bucket")))
    assert not retry_transient(None, None, state(ValueError("a bug")))
