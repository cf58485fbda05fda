"""One driver per backend, so the conformance suite runs the same scenarios on all three.

Each harness opens a store in its own place (a directory, or a memory image), reopens it after
a clean close, crashes it (unsynced writes are lost, except possibly a prefix of them, which
for the log formats may end in a torn frame) and damages it in the middle.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import strategies as st

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import (
    Accepted,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
)
from paxosd.core.types import Ballot
from paxosd.storage import CompactionPolicy, FileLog, MemoryLog, Recovered, SqliteLog
from paxosd.storage.codec import encode_frame

IDENTITY = b"cluster-test/node-1"
OTHER_IDENTITY = b"cluster-test/node-2"

Store = Any  # FileLog | SqliteLog | MemoryLog; the tests use the LogStore methods and extras


def state(recovered: Recovered) -> tuple[object, ...]:
    """The state in a `Recovered`, without the repair report."""
    return (
        recovered.promised,
        recovered.accepted,
        recovered.rebuilding,
        recovered.snapshot,
        recovered.configuration,
    )


class Harness:
    name = ""

    def __init__(self, root: Path, fsync: bool = True, policy: CompactionPolicy | None = None):
        self.root = root
        self.fsync = fsync
        self.policy = policy
        self.unsynced: list[Record] = []

    def open(self, identity: bytes = IDENTITY) -> Store:
        raise NotImplementedError

    def create(self, initial: Sequence[Record]) -> Store:
        """A NEW store holding `initial` from its first appearance."""
        raise NotImplementedError

    def reopen(self, store: Store, identity: bytes = IDENTITY) -> Store:
        store.close()
        self.unsynced.clear()
        return self.open(identity)

    def write(self, store: Store, records: Sequence[Record]) -> None:
        store.write(records)
        self.unsynced.extend(records)

    def sync(self, store: Store) -> None:
        store.sync()
        self.unsynced.clear()

    def crash(self, store: Store, rng: random.Random | None = None) -> Store:
        """Crash (losing unsynced writes, maybe keeping a prefix) and reopen."""
        raise NotImplementedError

    def corrupt_middle(self, store: Store) -> Store | None:
        """Close the store and damage a record that has valid data after it; return the store to
        reopen if the backend checks lazily (None: the next `open` must raise)."""
        raise NotImplementedError


class FileHarness(Harness):
    name = "file"

    def open(self, identity: bytes = IDENTITY) -> Store:
        return FileLog(self.root, identity, fsync=self.fsync, policy=self.policy)

    def create(self, initial: Sequence[Record]) -> Store:
        return FileLog(self.root, IDENTITY, fsync=self.fsync, policy=self.policy, initial=initial)

    @property
    def log_path(self) -> Path:
        return self.root / "paxos.log"

    def crash(self, store: Store, rng: random.Random | None = None) -> Store:
        # The unsynced records' frames are exactly what a sync would have appended; a crash
        # leaves some prefix of them in the file (possibly nothing, possibly a partial frame).
        tail = b"".join(encode_frame(record) for record in self.unsynced)
        store.abandon()
        self.unsynced.clear()
        if tail and rng is not None:
            cut = rng.randrange(len(tail) + 1)
            zeros = rng.choice((0, 0, 7, 100))  # a zero-filled extent beyond the written bytes
            with open(self.log_path, "ab") as file:
                file.write(tail[:cut] + bytes(zeros))
        return self.open()

    def corrupt_middle(self, store: Store) -> Store | None:
        store.close()
        data = bytearray(self.log_path.read_bytes())
        header = len(data) - _frames_length(data)
        data[header + 12] ^= 0x55  # inside the first frame's payload
        self.log_path.write_bytes(bytes(data))
        return None


def _frames_length(data: bytearray) -> int:
    from paxosd.storage.codec import decode_header

    _identity, header = decode_header(data)
    return len(data) - header


class SqliteHarness(Harness):
    name = "sqlite"

    def open(self, identity: bytes = IDENTITY) -> Store:
        return SqliteLog(self.root, identity, fsync=self.fsync)

    def create(self, initial: Sequence[Record]) -> Store:
        return SqliteLog(self.root, IDENTITY, fsync=self.fsync, initial=initial)

    def crash(self, store: Store, rng: random.Random | None = None) -> Store:
        store.abandon()  # the pending delta never reached SQLite
        self.unsynced.clear()
        return self.open()

    def corrupt_middle(self, store: Store) -> Store | None:
        store.close()
        db = sqlite3.connect(self.root / "paxos.sqlite")
        slot, batch = db.execute("SELECT slot, batch FROM log ORDER BY slot LIMIT 1").fetchone()
        damaged = bytearray(batch)
        damaged[-1] ^= 0x55
        db.execute("UPDATE log SET batch = ? WHERE slot = ?", (bytes(damaged), slot))
        db.commit()
        db.close()
        return None


class MemoryHarness(Harness):
    name = "memory"

    def open(self, identity: bytes = IDENTITY) -> Store:
        image = getattr(self, "_image", None)
        return MemoryLog(identity, image=image, policy=self.policy)

    def create(self, initial: Sequence[Record]) -> Store:
        return MemoryLog(IDENTITY, policy=self.policy, initial=initial)

    def reopen(self, store: Store, identity: bytes = IDENTITY) -> Store:
        store.close()
        self._image = store.image()
        self.unsynced.clear()
        return self.open(identity)

    def crash(self, store: Store, rng: random.Random | None = None) -> Store:
        store.crash(tear=rng is not None, rng=rng)
        self.unsynced.clear()
        return store

    def corrupt_middle(self, store: Store) -> Store | None:
        store.sync()
        header = len(store.disk) - _frames_length(store.disk)
        store.corrupt(header + 12)
        return store


HARNESSES: dict[str, type[Harness]] = {
    "file": FileHarness,
    "sqlite": SqliteHarness,
    "memory": MemoryHarness,
}


def restart(harness: Harness, store: Store | None) -> Store:
    """Open again after `corrupt_middle` (the memory store restarts in place)."""
    if store is not None:
        store.restart()
        return store
    return harness.open()


# -- strategies: small pools, so slots collide and snapshots cover entries often ----------------

ballots = st.builds(Ballot, st.integers(0, 3), st.integers(0, 2))
slots = st.integers(0, 8)
batches = st.lists(st.binary(max_size=6), max_size=3).map(tuple)
configurations = st.builds(
    lambda voters, learners, epoch: (
        Configuration.of(voters, set(learners) - set(voters))
        if not epoch
        else Configuration(
            tuple(sorted(set(voters))), tuple(sorted(set(learners) - set(voters))), epoch
        )
    ),
    st.sets(st.integers(1, 7), min_size=1, max_size=5),
    st.sets(st.integers(1, 9), max_size=2),
    st.integers(0, 3),
)
records: st.SearchStrategy[Record] = st.one_of(
    st.builds(Promised, ballots),
    st.builds(Accepted, slots, ballots, batches),
    st.builds(Accepted, slots, ballots, batches),  # twice: the common record
    st.builds(Rebuilding, st.booleans()),
    st.builds(InlineSnapshot, slots, st.binary(max_size=8)),
    st.builds(Snapshot, slots, st.integers(0, 1 << 40), st.binary(min_size=16, max_size=16)),
    st.builds(Configured, configurations),
)


def raw_frame(payload_obj: object) -> bytes:
    """A frame with a correct CRC around an arbitrary msgpack document (for decode tests)."""
    import struct
    import zlib

    payload = msgpack.packb(payload_obj)
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
