"""Every bad-input, unsafe-path and fault case galclust must refuse or repair, in one list.

Each :class:`Case` is one command line (``argv``, run as ``galclust ARGV`` in the
world of ``conftest.py``) or one Python call (``call``), what it must end in
(an exit status, or an exception type), and a regular expression its one-line
message must match. ``setup`` prepares the world first (it names a function of
``safety_world.SETUPS``). ``test_bad_input_cases.py`` runs them all and checks, for
every case, that no traceback reaches the user and that every file that was
there before is still there, byte for byte. ``len(CASES)`` is the count.

Placeholders in ``argv``: ``{manifest}`` the survey manifest, ``{survey}`` its
folder, ``{store}`` an ingested cube store, ``{results}`` its results store
(one published run), ``{user}`` a user's folder (``thesis.txt``, ``sub/``),
``{new}`` a location that does not exist yet, ``{port}`` a free port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    """One case: what is run, what it must end in, and the message it must print."""

    id: str
    argv: tuple[str, ...] | None = None
    call: Callable[[Any], Any] | None = None
    setup: str | None = None
    exit: int | type[BaseException] = 2
    message: str = ""
    #: False for cases that write a failed run for inspection (new files, none changed)
    writes_nothing: bool = True


def _begin_outside(w: Any) -> Any:
    from galclust.store.results import RunWriter

    return RunWriter.begin(w.results, run_id="../../x").publish()


def _begin_absolute(w: Any) -> Any:
    from galclust.store.results import RunWriter

    return RunWriter.begin(w.results, run_id=str(w.root / "evil")).publish()


def _open_outside(w: Any) -> Any:
    from galclust.store.results import open_results

    return open_results(w.results, run="../../../evil")


def _begin_in_user_folder(w: Any) -> Any:
    from galclust.store.results import RunWriter

    return RunWriter.begin(w.user)


def _write_bad_product(w: Any) -> Any:
    import pandas as pd

    from galclust.store.results import RunWriter

    run = RunWriter.begin(w.results)
    return run.write_table("../../../outside", pd.DataFrame({"id": [1]}))


def _ingest_overwrite_user(w: Any) -> Any:
    import galclust

    return galclust.ingest(w.manifest, w.user, overwrite=True)


def _tampered_product(w: Any) -> Any:
    from galclust.store.results import open_results

    return open_results(w.results).table("pixels/galaxies")


CASES: list[Case] = [
    # ------------------------------------------------------------ data loss
    Case("ingest-into-user-folder", ("ingest", "{manifest}", "--store", "{user}"),
         message=r"store .*user already exists and is not a galclust cube store "
                 r"\(it holds: sub, thesis\.txt\)"),
    Case("ingest-overwrite-user-folder", call=_ingest_overwrite_user, exit=OSError,
         message=r"user already exists and is not a galclust cube store"),
    Case("ingest-into-survey-folder", ("ingest", "{manifest}", "--store", "{survey}"),
         message=r"store .*survey would hold or lie inside input .*; galclust never writes "
                 r"over its inputs"),
    Case("ingest-into-survey-folder-dotted",
         ("ingest", "{manifest}", "--store", "{survey}/../survey/"),
         message=r"would hold or lie inside input"),
    Case("ingest-inside-an-input", ("ingest", "{manifest}", "--store", "{manifest}/cube"),
         message=r"would hold or lie inside input"),
    Case("ingest-into-results-store", ("ingest", "{manifest}", "--store", "{results}"),
         message=r"is a galclust results store, not a cube store"),
    Case("pixels-results-in-user-folder",
         ("pixels", "--store", "{store}", "--results", "{user}"),
         message=r"results store .*user already exists and is not a galclust results store"),
    Case("pixels-results-is-cube-store",
         ("pixels", "--store", "{store}", "--results", "{store}"),
         message=r"results store .* is a galclust cube store, not a results store"),
    Case("results-writer-in-user-folder", call=_begin_in_user_folder, exit=OSError,
         message=r"already exists and is not a galclust results store"),
    Case("nightly-results-in-user-folder",
         ("nightly", "{manifest}", "--store", "{new}", "--results", "{user}"),
         message=r"results store .*user already exists and is not a galclust results store"),
    Case("demo-into-a-users-survey-folder", ("demo", "--workdir", "{user}", "--size", "128"),
         setup="user_survey_folder",
         message=r"user/survey already holds files that are not a synthetic survey of "
                 r"galclust's \(labels\.csv\); give a new or empty folder"),
    # ------------------------------------------------------------ paths outside the store
    Case("query-run-relative-escape",
         ("query", "--results", "{results}", "--run", "../../../evil", "--id", "1"),
         message=r"--run='\.\./\.\./\.\./evil' is not a run id: a run id is 1-100 letters"),
    Case("query-run-absolute-path",
         ("query", "--results", "{results}", "--run", "/abs/path", "--id", "1"),
         message=r"argument --run: --run='/abs/path' is not a run id"),
    Case("writer-run-id-escape", call=_begin_outside, exit=ValueError,
         message=r"run_id='\.\./\.\./x' is not a run id"),
    Case("writer-run-id-absolute", call=_begin_absolute, exit=ValueError,
         message=r"run_id='/.*/evil' is not a run id"),
    Case("open-results-run-escape", call=_open_outside, exit=ValueError,
         message=r"run='\.\./\.\./\.\./evil' is not a run id"),
    Case("product-name-escape", call=_write_bad_product, exit=ValueError,
         message=r"product='\.\./\.\./\.\./outside' is not a product name"),
    Case("tampered-product-path", call=_tampered_product, setup="tamper_product_path",
         exit=OSError, message=r"product path '\.\./\.\./.*' does not lie inside the results "
                               r"store"),
    Case("ids-file-contents-not-echoed",
         ("pixels", "--store", "{store}", "--ids", "@{secret}"),
         message=r"--ids @.*secret\.txt: line 1: 'root:x:0:0:root:/\.\.\.' is not an "
                 r"integer id; give one integer id per line\.$"),
    # ------------------------------------------------------------ bad values
    Case("wavelength-inf", ("ingest", "{manifest}", "--store", "{new}"),
         setup="wavelength_inf",
         message=r"band 'F150W' wavelength=inf must be a positive, finite pivot wavelength"),
    Case("one-band-all-nan", ("ingest", "{manifest}", "--store", "{new}"),
         setup="nan_one_band",
         message=r"band F277W sci image .*F277W_sci\.fits: all \d+ sampled pixels .* are NaN "
                 r"or infinite"),
    Case("every-band-all-nan", ("ingest", "{manifest}", "--store", "{new}"),
         setup="nan_every_band",
         message=r"band F150W sci image .*: all \d+ sampled pixels .* are NaN or infinite"),
    Case("all-zero-weight-map", ("ingest", "{manifest}", "--store", "{new}"),
         setup="zero_weight",
         message=r"band F277W weight image .*F277W_wht\.fits: no sampled pixel has coverage "
                 r".*an all-zero weight map"),
    Case("negative-error-map", ("ingest", "{manifest}", "--store", "{new}"),
         setup="negative_error",
         message=r"band F150W err image .*F150W_err\.fits: \d+ of \d+ sampled pixels are "
                 r"negative; an error map cannot be"),
    Case("catalog-off-the-image", ("ingest", "{manifest}", "--store", "{new}"),
         setup="catalog_offset",
         message=r"source catalog .*catalog\.parquet: none of its \d+ sources falls on the "
                 r"image"),
    Case("segmentation-negative-ids", ("ingest", "{manifest}", "--store", "{new}"),
         setup="negative_segment",
         message=r"segmentation map .*seg\.fits: negative ids \(e\.g\. -\d+ in row \d+\)"),
    Case("empty-catalog", ("ingest", "{manifest}", "--store", "{new}"),
         setup="empty_catalog", message=r"source catalog .*: the table has no rows"),
    Case("cone-dec-above-90", ("pixels", "--store", "{store}", "--cone", "214.9,95,5"),
         message=r"cone RA 214\.9, Dec 95, radius 5: give .*Dec in degrees between -90 and "
                 r"\+90"),
    Case("cone-negative-radius", ("pixels", "--store", "{store}", "--cone", "214.9,52.9,-5"),
         message=r"cone RA 214\.9, Dec 52\.9, radius -5: .*a positive radius"),
    Case("snr-min-nan", ("pixels", "--store", "{store}", "--snr-min", "nan"),
         message=r"argument --snr-min: 'nan' is not a finite number"),
    Case("tile-zero", ("ingest", "{manifest}", "--store", "{new}", "--tile", "0"),
         message=r"argument --tile: 0 is below the minimum, 16"),
    Case("workers-zero", ("pixels", "--store", "{store}", "--workers", "0"),
         message=r"argument --workers: 0 is below the minimum, 1"),
    Case("query-limit-negative", ("query", "--results", "{results}", "--limit", "-1"),
         message=r"argument --limit: -1 is below the minimum, 0"),
    Case("threshold-out-of-range", ("flag", "--store", "{store}", "--threshold", "1.5"),
         message=r"argument --threshold: '1\.5' is not a finite number in \(0, 1\]"),
    Case("every-galaxy-failed", ("pixels", "--store", "{store}", "--snr-min", "1e9", "-q"),
         exit=1, writes_nothing=False,
         message=r"run failed: run \S+ failed and was not published: every one of the \d+ "
                 r"selected galaxies failed to cluster"),
    Case("selection-holds-nothing",
         ("pixels", "--store", "{store}", "--z-range", "50,60", "-q"), exit=1,
         writes_nothing=False,
         message=r"run failed: .*the selection holds no galaxy, so nothing was clustered"),
    # ------------------------------------------------------------ crashes and unclear errors
    Case("ids-file-missing", ("pixels", "--store", "{store}", "--ids", "@missing.txt"),
         message=r"--ids file not found: missing\.txt"),
    Case("truncated-pointer", ("query", "--results", "{results}", "--id", "1"),
         setup="truncate_pointer",
         message=r"latest\.json: the results pointer is not valid JSON \(truncated"),
    Case("nightly-bogus-method",
         ("nightly", "{manifest}", "--store", "{new}", "--method", "bogus"),
         message=r"method='bogus' is not one of 'kmeans'"),
    Case("nightly-dead-scheduler",
         ("nightly", "{manifest}", "--store", "{new}", "--cluster", "tcp://127.0.0.1:{port}"),
         message=r"the Dask scheduler at tcp://127\.0\.0\.1:\d+ does not answer"),
    Case("query-missing-store", ("query", "--results", "{new}", "--id", "1"),
         message=r"no results store exists here; check the URL"),
]
