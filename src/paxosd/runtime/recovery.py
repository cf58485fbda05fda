"""What a host does with a node's store before its replica runs: bring back the state
machine from the snapshot the store names. The node process and the simulator both call
`recover`, so a restart from a node's own snapshot is the same code in both.

Theory of operation. The store's snapshot record names a snapshot file (storage/snapshots.py)
by slot, size and checksum. `recover` restores the state machine from that file, checking it
against the record as it reads; a missing or damaged file is `DamagedSnapshot`, a
`CorruptLog`: the node refuses to vote with it and stays up as damaged, as for a damaged log,
because a replica whose state does not match its log would apply the next slots to the wrong
state. A store written before snapshot files holds the snapshot's bytes in its record
(`InlineSnapshot`): the state is restored from them, written out as a snapshot file, and a
`Snapshot` record naming it is made durable before the replica starts, so the log never
carries those bytes again. Finally every snapshot file no record names (a write or a
transfer a crash interrupted, an older snapshot not yet removed) is removed.

Cost: restoring reads the whole snapshot once (docs/storage.md gives times by state size).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from paxosd.core.multi.records import InlineSnapshot
from paxosd.storage.errors import CorruptLog
from paxosd.storage.snapshots import DamagedSnapshot
from paxosd.storage.state import LogStore, Recovered

M = TypeVar("M")


def recover(
    store: LogStore,
    recovered: Recovered,
    restore: Callable[[BinaryIO], M],
    fresh: Callable[[], M],
) -> tuple[M, Recovered]:
    """The state machine the store's snapshot holds (or `fresh()` without one), and the
    store's state to start the replica from. `DamagedSnapshot` if the snapshot is missing or
    not what its record says."""
    files = store.snapshots
    snapshot = recovered.snapshot
    if snapshot is None:
        files.keep_only(None)
        return fresh(), recovered
    if isinstance(snapshot, InlineSnapshot):
        machine = _restore(restore, io.BytesIO(snapshot.data), snapshot.slot, "inline snapshot")
        data = snapshot.data
        record = files.save(snapshot.slot, lambda out: _write_all(out, data))
        store.write([record])
        store.sync()
        files.keep_only(record.slot)
        return machine, store.load()
    with files.open(snapshot) as reader:
        machine = _restore(restore, reader, snapshot.slot, reader.where)
        reader.verify()
    files.keep_only(snapshot.slot)
    return machine, recovered


def _restore(restore: Callable[[BinaryIO], M], inp: BinaryIO, slot: int, where: str) -> M:
    try:
        return restore(inp)
    except CorruptLog:
        raise
    except Exception as error:  # the state machine's own checks (a damaged body)
        raise DamagedSnapshot(slot, f"does not restore: {error}", where) from error


def _write_all(out: BinaryIO, data: bytes) -> None:
    out.write(data)
