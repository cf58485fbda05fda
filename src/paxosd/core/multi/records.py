"""What a Multi-Paxos node persists. Storage backends store these and give them back.

Only acceptor state and the log (with its snapshot) are durable; everything else is rebuilt on
restart. Each record replaces what an older record of the same kind said:

- `Promised(ballot)`: the highest ballot this acceptor promised; later ones supersede it.
- `Accepted(slot, ballot, batch)`: the value this acceptor accepted for `slot`, in `ballot`;
  a later record for the same slot supersedes it.
- `Rebuilding(active)`: `active=True` says this node lost its durable state and is
  rebuilding it from its peers, so it must not vote (see replica.py, "Amnesia"); a later
  `Rebuilding(active=False)` says the rebuild is complete and durable.
- `Snapshot(slot, size_bytes, checksum)`: the state machine after applying every slot up to
  `slot` is in the snapshot file of that slot (storage/snapshots.py), `size_bytes` long, with
  that checksum (BLAKE2b, 16 bytes, of the whole file). It supersedes every `Accepted` record
  for slots up to `slot` and every older snapshot. It is written only once the file is
  durable, so a store never names a snapshot it does not have (core/multi/snapshots.py).
- `InlineSnapshot(slot, data)`: the same, carrying the state's bytes itself, as stores
  written before snapshot files did. Still read; a node that starts on one moves its bytes to
  a snapshot file and records a `Snapshot` before it runs (runtime/recovery.py).
- `Configured(configuration)`: the membership this store belongs to (who votes, who learns,
  in which epoch). A store is created holding one (`paxosd init`, `paxosd up`,
  `--reinitialize`), so a node can refuse a config file that names other members than the
  ones it voted with; later ones come only from the log (a configuration of a higher epoch).
  The one of the highest epoch wins, the latest written among equals.

A backend must give back, after a crash at any instant, everything that was synced, possibly
plus some records written but not yet synced, and never a damaged record as if it were whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxosd.core.multi.configuration import Configuration
from paxosd.core.types import Ballot

Batch = tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Promised:
    ballot: Ballot


@dataclass(frozen=True, slots=True)
class Accepted:
    slot: int
    ballot: Ballot
    batch: Batch


@dataclass(frozen=True, slots=True)
class Rebuilding:
    active: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    slot: int
    size_bytes: int
    checksum: bytes


@dataclass(frozen=True, slots=True)
class InlineSnapshot:
    slot: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Configured:
    configuration: Configuration


Record = Promised | Accepted | Rebuilding | Snapshot | InlineSnapshot | Configured
# Either kind of snapshot record: the one of the highest slot is the store's snapshot.
SnapshotRecord = Snapshot | InlineSnapshot
