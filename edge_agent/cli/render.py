"""Small pieces of the CLI's plain-text tables, shared by its commands."""

from __future__ import annotations


def age(seconds: float | None) -> str:
    """A duration for a person: ``45 s``, ``12 min``, ``5 h``, ``3 d``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} d"
