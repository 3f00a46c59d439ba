"""One small real run, built once per session, that every query test reads.

A 256 x 256 synthetic survey (8 NIRCam bands, 40 galaxies plus stars and
injected artefacts) is written with ``galclust.synth.make_survey``, ingested
with ``galclust.ingest``, and both pipelines (``run_pixels``, ``run_catalog``)
write one run of the results store beside the cube, which is then published.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """Paths of the survey, its cube store and its results store (one published run)."""
    import galclust
    from galclust.catalog.survey import run_catalog
    from galclust.pixels.survey import run_pixels
    from galclust.store.cube import open_catalog, open_labels
    from galclust.store.results import RunWriter, default_results_url
    from galclust.synth import make_survey

    root = tmp_path_factory.mktemp("query")
    survey = make_survey(root / "survey", shape=(256, 256), n_galaxies=40, seed=1)
    store = str(root / "field.zarr")
    cube = galclust.ingest(survey.manifest_path, store, tile=128)  # 4 tiles: cutouts span them
    catalog = open_catalog(store)
    results = default_results_url(store)
    run = RunWriter.begin(results, params={"store": store})
    with warnings.catch_warnings():  # 0/0 in a feature of an all-empty stamp (numpy's note)
        warnings.simplefilter("ignore", RuntimeWarning)
        run_pixels(cube, catalog, run)
        run_catalog(cube, catalog, open_labels(store), run)
    run.publish()
    return SimpleNamespace(root=root, survey=survey, store=store, results=results,
                           run_id=run.run_id)


@pytest.fixture(scope="session")
def tables(published):
    """Every table product of the published run, read whole."""
    from galclust.store.results import open_results

    res = open_results(published.results)
    return {name: res.table(name) for name, kind in res.kinds.items() if kind == "table"}


@pytest.fixture(scope="session")
def sci(published):
    """The cube's sci array (band, y, x) as numpy, read once."""
    import galclust

    return galclust.open_cube(published.store)["sci"].values
