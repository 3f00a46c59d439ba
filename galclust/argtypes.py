"""argparse types that check ranges, so no option falls back to a default silently.

``--tile 0``, ``--workers 0`` or ``--snr-min nan`` are refused by argparse with a
one-line message naming the option, before any work starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

__all__ = ["integer_ids", "number", "run_id", "whole"]


def whole(minimum: int, maximum: int | None = None) -> Any:
    """An argparse ``type``: a whole number >= ``minimum`` (and <= ``maximum``); 0 and
    negatives never fall back to a default silently."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum, {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above the maximum, {maximum}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def number(low: float = -float("inf"), high: float = float("inf"), *,
           open_low: bool = False) -> Any:
    """An argparse ``type``: a finite number in [``low``, ``high``] (``(low`` if open_low)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        below = value <= low if open_low else value < low
        if not (value == value and abs(value) != float("inf")) or below or value > high:
            span = f"{'(' if open_low else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number in {span}")
        return value

    parse.__name__ = "number"
    return parse


def run_id(text: str) -> str:
    """An argparse ``type``: ``latest`` or a run id (never a path)."""
    from galclust.store.safety import check_run_id

    if text == "latest":
        return text
    try:
        return check_run_id(text, argument="--run")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def integer_ids(tokens: Iterable[str], *, where: str, hint: str) -> list[int]:
    """Parse id tokens; the first one that is not an integer is named (at most 20
    characters of it: never more of a file's contents), with ``hint``.

    Raises
    ------
    InputError
        ``"{where}: '<token>' is not an integer id; {hint}"``.
    """
    from galclust.errors import InputError

    ids = []
    for tok in tokens:
        try:
            ids.append(int(tok))
        except ValueError:
            shown = tok if len(tok) <= 20 else tok[:17] + "..."
            raise InputError(f"{where}: {shown!r} is not an integer id; {hint}") from None
    return ids
