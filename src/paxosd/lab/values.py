"""Names for proposed values. The book says red and blue; the lab allows more."""

from __future__ import annotations

from collections.abc import Sequence

COLOURS = ("red", "blue", "green", "amber", "violet", "cyan", "white", "black")


def values(count: int, names: Sequence[str] = COLOURS) -> list[str]:
    """The first `count` value names (colours, unless a story names its own: the users who
    sign up in the replication story); past those, numbered ones."""
    assert count >= 1
    named = list(names[:count])
    return named + [f"v{i}" for i in range(len(named) + 1, count + 1)]
