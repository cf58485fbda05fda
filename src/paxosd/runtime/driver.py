"""The driver of a Multi-Paxos replica: the one turn loop that the node process and the
simulator both run, so that the rules which make Paxos safe across crashes are tested in the
code that ships.

Theory of operation. Everything that happens - a peer's message, a client request, a timer
tick - is one input to the replica, and asks the host for a turn. A turn (`end_turn`) takes the
replica's `Ready` (core/multi/ready.py) and carries it out in the contract's order:

1. send `send_now` (the leader's Accepts, which may overlap its own fsync);
2. write `records` to the log store and have the host make them durable (one fsync for the
   whole turn: group commit); in the simulator the sync takes virtual time, and no other turn
   starts until it is done;
3. tell the replica (`synced`);
4. send `send_after_sync`, then answer the clients whose writes were applied and whose reads
   were answered;
5. carry out the turn's snapshot work (core/multi/snapshots.py): remove the snapshot files a
   durable record made garbage, read from the snapshot file the chunks peers asked for and
   send them, append arriving chunks to the staged file, and hand the slow parts - writing a
   snapshot, checking and restoring a peer's - to the host's `background`, which runs them off
   the turn loop (a worker thread in the node, later virtual time in the simulator) and
   reports back as an input (`Replica.snapshot_saved`, `snapshot_restored`,
   `snapshot_failed`).

The driver also keeps the client side of the engine: pending writes by request id and pending
reads, each with a deadline. A write whose outcome cannot be known by its deadline fails with
`Unavailable` (outcome unknown); one that never reached a leader fails with `NotLeader`. A
write with an exactly-once session is proposed again whenever the leader changes while it is
in flight (re-forwarding it is safe: the state machine applies a (client id, seq) at most
once), so a follower's client does not wait out its deadline because the leader it forwarded
to died. Writes without a session are never proposed twice.

Log time. As leader, the driver stamps every batch with the log time (a time command built by
the host): the log time the replica had applied when it took over, plus what the host's
MONOTONIC clock measured since. No wall clock is read, so a skewed or jumping wall clock does
not move lock leases; a new leader starts from the log time it applied, which is never later
than the true one, so a leader change can only lengthen leases. The `wall-clock-leases`
variant stamps the wall clock instead, to show the simulator catches it.

Planted bugs (variants) are options of this driver, so the swarm tests exactly this code:
`reply-before-fsync` sends and answers before the sync and syncs only every few ticks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, Protocol

from paxosd.core.multi import busy, epochs
from paxosd.core.multi.configuration import Joined
from paxosd.core.multi.learner import Machine, SnapshotView
from paxosd.core.multi.messages import SnapshotInstall
from paxosd.core.multi.ready import (
    Applied,
    Note,
    ReadDone,
    Ready,
    SnapshotChunk,
    SnapshotWork,
    Status,
    note,
)
from paxosd.core.multi.records import Snapshot
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Ballot, Envelope, NodeId
from paxosd.runtime.errors import BadRequest, NotLeader, Overloaded, ServiceError, Unavailable
from paxosd.storage.errors import StorageError
from paxosd.storage.state import LogStore

DRIVER_VARIANTS = {
    "reply-before-fsync": "replies and messages leave before the records are durable",
    "wall-clock-leases": "log time follows the leader's wall clock, not its monotonic clock",
    "lease-follower-clock": "a follower ends the store's leases when its own clock says log "
    "time has passed them, not when the log does",
    "lease-reset-on-leader-change": "a new leader renews every lease to its full TTL",
}
# The planted reply-before-fsync bug syncs in the background this often, as stores that
# "fsync periodically" do.
lazy_sync_ticks = 10


class Clock(Protocol):
    """Time as the host measures it, in milliseconds."""

    def monotonic_ms(self) -> float:
        """Never goes back; the only clock the protocol's timing uses."""
        ...

    def wall_ms(self) -> float:
        """Calendar time, for logs (and the wall-clock-leases variant) only."""
        ...


