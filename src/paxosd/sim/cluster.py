"""A simulated paxosd cluster: Multi-Paxos replicas, state machines, disks, clocks and clients.

Theory of operation. One seeded run drives N `Replica` cores through the SAME driver the node
process runs (runtime/driver.py), over simulated peers, disks and clocks: each node works in
turns; in a turn the driver sends the leader's early Accepts, writes and syncs the turn's
records ONCE (group commit; the sync takes virtual time), and only then sends the rest and
answers clients. A crash loses the turn's unsynced records and everything not yet sent.
Clients invoke operations (put, get, cas, delete, lock acquire / use / release, name
registration, decision proposals and reads), time out, retry under the same request id
(exactly-once), and record every operation as invoke, then ok, fail (certainly did not
happen) or info (unknown).

A run has a safety phase, in which faults strike on a seeded schedule - crashes and
restarts, partitions, an isolated leader, loss, duplication, reordering, long delays, a slow
node, torn disk writes, a lost disk (the node rebuilds from its peers, as `paxosd node
--reinitialize` does), skewed and jumping wall clocks - and a liveness phase: faults stop,
every node comes back, and every client must complete its operations within a bound. Then the
checkers judge the history: linearizability per key, fencing tokens and mutual exclusion for
locks, one owner per name, one value per decision, and one batch per slot across all
replicas' logs.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from paxosd.check.history import Event, OpType, build_history
from paxosd.check.workloads import judge_workloads, problem_lines
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.ready import Applied, Note
from paxosd.core.multi.records import Rebuilding
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope, NodeId
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import NotLeader, ServiceError
from paxosd.runtime.variants import Variant
from paxosd.service import (
    AdvanceTime,
    Cas,
    DecisionGet,
    DecisionPropose,
    Delete,
    Get,
    LockAcquire,
    LockRelease,
    NameLookup,
    NameRegister,
    Put,
    Request,
    StateMachine,
    encode,
    is_read,
)
from paxosd.service.results import (
    CasResult,
    DecisionResult,
    Error,
    LockResult,
    NameResult,
    NotFound,
    Released,
    Value,
)
from paxosd.storage import MemoryLog, make_identity

FAULTS = {
    "crash": "nodes are killed and restarted (unsynced writes are lost)",
    "partition": "the cluster splits into two sides for a while",
    "isolate-leader": "the current leader is cut off from everyone",
    "loss": "peer messages are lost (3%)",
    "duplicate": "peer messages are delivered twice (3%)",
    "reorder": "message delays vary widely, so messages overtake each other",
    "delay": "some messages take 20 to 60 times longer",
    "slow": "a node runs 5 to 10 times slower for a while",
    "torn-write": "a crash tears the last unsynced record",
    "disk-loss": "a node loses its whole disk while others are down, and rebuilds",
    "clock-skew": "wall clocks are up to 10 minutes off",
    "clock-jump": "the leader's wall clock jumps forward or back by seconds",
}
WORKLOADS = ("kv", "locks", "names", "decisions")

tick_ms = 10.0
turn_ms = 0.05  # how long a node's event-loop turn takes before it syncs and sends
# A datacenter: a peer message takes about as long as an fsync, so whatever leaves a node
# before its sync has often been acted on before the sync is done.
peer_delay_ms = (0.05, 1.0)
fsync_ms = (0.2, 2.0)  # how long a sync usually takes ...
fsync_stall_ms = (2.0, 20.0)  # ... and when the disk stalls (one sync in `fsync_stall_odds`)
fsync_stall_odds = 10
time_advance_ms = 50.0  # how often the idle leader proposes log time (lock leases)
node_request_timeout_ms = 300.0  # the driver's deadline for a request at a node
client_timeout_ms = 400.0
client_attempts_max = 6
lock_ttl_ms = 300
wall_skew_ms_max = 600_000.0
REDIRECT = object()  # "not here: try the leader" (the node names it when it knows)


@dataclass(frozen=True, slots=True)
class SimSpec:
    nodes: int = 3
    clients: int = 6
    keys: int = 3
    faults: frozenset[str] = frozenset(FAULTS)
    workloads: tuple[str, ...] = WORKLOADS
    variant: str = "correct"
    safety_ms: float = 3_000.0
    liveness_ms: float = 4_000.0
    config: EngineConfig = field(default_factory=EngineConfig)


@dataclass(slots=True)
class SimResult:
    seed: int
    operations: dict[str, int]
    faults: dict[str, int]
    violations: list[str]
    history: list[Event]
    node_status: dict[int, dict[str, Any]]

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
        self.replica = Replica(
            node_id,
            cluster.members,
            cluster.rng,
            cluster.spec.config,
            StateMachine(),
            StateMachine.restore,
            disk.load().records(),
        )
        options = DriverOptions(
            request_timeout_ms=node_request_timeout_ms,
            time_advance_ms=time_advance_ms,
            time_command=_time_command,
            variant=cluster.variant.driver,
        )
        self.driver = Driver(
            self.replica, disk, cluster.peers, cluster.clocks[node_id], self, options
        )
        self.position = (0, 0)  # (slot, commands of it applied so far)

    # inputs
    def deliver(self, envelope: Envelope) -> None:
        self.driver.deliver(envelope.src, envelope.msg)

    def tick(self) -> None:
        self.driver.tick()

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
        armed = cluster.armed_crashes.pop(self.node_id, None)
        if armed is None and not self.replica.status().is_leader:
            armed = cluster.armed_crashes.pop(0, None)  # a power failure, during a vote's sync
        if armed is not None:
            cluster.at(cluster.now + cluster.rng.uniform(0, took), armed)

    def _synced(self, done: Callable[[], None]) -> None:
        if self.alive:
            self.disk.sync()
            done()

    def answer(self, token: Any, result: Any) -> None:
        client, attempt = token
        self.cluster.to_client(partial(client.answer, attempt, result, self.node_id))

    def fail(self, token: Any, error: ServiceError) -> None:
        client, attempt = token
        hint = error.leader if isinstance(error, NotLeader) else None
        self.cluster.to_client(partial(client.answer, attempt, REDIRECT, hint))

    def event(self, event: Note) -> None:
        pass  # the simulator judges histories, not logs

    def applied(self, entry: Applied) -> None:
        slot, count = self.position
        self.position = (entry.slot, count + 1 if slot == entry.slot else 1)
        self.cluster.record_slot(self.node_id, entry, self.position[1])


def _time_command(now_ms: int) -> bytes:
    return encode(AdvanceTime(now_ms=now_ms))


# -- clients --------------------------------------------------------------------------------


class SimClient:
    """A client that runs one operation at a time and records everything it sees."""

    def __init__(self, cluster: Cluster, number: int) -> None:
        self.cluster = cluster
        self.name = f"c{number}"
        self.number = number
        self.rng = random.Random(cluster.rng.random())
        self.seq = 0
        self.attempt = 0  # never reset: a late answer must not pass for a newer attempt's
        self.tries = 0  # attempts at the current operation
        self.current: tuple[str, Any, Any, Request] | None = None  # f, key, input, request
        self.target: NodeId = cluster.members[number % len(cluster.members)]
        self.deadline = 0.0
        self.holding: dict[str, int] = {}  # lock name -> token
        self.done = 0

    def start(self) -> None:
        if self.cluster.now >= self.cluster.stop_at or self.current is not None:
            return
        self.seq += 1
        f, key, value, op = self._choose()
        request = Request(client_id=self.name, seq=self.seq, op=op)
        self.current = (f, key, value, request)
        self.tries = 0
        self.cluster.log(self.name, OpType.INVOKE, f, key, value)
        self._send()

    def _choose(self) -> tuple[str, Any, Any, Any]:
        rng, spec = self.rng, self.cluster.spec
        workload = rng.choice(spec.workloads)
        key = f"k{rng.randrange(spec.keys)}"
        if workload == "kv":
            kind = rng.choice(("put", "get", "cas", "delete", "get", "put"))
            value = rng.randrange(10)
            if kind == "put":
                return "put", key, value, Put(key=key, value=value)
            if kind == "get":
                return "get", key, None, Get(key=key)
            if kind == "delete":
                return "delete", key, None, Delete(key=key)
            expected = rng.randrange(10)
            return "cas", key, (expected, value), Cas(key=key, expected=expected, value=value)
        if workload == "locks":
            name = f"lock{rng.randrange(2)}"
            if name in self.holding:  # release first: re-acquiring would refresh, not grant
                return "release", name, self.holding[name], LockRelease(name=name, owner=self.name)
            owner = {"owner": self.name, "lease_s": lock_ttl_ms / 1000}
            return (
                "acquire",
                name,
                owner,
                LockAcquire(name=name, owner=self.name, ttl_ms=lock_ttl_ms),
            )
        if workload == "names":
            name = f"user{rng.randrange(3)}"
            if rng.random() < 0.3:
                return "lookup", name, None, NameLookup(name=name)
            return "register", name, self.name, NameRegister(name=name, owner=self.name)
        decision = f"d{rng.randrange(3)}"
        if rng.random() < 0.3:
            return "get", f"decision:{decision}", None, DecisionGet(id=decision)
        proposal = f"{self.name}-{self.seq}"
        return (
            "propose",
            f"decision:{decision}",
            proposal,
            DecisionPropose(id=decision, value=proposal),
        )

    def _send(self) -> None:
        assert self.current is not None
        self.attempt += 1
        self.tries += 1
        attempt, request = self.attempt, self.current[3]
        self.cluster.to_node(self.target, partial(_request, self, request, attempt))
        self.cluster.at(self.cluster.now + client_timeout_ms, partial(self._timeout, attempt))

    def _timeout(self, attempt: int) -> None:
        if self.current is not None and attempt == self.attempt:
            self._retry(None)

    def _retry(self, hint: NodeId | None) -> None:
        """Try again, under the same request id, at the leader we were told of or anywhere.
        While faults last a client gives up after a few attempts, with an unknown outcome;
        once they stop it keeps trying, and must get through (the liveness check)."""
        assert self.current is not None
        if self.tries >= client_attempts_max and self.cluster.now < self.cluster.heal_at:
            f, key, _, _ = self.current
            self.cluster.log(self.name, OpType.INFO, f, key, None)
            self._finish()
            return
        self.target = hint if hint is not None else self.rng.choice(self.cluster.members)
        expected = self.attempt
        self.cluster.at(self.cluster.now + self.rng.uniform(5, 30), partial(self._resend, expected))

    def _resend(self, expected: int) -> None:
        if self.current is not None and self.attempt == expected:
            self._send()

    def answer(self, attempt: int, result: Any, node: NodeId | None) -> None:
        if self.current is None or attempt != self.attempt:
            return  # a late answer to an earlier attempt; the retry will get the same one
        if result is REDIRECT:  # not done by this attempt, or not known: retry, same request id
            self._retry(node)
            return
        assert node is not None
        f, key, value, _ = self.current
        self.target = node
        outcome, output = self._outcome(f, value, result)
        self.cluster.log(self.name, outcome, f, key, output, node)
        pause_ms = self.rng.uniform(1, 20)
        if f == "acquire" and outcome == OpType.OK:
            self.holding[key] = output["token"]
            self._use(key, output["token"])
            if self.rng.random() < 0.5:
                # Work under the lock, sometimes past the lease (a holder that overruns):
                # only the fencing token protects the resource then.
                pause_ms = self.rng.uniform(0, 1.5 * lock_ttl_ms)
        if f == "release":
            self.holding.pop(key, None)
        self._finish(pause_ms)

    def _use(self, lock: str, token: int) -> None:
        """Act on the protected resource with the fencing token (the resource checks it)."""
        self.cluster.log(self.name, OpType.INVOKE, "use", lock, token)
        accepted = self.cluster.resource_use(lock, token)
        self.cluster.log(self.name, OpType.OK if accepted else OpType.FAIL, "use", lock, token)

    def _outcome(self, f: str, value: Any, result: Any) -> tuple[OpType, Any]:
        if isinstance(result, Error):
            return OpType.FAIL, None
        match result:
            case Value(value=v):
                return OpType.OK, v
            case NotFound():
                return OpType.OK, None
            case CasResult(succeeded=succeeded):
                return (OpType.OK if succeeded else OpType.FAIL), value
            case LockResult(acquired=acquired, fencing_token=token):
                if not acquired:
                    return OpType.FAIL, None
                return OpType.OK, {
                    "token": token,
                    "owner": self.name,
                    "lease_s": lock_ttl_ms / 1000,
                }
            case Released(released=released):
                return (OpType.OK if released else OpType.FAIL), value
            case NameResult(owner=owner):
                return OpType.OK, owner
            case DecisionResult(chosen=chosen):
                return OpType.OK, chosen
        return OpType.OK, value  # put, delete: the input is the record

    def _finish(self, pause_ms: float | None = None) -> None:
        self.current = None
        self.done += 1
        pause_ms = self.rng.uniform(1, 20) if pause_ms is None else pause_ms
        self.cluster.at(self.cluster.now + pause_ms, self.start)


def _request(client: SimClient, request: Request, attempt: int, node: SimNode) -> None:
    node.request(client, request, attempt)


# -- the cluster ----------------------------------------------------------------------------


class Cluster:
    def __init__(self, spec: SimSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self.rng = random.Random(seed)
        self.variant = Variant(spec.variant)
        self.members = tuple(range(1, spec.nodes + 1))
        self.now = 0.0
        # (virtual time, sequence number, action): the sequence number orders equal times
        # deterministically and keeps actions from ever being compared.
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        # The file backend's exact format on simulated disks: recovery after a crash, torn
        # last record included, is the code a real node runs.
        self.disks = {n: MemoryLog(make_identity("sim", n)) for n in self.members}
        self.wall_offset_ms = dict.fromkeys(self.members, 0.0)
        self.clocks = {n: _SimClock(self, n) for n in self.members}
        self.peers = _SimPeers(self)
        # Crashes waiting for a sync to start, to strike while it runs: by node (0: a follower).
        self.armed_crashes: dict[NodeId, Callable[[], None]] = {}
        self.nodes: dict[NodeId, SimNode | None] = {}
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.slowness = dict.fromkeys(self.members, 1.0)
        self.loss = self.duplicate = 0.0
        self.delay_max = peer_delay_ms[1]
        self.long_delays = False
        self.history: list[Event] = []
        self.faults: dict[str, int] = {}
        self.slots: dict[tuple[int, int], bytes] = {}
        self.slot_conflicts: list[str] = []
        self.resource: dict[str, int] = {}
        self.heal_at = spec.safety_ms
        self.stop_at = spec.safety_ms + spec.liveness_ms * 0.5
        self.liveness_end = spec.safety_ms + spec.liveness_ms
        self.clients = [SimClient(self, i) for i in range(spec.clients)]
        for node in self.members:
            self.nodes[node] = SimNode(self, node, self.disks[node])
            self._tick_chain(node, self.rng.uniform(0, tick_ms))

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
            sim.tick()
            self.at(self.now + tick_ms * self.slowness[node], tick)

        self.at(self.now + delay, tick)

    def count(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    # network
    def transmit(self, envelope: Envelope) -> None:
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
            self.at(self.now + delay, partial(self._arrive, envelope))

    def _arrive(self, envelope: Envelope) -> None:
        node = self.nodes[envelope.dst]
        if node is None or (envelope.src, envelope.dst) in self.blocked:
            return
        node.deliver(envelope)

    def to_node(self, node_id: NodeId, call: Callable[[SimNode], None]) -> None:
        """A client request travels to a node (clients are never partitioned)."""
        delay = self.rng.uniform(0.2, 1.0) * self.slowness[node_id]

        def arrive() -> None:
            node = self.nodes[node_id]
            if node is not None and node.alive:
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
        """Agreement on the log: every node applies the same command at each position."""
        digest = hashlib.blake2b(applied.payload, digest_size=8).digest()
        known = self.slots.setdefault((applied.slot, position), digest)
        if known != digest:
            self.slot_conflicts.append(
                f"slot {applied.slot}: node {node} applied a different command than another node"
            )

    def resource_use(self, lock: str, token: int) -> bool:
        """The protected resource accepts a token at least as high as any it has seen."""
        if token < self.resource.get(lock, 0):
            return False
        self.resource[lock] = token
        return True

    # faults
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
        disk = MemoryLog(make_identity("sim", node_id))
        if not self.variant.amnesia:
            disk.write([Rebuilding(True)])
            disk.sync()
        self.disks[node_id] = disk
        self.count("disk_loss")

    def restart(self, node_id: NodeId) -> None:
        if self.nodes[node_id] is not None:
            return
        self.nodes[node_id] = SimNode(self, node_id, self.disks[node_id])
        self._tick_chain(node_id, self.rng.uniform(0, tick_ms))
        self.count("restart")

    def partition(self, side: set[NodeId]) -> None:
        other = set(self.members) - side
        self.blocked |= {(a, b) for a in side for b in other} | {
            (b, a) for a in side for b in other
        }

    def leader(self) -> NodeId | None:
        for node_id, node in self.nodes.items():
            if node is not None and node.replica.status().is_leader:
                return node_id
        return None

    def heal(self) -> None:
        self.blocked.clear()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# -- a run ----------------------------------------------------------------------------------


def schedule_faults(cluster: Cluster) -> None:
    spec, rng, faults = cluster.spec, cluster.rng, cluster.spec.faults
    horizon = spec.safety_ms
    members = list(cluster.members)
    if "reorder" in faults:
        cluster.delay_max = 15.0
    if "loss" in faults:
        cluster.loss = 0.03
    if "duplicate" in faults:
        cluster.duplicate = 0.03
    if "delay" in faults:
        cluster.long_delays = True
    if "crash" in faults:
        for _ in range(rng.choice((0, 1, 1, 2))):
            # A power failure: every node at once, while a follower's fsync runs (the moment a
            # vote sent before its sync would be lost). Only what was synced survives anywhere.
            down = rng.uniform(200, horizon * 0.8)
            tears = {victim: "torn-write" in faults and rng.random() < 0.5 for victim in members}
            failure = partial(_power_failure, cluster, tears, rng.uniform(20, 200))
            cluster.at(down, partial(cluster.armed_crashes.__setitem__, 0, failure))
        for _ in range(rng.randint(1, 4)):
            victim = rng.choice(members)
            down = rng.uniform(100, horizon * 0.9)
            torn = "torn-write" in faults and rng.random() < 0.5
            crash = partial(cluster.crash, victim, torn)
            cluster.at(down, partial(_crash_now_or_mid_sync, cluster, victim, crash))
            cluster.at(rng.uniform(down, horizon), partial(cluster.restart, victim))
    if "partition" in faults:
        for _ in range(rng.randint(1, 2)):
            start = rng.uniform(100, horizon * 0.8)
            side = set(rng.sample(members, rng.randint(1, len(members) // 2)))
            cluster.at(start, partial(_cut, cluster, side))
            cluster.at(rng.uniform(start + 100, horizon), cluster.heal)
    if "isolate-leader" in faults:
        start = rng.uniform(200, horizon * 0.7)
        cluster.at(start, partial(_isolate_leader, cluster))
        cluster.at(min(horizon, start + rng.uniform(300, 900)), cluster.heal)
    if "slow" in faults:
        node = rng.choice(members)
        start = rng.uniform(0, horizon * 0.5)
        cluster.at(start, partial(_slow, cluster, node, rng.uniform(5, 10)))
        cluster.at(rng.uniform(start, horizon), partial(_slow, cluster, node, 1.0))
    if "disk-loss" in faults and len(members) >= 3:
        _schedule_disk_loss(cluster, members)
    if "clock-skew" in faults:
        for node in members:
            cluster.wall_offset_ms[node] = rng.uniform(-wall_skew_ms_max, wall_skew_ms_max)
        cluster.count("clock_skew")
    if "clock-jump" in faults:
        for _ in range(rng.randint(2, 6)):
            jump = rng.choice((-1, 1)) * rng.uniform(1_000, 10_000)
            cluster.at(rng.uniform(0, horizon), partial(_jump_leader, cluster, jump))


def _schedule_disk_loss(cluster: Cluster, members: list[NodeId]) -> None:
    """A disk is lost at the worst moment: some nodes fall behind (down), the victim and the
    nodes that shared its writes go down, the victim's disk is gone, and it comes back with the
    nodes that fell behind, which together make a quorum, while the others are still down.
    A node that voted on an empty store here would let that quorum forget acknowledged writes."""
    rng = cluster.rng
    victim, *others = rng.sample(members, len(members))
    holders = others[: (len(members) - 1) // 2]  # with the victim: a quorum that has the writes
    laggers = others[len(holders) :]
    start = rng.uniform(200, cluster.spec.safety_ms * 0.5)
    wiped = start + rng.uniform(100, 300)
    back = wiped + rng.uniform(10, 50)
    for node in laggers:
        cluster.at(start, partial(cluster.crash, node))
        cluster.at(back, partial(cluster.restart, node))
    for node in holders:
        cluster.at(wiped, partial(cluster.crash, node))
        cluster.at(back + rng.uniform(200, 500), partial(cluster.restart, node))
    cluster.at(wiped, partial(cluster.lose_disk, victim))
    cluster.at(back, partial(cluster.restart, victim))


def _jump_leader(cluster: Cluster, jump_ms: float) -> None:
    """The leader's wall clock jumps (NTP stepping it, an operator setting it): the clock
    whose reading would matter if anything used it."""
    leader = cluster.leader()
    if leader is not None:
        cluster.wall_offset_ms[leader] += jump_ms
        cluster.count("clock_jump")


def _crash_now_or_mid_sync(cluster: Cluster, node: NodeId, crash: Callable[[], None]) -> None:
    """Half the crashes strike while an fsync runs (`node`'s, or any follower's for 0): the
    moment when anything sent before its records were durable would be revealed as forgotten."""
    if cluster.rng.random() < 0.5:
        cluster.armed_crashes[node] = crash
    else:
        crash()


def _power_failure(cluster: Cluster, tears: dict[NodeId, bool], down_ms: float) -> None:
    for victim, torn in tears.items():
        cluster.crash(victim, torn)
        cluster.at(cluster.now + down_ms, partial(cluster.restart, victim))


def _cut(cluster: Cluster, side: set[NodeId]) -> None:
    cluster.partition(side)
    cluster.count("partition")


def _isolate_leader(cluster: Cluster) -> None:
    leader = cluster.leader()
    if leader is not None:
        cluster.partition({leader})
        cluster.count("isolate_leader")


def _slow(cluster: Cluster, node: NodeId, factor: float) -> None:
    cluster.slowness[node] = factor
    if factor != 1.0:
        cluster.count("slow")


def _heal_everything(cluster: Cluster) -> None:
    cluster.armed_crashes.clear()
    cluster.heal()
    cluster.loss = cluster.duplicate = 0.0
    cluster.long_delays = False
    cluster.delay_max = peer_delay_ms[1]
    for node in cluster.members:
        cluster.slowness[node] = 1.0
        cluster.restart(node)


def run(spec: SimSpec, seed: int) -> SimResult:
    """One seeded run: the same spec and seed always give the same history."""
    cluster = Cluster(spec, seed)
    for client in cluster.clients:
        cluster.at(cluster.rng.uniform(0, 50), client.start)
    schedule_faults(cluster)
    cluster.at(spec.safety_ms, partial(_heal_everything, cluster))
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
    return SimResult(seed, operations, dict(cluster.faults), violations, cluster.history, status)


def judge(cluster: Cluster) -> list[str]:
    problems = list(dict.fromkeys(cluster.slot_conflicts))
    history = build_history(cluster.history, "sim")
    problems += problem_lines(judge_workloads(history, time_limit_s=20))
    stuck = [c.name for c in cluster.clients if c.current is not None]
    if stuck:
        problems.append(
            f"liveness: {len(stuck)} client operation(s) still pending "
            f"{cluster.spec.liveness_ms:.0f} ms after faults stopped ({', '.join(stuck[:5])})"
        )
    return problems
