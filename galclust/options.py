"""Typed options of every stage of a run, declared once, and the command-line flags built
from them.

Each stage has one frozen dataclass (:class:`PixelOptions`, :class:`CatalogOptions`):
every default is declared here and nowhere else, every value is checked on
construction (naming the field and the fix, before any ingest or cluster start),
and a stage's key hashes the options *with defaults filled in*, so the same
settings reach the same key whether they come from ``galclust pixels``,
``galclust nightly``, ``galclust serve``, a run-settings file or Python.

:func:`add_option_arguments` turns a dataclass into argparse flags (``--method``,
``--snr-min``, ...) and :func:`options_from_args` reads them back, so the
``pixels``, ``flag``, ``nightly`` and ``serve`` commands and ``deploy/deploy.py``
offer the same flags with the same help. :func:`load_settings` reads a run-settings
TOML file (``[pixels]``, ``[catalog]``, ``[run]``), which configures a scheduled
service the way the command line does.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import galclust.pixels.options as pixel_defaults
from galclust.argtypes import number, whole
from galclust.catalog import defaults
from galclust.classify import defaults as classify_defaults
from galclust.errors import InputError, did_you_mean
from galclust.option_fields import OPTIONS, stage_options
from galclust.option_fields import check_int as _check_int
from galclust.option_fields import opt as _opt
from galclust.stage_options import (
    DetectOptions,
    EmissionOptions,
    MorphologyOptions,
    StructuresOptions,
)

__all__ = [
    "CatalogOptions",
    "ClassifyOptions",
    "DetectOptions",
    "EmissionOptions",
    "MorphologyOptions",
    "StructuresOptions",
    "PixelOptions",
    "RunSettings",
    "add_option_arguments",
    "load_settings",
    "options_from_args",
]


def _n_clusters(text: str) -> int | str:
    return int(text) if text.isdigit() else text


@stage_options("pixels")
@dataclass(frozen=True)
class PixelOptions:
    """Options of the pixel-SED clustering stage (see :func:`galclust.cluster_galaxy`).

    Raises
    ------
    InputError
        On construction, for an unknown name, an impossible combination or a
        value out of range, naming the field.
    """

    method: str = _opt(pixel_defaults.DEFAULT_METHOD, "--method", "kmeans, gmm, agglomerative, dbscan, hdbscan or "
                       "spectral")
    normalize: str = _opt(pixel_defaults.DEFAULT_NORMALIZE, "--normalize", "none, l2, median_sed, colour or sum")
    metric: str = _opt(pixel_defaults.DEFAULT_METRIC, "--metric", "euclidean, xcorr, wavelength or chi2")
    n_clusters: int | str = _opt("auto", "--n-clusters", "auto (chi2 test of each added "
                                 "cluster; BIC for gmm), snr:TARGET, or an integer",
                                 type=_n_clusters)
    snr_threshold: float = _opt(pixel_defaults.DEFAULT_SNR_THRESHOLD, "--snr-min", "minimum median S/N of a pixel across "
                                "bands", type=number(0))
    min_pixels: int = _opt(pixel_defaults.DEFAULT_MIN_PIXELS, "--min-pixels", "fewest selected pixels to cluster a galaxy",
                           type=whole(1))
    random_state: int = _opt(0, "--seed", "random seed", type=whole(0))
    unmix: str = _opt("off", "--unmix", "spectral unmixing into fraction maps and component "
                      "SEDs, whose number of components becomes the clusters' k: off, on "
                      "(k by the bootstrap-null chi2 test, pixel by pixel and on the stamp "
                      "smoothed by 1 and 2 px), pixel (that test pixel by pixel only, 2-2.7x "
                      "faster), aic, bic or hysime; ~20-100x the CPU per galaxy",
                      metavar="{off,on,pixel,aic,bic,hysime}")
    bin_snr: float = _opt(0.0, "--bin-snr", "Voronoi-bin footprint pixels below --snr-min to "
                          "this S/N and cluster the bins (0: off)", type=number(0),
                          metavar="SNR")
    sky_errors: str = _opt("on", "--sky-errors", "rescale each band's errors from the empty "
                           "sky around every galaxy before any chi2 test: on or off",
                           metavar="{on,off}")

    def __post_init__(self) -> None:
        from galclust.pixels.options import check_options, check_selection_numbers

        check_options(method=self.method, normalize=self.normalize, metric=self.metric,
                      n_clusters=self.n_clusters)
        check_selection_numbers(snr_threshold=self.snr_threshold, min_pixels=self.min_pixels)
        _check_int("random_state", self.random_state, 0)
        unmix = ("off", "on", "null", "pixel", "aic", "bic", "hysime")
        if self.unmix not in unmix:
            raise InputError(f"pixels option unmix={self.unmix!r} must be one of "
                             f"{', '.join(unmix)}." + did_you_mean(str(self.unmix), unmix))
        if self.sky_errors not in ("on", "off"):
            raise InputError(f"pixels option sky_errors={self.sky_errors!r} must be on or off.")
        if not isinstance(self.bin_snr, int | float) or isinstance(self.bin_snr, bool) or not (
                self.bin_snr == 0 or self.bin_snr > self.snr_threshold):
            raise InputError(f"pixels option bin_snr={self.bin_snr!r} must be 0 (off) or a "
                             f"number above snr_threshold={self.snr_threshold}.")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`galclust.pixels.survey.run_pixels`."""
        out = dataclasses.asdict(self)
        unmix = out.pop("unmix")
        out["unmix"] = False if unmix == "off" else ("null" if unmix == "on" else unmix)
        out["bin_snr"] = float(out["bin_snr"]) or None
        out["rescale_errors"] = out.pop("sky_errors") == "on"
        return out


