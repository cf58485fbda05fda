"""A simulated paxosd cluster: Multi-Paxos replicas, state machines, disks, clocks and clients.

Theory of operation. One seeded run drives N `Replica` cores through the SAME driver the node
process runs (runtime/driver.py), over simulated peers, disks and clocks: each node works in
turns; in a turn the driver sends the leader's early Accepts, writes and syncs the turn's
records ONCE (group commit; the sync takes virtual time), and only then sends the rest and
answers clients. A crash loses the turn's unsynced records and everything not yet sent.
Clients (sim/clients.py) invoke operations, time out, retry under the same request id
(exactly-once), and record every operation as invoke, then ok, fail or info (unknown).

Each run draws, from its seed, snapshot and catch-up limits small enough that it snapshots,
installs snapshots in chunks and compacts its stores, and which of the allowed faults strike
(swarm testing: fewer faults at once let each reach deeper), and counts the engine's mechanisms
it exercised, so a swarm shows what it reached (sim/reach.py).

A run has a safety phase, in which faults strike on a seeded schedule (sim/nemesis.py) -
crashes and power failures, partitions, an isolated or stale leader, loss, duplication,
reordering, long delays, a slow node, torn disk writes, a lost disk (the node rebuilds from its
peers, as `paxosd node --reinitialize` does), skewed and jumping wall clocks - and a liveness
phase: faults stop, every node comes back, and every client must complete its operations
within a bound. Then the checkers judge the history: linearizability per key, fencing tokens
and mutual exclusion for locks, one owner per name, one value per decision, one batch per slot
across all replicas' logs, every answered write the one applied under its request id
(exactly-once), and every restarted node at least at the snapshot it had made durable.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from paxosd.check.history import Event, OpType, build_history
from paxosd.check.mvcc import Record as MvccRecord
from paxosd.check.mvcc import check as check_mvcc
from paxosd.check.sql import Record as SqlRecord
from paxosd.check.sql import check as check_sql
from paxosd.check.workloads import judge_workloads, problem_lines
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import (
    Configuration,
    ConfigurationMismatch,
    incarnation_max,
)
from paxosd.core.multi.messages import Promise, SnapshotInstall
from paxosd.core.multi.ready import Applied, Note, Role
from paxosd.core.multi.records import Configured, Rebuilding
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope, NodeId
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import BadRequest, NotLeader, ServiceError
from paxosd.runtime.recovery import recover
from paxosd.runtime.variants import Variant
from paxosd.service import AdvanceTime, Request, StateMachine, encode, is_read
from paxosd.service.kv import KvLimits
from paxosd.service.kv.compaction import AutoCompactor
from paxosd.service.namespace import Options
from paxosd.sim.clients import REDIRECT, REFUSED, SimClient, digest
from paxosd.sim.disk import SimDisk
from paxosd.sim.membership import Observer, adopted, refused
from paxosd.sim.mvcc_workload import reached as mvcc_reached
from paxosd.sim.nemesis import (
    FAULTS,
    OWN_GENERATOR,
    SnapshotCrash,
    crash_after_promise,
    crash_after_snapshot,
    crash_while_rebuilding,
    heal_everything,
    links,
    schedule_faults,
)
from paxosd.sim.reach import (
    NOTE_MECHANISMS,
    SNAPSHOT_NOTES,
    draw_faults,
    draw_limits,
    limits_summary,
)
from paxosd.sim.sql_workload import reached as sql_reached
from paxosd.sim.watchers import (
    SimWatcher,
    check_watchers,
    draw_watch_options,
    final_progress_ms,
)
from paxosd.sim.watchers import reference as watch_reference
from paxosd.storage import CorruptLog, MemoryLog, make_identity
from paxosd.watch import MachineHistory, WatchHub, compaction_due

__all__ = ["FAULTS", "Cluster", "SimNode", "SimResult", "SimSpec", "judge", "run"]

WORKLOADS = ("kv", "locks", "names", "decisions", "mvcc")
# The key-value store's limits in simulated nodes: a short history, so that the leader
# compacts it automatically within a run (service/kv/compaction.py).
SIM_KV_LIMITS = KvLimits(history_revisions_max=40, history_bytes_max=16 * 1024)

tick_ms = 10.0
watchers_default = 4  # per run (sim/watchers.py)
turn_ms = 0.05  # how long a node's event-loop turn takes before it syncs and sends
# A datacenter: a peer message takes about as long as an fsync, so whatever leaves a node
# before its sync has often been acted on before the sync is done.
peer_delay_ms = (0.05, 1.0)
fsync_ms = (0.2, 2.0)  # how long a sync usually takes ...
fsync_stall_ms = (2.0, 20.0)  # ... and when the disk stalls (one sync in `fsync_stall_odds`)
fsync_stall_odds = 10
snapshot_work_ms = (1.0, 30.0)  # writing, or checking and restoring, a (small) snapshot
time_advance_ms = 50.0  # how often the idle leader proposes log time (lock leases)
node_request_timeout_ms = 300.0  # the driver's deadline for a request at a node
resume_peers_after_ms = 0.01  # a paused node, resumed, serves its clients this much earlier


@dataclass(frozen=True, slots=True)
class SimSpec:
    nodes: int = 3
    clients: int = 6
    keys: int = 3
    faults: frozenset[str] = frozenset(FAULTS)
    workloads: tuple[str, ...] = WORKLOADS
    variant: str = "correct"
    watchers: int = watchers_default  # clients that watch keys (sim/watchers.py)
    safety_ms: float = 3_000.0
    liveness_ms: float = 4_000.0
    config: EngineConfig = field(default_factory=EngineConfig)
    # Swarm testing: each run draws small snapshot, catch-up and compaction limits, and which
    # of `faults` strike (sim/reach.py). False: `config` as given, every fault in every run.
    draws: bool = True


@dataclass(slots=True)
class SimResult:
    seed: int
    operations: dict[str, int]
    faults: dict[str, int]
    violations: list[str]
    history: list[Event]
    node_status: dict[int, dict[str, Any]]
    mechanisms: dict[str, int] = field(default_factory=dict)
    drawn: dict[str, Any] = field(default_factory=dict)  # the run's limits and faults

    @property
    def ok(self) -> bool:
        return not self.violations


# -- nodes ----------------------------------------------------------------------------------


class _SimClock:
    """A node's clocks: its monotonic clock runs at the simulator's rate from its own origin
    (monotonic readings of two nodes never compare); its wall clock may be skewed or jump."""

    def __init__(self, cluster: Cluster, node_id: NodeId) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.origin_ms = cluster.rng.uniform(0, 1e9)

    def monotonic_ms(self) -> float:
        return self.origin_ms + self.cluster.now

    def wall_ms(self) -> float:
        return self.cluster.now + self.cluster.wall_offset_ms[self.node_id]


class _SimPeers:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def send(self, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            self.cluster.transmit(envelope)


class SimNode:
    """One simulated node process: the shared driver, hosted on virtual time."""

    def __init__(self, cluster: Cluster, node_id: NodeId, disk: MemoryLog) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.disk = disk
        self.alive = True
        # The node process's start: the state machine from the store's snapshot file
        # (DamagedSnapshot if it is missing or damaged: correct code never leaves it so).
        machine_options = cluster.machine_options
        machine, recovered = recover(
            disk,
            disk.load(),
            partial(StateMachine.restore, options=machine_options),
            partial(StateMachine, options=machine_options),
        )
        self.replica = Replica(
            node_id,
            cluster.configuration_of(node_id),
            cluster.rng,
            cluster.config,
            machine,
            recovered.records(),
        )
        options = DriverOptions(
            request_timeout_ms=node_request_timeout_ms,
            time_advance_ms=time_advance_ms,
            time_command=_time_command,
            variant=cluster.variant.driver,
            restore=partial(StateMachine.restore, options=machine_options),
        )
        self.driver = Driver(
            self.replica, disk, cluster.peers, cluster.clocks[node_id], self, options
        )
        self.position = (0, 0)  # (slot, commands of it applied so far)
        # The node's watch hub, fed by the driver's applied commands (runtime/node.py).
        limits = cluster.machine_options.kv_limits
        self.watches = WatchHub(
            MachineHistory(lambda: self.replica.learner.machine),
            cluster.watch_options,
            compaction_due(limits.history_revisions_max, limits.history_bytes_max),
        )
        # The leader's automatic compaction of the key-value history, proposed as the node
        # process does (runtime/node.py): an anonymous request, its answer not awaited.
        self.compactor = AutoCompactor(cluster.machine_options.kv_limits)
        self.compactions = itertools.count(1)

    # inputs
    def deliver(self, envelope: Envelope) -> None:
        self.driver.deliver(envelope.src, envelope.msg)

    def tick(self) -> None:
        self.driver.tick()
        self.watches.tick(self.cluster.now)
        removed = self.driver.removed()
        if removed is not None:  # as the node process does (runtime/node.py)
            self.watches.close_all(f"{removed}: watch on a member")
        replica = self.replica
        if replica.role is Role.LEADER:
            machine = replica.learner.machine
            assert isinstance(machine, StateMachine)
            compact = self.compactor.due(machine.kv.store)
            if compact is not None:
                request = Request(
                    client_id=f"~sim{self.node_id}", seq=next(self.compactions), op=compact
                )
                key = (request.client_id, request.seq)
                self.driver.submit_write(key, encode(request), None, retry_safe=False)

    def request(self, client: SimClient, request: Request, attempt: int) -> None:
        token = (client, attempt)
        if is_read(request.op):
            self.driver.submit_read(request.op, token)
        else:
            key = (request.client_id, request.seq)
            self.driver.submit_write(key, encode(request), token, retry_safe=True)

    # the driver's host
    def schedule_turn(self) -> None:
        cluster = self.cluster
        cluster.at(cluster.now + turn_ms * cluster.slowness[self.node_id], self._turn)

    def _turn(self) -> None:
        if self.alive:
            self.driver.end_turn()

    def sync(self, done: Callable[[], None]) -> None:
        # The sync takes time; a crash meanwhile loses (or tears) the turn's writes, and
        # nothing that depended on them was sent.
        cluster = self.cluster
        rng = cluster.rng
        took = rng.uniform(*(fsync_stall_ms if rng.randrange(fsync_stall_odds) == 0 else fsync_ms))
        cluster.at(cluster.now + took, partial(self._synced, done))
        armed = cluster.crash_for_sync(self)
        if armed is not None:
            cluster.at(cluster.now + cluster.rng.uniform(0, took), partial(cluster.strike, armed))

    def _synced(self, done: Callable[[], None]) -> None:
        if self.alive:
            self.disk.sync()
            done()

    def answer(self, token: Any, result: Any) -> None:
        if token is None:
            return  # the node's own proposal (a compaction)
        client, attempt = token
        self.cluster.to_client(partial(client.answer, attempt, result, self.node_id))

    def fail(self, token: Any, error: ServiceError) -> None:
        if token is None:
            return  # the node's own proposal: the compactor proposes it again if needed
        client, attempt = token
        if isinstance(error, BadRequest):  # refused as it is: it did not happen
            self.cluster.to_client(partial(client.answer, attempt, REFUSED, self.node_id))
            return
        hint = error.leader if isinstance(error, NotLeader) else None
        self.cluster.to_client(partial(client.answer, attempt, REDIRECT, hint))

    def event(self, event: Note) -> None:
        self.cluster.noted(self.node_id, event)  # what the run exercised (sim/reach.py)

    def background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Snapshot work takes virtual time, and runs at its end: a view written then shows
        whether it really captured the state of when it was taken, and a crash meanwhile
        loses the work (nothing was durable yet), as it would in the node's thread."""
        cluster = self.cluster

        def finish() -> None:
            if not self.alive:
                return
            try:
                result = work()
            except Exception as error:  # reported to the replica, which notes it
                result = error
            done(result)

        cluster.at(cluster.now + cluster.rng.uniform(*snapshot_work_ms), finish)

    def applied(self, entry: Applied) -> None:
        self.watches.applied(entry.events)
        slot, count = self.position
        self.position = (entry.slot, count + 1 if slot == entry.slot else 1)
        self.cluster.record_slot(self.node_id, entry, self.position[1])


