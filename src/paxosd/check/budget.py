"""Time and memory budgets for the linearizability search.

A search that cannot decide must stop with "unknown", not take the machine down with it.
Two budgets bound it:

- **time**: a `time.monotonic` deadline, looked at every few thousand search steps;
- **memory**: bytes the searches' data may hold. Each search counts what it adds to its
  cache (an estimate from `sys.getsizeof` of the keys and states it stores, plus the
  table slots), so the limit holds whatever the allocator does; as a backstop, the
  process's resident memory is read now and then, and growth past the limit counts too.

Both are shared by every search in one process. With ``--jobs N`` each worker process
gets ``1/N`` of the memory budget.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

DEFAULT_MEMORY_FRACTION = 0.25
"""The default memory budget is this share of the machine's physical memory."""

FALLBACK_MEMORY_LIMIT_BYTES = 2 * 1024**3
"""Used when the machine's memory cannot be read."""

FLUSH_BYTES_MAX = 1024 * 1024
"""A search looks at the memory budget at least every time it has added this much."""

RSS_CHECK_EVERY_S = 0.05
"""How often resident memory is read (reading /proc costs some microseconds)."""


def physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit_bytes() -> int:
    total = physical_memory_bytes()
    if total is None:
        return FALLBACK_MEMORY_LIMIT_BYTES
    return int(total * DEFAULT_MEMORY_FRACTION)


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(slots=True)
class Budget:
    """The budgets of one process's searches.

    ``used_bytes`` is the sum of every live search's estimate; searches add to it as they
    grow and give back what they held when they end.
    """

    deadline: float | None = None
    memory_limit_bytes: int | None = None
    used_bytes: int = 0
    rss_start: int | None = None
    rss_checked_at: float = 0.0
    rss_over: bool = False
    flush_bytes: int = FLUSH_BYTES_MAX

    def __post_init__(self) -> None:
        if self.memory_limit_bytes is not None:
            self.rss_start = rss_bytes()
            # A search looks at the budget at least every 1/16th of it.
            self.flush_bytes = max(1, min(FLUSH_BYTES_MAX, self.memory_limit_bytes // 16))

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def out_of_memory(self) -> bool:
        limit = self.memory_limit_bytes
        if limit is None:
            return False
        if self.used_bytes + self.flush_bytes > limit:  # keep room for what one stretch adds
            return True
        if self.rss_start is not None:
            now = time.monotonic()
            if now - self.rss_checked_at >= RSS_CHECK_EVERY_S:
                self.rss_checked_at = now
                rss = rss_bytes()
                self.rss_over = rss is not None and rss - self.rss_start > limit
        return self.rss_over


def parse_size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"64k"``, ``"1.5GB"`` or plain bytes; ValueError otherwise."""
    units = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number = cleaned.rstrip("KMGT")
    unit = cleaned[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (say 500M, 2G or a number of bytes)") from None
    if value <= 0 or unit not in units:
        raise ValueError(f"not a size: {text!r} (say 500M, 2G or a number of bytes)")
    return int(value * units[unit])


__all__ = [
    "Budget",
    "default_memory_limit_bytes",
    "parse_size",
    "physical_memory_bytes",
    "rss_bytes",
]
