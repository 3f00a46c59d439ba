"""Session fixtures for the catalog tests: a synthetic survey with injected artefacts.

One 1024 x 1024 survey, dense enough (1,100 galaxies, 5% spurious) that
recall is meaningful (~58 truly spurious sources), is written with
``galclust.synth.make_survey``, ingested with ``galclust.ingest`` and
embedded once (``embed_catalog``); tests flag it with each labelling (all
sources / a random 25%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SURVEY = {"shape": (1024, 1024), "n_galaxies": 1100, "seed": 11, "spurious_fraction": 0.05}


@pytest.fixture(scope="session")
def survey(tmp_path_factory):
    """(SyntheticSurvey, cube store URL)."""
    import galclust
    from galclust.synth import make_survey

    root = tmp_path_factory.mktemp("catalog_survey")
    sv = make_survey(root / "survey", **SURVEY)
    store = str(root / "cube.zarr")
    galclust.ingest(sv.manifest_path, store)
    return sv, store


@pytest.fixture(scope="session")
def cube(survey):
    import galclust

    return galclust.open_cube(survey[1])


@pytest.fixture(scope="session")
def catalog(survey):
    from galclust.store.cube import open_catalog

    return open_catalog(survey[1])


@pytest.fixture(scope="session")
def labels(survey):
    from galclust.store.labels import read_labels

    return read_labels(survey[0].labels_path)


@pytest.fixture(scope="session")
def truth(survey):
    return pd.read_parquet(survey[0].truth_sources_path)


@pytest.fixture(scope="session")
def labels_25(labels):
    """A random quarter of the labels."""
    rng = np.random.default_rng(5)
    keep = rng.random(len(labels)) < 0.25
    return labels[keep].reset_index(drop=True)


@pytest.fixture(scope="session")
def embedded(cube, catalog):
    """embed_catalog of the survey (cutouts, PCA, features), shared by the tests."""
    from galclust.catalog.survey import embed_catalog

    return embed_catalog(cube, catalog)
