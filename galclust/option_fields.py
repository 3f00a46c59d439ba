"""What every stage's options class is made of: fields that carry their command-line flag
and help, the registry of the stages' options classes, and the checks they share.

Kept apart from :mod:`galclust.options` so the options of a stage can be declared
in their own module (:mod:`galclust.stage_options`) and still be registered
before any :class:`~galclust.options.RunSettings` is made.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from galclust.errors import InputError

__all__ = ["OPTIONS", "check_int", "opt", "stage_options"]


def opt(default: Any, flag: str, help: str, *, type: Any = None, metavar: str | None = None,
         cli: bool = True, own: str | None = None) -> Any:
    """A dataclass field with its command-line flag, help text and argparse type.

    ``own`` is a shorter flag used by the stage's own command (``galclust classify
    --labels``) where ``flag`` would be ambiguous among every stage's flags
    (``galclust nightly --class-labels``).
    """
    return field(default=default, metadata={"flag": flag, "help": help, "type": type,
                                            "metavar": metavar, "cli": cli, "own": own})


#: Every stage's options class, by stage name, in run order (filled by
#: :func:`stage_options` where each class is defined).
OPTIONS: dict[str, type] = {}


def stage_options(stage: str) -> Any:
    """Class decorator: register an options dataclass as stage ``stage``'s.

    A new stage's module declares its options with it; the command-line flags,
    run-settings files and :class:`RunSettings` pick them up from here.
    """

    def register(cls: type) -> type:
        OPTIONS[stage] = cls
        return cls

    return register


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name}={value!r} must be a whole number >= {minimum}.")
