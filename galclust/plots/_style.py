"""The shared look of galclust's pictures: cluster colours, the noise hatch, text halos."""

from __future__ import annotations

from typing import Any

__all__ = ["NOISE_COLOUR", "NOISE_HATCH", "NOISE_LABEL", "cluster_colours", "halo", "wrap_title"]

#: Selected pixels that no cluster took (DBSCAN/HDBSCAN noise): hatched in this grey.
NOISE_COLOUR = (0.78, 0.78, 0.78, 1.0)
NOISE_HATCH = "xxxx"
NOISE_LABEL = "noise (unclustered)"


def cluster_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct RGBA colours (tab10, then tab20) for clusters 0..n−1."""
    from matplotlib import colormaps

    base = colormaps["tab10"].colors if n <= 10 else colormaps["tab20"].colors
    return [(*base[i % len(base)][:3], 1.0) for i in range(n)]


def halo(width: float = 2.5, colour: str = "black") -> list[Any]:
    """Path effect drawing a dark outline under a line or text (legible on any image)."""
    from matplotlib.patheffects import withStroke

    return [withStroke(linewidth=width, foreground=colour)]


def wrap_title(title: str, width: int = 60) -> str:
    """Break a ``" — "``-separated title into lines of at most ``width`` characters."""
    lines: list[str] = []
    for part in title.split(" — "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " — " + part
        else:
            lines.append(part)
    return "\n".join(lines)
