"""Classification on real pixels: point sources against galaxies in the DECaLS DR9 cutout.

The labelled set is made here, from the real g, r, z pixels, by a rule that owes
nothing to the classifier — the spirit of SDSS's ``type`` flag (a source is
point-like when ``psfMag - cModelMag < 0.145``):

- detection: the band-summed S/N image, smoothed by a Gaussian (sigma 1.5 px,
  about the PSF's) and put in units of its own measured noise (the coadd's
  noise is correlated, so the inverse variance understates the smoothed
  noise); segments above 2 sigma whose peak exceeds 4 sigma are sources;
- measurement on the g + r + z image: a Gaussian-weighted centroid, the
  equivalent Gaussian sigma of the weighted second moments, the flux of a
  Gaussian PSF fit and the flux in an 8 px (2.1 arcsec) aperture; their noise
  from the same filters over blank sky;
- the PSF: the median size of the five most compact well-detected sources;
  the stellar locus: their median ``psf - aperture`` magnitude;
- ``star = 1`` when ``psf - aperture`` is within 0.145 mag of that locus. Only
  isolated (one peak), interior (the aperture inside the image) sources with a
  PSF-flux S/N >= 5 are labelled; the rest are classified, not trained on.

The field is at high Galactic latitude, so the point-like class is small (12
of 25 labels): the stage trains on every label (``--test-fraction 0``) and the
quality is measured by stratified cross-validation of the estimator.

The CNN trains on them too, though its training part fits one batch.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import tomli_w
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage
from sklearn.model_selection import StratifiedKFold

import galclust
from galclust.classify.estimator import SourceClassifier
from galclust.classify.survey import labelled_cutouts
from galclust.cli import main
from galclust.store.cube import open_catalog

DECALS = os.path.join(os.path.dirname(__file__), "..", "data", "decals",
                      "cutout_59.1067_-30.4848.fits")
PIVOTS = {"g": 0.4770, "r": 0.6231, "z": 0.9134}  # DECam pivot wavelengths, micron
SIZE = 15  # cutout side (odd): +-7 px, 3.5 PSF sigma (a wider stamp is mostly neighbours)
SEED = 0

SMOOTH = 1.5  # px, sigma of the detection filter
SEGMENT, DETECT = 2.0, 4.0  # sigma: segment extent, and a source's peak
WINDOW = 3.0  # px, sigma of the Gaussian weight of centroid and moments
APERTURE = 8.0  # px radius of the "total" flux (2.1 arcsec, ~4 PSF sigma)
EDGE = APERTURE  # labelled sources keep their aperture inside the image
MIN_SNR = 5.0  # PSF-flux S/N of a labelled source
BRIGHT = 10.0  # detection sigma of the sources the PSF is measured on
N_PSF = 5  # compact well-detected sources that define the PSF and the stellar locus
SDSS_CUT = 0.145  # mag: psf - model magnitude of SDSS's star/galaxy separation
CV_REPEATS = 3  # repeats of the stratified 5-fold cross-validation


def _mad_sigma(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _gaussian(sigma: float, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    k = np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def detect(img: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segmentation map (ids 1..n), each segment's peak S/N and its number of peaks."""
    snr = (img * np.sqrt(ivar)).sum(axis=0) / np.sqrt(len(img))
    smooth = ndimage.gaussian_filter(snr, SMOOTH)
    z = smooth / _mad_sigma(smooth)  # noise measured: the coadd's pixels are correlated
    seg, n = ndimage.label(z > SEGMENT)
    index = np.arange(1, n + 1)
    keep = np.asarray(ndimage.maximum(z, seg, index)) > DETECT
    new = np.zeros(n + 1, dtype=np.int32)
    new[index[keep]] = np.arange(1, keep.sum() + 1)
    seg = new[seg]
    index = np.arange(1, keep.sum() + 1)
    peaks = (z == ndimage.maximum_filter(z, 7)) & (z > DETECT)
    return (seg, np.asarray(ndimage.maximum(z, seg, index)),
            np.asarray(ndimage.sum(peaks, seg, index)).astype(int))


