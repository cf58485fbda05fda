"""A simulated disk with crash semantics: writes are volatile until synced.

The driver writes a step's records and syncs them BEFORE sending that step's messages. A crash
throws away whatever was written but not synced, which is what a real machine does to a page
cache. The `unsynced_replies` fault makes the driver send first and sync at the next tick, the
classic "acknowledged before fsync" bug, so the checkers can be seen to catch it.
"""

from __future__ import annotations

from typing import Any


class MemoryDisk:
    """Durable records of one simulated node."""

    def __init__(self) -> None:
        self.synced: list[Any] = []
        self.pending: list[Any] = []
        self.fsyncs = 0

    def write(self, records: list[Any]) -> None:
        self.pending.extend(records)

    def sync(self) -> None:
        if self.pending:
            self.synced.extend(self.pending)
            self.pending.clear()
            self.fsyncs += 1

    def crash(self) -> int:
        """Lose unsynced writes; return how many were lost."""
        lost = len(self.pending)
        self.pending.clear()
        return lost

    def read(self) -> list[Any]:
        return list(self.synced)