class PeerSink(Protocol):
    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Hand these messages to the network now (best effort: the protocol retransmits)."""
        ...


class Host(Protocol):
    """What the driver's owner does for it: the node process or a simulated node."""

    def schedule_turn(self) -> None:
        """Call `Driver.end_turn` soon, after the inputs already waiting are handled."""
        ...

    def sync(self, done: Callable[[], None]) -> None:
        """Make everything written to the store durable, then call `done` (at once in the
        node process, after simulated fsync time in the simulator). A host whose sync fails
        must stop the node: nothing of the turn may leave it."""
        ...

    def answer(self, token: Any, result: Any) -> None:
        """A client request is done: `result` is the state machine's answer."""
        ...

    def fail(self, token: Any, error: ServiceError) -> None:
        """A client request failed (`error.outcome` says whether it may still happen)."""
        ...

    def event(self, event: Note) -> None:
        """Something an operator would want to know (logs, the dashboard's recent events)."""
        ...

    def applied(self, entry: Applied) -> None:
        """Every command applied to this node's state machine, in log order."""
        ...

    def background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work` off the turn loop, then call `done` on the loop with its result, or with
        the exception it raised. If the node crashes meanwhile, `done` is never called (the
        work may or may not have happened)."""
        ...


@dataclass(frozen=True, slots=True)
class DriverOptions:
    request_timeout_ms: float = 5000.0
    # While a lease may be live, the idle leader moves log time this often, so leases expire.
    time_advance_ms: float = 100.0
    # Builds the state machine's "log time is now T ms" command; None: no log time at all.
    time_command: Callable[[int], bytes] | None = None
    pending_requests_max: int = 100_000
    # Builds the state machine from a snapshot stream (a peer's snapshot is installed with
    # it); None: snapshots from peers are refused.
    restore: Callable[[BinaryIO], Machine] | None = None
    # replica.invariants() after every turn; the full walk of the log (its cost grows with
    # the log) after every this many.
    full_invariants_every_turns: int = 64
    variant: str = "correct"

    def __post_init__(self) -> None:
        assert self.variant == "correct" or self.variant in DRIVER_VARIANTS, self.variant
        assert self.request_timeout_ms > 0 and self.pending_requests_max > 0


@dataclass(slots=True)
class _Write:
    payload: bytes
    tokens: list[Any]
    deadline_ms: float
    started_ms: float
    retry_safe: bool  # has an exactly-once session: may be proposed again
    proposed: bool = False
    sent_to: NodeId | None = None  # the leader it went to (this node, if it led)
    # ... in which membership epoch: a change of epoch ends every leadership, and a leader
    # re-elected at once keeps its id, so the id alone would not show it (epochs.py).
    sent_epoch: int = 0


@dataclass(slots=True)
class _Read:
    query: Any
    token: Any
    deadline_ms: float
    started_ms: float
    asked: bool = False


@dataclass(slots=True)
class DriverStats:
    turns: int = 0
    syncs: int = 0
    reforwarded_writes: int = 0
    writes_unknown: int = 0
    writes_failed: int = 0
    reads_failed: int = 0


class Driver:
    def __init__(
        self,
        replica: Replica,
        store: LogStore,
        peers: PeerSink,
        clock: Clock,
        host: Host,
        options: DriverOptions,
    ) -> None:
        self.replica = replica
        self.store = store
        self.peers = peers
        self.clock = clock
        self.host = host
        self.options = options
        self.writes: dict[Hashable, _Write] = {}
        self.reads: dict[int, _Read] = {}
        self.read_ids = itertools.count(1)
        self.stats = DriverStats()
        self.syncing = False
        self.stopped = False
        self._turn_wanted = False
        self._ticks = 0
        self._status = replica.status()
        # Log time: (the leadership it belongs to, log time then, monotonic time then).
        self._time_base: tuple[Ballot, int, float] | None = None
        self._last_time_advance_ms = -float("inf")
        self._idle_time_due = False
        # The planted lease bugs' memory: (log time, this host's clock when it was seen) and
        # whether a new leader owes its renewals.
        self._log_time_seen: tuple[int, float] | None = None
        self._renewals_due = False

    # -- client requests ------------------------------------------------------------------

    def submit_write(
        self, request: Hashable, payload: bytes, token: Any, *, retry_safe: bool
    ) -> None:
        """Propose a client write; its answer (or failure) reaches the host under `token`.
        A second submit of the same `request` while the first is in flight joins it; one with
        the same id but another payload is refused (`BadRequest`): it would be handed the
        first one's answer, as if it had been applied."""
        existing = self.writes.get(request)
        if existing is not None:
            if existing.payload != payload:
                self.host.fail(
                    token,
                    BadRequest(
                        "this request id is in flight for a different request; "
                        "nothing was applied: use a new seq for a new request"
                    ),
                )
                return
            existing.tokens.append(token)
            return
        if len(self.writes) >= self.options.pending_requests_max:
            self.host.fail(token, Overloaded("too many writes in flight on this node"))
            return
        removed = self.removed()
        if removed is not None:
            self.host.fail(token, removed)
            return
        now = self.clock.monotonic_ms()
        write = _Write(payload, [token], now + self.options.request_timeout_ms, now, retry_safe)
        self.writes[request] = write
        self._propose(write)
        self._schedule()

    def submit_read(self, query: Any, token: Any) -> None:
        """Ask for a linearizable read; its answer reaches the host under `token`."""
        if len(self.reads) >= self.options.pending_requests_max:
            self.host.fail(token, Overloaded("too many reads in flight on this node"))
            return
        removed = self.removed()
        if removed is not None:
            self.host.fail(token, removed)
            return
        now = self.clock.monotonic_ms()
        read_id = next(self.read_ids)
        self.reads[read_id] = _Read(query, token, now + self.options.request_timeout_ms, now)
        self._ask(read_id)
        self._schedule()

    def pending(self) -> tuple[int, int]:
        """(writes, reads) in flight."""
        return len(self.writes), len(self.reads)

    # -- inputs -----------------------------------------------------------------------------

    def deliver(self, src: NodeId, msg: Any) -> None:
        """A message from a peer."""
        if self.stopped:
            return
        self.replica.step(Envelope(src, self.replica.node_id, msg))
        self._schedule()

    def transfer_leadership(self, target: NodeId) -> str | None:
        """An operator's handover to `target` (core/multi/transfer.py): why it cannot be
        done, or None once it has begun."""
        if self.stopped:
            return busy.STOPPING
        refused = self.replica.transfer_leadership(target)
        self._schedule()
        return refused

    def change_members(
        self,
        voters: Sequence[NodeId],
        learners: Sequence[NodeId] = (),
        joining: Joined | None = None,
    ) -> str:
        """An operator's membership change (core/multi/epochs.py): why it is refused, or ""
        once it is under way."""
        if self.stopped:
            return busy.STOPPING
        refused = self.replica.change_members(voters, learners, joining)
        self._schedule()
        return refused

    def tick(self) -> None:
        """One tick of the replica's logical time, and the driver's own timers."""
        if self.stopped:
            return
        replica = self.replica
        replica.tick()
        self._ticks += 1
        if self.options.variant == "reply-before-fsync" and self._ticks % lazy_sync_ticks == 0:
            self.store.sync()
        now = self.clock.monotonic_ms()
        status = replica.status()
        if (
            status.is_leader
            and status.wants_log_time
            and self.options.time_command is not None
            and now - self._last_time_advance_ms >= self.options.time_advance_ms
        ):
            # Keep log time moving while idle, so that leases expire without traffic: the
            # next turn proposes it (`_propose_idle_time`).
            self._last_time_advance_ms = now
            self._idle_time_due = True
        if self.options.variant == "lease-follower-clock" and not status.is_leader:
            self._expire_by_own_clock(now)
        self._observe(status)
        self._retry_and_expire(now, status)
        self._schedule()

    def stop(self) -> None:
        """The node is shutting down: every request still pending fails now."""
        self.stopped = True
        for write in self.writes.values():
            for token in write.tokens:
                self.host.fail(token, Unavailable("the node is shutting down; outcome unknown"))
        for read in self.reads.values():
            self.host.fail(read.token, NotLeader("the node is shutting down"))
        self.writes.clear()
        self.reads.clear()

    # -- the turn -----------------------------------------------------------------------------

    def end_turn(self) -> None:
        """Carry out everything the replica produced since the last turn (module docstring)."""
        self._turn_wanted = False
        if self.syncing or self.stopped:
            return  # the sync in progress starts the next turn when it is done
        replica = self.replica
        # Log time goes at the head of each batch this turn forms, and only then: most of a
        # busy leader's turns (an Accepted, a read) form none.
        stamp = self._stamp(replica.batch_ballot)
        if self._renewals_due:
            self._renew_every_lease()
        if stamp is None and self._idle_time_due:
            self._propose_idle_time()
        ready = replica.ready(stamp)
        self.stats.turns += 1
        for event in ready.notes:
            self.host.event(event)
        if self.options.variant == "reply-before-fsync":
            # The planted bug: everything leaves at once; a background sync comes later.
            self.peers.send(ready.send_now + ready.send_after_sync)
            self.store.write(ready.records)
            replica.synced(ready)
            self._deliver(ready)
            if ready.snapshots is not None:
                self._snapshot_work(ready.snapshots)
            self._after_turn()
            return
        if ready.send_now:
            self.peers.send(ready.send_now)
        if ready.records:
            self.store.write(ready.records)
            self.syncing = True
            self.stats.syncs += 1
            self.host.sync(lambda: self._synced(ready))
        else:
            self._synced(ready)

    def _synced(self, ready: Ready) -> None:
        self.syncing = False
        if self.stopped:
            return
        self.replica.synced(ready)
        if ready.send_after_sync:
            self.peers.send(ready.send_after_sync)
        self._deliver(ready)
        if ready.snapshots is not None:
            self._snapshot_work(ready.snapshots)
        self._after_turn()

    def _after_turn(self) -> None:
        self.replica.invariants(
            full=self.stats.turns % self.options.full_invariants_every_turns == 0
        )
        replica = self.replica
        seen = self._status
        if replica.leader != seen.leader or replica.role is not seen.role:
            self._observe(replica.status())  # a new leader or role: worth a full status
        if replica.has_ready():
            self._schedule()

    def _deliver(self, ready: Ready) -> None:
        """Hand over what the turn decided: applied writes and answered reads."""
        host = self.host
        writes = self.writes
        for entry in ready.applied:
            host.applied(entry)
            if entry.request is None:
                continue
            write = writes.get(entry.request)
            # The same request id with another payload is another request (a client that
            # reused its seq): this answer is not its answer. Its own entry answers it.
            if write is not None and write.payload == entry.payload:
                del writes[entry.request]
                for token in write.tokens:
                    host.answer(token, entry.result)
        for done in ready.reads:
            read = self.reads.get(done.read_id)
            if read is None:
                continue
            if isinstance(done, ReadDone):
                del self.reads[done.read_id]
                host.answer(read.token, done.result)
            else:
                read.asked = False  # asked again at the next tick

    # -- snapshot files ------------------------------------------------------------------------

    def _snapshot_work(self, work: SnapshotWork) -> None:
        """A turn's snapshot work, after its sync (module docstring, step 5)."""
        files = self.store.snapshots
        for chunk in work.chunks_out:  # first: a chunk may be of the snapshot just superseded
            self._send_chunk(chunk)
        if work.recorded is not None:
            files.remove_older(work.recorded.slot)  # the record naming a newer one is durable
        for arrived in work.chunks_in:
            files.stage(arrived.slot, arrived.offset, arrived.data)
        if work.install is not None:
            self._install(work.install)
        if work.take is not None:
            self._save(*work.take)

    def _send_chunk(self, chunk: SnapshotChunk) -> None:
        try:
            data = self.store.snapshots.read(chunk.slot, chunk.offset, chunk.length)
        except (StorageError, OSError) as error:
            self.host.event(note("snapshot_unreadable", slot=chunk.slot, error=error))
            return  # the peer asks again; an operator must look at this node's disk
        message = SnapshotInstall(
            ballot=chunk.ballot,
            slot=chunk.slot,
            offset=chunk.offset,
            total_bytes=chunk.total_bytes,
            checksum=chunk.checksum,
            data=data,
        )
        self.peers.send([Envelope(self.replica.node_id, chunk.dst, message)])

    def _save(self, slot: int, view: SnapshotView) -> None:
        work = partial(self.store.snapshots.save, slot, view.write)
        self.host.background(work, partial(self._saved, slot))

    def _saved(self, slot: int, result: Snapshot | BaseException) -> None:
        if self.stopped:
            return
        if isinstance(result, BaseException):
            self.replica.snapshot_failed(slot, _why(result))
        else:
            self.replica.snapshot_saved(result)
        self._schedule()

    def _install(self, snapshot: Snapshot) -> None:
        restore, files = self.options.restore, self.store.snapshots
        if restore is None:
            self.replica.snapshot_failed(snapshot.slot, "this node cannot restore snapshots")
            return

        def work() -> Machine:
            files.finish(snapshot)  # size and checksum as the sender's record says
            with files.open(snapshot) as reader:
                machine = restore(reader)
                reader.verify()
            return machine

        self.host.background(work, partial(self._restored, snapshot))

    def _restored(self, snapshot: Snapshot, result: Machine | BaseException) -> None:
        if self.stopped:
            return
        if isinstance(result, BaseException):
            self.replica.snapshot_failed(snapshot.slot, _why(result))
        else:
            self.replica.snapshot_restored(snapshot, result)
        self._schedule()

    def _schedule(self) -> None:
        if not self._turn_wanted and not self.stopped:
            self._turn_wanted = True
            self.host.schedule_turn()

    # -- pending requests ---------------------------------------------------------------------

    def removed(self) -> NotLeader | None:
        """A node removed from the members (core/multi/epochs.py) serves no client and no
        watcher: it is told at once to go elsewhere, rather than waiting for a leader it will
        never hear (the hosts also end its watches)."""
        replica = self.replica
        configuration = epochs.removed_by(replica)
        if configuration is None:
            return None
        return NotLeader(
            f"node {replica.node_id} is no member of the cluster since epoch "
            f"{configuration.epoch} ({configuration.describe()}): ask a member"
        )

    def _fail_all(self, removed: NotLeader) -> None:
        """This node was removed while requests waited here: none will be answered here, so
        each is failed now (a write it may have passed on, with an unknown outcome), and the
        client retries at a member instead of waiting for its deadline."""
        for write in self.writes.values():
            if write.proposed:
                self.stats.writes_unknown += 1
                error: ServiceError = Unavailable(f"{removed}; the write's outcome is unknown")
            else:
                self.stats.writes_failed += 1
                error = removed
            for token in write.tokens:
                self.host.fail(token, error)
        self.writes.clear()
        for read in self.reads.values():
            self.stats.reads_failed += 1
            self.host.fail(read.token, removed)
        self.reads.clear()

    def _propose(self, write: _Write) -> None:
        outcome = self.replica.propose(write.payload)
        if outcome.taken:
            write.proposed = True
            write.sent_to = self.replica.leader
            write.sent_epoch = self.replica.configuration.epoch

    def _ask(self, read_id: int) -> None:
        read = self.reads[read_id]
        read.asked = True
        self.replica.read(read_id, read.query)

    def _retry_and_expire(self, now: float, status: Status) -> None:
        """Unproposed writes wait for a leader; writes with a session follow a new leader;
        refused reads are asked again; anything past its deadline fails - with an unknown
        outcome if it may have been proposed."""
        removed = self.removed()
        if removed is not None and (self.writes or self.reads):
            self._fail_all(removed)
            return
        leader = status.leader
        for key, write in list(self.writes.items()):
            if now >= write.deadline_ms:
                del self.writes[key]
                if write.proposed:
                    self.stats.writes_unknown += 1
                    error: ServiceError = Unavailable("no answer in time; outcome unknown")
                else:
                    self.stats.writes_failed += 1
                    error = NotLeader("no leader in time; not applied", leader)
                for token in write.tokens:
                    self.host.fail(token, error)
            elif leader is None:
                continue
            elif not write.proposed:
                self._propose(write)
            elif write.retry_safe and (write.sent_to, write.sent_epoch) != (leader, status.epoch):
                self.stats.reforwarded_writes += 1
                self._propose(write)
        for read_id, read in list(self.reads.items()):
            if now >= read.deadline_ms:
                del self.reads[read_id]
                self.stats.reads_failed += 1
                self.host.fail(read.token, Unavailable("no leader confirmed the read in time"))
            elif not read.asked:
                self._ask(read_id)

    # -- log time and observation -------------------------------------------------------------

    def _stamp(self, ballot: Ballot | None) -> bytes | None:
        """The leader's log time under `ballot`, as the state machine's time command (module
        docstring)."""
        command = self.options.time_command
        if command is None or ballot is None:
            return None
        clock = self.clock
        if self.options.variant == "wall-clock-leases":
            now = max(0, int(clock.wall_ms()))  # the planted bug
        else:
            base = self._time_base
            if base is None or base[0] != ballot:
                self._renewals_due = self.options.variant == "lease-reset-on-leader-change"
                base = (ballot, self.replica.log_time_ms, clock.monotonic_ms())
                self._time_base = base
            now = base[1] + int(clock.monotonic_ms() - base[2])
        return command(now)

    def _expire_by_own_clock(self, now: float) -> None:
        """The planted lease-follower-clock bug: this follower takes log time to be the last
        one it applied plus what its own clock measured since, and ends leases by it."""
        log_time = self.replica.log_time_ms
        seen = self._log_time_seen
        if seen is None or seen[0] != log_time:
            seen = self._log_time_seen = (log_time, now)
        expire = getattr(self.replica.learner.machine, "expire_by_own_clock", None)
        if expire is not None:
            expire(log_time + int(now - seen[1]))

    def _renew_every_lease(self) -> None:
        """The planted lease-reset-on-leader-change bug: a new leader renews every lease it
        knows of (etcd's leader does so on promotion)."""
        self._renewals_due = False
        renewals = getattr(self.replica.learner.machine, "renewals", None)
        if renewals is not None and self.replica.status().is_leader:
            for payload in renewals():
                self.replica.propose(payload)

    def _propose_idle_time(self) -> None:
        """The idle leader's log time, proposed in the very turn that batches it. It is never
        left queued between turns: a leader that stepped down meanwhile would forward it to
        the next leader, whose log time runs behind this one's by the length of the election,
        and whose leases it would end that much early. (Nor while a handover holds the
        batches: the stamp would wait, then go to the new leader.)"""
        self._idle_time_due = False
        replica = self.replica
        if not replica.batching:
            return  # no batch can form this turn; the next batch carries a stamp anyway
        status = replica.status()
        stamp = self._stamp(status.ballot)
        if stamp is not None:
            replica.propose(stamp)

    def _observe(self, status: Status) -> None:
        before = self._status
        self._status = status
        if status.leader != before.leader or status.role is not before.role:
            ballot = status.ballot if status.is_leader else status.highest_seen
            self.host.event(
                note(
                    "leader_changed" if status.leader != before.leader else "role_changed",
                    node=status.node_id,
                    role=status.role.value,
                    leader=status.leader,
                    ballot=ballot,
                )
            )

    @property
    def status(self) -> Status:
        """The replica's status now (a turn builds one only when the leader or role changed;
        `_status` is what the last change note was made from)."""
        return self.replica.status()


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]