def measure(det: np.ndarray, seg: np.ndarray) -> pd.DataFrame:
    """Centroid (x, y), size (equivalent Gaussian sigma, px) and edge distance of each
    segment, measured on the band-summed image ``det``."""
    yy, xx = np.mgrid[:det.shape[0], :det.shape[1]].astype(np.float64)
    rows = []
    for sid in range(1, seg.max() + 1):
        flux = np.where(seg == sid, det, -np.inf)
        cy, cx = (float(v) for v in np.unravel_index(np.argmax(flux), det.shape))
        for _ in range(5):
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            w = np.exp(-r2 / (2 * WINDOW ** 2)) * (r2 < (3 * WINDOW) ** 2) * det.clip(0)
            if w.sum() > 0:  # (a noise peak at the border may have no positive flux)
                cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        w = np.exp(-r2 / (2 * WINDOW ** 2)) * (r2 < (3 * WINDOW) ** 2) * det
        m = (w * r2).sum() / w.sum()  # = 2 s^2 W^2 / (s^2 + W^2) for a Gaussian of sigma s
        s2 = m * WINDOW ** 2 / (2 * WINDOW ** 2 - m) if 0 < m < 2 * WINDOW ** 2 else np.nan
        rows.append({"id": sid, "x": cx, "y": cy, "size": np.sqrt(s2),
                     "edge": min(cx, cy, det.shape[1] - 1 - cx, det.shape[0] - 1 - cy)})
    return pd.DataFrame(rows)


