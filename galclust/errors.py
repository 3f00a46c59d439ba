"""Exceptions and warnings raised by galclust.

Every error says *what* is wrong (the file, field or argument) and *how to fix
it*. They subclass the built-in exception a user would expect (``ValueError``
for bad values, ``FileNotFoundError`` for missing files) so that generic
handlers keep working.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = [
    "GalclustError",
    "GalclustWarning",
    "InputError",
    "LabelConflictWarning",
    "ManifestError",
    "MissingInputError",
    "RunFailedError",
    "StoreError",
    "did_you_mean",
    "is_real",
]


class GalclustError(Exception):
    """Base class of every error galclust raises on purpose."""


class InputError(GalclustError, ValueError):
    """An input file, array or argument is malformed."""


class ManifestError(InputError):
    """The survey manifest is malformed (unknown key, missing field, bad value)."""


class MissingInputError(GalclustError, FileNotFoundError):
    """An input file named by the manifest or the caller does not exist."""


class StoreError(GalclustError, OSError):
    """A store URL cannot be used: missing bucket, refused credentials, no run."""


class RunFailedError(GalclustError):
    """A run selected nothing, or every galaxy in it failed: it was kept for
    inspection and not published as the latest run."""


class GalclustWarning(UserWarning):
    """A condition the user should know about but that does not stop the run."""


class LabelConflictWarning(GalclustWarning):
    """The spurious model contradicts the inspection labels it was calibrated on (a
    source labelled reliable is flagged, or one labelled spurious is not): check the
    labels or use more of them."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest valid name, or ``""``.

    Parameters
    ----------
    name : str
        The name the user gave.
    valid : iterable of str
        The accepted names.

    Returns
    -------
    str
        A sentence to append to an error message (empty when nothing is close).
    """
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def is_real(value: Any) -> bool:
    """True for a finite real number, Python or NumPy (not a bool, a string or NaN).

    Parameters
    ----------
    value : object
        The value given for a numeric argument.

    Returns
    -------
    bool
        Whether it can be used as a finite number as it is.
    """
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def check_choice(argument: str, value: str, valid: Iterable[str]) -> str:
    """Raise :class:`InputError` unless ``value`` is one of ``valid``.

    Parameters
    ----------
    argument : str
        The argument's name, used in the message.
    value : str
        The value given.
    valid : iterable of str
        The accepted values.

    Returns
    -------
    str
        ``value`` unchanged.
    """
    valid = list(valid)
    if value not in valid:
        raise InputError(
            f"{argument}={value!r} is not one of {', '.join(map(repr, valid))}."
            + did_you_mean(str(value), valid)
        )
    return value