def _time_command(now_ms: int) -> bytes:
    return encode(AdvanceTime(now_ms=now_ms))


# -- the cluster ----------------------------------------------------------------------------


class Cluster:
    def __init__(self, spec: SimSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self.rng = random.Random(seed)
        self.config, self.policy = spec.config, None
        self.active_faults = spec.faults
        if spec.draws:
            self.config, self.policy = draw_limits(spec.config, self.rng, seed)
            self.active_faults = draw_faults(spec.faults, self.rng, OWN_GENERATOR, seed)
        self.variant = Variant(spec.variant)
        self.members = tuple(range(1, spec.nodes + 1))
        self.configuration = Configuration(self.members)
        # Nodes an operator starts with a config file naming other members (sim/nemesis.py).
        self.misconfigured: dict[NodeId, Configuration] = {}
        # The membership fault's observer of what is chosen in which epoch (sim/membership.py).
        self.membership: Observer | None = None
        self.now = 0.0
        # (virtual time, sequence number, action): the sequence number orders equal times
        # deterministically and keeps actions from ever being compared.
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        # Each store's incarnation id, drawn anew with every store a node is given (a lost
        # disk, a re-initialisation, a replacement), from a generator of its own so that no
        # other draw of the run moved. Peers refuse a member recorded with another one.
        self.incarnations: dict[NodeId, int] = {}
        self.incarnation_rng = random.Random(f"{seed}/incarnations")
        # The file backend's exact format on simulated disks: recovery after a crash, torn
        # last record included, is the code a real node runs.
        self.disks = {n: self._new_disk(n) for n in self.members}
        self.wall_offset_ms = dict.fromkeys(self.members, 0.0)
        self.clocks = {n: _SimClock(self, n) for n in self.members}
        self.peers = _SimPeers(self)
        # Crashes waiting for a sync to start, to strike while it runs: by node (0: a follower).
        self.armed_crashes: dict[NodeId, Callable[[], None]] = {}
        # The stale-leader fault: the old leader, and a crash armed for the next Promise sent
        # by another node (the old leader, restart and reconnect delays).
        self.stale_leader: NodeId | None = None
        self.promise_crash: tuple[NodeId, float, float] | None = None
        # A crash armed for a node's next snapshot; nodes a fault keeps down until it is done.
        self.snapshot_crash: SnapshotCrash | None = None
        self.held_down: set[NodeId] = set()
        # Nodes whose store was moved aside by a `--reinitialize` that has not made the new one.
        self.storeless: set[NodeId] = set()
        self.store_plan_active = False  # a lost disk or re-initialisation is under way
        # A node to crash once while it rebuilds: armed when its store is lost, set when it
        # restarts rebuilding, struck when it has merged its peers' reports.
        self.rebuild_crash: NodeId | None = None
        self.crash_mid_rebuild: NodeId | None = None
        self.nodes: dict[NodeId, SimNode | None] = {}
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.slowness = dict.fromkeys(self.members, 1.0)
        # A paused node (a process stopped, as by a long GC pause or a frozen VM) takes no
        # input until then: what arrives meanwhile waits. When it resumes it serves the
        # waiting clients first, then its peers' messages and timers (an event loop resumed
        # after a pause picks ready sockets in no promised order: this is the order that
        # shows whether it checks it still leads before it answers a read).
        self.paused_until: dict[NodeId, float] = {}
        self.loss = self.duplicate = 0.0
        self.peer_delay_ms_max = peer_delay_ms[1]
        self.delay_max = self.peer_delay_ms_max
        self.long_delays = False
        self.history: list[Event] = []
        self.faults: dict[str, int] = {}
        self.mechanisms: dict[str, int] = {}
        self.slots: dict[tuple[int, int], bytes] = {}
        self.slot_conflicts: list[str] = []
        # Stores correct code left damaged, or a restart below a durable snapshot.
        self.recovery_problems: list[str] = []
        # Exactly-once: the body first applied under each request id, and every answer given.
        self.first_applied: dict[Hashable, bytes] = {}
        self.answers: list[tuple[str, int, bytes]] = []
        # The mvcc workload: the log as applied (first payload at each position) and each
        # operation as [op, invoked, completed, answer, read] by request id.
        self.log_payloads: dict[tuple[int, int], bytes] = {}
        self.mvcc_records: dict[tuple[str, int], list[Any]] = {}
        # The sql workload: each operation as [kind, op, invoked, completed, answer]; each
        # node's SQL revision when its database was last compared; the database's content
        # hash at each SQL revision, as the first node there had it; where two differed.
        self.sql_records: dict[tuple[str, int], list[Any]] = {}
        self.sql_revisions: dict[NodeId, int] = {}
        self.sql_digests: dict[int, tuple[NodeId, str]] = {}
        self.sql_divergences: list[str] = []
        self.sql_on = any(w in ("sql", "sql-append") for w in spec.workloads)
        self.machine_options = Options(kv_limits=SIM_KV_LIMITS, variant=self.variant.service)
        self.resource: dict[str, int] = {}
        self.compactions_lost = 0  # compactions of disks since replaced (lost)
        self.heal_at = spec.safety_ms
        self.stop_at = spec.safety_ms + spec.liveness_ms * 0.5
        self.liveness_end = spec.safety_ms + spec.liveness_ms
        self.clients = [SimClient(self, i) for i in range(spec.clients)]
        # Watchers draw from a generator of their own: they change nothing else in the run.
        self.watch_rng = random.Random(f"watchers-{seed}")
        self.watch_options = draw_watch_options(self.watch_rng, self.variant.watch)
        self.watchers = [
            SimWatcher(self, i, random.Random(self.watch_rng.random()))
            for i in range(spec.watchers)
        ]
        for node in self.members:
            self.nodes[node] = SimNode(self, node, self.disks[node])
            self._tick_chain(node, self.rng.uniform(0, tick_ms))

    def configuration_of(self, node_id: NodeId) -> Configuration:
        """The members a node is started with: the cluster's, unless its config is wrong."""
        return self.misconfigured.get(node_id, self.configuration)

    def _new_disk(
        self,
        node_id: NodeId,
        rebuilding: bool = False,
        configuration: Configuration | None = None,
        incarnation: int | None = None,
    ) -> SimDisk:
        """A store as `paxosd init` (or, rebuilding, `--reinitialize`; with `configuration`,
        `paxosd node --join`) makes it: appearing whole, holding its configuration (and its
        rebuilding mark) from the start, under a new incarnation id (or `incarnation`)."""
        incarnation = incarnation or self.draw_incarnation()
        self.incarnations[node_id] = incarnation
        disk = SimDisk(make_identity("sim", node_id), self.policy)
        stored = configuration or self.configuration
        disk.write([Configured(stored), *([Rebuilding(True)] if rebuilding else [])])
        disk.sync()
        if self.membership is not None:
            disk.on_durable_votes = partial(self.membership.durable, node_id, incarnation)
        return disk

    def draw_incarnation(self) -> int:
        return self.incarnation_rng.randint(1, incarnation_max)

    # scheduling
    def at(self, time: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (time, next(self._seq), action))

    def run_until(self, until: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= until:
            self.now, _, action = heapq.heappop(queue)
            action()
        self.now = until

    def _tick_chain(self, node: NodeId, delay: float) -> None:
        sim = self.nodes[node]

        def tick() -> None:
            if self.nodes[node] is not sim or sim is None or not sim.alive:
                return
            if self._held(node, tick, peers=True):
                return
            sim.tick()
            self.at(self.now + tick_ms * self.slowness[node], tick)

        self.at(self.now + delay, tick)

    def count(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    def count_mechanism(self, mechanism: str) -> None:
        self.mechanisms[mechanism] = self.mechanisms.get(mechanism, 0) + 1

    # network
    def transmit(self, envelope: Envelope) -> None:
        armed = self.promise_crash
        if armed is not None and isinstance(envelope.msg, Promise) and envelope.src != armed[0]:
            crash_after_promise(self, envelope.src)
        if isinstance(envelope.msg, SnapshotInstall):
            self.count_mechanism("snapshot_chunks_sent")
        if (envelope.src, envelope.dst) in self.blocked:
            return
        if self.loss and self.rng.random() < self.loss:
            self.count("lost_messages")
            return
        copies = 2 if self.duplicate and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            delay = self.rng.uniform(peer_delay_ms[0], self.delay_max)
            if self.long_delays and self.rng.random() < 0.02:
                delay *= self.rng.uniform(20, 60)
            delay *= self.slowness[envelope.dst]
            incarnation = self.incarnations[envelope.src]  # its connection's handshake
            self.at(self.now + delay, partial(self._arrive, envelope, incarnation))

    def _arrive(self, envelope: Envelope, incarnation: int) -> None:
        node = self.nodes[envelope.dst]
        if node is None or (envelope.src, envelope.dst) in self.blocked:
            return
        if self._held(envelope.dst, partial(self._arrive, envelope, incarnation), peers=True):
            return
        # The rule of the peer handshake (runtime/transport.py), as the core states it: a
        # member recorded with another store's incarnation takes no part.
        if node.replica.configuration.admits(envelope.src, incarnation) is not None:
            refused(self, envelope.src, incarnation)
            return
        node.deliver(envelope)

    def _held(self, node: NodeId, action: Callable[[], None], peers: bool = False) -> bool:
        """If `node` is paused, hold `action` (an input to it) until the pause ends: clients'
        requests first, then (`peers`) peer messages and timers."""
        until = self.paused_until.get(node)
        if until is None or self.now >= until:
            return False
        self.at(until + (resume_peers_after_ms if peers else 0.0), action)
        return True

    def send_request(
        self, target: NodeId, call: Callable[[SimNode], None], request: Request
    ) -> None:
        """A client request travels to a node (clients are never partitioned)."""
        reading = is_read(request.op)
        delay = self.rng.uniform(0.2, 1.0) * self.slowness[target]

        def arrive() -> None:
            node = self.nodes[target]
            if node is not None and node.alive and not self._held(target, arrive):
                if reading and self._deposed(target):
                    self.count_mechanism("reads_at_deposed_leader")
                call(node)

        self.at(self.now + delay, arrive)

    def to_client(self, reply: Callable[[], None]) -> None:
        self.at(self.now + self.rng.uniform(0.2, 1.0), reply)

    # observation
    def log(
        self, client: str, kind: OpType, f: str, key: Any, value: Any, node: NodeId | None = None
    ) -> None:
        self.history.append(
            Event(
                process=client,
                type=kind,
                f=f,
                key=key,
                value=_freeze(value),
                time=round(self.now / 1000, 6),
                node=None if node is None else f"n{node}",
            )
        )

    def record_slot(self, node: NodeId, applied: Applied, position: int) -> None:
        """Agreement on the log: every node applies the same command at each position. The
        first payload applied at each position is kept: the log the mvcc checker replays."""
        digest_ = hashlib.blake2b(applied.payload, digest_size=8).digest()
        self.log_payloads.setdefault((applied.slot, position), applied.payload)
        known = self.slots.setdefault((applied.slot, position), digest_)
        if known != digest_:
            self.slot_conflicts.append(
                f"slot {applied.slot}: node {node} applied a different command than another node"
            )
        if applied.request is not None:
            self.first_applied.setdefault(applied.request, digest(applied.payload))
        if self.sql_on:
            self._compare_databases(node, applied.slot, position)

    def _compare_databases(self, node_id: NodeId, slot: int, position: int) -> None:
        """Replicas agree on the database: whenever this node's SQL revision moves, its
        content hash must be the one the first node to reach that revision had there (the
        content is a function of the revision: every request that changes it takes the next
        one). Taken when the host hears of an applied entry, which may be after later entries
        of its turn were applied too: hence by revision, not by slot."""
        node = self.nodes.get(node_id)
        if node is None:
            return
        machine = node.replica.learner.machine
        assert isinstance(machine, StateMachine)
        sql = machine.sql
        if self.sql_revisions.get(node_id) == sql.revision:
            return
        self.sql_revisions[node_id] = sql.revision
        content = sql.content_digest()
        first, known = self.sql_digests.setdefault(sql.revision, (node_id, content))
        if known != content:
            self.sql_divergences.append(
                f"sql: replicas diverge: at SQL revision {sql.revision} (slot {slot}), node "
                f"{node_id}'s database differs from node {first}'s (content hash "
                f"{content[:12]} vs {known[:12]})"
            )

    def sql_invoked(self, client: str, request: Request, kind: str) -> None:
        self.sql_records[(client, request.seq)] = [kind, request.op, self.now, None, None]

    def sql_completed(self, client: str, seq: int, answer: Any) -> None:
        record = self.sql_records[(client, seq)]
        record[3], record[4] = self.now, answer
        for mechanism in sql_reached(record[0], answer):
            self.count_mechanism(mechanism)

    def sql_refused(self, client: str, seq: int) -> None:
        self.sql_records.pop((client, seq), None)

    def mvcc_invoked(self, client: str, request: Request, read: bool) -> None:
        """A client of the mvcc workload invoked `request` (check/mvcc.py judges these)."""
        self.mvcc_records[(client, request.seq)] = [request.op, self.now, None, None, read]

    def mvcc_completed(self, client: str, seq: int, answer: Any) -> None:
        record = self.mvcc_records[(client, seq)]
        record[2], record[3] = self.now, answer
        for mechanism in mvcc_reached(record[0], answer):
            self.count_mechanism(mechanism)

    def mvcc_refused(self, client: str, seq: int) -> None:
        """Refused before the log (a bad request): it did not happen, and is not judged."""
        self.mvcc_records.pop((client, seq), None)

    def answered(self, client: str, seq: int, body: bytes) -> None:
        """A client was told its write (client, seq) with this body was applied."""
        self.answers.append((client, seq, body))

    def noted(self, node: NodeId, note: Note) -> None:
        """A note from a node's engine: count the mechanism it shows."""
        mechanism = NOTE_MECHANISMS.get(note.event)
        if mechanism is not None:
            self.count_mechanism(mechanism)
        if note.event in SNAPSHOT_NOTES:
            self.disks[node].snapshot_noted(int(dict(note.fields)["slot"]))
            if note.event == "snapshot_taken":
                crash_after_snapshot(self, node)
        elif note.event == "rebuild_merged":
            if int(dict(note.fields)["catch_up_to"]) > 0:
                self.count_mechanism("rebuilds_behind_a_snapshot")
            if self.crash_mid_rebuild == node:
                self.crash_mid_rebuild = None
                crash_while_rebuilding(self, node)
        elif note.event == "epoch_adopted":
            adopted(self, note)
        elif note.event == "leader_elected":
            ballot = dict(note.fields)["ballot"]
            if any(n != node and self._leads_below(n, ballot) for n in self.members):
                self.count_mechanism("stale_read_windows")

    def _ballot(self, node: NodeId) -> Any:
        """The ballot `node` leads with, if it leads."""
        sim = self.nodes[node]
        if sim is None or not sim.alive or sim.replica.leader != node:
            return None
        return sim.replica.status().ballot

    def _leads_below(self, node: NodeId, ballot: Any) -> bool:
        mine = self._ballot(node)
        return mine is not None and mine < ballot

    def _deposed(self, node: NodeId) -> bool:
        """`node` believes it leads, but another node leads in a higher ballot."""
        mine = self._ballot(node)
        if mine is None:
            return False
        return any(mine < self._ballot(n) for n in self.leaders() if n != node)

    def resource_use(self, lock: str, token: int) -> bool:
        """The protected resource accepts a token at least as high as any it has seen."""
        if token < self.resource.get(lock, 0):
            return False
        self.resource[lock] = token
        return True

    def snapshot_slot(self, node: NodeId) -> int:
        sim = self.nodes[node]
        return 0 if sim is None else sim.replica.status().snapshot_slot

    # faults
    def crash_for_sync(self, node: SimNode) -> Callable[[], None] | None:
        """The crash armed to strike during `node`'s sync that is starting, if any: one armed
        for this node, or a power failure armed for a vote's sync (any follower's; in a
        one-node cluster, the leader's, whose own vote chooses)."""
        armed = self.armed_crashes.pop(node.node_id, None)
        if armed is None and (len(self.members) == 1 or node.replica.leader != node.node_id):
            armed = self.armed_crashes.pop(0, None)
        return armed

    def strike(self, crash: Callable[[], None]) -> None:
        """A crash armed during the faults, striking while a sync runs: not once the faults
        have stopped. A sync started before the heal may end after it, and its crash would
        leave the node down for good: every restart planned for it has passed (seed 656 of
        `paxosd sim --nodes 3`: clients reading back at that node waited forever)."""
        if self.now < self.heal_at:
            crash()

    def crash(self, node_id: NodeId, torn: bool = False) -> None:
        node = self.nodes[node_id]
        if node is None:
            return
        node.alive = False
        self.nodes[node_id] = None
        lost = self.disks[node_id].crash(tear=torn, rng=self.rng)
        self.count("crash")
        if torn and lost:
            self.count("torn_write")

    def lose_disk(self, node_id: NodeId) -> None:
        """The node's disk is gone: it crashes, and comes back (at its next restart) on an empty
        store that the operator made with `paxosd node --reinitialize`, which marks it as
        rebuilding. The planted `amnesia` variant gives it a plain empty store instead, as a
        node that creates whatever store is missing would."""
        self.crash(node_id)
        self.compactions_lost += self.disks[node_id].compactions
        self.disks[node_id] = self._new_disk(node_id, rebuilding=not self.variant.amnesia)
        self.count("disk_loss")
        self.rebuild_crash = node_id

    def move_store_aside(self, node_id: NodeId) -> None:
        """`--reinitialize`, first step: the node's store is moved aside; until a new one is
        made, an ordinary start finds none (and is refused, unless the planted `amnesia`
        variant makes whatever store is missing)."""
        self.compactions_lost += self.disks[node_id].compactions
        self.storeless.add(node_id)

    def make_store(self, node_id: NodeId, rebuilding: bool) -> None:
        """`--reinitialize`, last step: a new store, marked rebuilding (the planted
        `reinit-unmarked` variant makes it unmarked first, and marks it in a second step)."""
        self.disks[node_id] = self._new_disk(node_id, rebuilding)
        self.storeless.discard(node_id)

    def join_store(
        self, node_id: NodeId, configuration: Configuration, incarnation: int | None = None
    ) -> None:
        """A new store made from the cluster's `configuration` (as `paxosd node --join` makes
        it, with the configuration that added the node), under a new incarnation id (or the
        one drawn when its disk was wiped): sim/membership.py."""
        if node_id not in self.storeless:
            self.compactions_lost += self.disks[node_id].compactions
        disk = self._new_disk(node_id, configuration=configuration, incarnation=incarnation)
        self.disks[node_id] = disk
        self.storeless.discard(node_id)

    def restart(self, node_id: NodeId, release: bool = False) -> None:
        """Start the node again from its disk (unless a fault holds it down; `release` ends
        that hold)."""
        if release:
            self.held_down.discard(node_id)
        if self.nodes[node_id] is not None or node_id in self.held_down:
            return
        if node_id in self.storeless:
            if not self.variant.amnesia:
                self.count("start_refused")  # no store: `paxosd node` refuses, and exits
                return
            self.make_store(node_id, rebuilding=False)  # the planted bug: a new empty voter
        disk = self.disks[node_id]
        try:
            node = SimNode(self, node_id, disk)
        except ConfigurationMismatch:
            self.count("start_refused")  # the node stays down, as `paxosd node` exits
            return
        except CorruptLog as damage:  # a store the engine itself left damaged
            self.recovery_problems.append(f"recovery: node {node_id} cannot restart: {damage}")
            return
        self.nodes[node_id] = node
        self._tick_chain(node_id, self.rng.uniform(0, tick_ms))
        self.count("restart")
        status = node.replica.status()
        if status.rebuilding:
            self.count_mechanism("rebuilds_started")
            if self.rebuild_crash == node_id:  # crash it once mid-rebuild (sim/nemesis.py)
                self.rebuild_crash = None
                self.crash_mid_rebuild = node_id
        if status.snapshot_slot:
            self.count_mechanism("restarts_from_snapshot")
        if status.snapshot_slot < disk.snapshot_durable:
            self.recovery_problems.append(
                f"recovery: node {node_id} restarted at snapshot slot {status.snapshot_slot}, "
                f"below the snapshot of slot {disk.snapshot_durable} it had made durable"
            )

    def partition(self, side: set[NodeId]) -> None:
        self.blocked |= links(side, set(self.members) - side)

    def cut_links(self, side: Iterable[NodeId], other: Iterable[NodeId]) -> None:
        self.blocked |= links(side, other)

    def mend_links(self, side: Iterable[NodeId], other: Iterable[NodeId]) -> None:
        self.blocked -= links(side, other)

    def leaders(self) -> list[NodeId]:
        """The nodes that believe they lead (two, while a deposed leader has not noticed)."""
        nodes = self.nodes.items()
        return [n for n, node in nodes if node is not None and node.replica.leader == n]

    def leader(self) -> NodeId | None:
        for node_id, node in self.nodes.items():
            if node is not None and node.replica.status().is_leader:
                return node_id
        return None

    def heal(self) -> None:
        self.blocked.clear()

    def exercised(self) -> dict[str, int]:
        """The mechanisms this run reached (sim/reach.py), counted."""
        mechanisms = dict(self.mechanisms)
        compactions = self.compactions_lost + sum(d.compactions for d in self.disks.values())
        if compactions:
            mechanisms["store_compactions"] = compactions
        return dict(sorted(mechanisms.items()))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# -- a run ----------------------------------------------------------------------------------


def run(spec: SimSpec, seed: int) -> SimResult:
    """One seeded run: the same spec and seed always give the same history."""
    cluster = Cluster(spec, seed)
    for client in cluster.clients:
        cluster.at(cluster.rng.uniform(0, 50), client.start)
    for watcher in cluster.watchers:
        cluster.at(cluster.watch_rng.uniform(0, 100), watcher.start)
        cluster.at(cluster.liveness_end - final_progress_ms, watcher.finish)
    schedule_faults(cluster)
    cluster.at(spec.safety_ms, partial(heal_everything, cluster))
    cluster.run_until(cluster.liveness_end)
    violations = judge(cluster)
    operations: dict[str, int] = {}
    for event in cluster.history:
        if event.type != OpType.INVOKE:
            operations[str(event.type)] = operations.get(str(event.type), 0) + 1
    pending = sum(1 for c in cluster.clients if c.current is not None)
    if pending:
        operations["pending"] = pending
    status = {
        n: node.replica.status().to_json() for n, node in cluster.nodes.items() if node is not None
    }
    drawn: dict[str, Any] = {}
    if cluster.policy is not None:
        drawn = {**limits_summary(cluster.config, cluster.policy)}
        drawn["faults"] = sorted(cluster.active_faults)
    return SimResult(
        seed,
        operations,
        dict(cluster.faults),
        violations,
        cluster.history,
        status,
        cluster.exercised(),
        drawn,
    )


def judge(cluster: Cluster) -> list[str]:
    problems = list(dict.fromkeys(cluster.slot_conflicts))
    problems += cluster.recovery_problems
    problems += check_answers(cluster)
    if cluster.membership is not None:
        problems += cluster.membership.problems()
    problems += check_mvcc(
        (cluster.log_payloads[position] for position in sorted(cluster.log_payloads)),
        [
            MvccRecord(client, seq, op, invoked, completed, answer, read)
            for (client, seq), (
                op,
                invoked,
                completed,
                answer,
                read,
            ) in cluster.mvcc_records.items()
        ],
    )
    payloads = [cluster.log_payloads[position] for position in sorted(cluster.log_payloads)]
    if cluster.sql_on:
        problems += check_sql(
            payloads,
            [
                SqlRecord(client, seq, kind, op, invoked, completed, answer)
                for (client, seq), (kind, op, invoked, completed, answer) in sorted(
                    cluster.sql_records.items()
                )
            ],
            cluster.machine_options,
            cluster.sql_divergences,
        )
    problems += check_watchers(cluster, watch_reference(payloads, cluster.machine_options))
    history = build_history(cluster.history, "sim")
    problems += problem_lines(judge_workloads(history, time_limit_s=20))
    stuck = [c.name for c in cluster.clients if c.current is not None]
    if stuck:
        problems.append(
            f"liveness: {len(stuck)} client operation(s) still pending "
            f"{cluster.spec.liveness_ms:.0f} ms after faults stopped ({', '.join(stuck[:5])})"
        )
    return problems


def check_answers(cluster: Cluster) -> list[str]:
    """Exactly-once: a write answered as applied is the one applied under its request id. A
    client that reused a seq for another write must be refused, never handed the answer of
    the request that first used it."""
    problems = []
    for client, seq, body in cluster.answers:
        applied = cluster.first_applied.get((client, seq))
        if applied is None:
            problems.append(f"exactly-once: {client} seq {seq} was answered, but never applied")
        elif applied != body:
            problems.append(
                f"exactly-once: {client} seq {seq} was answered as applied, but a different "
                "request was applied under that id"
            )
    return problems
