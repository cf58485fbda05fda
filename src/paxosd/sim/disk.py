"""Simulated disks with crash semantics: writes are volatile until synced.

`MemoryDisk` is the teaching cores' disk (sim/world.py); `SimDisk` is the Multi-Paxos engine's
(sim/cluster.py), the file backend's exact format in memory.

The driver writes a step's records and syncs them BEFORE sending that step's messages. A crash
throws away whatever was written but not synced, which is what a real machine does to a page
cache. The `unsynced_replies` fault makes the driver send first and sync at the next tick, the
classic "acknowledged before fsync" bug, so the checkers can be seen to catch it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from paxosd.core.multi.records import Accepted, Rebuilding, Record
from paxosd.storage import MemoryLog
from paxosd.storage.framed import CompactionPolicy


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


class SimDisk(MemoryLog):
    """A simulated node's store: the file backend's format (`MemoryLog`), plus what the
    simulator needs to judge recovery: the highest snapshot slot the node ever made durable.

    The slot comes from the engine's notes (`snapshot_taken` / `snapshot_installed`), not from
    the records written, so a store that kept a wrong slot is seen: after a restart the node
    must stand at least where its last synced snapshot left it.

    It also says whether a restart now would find the node rebuilding (`rebuilding_durable`):
    a rebuild's end is decided in memory first and made durable by the turn's sync, and a
    crash between brings the node back rebuilding."""

    def __init__(self, identity: bytes, policy: CompactionPolicy | None) -> None:
        super().__init__(identity, policy=policy)
        self.snapshot_pending = 0  # noted this turn, durable when the turn's sync completes
        self.snapshot_durable = 0
        self.rebuilding_durable = False
        # Told of every acceptance once it is durable (sim/membership.py's observer), if set
        # (not of those a rebuild adopts from its peers).
        self.on_durable_votes: Callable[[list[Accepted]], None] | None = None
        self._unsynced_votes: list[Accepted] = []

    def write(self, records: Sequence[Record]) -> None:
        rebuilding = self._state.rebuilding
        super().write(records)
        if self.on_durable_votes is None:
            return
        for record in records:
            # The acceptances a rebuilding store adopts from its peers' reports are copies of
            # their votes, not votes of its own: it votes again only once its rebuild ends.
            if type(record) is Rebuilding:
                rebuilding = record.active
            elif type(record) is Accepted and not rebuilding:
                self._unsynced_votes.append(record)

    def snapshot_noted(self, slot: int) -> None:
        self.snapshot_pending = max(self.snapshot_pending, slot)

    def sync(self) -> None:
        super().sync()
        if self.on_durable_votes is not None and self._unsynced_votes:
            self.on_durable_votes(self._unsynced_votes)
            self._unsynced_votes = []
        self.snapshot_durable = max(self.snapshot_durable, self.snapshot_pending)
        self.snapshot_pending = 0
        self.rebuilding_durable = self._state.rebuilding

    def crash(self, tear: bool = False, rng: random.Random | None = None) -> int:
        self.snapshot_pending = 0
        self._unsynced_votes = []
        lost = super().crash(tear, rng)
        self.rebuilding_durable = self._state.rebuilding  # the state reloaded from the disk
        return lost
