"""Names for proposed values. The book says red and blue; the lab allows more."""

from __future__ import annotations

COLOURS = ("red", "blue", "green", "amber", "violet", "cyan", "white", "black")


def values(count: int) -> list[str]:
    """The first `count` value names; past the colours, numbered ones."""
    assert count >= 1
    named = list(COLOURS[:count])
    return named + [f"v{i}" for i in range(len(named) + 1, count + 1)]
