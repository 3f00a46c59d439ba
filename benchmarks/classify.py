"""Benchmark: supervised classification of cutouts — CNN against the feature model and PCA+LR.

Run: ``python benchmarks/classify.py [--quick]`` (a script, not a test).

The research's problem at its size: ~460 training cutouts of 3 x 200 x 200 px
(gri), a binary member / non-member label, from :func:`galclust.synth.
make_cluster_field` (``family="default"``, and the held-out family no setting
was chosen on). In the same run, on the same split:

1. **Training time** on 2 cores of ``SourceClassifier(model="cnn")`` (residual
   network on cutouts resampled to 64 px, dihedral augmentation, early
   stopping), ``SourceClassifier(model="features")`` (gradient boosting on
   photometry and morphology measured on the cutouts) and the baseline the
   issue names, PCA + logistic regression on the pixels; held-out accuracy of
   each and of the majority class. Target: CNN training <= 10 min.
2. **Inference** in cutouts per second per core (one thread), CNN (with and
   without the 8-fold test-time augmentation) and feature model. Target:
   >= 200 cutouts/s/core.
3. **Peak memory** (RSS) of each phase, sampled every 50 ms.

``--quick``: 240 training cutouts of 3 x 96 x 96 (a smoke run).
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import psutil


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled)."""

    def __enter__(self) -> PeakRSS:
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.base = self.proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def split(y: np.ndarray, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split with ``n_train`` training examples."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, train_size=n_train, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(te)


def pca_lr(X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> tuple[float, float]:
    """The issue's baseline: PCA + logistic regression on asinh-scaled pixels."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    noise = np.median(np.abs(X[tr] - np.median(X[tr]))) * 1.4826 + 1e-12
    flat = np.arcsinh(X / (3 * noise)).reshape(len(X), -1)
    t0 = time.perf_counter()
    model = make_pipeline(StandardScaler(), PCA(30, random_state=0),
                          LogisticRegression(max_iter=2000)).fit(flat[tr], y[tr])
    return time.perf_counter() - t0, float(model.score(flat[te], y[te]))


def rate(model, X: np.ndarray, seconds: float = 10.0) -> float:
    """Cutouts per second of ``model.predict_proba`` on one thread."""
    n, t0, done = 256, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        model.predict_proba(X[:n])
        done += n
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--family", default="default", choices=("default", "heldout"))
    args = ap.parse_args()
    import torch

    from galclust.classify.estimator import SourceClassifier
    from galclust.synth import make_cluster_field

    n_train, size = (240, 96) if args.quick else (460, 200)
    n_total = int(n_train / 0.75)
    t0 = time.perf_counter()
    field = make_cluster_field(n_total, size=size, family=args.family, random_state=11)
    X, y = field.cutouts, field.table["member"].to_numpy()
    tr, te = split(y, n_train, 0)
    print(f"cluster field ({args.family}): {n_total} cutouts of 3x{size}x{size} made in "
          f"{time.perf_counter() - t0:.1f} s; train {len(tr)}, test {len(te)}; "
          f"members {y.mean():.2f}; {torch.get_num_threads()} torch threads available")
    majority = max(y[te].mean(), 1 - y[te].mean())
    rows = []
    with PeakRSS() as mem:
        sec, acc = pca_lr(X, y, tr, te)
    rows.append(("PCA(30) + logistic regression", sec, acc, mem.mib))
    fitted = {}
    for model in ("features", "cnn"):
        with PeakRSS() as mem:
            clf = SourceClassifier(model=model, random_state=0, threads=2).fit(X[tr], y[tr])
        acc = float(clf.score(X[te], y[te]))
        extra = ""
        if model == "cnn":
            d = clf.describe()
            extra = (f"  ({d['epochs_run']} epochs, best {d['best_epoch']}, "
                     f"{d['n_parameters']:,} parameters, T = {d['temperature']:.2f})")
        rows.append((f"SourceClassifier({model}){extra}", clf.fit_seconds_, acc, mem.mib))
        fitted[model] = clf
    print(f"\ntraining on {len(tr)} cutouts, 2 cores; held-out accuracy on {len(te)}; "
          f"majority class {majority:.3f}")
    print(f"{'model':70s} {'fit s':>8s} {'accuracy':>9s} {'peak MiB':>9s}")
    for name, sec, acc, mib in rows:
        print(f"{name:70s} {sec:8.1f} {acc:9.3f} {mib:9.0f}")
    print(f"CNN / feature-model training time: {rows[2][1] / rows[1][1]:.1f}x; "
          f"CNN accuracy - PCA+LR: {rows[2][2] - rows[0][2]:+.3f}")
    from galclust.classify_stage import evaluate_split

    for name, clf in fitted.items():  # the research's tables, on the held-out cutouts
        report = evaluate_split(clf, X[te], y[te], reference=X)
        print(f"\n--- {name} model, held-out {len(te)} cutouts (member = 1) ---")
        print(report.to_text())

    print("\ninference on one core (cutouts per second; 256 per call)")
    sample = X[te][: min(len(te), 256)]
    sample = np.concatenate([sample] * (256 // len(sample) + 1))[:256]
    for name, clf, tta in (("features", fitted["features"], None),
                           ("cnn, 8-fold TTA", fitted["cnn"], True),
                           ("cnn, no TTA", fitted["cnn"], False)):
        clf.set_params(threads=1, tta=bool(tta))
        with PeakRSS() as mem:
            r = rate(clf, sample, seconds=5 if args.quick else 10)
        print(f"  {name:20s} {r:8.0f} cutouts/s/core   peak {mem.mib:6.0f} MiB")


if __name__ == "__main__":
    main()
