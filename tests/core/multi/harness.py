"""A hand-driven network of Multi-Paxos replicas for unit tests: nothing moves unless the test
says so, so each test can set up exactly the interleaving it is about.

Inputs (`call`) only change a replica; a `turn` takes its `Ready` and carries it out the way
the driver's contract says (records to the node's disk, then every message into the network,
then the answers, then the snapshot work), with a sync that always completes at once, and
snapshot files written and restored at once too (their completion is the replica's input
of the next turn)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.messages import SnapshotInstall
from paxosd.core.multi.ready import Applied, ReadDone, Ready, Role, SnapshotWork
from paxosd.core.multi.records import Configured, Record, Snapshot
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope
from paxosd.service import Put, Request, StateMachine, encode
from paxosd.storage import fold
from paxosd.storage.snapshots import MemorySnapshots


def put(key: str, value: Any, client: str = "c", seq: int = 1) -> bytes:
    return encode(Request(client_id=client, seq=seq, op=Put(key=key, value=value)))


class Net:
    def __init__(self, nodes: int = 3, config: EngineConfig | None = None, seed: int = 0) -> None:
        self.config = config or EngineConfig()
        self.members = tuple(range(1, nodes + 1))
        self.rng = random.Random(seed)
        self.configuration = Configuration(self.members)
        # Stores as `paxosd init` makes them: holding the membership they belong to.
        self.disks: dict[int, list[Record]] = {
            n: [Configured(self.configuration)] for n in self.members
        }
        self.files = {n: MemorySnapshots() for n in self.members}  # each node's snapshot files
        self.replicas = {n: self._make(n) for n in self.members}
        self.inbox: list[Envelope] = []
        self.applied: dict[int, list[Applied]] = {n: [] for n in self.members}
        self.reads: dict[int, list[tuple[Any, bool]]] = {n: [] for n in self.members}
        self.down: set[int] = set()

    def _make(self, node: int) -> Replica:
        """A replica started on its disk, its state machine from the snapshot file its disk
        names (as runtime/recovery.py does)."""
        recovered = fold(self.disks[node])
        machine = StateMachine()
        if isinstance(recovered.snapshot, Snapshot):
            with self.files[node].open(recovered.snapshot) as reader:
                machine = StateMachine.restore(reader)
                reader.verify()
        return Replica(
            node, self.configuration, self.rng, self.config, machine, recovered.records()
        )

    def call(self, node: int, action: Callable[[Replica], Any]) -> Any:
        """One input to `node` (its output waits for the node's next turn)."""
        return action(self.replicas[node])

    def turn(self, node: int, stamp: bytes | None = None) -> Ready:
        """End `node`'s turn: persist, sync, send, answer - and return what it handed over."""
        replica = self.replicas[node]
        ready = replica.ready(stamp)
        self.disks[node].extend(ready.records)
        replica.synced(ready)
        self.inbox.extend(ready.send_now + ready.send_after_sync)
        self.applied[node].extend(ready.applied)
        self.reads[node].extend((r.read_id, isinstance(r, ReadDone)) for r in ready.reads)
        if ready.snapshots is not None:
            self._snapshot_work(node, ready.snapshots)
        replica.invariants(full=True)
        return ready

    def _snapshot_work(self, node: int, work: SnapshotWork) -> None:
        """The host's part of the snapshot pipeline, done at once (runtime/driver.py does the
        same, with the slow parts off the turn loop)."""
        files, replica = self.files[node], self.replicas[node]
        if work.recorded is not None:
            files.remove_older(work.recorded.slot)
        for chunk in work.chunks_out:
            data = files.read(chunk.slot, chunk.offset, chunk.length)
            message = SnapshotInstall(
                ballot=chunk.ballot, slot=chunk.slot, offset=chunk.offset,
                total_bytes=chunk.total_bytes, checksum=chunk.checksum, data=data,
            )  # fmt: skip
            self.inbox.append(Envelope(node, chunk.dst, message))
        for arrived in work.chunks_in:
            files.stage(arrived.slot, arrived.offset, arrived.data)
        if work.install is not None:
            files.finish(work.install)
            with files.open(work.install) as reader:
                machine = StateMachine.restore(reader)
                reader.verify()
            replica.snapshot_restored(work.install, machine)
        if work.take is not None:
            slot, view = work.take
            replica.snapshot_saved(files.save(slot, view.write))

    def step(self, node: int, envelope: Envelope) -> Ready:
        """Deliver one message to `node` and end its turn."""
        self.call(node, lambda r: r.step(envelope))
        return self.turn(node)

    def elect(self, node: int) -> None:
        """Make `node` time out and win, delivering everything. The others are taken to have
        stopped hearing any leader long ago (no stickiness in the way)."""
        for other in self.members:
            self.replicas[other].quiet_ticks = self.config.election_ticks_min
        replica = self.replicas[node]
        while replica.status().role is Role.FOLLOWER and replica.prevote is None:
            self.call(node, lambda r: r.tick())
        self.turn(node)
        self.deliver_all()
        assert replica.status().is_leader, replica.status()

    def deliver(self, match: Callable[[Envelope], bool] = lambda e: True) -> int:
        """Deliver the messages in flight that match (in order), each in its own turn of its
        destination; return how many."""
        taken = [e for e in self.inbox if match(e)]
        self.inbox = [e for e in self.inbox if not match(e)]
        for envelope in taken:
            if envelope.dst not in self.down:
                self.step(envelope.dst, envelope)
        return len(taken)

    def deliver_all(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            for node in self.members:
                if node not in self.down:
                    self.turn(node)
            if not self.deliver():
                return

    def drop(self, match: Callable[[Envelope], bool]) -> None:
        self.inbox = [e for e in self.inbox if not match(e)]

    def crash(self, node: int) -> None:
        self.down.add(node)
        self.inbox = [e for e in self.inbox if e.dst != node]

    def restart(self, node: int) -> None:
        self.down.discard(node)
        self.files[node].crash()
        self.replicas[node] = self._make(node)

    def values(self, node: int) -> list[bytes]:
        return [a.payload for a in self.applied[node] if a.payload]