@stage_options("catalog")
@dataclass(frozen=True)
class CatalogOptions:
    """Options of the catalog stage: cutouts, embedding and spurious flags.

    Raises
    ------
    InputError
        On construction, for an unknown name or a value out of range.
    """

    embedding: str = _opt(defaults.EMBEDDING, "--embedding",
                          "non-linear embedding on the PCA components: none, tsne or umap")
    model: str = _opt(defaults.METHOD, "--model", "mixture, classifier or combined")
    threshold: float = _opt(defaults.THRESHOLD, "--threshold",
                            "flag mixture components whose labelled spurious fraction "
                            "exceeds this", type=number(0, 1, open_low=True))
    size: int = _opt(defaults.CUTOUT_SIZE, "--size", "cutout side in pixels, odd", type=whole(3))
    random_state: int = _opt(0, "--seed", "random seed", type=whole(0))

    def __post_init__(self) -> None:
        from galclust.catalog.pipeline import FlagOptions

        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 3 \
                or self.size % 2 == 0:
            raise InputError(f"size={self.size!r} must be an odd number of pixels >= 3 "
                             "(e.g. 51).")
        _check_int("random_state", self.random_state, 0)
        FlagOptions(method=self.model, embedding=self.embedding, threshold=self.threshold)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`galclust.catalog.survey.run_catalog`."""
        return {"embedding": self.embedding, "method": self.model,
                "threshold": self.threshold, "size": self.size,
                "random_state": self.random_state}


@stage_options("classify")
@dataclass(frozen=True)
class ClassifyOptions:
    """Options of the classification stage (see :class:`galclust.SourceClassifier`).

    The stage runs when ``labels`` names a table of labelled sources; without
    it the stage is skipped, saying so.

    Raises
    ------
    InputError
        On construction, for an unknown model, a label table without a column,
        or a value out of range.
    """

    labels: str | None = _opt(None, "--class-labels", "table (CSV/parquet/FITS) of labelled "
                              "sources: an id column and the label column", metavar="FILE",
                              own="--labels")
    column: str | None = _opt(None, "--class-column", "the labels' column holding the class",
                              own="--column")
    name: str | None = _opt(None, "--class-name", "name of the classification's products "
                            "(classify/<name>; default: the column)", own="--name")
    model: str = _opt(classify_defaults.MODEL, "--class-model", "auto (the CNN when torch is "
                      "installed and every class has >= 50 examples), cnn or features",
                      own="--model")
    size: int = _opt(classify_defaults.CUTOUT_SIZE, "--class-size", "cutout side in pixels, "
                     "odd", type=whole(3), own="--size")
    test_fraction: float = _opt(classify_defaults.TEST_FRACTION, "--test-fraction",
                                "fraction of labelled sources held out to evaluate the model "
                                "(0: train on all, no evaluation)", type=number(0, 0.9))
    epochs: int = _opt(classify_defaults.EPOCHS, "--epochs", "most CNN epochs (early stopping "
                       "ends sooner)", type=whole(1))
    features: str = _opt("", "--class-features", "comma-separated catalog columns added to the "
                         "feature model's inputs", metavar="COLS", own="--features")
    random_state: int = _opt(0, "--seed", "random seed", type=whole(0))

    def __post_init__(self) -> None:
        from galclust.errors import check_choice

        check_choice("model", self.model, classify_defaults.MODELS)
        if self.labels is not None and not self.column:
            raise InputError("classify: labels are given without the column holding the class; "
                             "name it (--column / --class-column, or column = ... in "
                             "[classify]).")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 3 \
                or self.size % 2 == 0:
            raise InputError(f"size={self.size!r} must be an odd number of pixels >= 3 "
                             "(e.g. 63).")
        if not 0 <= float(self.test_fraction) < 1:
            raise InputError(f"test_fraction={self.test_fraction!r} must be in [0, 1).")
        _check_int("epochs", self.epochs, 1)
        _check_int("random_state", self.random_state, 0)

    @property
    def product(self) -> str:
        """The classification's name in product paths (``classify/<product>``)."""
        from galclust.classify.labels import product_name

        return product_name(self.name or self.column or "class")

    @property
    def feature_columns(self) -> list[str]:
        return [c.strip() for c in self.features.split(",") if c.strip()]

    def kwargs(self) -> dict[str, Any]:
        """Every option but the labels' path (their content is keyed instead)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "labels"}


def make_options(cls: type, values: Mapping[str, Any] | Any = None, *,
                 where: str = "options") -> Any:
    """Build ``cls`` from a mapping (or return an instance as is), refusing unknown keys.

    Raises
    ------
    InputError
        For a key that is not an option of ``cls`` (with the closest one).
    """
    if isinstance(values, cls):
        return values
    values = dict(values or {})
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise InputError(f"{where}: unknown option {key!r}." + did_you_mean(key, names)
                             + f" Valid options: {', '.join(names)}.")
    if isinstance(values.get("n_clusters"), list):
        values["n_clusters"] = tuple(values["n_clusters"])
    return cls(**values)


# --------------------------------------------------------------------------- command line
def add_option_arguments(parser: argparse.ArgumentParser, cls: type, *,
                         skip: tuple[str, ...] = (), own: bool = False) -> None:
    """Add one flag per field of ``cls`` (its metadata gives flag, help and type).

    Flags default to None (not given), so :func:`options_from_args` can tell a
    value the user typed from a default, and the help shows the real default.
    With ``own``, a field's short flag (``--labels``) is used where it has one: the
    stage's own command.
    """
    stage = next((k for k, v in OPTIONS.items() if v is cls), cls.__name__)
    group = parser.add_argument_group(f"{stage} stage options ({cls.__name__}; also settable "
                                      f"in the --settings file's [{stage}] table)")
    for f in dataclasses.fields(cls):
        meta = f.metadata
        flag = (own and meta.get("own")) or meta.get("flag")
        if not meta.get("cli", False) or f.name in skip or \
                any(flag == a for act in parser._actions for a in act.option_strings):
            continue
        group.add_argument(flag, dest=f"{cls.__name__}.{f.name}", default=None,
                           type=meta.get("type") or str,
                           metavar=meta.get("metavar") or f.name.upper(),
                           help=f"{meta['help']} (default: {f.default})")


def options_from_args(cls: type, args: argparse.Namespace,
                      base: Mapping[str, Any] | None = None) -> Any:
    """Build ``cls`` from the flags the user gave, over ``base`` (e.g. a settings file)."""
    values = dict(base or {})
    for f in dataclasses.fields(cls):
        dest = f"{cls.__name__}.{f.name}"
        if hasattr(args, dest):
            value = getattr(args, dest)
        else:  # the same flag added for another stage first (e.g. --seed): shared
            value = None
            for other in OPTIONS.values():
                twin = {g.name: g for g in dataclasses.fields(other)}.get(f.name)
                if value is None and twin is not None and \
                        twin.metadata.get("flag") == f.metadata.get("flag"):
                    value = getattr(args, f"{other.__name__}.{f.name}", None)
        if value is not None:
            values[f.name] = value
    return make_options(cls, values, where=f"{cls.__name__}")


# --------------------------------------------------------------------------- settings file
class RunSettings:
    """What a run does: every stage's options, and the stages to skip.

    ``RunSettings(pixels=PixelOptions(...), skip=("catalog",))``; a stage not
    named gets its defaults. Options are reached as attributes
    (``settings.pixels``) or with :meth:`of`.

    Parameters
    ----------
    skip : sequence of str
        Stages not to run (their products are carried from the last run).
    **options
        A stage's options: an instance of its class or a mapping of its fields.

    Raises
    ------
    InputError
        For an unknown stage or option, or a bad value.
    """

    def __init__(self, *, skip: Any = (), **options: Any) -> None:
        for name in [*options, *skip]:
            if name not in OPTIONS:
                raise InputError(f"{name!r} is not a stage; stages: {', '.join(OPTIONS)}."
                                 + did_you_mean(name, OPTIONS))
        self._options = {name: make_options(cls, options.get(name), where=f"[{name}]")
                         for name, cls in OPTIONS.items()}
        self.skip = tuple(skip)

    def of(self, stage: str) -> Any:
        """The options of ``stage``."""
        return self._options[stage]

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("_options", {})
        if name in options:
            return options[name]
        raise AttributeError(name)

    def replace(self, **changes: Any) -> RunSettings:
        """A copy with some stages' options (or ``skip``) replaced."""
        return RunSettings(skip=changes.pop("skip", self.skip),
                           **{**self._options, **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSettings) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"RunSettings({self.to_dict()})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (a Prefect parameter, a TOML file), every default filled in."""
        return {**{k: dataclasses.asdict(v) for k, v in self._options.items()},
                "skip": list(self.skip)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str = "settings"
                  ) -> RunSettings:
        """Build from ``{"<stage>": {...}, ..., "skip": [...]}`` (or ``[run] skip``)."""
        data = dict(data or {})
        known = (*OPTIONS, "skip", "run")
        for key in data:
            if key not in known:
                raise InputError(f"{where}: unknown table [{key}]." + did_you_mean(key, known)
                                 + f" Valid: {', '.join(known)}.")
        run = dict(data.pop("run", None) or {})
        skip = tuple(data.pop("skip", None) or run.pop("skip", ()) or ())
        if run:
            raise InputError(f"{where}: unknown key(s) in [run]: {', '.join(run)}; valid: "
                             "skip.")
        return cls(skip=skip, **{name: make_options(OPTIONS[name], value,
                                                     where=f"{where} [{name}]")
                                 for name, value in data.items()})


def load_settings(path: str | None) -> RunSettings:
    """Read a run-settings TOML file (local or ``s3://``); defaults when ``path`` is None.

    The file holds ``[pixels]`` and ``[catalog]`` tables with the fields of
    :class:`PixelOptions` and :class:`CatalogOptions`, and ``[run]`` with
    ``skip = ["catalog"]`` to leave stages out.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it is not TOML, or names an unknown table or option, or a bad value.
    """
    if path is None:
        return RunSettings()
    from galclust.store.urls import read_bytes  # only store/ opens files

    raw = read_bytes(path, what="run-settings file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc}).") from None
    return RunSettings.from_dict(data, where=path)