def photometry(det: np.ndarray, seg: np.ndarray, src: pd.DataFrame, psf_sigma: float
               ) -> pd.DataFrame:
    """PSF-fit and aperture fluxes of the sources, their blank-sky noise and ``dm``
    (psf - aperture magnitude)."""
    yy, xx = np.mgrid[:det.shape[0], :det.shape[1]].astype(np.float64)
    radius = int(APERTURE)
    psf = _gaussian(psf_sigma, radius)
    disc = (np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= APERTURE) * 1.0
    f_psf, f_ap = [], []
    for s in src.itertuples():
        r2 = (yy - s.y) ** 2 + (xx - s.x) ** 2
        p = np.exp(-r2 / (2 * psf_sigma ** 2)) * (r2 <= APERTURE ** 2)
        p /= p.sum()
        f_psf.append((p * det).sum() / (p * p).sum())
        f_ap.append(det[r2 <= APERTURE ** 2].sum())
    # the same filters over blank sky (away from every segment and the border) give the noise
    blank = ~ndimage.binary_dilation(seg > 0, iterations=2 * radius)
    blank[:radius], blank[-radius:], blank[:, :radius], blank[:, -radius:] = (False,) * 4
    n_psf = ndimage.correlate(det, psf) / (psf * psf).sum()
    n_ap = ndimage.correlate(det, disc)
    cov = np.cov(n_psf[blank], n_ap[blank])
    out = src.copy()
    out["f_psf"], out["f_ap"] = f_psf, f_ap
    out["snr"] = out["f_psf"] / np.sqrt(cov[0, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        out["dm"] = -2.5 * np.log10(out["f_psf"] / out["f_ap"])
        out["dm_err"] = 2.5 / np.log(10) * np.sqrt(
            cov[0, 0] / out["f_psf"] ** 2 + cov[1, 1] / out["f_ap"] ** 2
            - 2 * cov[0, 1] / (out["f_psf"] * out["f_ap"]))
    return out


def label_sources(det: np.ndarray, seg: np.ndarray, peak: np.ndarray, n_peaks: np.ndarray
                  ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every source's measurements and ``star`` (1 point-like, 0 extended, NaN unlabelled)."""
    src = measure(det, seg)
    src["peak"], src["n_peaks"] = peak, n_peaks
    clean = (src["n_peaks"] == 1) & (src["edge"] >= EDGE)
    # the PSF: the most compact of the well-detected clean sources
    bright = src[clean & (src["peak"] >= BRIGHT)].nsmallest(N_PSF, "size")
    psf_sigma = float(bright["size"].median())
    src = photometry(det, seg, src, psf_sigma)
    locus = float(src.loc[bright.index, "dm"].median())
    labelled = clean & (src["snr"] >= MIN_SNR)
    src["star"] = np.where(labelled, (src["dm"] - locus < SDSS_CUT).astype(float), np.nan)
    return src, {"psf_sigma": psf_sigma, "locus": locus, "n_psf": len(bright)}


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """The real cutout as a survey (per-band pixels, a segmentation map and catalog from
    the detection above), ingested; and the labels file."""
    out = tmp_path_factory.mktemp("decals-classify")
    with fits.open(DECALS) as hdul:
        img = np.stack([hdul[1 + 2 * i].data for i in range(3)]).astype(np.float64)
        ivar = np.stack([hdul[2 + 2 * i].data for i in range(3)]).astype(np.float64)
        header = hdul[1].header
    seg, peak, n_peaks = detect(img, ivar)
    src, psf = label_sources(img.sum(axis=0), seg, peak, n_peaks)
    wcs = WCS(header)
    fits.writeto(out / "seg.fits", seg, wcs.to_header(), overwrite=True)
    ra, dec = wcs.pixel_to_world_values(src["x"], src["y"])
    pd.DataFrame({"id": src["id"], "ra": ra, "dec": dec}).to_csv(out / "catalog.csv",
                                                                 index=False)
    lab = src[src["star"].notna()]
    labels = str(out / "stars.csv")
    pd.DataFrame({"id": lab["id"], "star": lab["star"].astype(int)}).to_csv(labels, index=False)
    bands = [{"name": b, "wavelength": PIVOTS[b], "sci": DECALS, "sci_hdu": 1 + 2 * i,
              "weight": DECALS, "weight_hdu": 2 + 2 * i, "unit": "nanomaggy"}
             for i, b in enumerate("grz")]
    (out / "survey.toml").write_text(tomli_w.dumps({
        "survey": {"name": "decals-59.1067-30.4848"}, "bands": bands,
        "segmentation": {"path": "seg.fits"}, "catalog": {"path": "catalog.csv"}}))
    store = str(out / "decals.zarr")
    galclust.ingest(str(out / "survey.toml"), store, tile=128)
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(f"\nPSF sigma {psf['psf_sigma']:.3f} px, stellar locus psf-aperture "
              f"{psf['locus']:+.3f} mag")
        print(src.round(3).to_string(index=False))
    return store, labels, src, psf


@pytest.fixture(scope="module")
def stamps(field):
    """The labelled sources' cutouts from the cube, and their labels."""
    store, labels, _, _ = field
    table = pd.read_csv(labels)
    x, coverage, _ = labelled_cutouts(galclust.open_cube(store), open_catalog(store),
                                      table["id"], size=SIZE)
    assert (coverage > 0.99).all()  # labelled sources sit inside the image
    return x, table["star"].to_numpy(), table["id"].to_numpy()


def _dihedral(x: np.ndarray) -> np.ndarray:
    """The 8 rotations and flips of every cutout (the CNN's own augmentation group)."""
    rots = [np.rot90(x, k, axes=(2, 3)) for k in range(4)]
    return np.ascontiguousarray(np.concatenate(rots + [r[..., ::-1] for r in rots]))


def test_the_labelled_set_is_a_defensible_star_galaxy_split(field):
    _, labels, src, psf = field
    assert 40 <= len(src) <= 60  # ~50 sources above 4 sigma
    # a DECaLS PSF: FWHM 1.0-1.6 arcsec at 0.262 arcsec/px
    assert 1.0 / 0.262 < 2.3548 * psf["psf_sigma"] < 1.6 / 0.262
    assert psf["n_psf"] == N_PSF and abs(psf["locus"]) < 0.1
    table = pd.read_csv(labels)
    counts = table["star"].value_counts()
    assert set(counts.index) == {0, 1} and counts.min() >= 10  # trainable on every label
    lab = src.set_index("id").loc[table["id"]]
    stars, galaxies = lab[table["star"].to_numpy() == 1], lab[table["star"].to_numpy() == 0]
    # point sources are PSF-sized; the extended are bigger (sizes measured apart from dm)
    assert stars["size"].max() < 1.2 * psf["psf_sigma"]
    assert galaxies["size"].median() > 1.2 * psf["psf_sigma"]
    # the field's big galaxy is one of the galaxies, far brighter than any point source
    assert galaxies["f_ap"].max() > 10 * stars["f_ap"].max()


def test_classify_command_on_real_pixels_publishes_a_reloadable_model(field, stamps, capsys,
                                                                      monkeypatch):
    # train on one thread: the estimator follows OMP_NUM_THREADS (two OpenMP threads on a
    # busy two-core machine make this 0.1 s fit ~30 s)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store, labels, src, _ = field
    argv = ["classify", "--store", store, "--labels", labels, "--column", "star",
            "--model", "features", "--size", str(SIZE), "--test-fraction", "0",
            "--seed", str(SEED), "-q"]
    x, y, ids = stamps
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "model features (asked for)" in out and f"trained on {len(y)}, tested on 0" in out
    res = galclust.open_results(store.replace(".zarr", "-results"))
    table = res.table("classify/star")
    catalog = open_catalog(store)
    assert len(table) == len(catalog) == len(src)  # every source classified, once
    assert set(table["id"]) == set(catalog["id"])
    assert set(table["class"]) <= {"0", "1"} and table["model"].nunique() == 1
    assert np.allclose(table["p_0"] + table["p_1"], 1.0)
    mine = table.set_index("id").loc[ids]
    assert (mine["split"] == "train").all() and (mine["label"] == y.astype(str)).all()
    assert table.set_index("id").drop(index=ids)["label"].isna().all()
    # the stored model reproduces the published probabilities of the labelled sources ...
    model = SourceClassifier.from_bytes(res.file("classify/star/model", "model.pkl"))
    assert model.model_ == "features" and model.cutout_shape_ == (3, SIZE, SIZE)
    assert list(model.classes_) == ["0", "1"]
    p = model.predict_proba(x)
    np.testing.assert_allclose(p[:, 1], mine["p_1"].to_numpy(), atol=1e-6)
    # ... and is the model the estimator fits on those cutouts and labels with that seed
    again = SourceClassifier(model="features", random_state=SEED, threads=1).fit(
        x, y.astype(str))
    np.testing.assert_allclose(again.predict_proba(x), p, atol=1e-12)
    # the same seed and labels again: the stored run is reused
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["classify", "reuse"] for line in out.splitlines()), out


def test_feature_model_is_deterministic_for_a_seed(stamps):
    x, y, _ = stamps
    kw = dict(model="features", random_state=SEED, threads=1)
    p1 = SourceClassifier(**kw).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(SourceClassifier(**kw).fit(x, y).predict_proba(x), p1)
    # on the 8 rotations and flips of the same cutouts (200 stamps) the boosting has enough
    # examples to split, so its output varies from source to source: still reproducible
    xd, yd = _dihedral(x), np.tile(y, 8)
    first = SourceClassifier(**kw).fit(xd, yd)
    q1 = first.predict_proba(x)
    assert np.ptp(q1[:, 1]) > 0.2
    np.testing.assert_array_equal(SourceClassifier(**kw).fit(xd, yd).predict_proba(x), q1)
    np.testing.assert_array_equal(SourceClassifier.from_bytes(first.to_bytes()).predict_proba(x),
                                  q1)


def test_feature_model_cross_validates_above_chance(stamps):
    from galclust.classify.features import cutout_features
    from galclust.evaluation.classify import colour_regions, evaluate

    x, y, _ = stamps
    f = cutout_features(x)  # colour regions (g - r against r) as the stage's evaluation has them
    regions, _ = colour_regions(f["mag_tot_0"] - f["mag_tot_1"], f["mag_tot_1"])
    scores = []
    for repeat in range(CV_REPEATS):  # stratified 5-fold: each source predicted unseen
        proba = np.zeros((len(y), 2))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=repeat)
        for train, test in folds.split(x, y):
            model = SourceClassifier(model="features", random_state=SEED, threads=1,
                                     min_examples=5).fit(x[train], y[train])
            proba[test] = model.predict_proba(x[test])
        report = evaluate(y, proba.argmax(axis=1), proba, classes=[0, 1], regions=regions,
                          positive=1)
        if repeat == 0:
            print("\n" + report.to_text())
        scores.append((report.summary["balanced_accuracy"], report.summary["brier"]))
    balanced, brier = np.mean(scores, axis=0)
    # chance is 0.5 (sd ~0.1 on 12 + 13 sources); the class prior scores a Brier of 0.25
    assert balanced >= 0.7
    assert brier < 0.22


def test_cnn_trains_on_real_cutouts_reproducibly_and_round_trips(stamps):
    x, y, _ = stamps
    # the cutouts and their mirror images: the training part spans two batches (see below)
    xm, ym = np.concatenate([x, x[..., ::-1]]), np.tile(y, 2)
    kw = dict(model="cnn", random_state=SEED, epochs=8, input_size=24, threads=1)
    first = SourceClassifier(**kw).fit(xm, ym)
    p = first.predict_proba(x)
    assert p.shape == (len(y), 2) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(SourceClassifier(**kw).fit(xm, ym).predict_proba(x), p)
    back = SourceClassifier.from_bytes(first.to_bytes())
    assert back.model_ == "cnn" and 1 <= len(back.cnn_.history) <= 8
    np.testing.assert_array_equal(back.predict_proba(x), p)


def test_cnn_trains_on_the_25_labelled_cutouts(stamps):
    x, y, _ = stamps
    clf = SourceClassifier(model="cnn", random_state=SEED, epochs=8, input_size=24,
                           threads=1).fit(x, y)  # one batch per epoch: 20 train, 5 validate
    assert len(clf.cnn_.history) >= 1 and np.isfinite(clf.predict_proba(x)).all()
