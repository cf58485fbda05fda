"""A paxosd node: the asyncio driver of one Multi-Paxos replica.

Theory of operation. The node runs the same `Replica` core as the simulator, in turns of the
event loop. Everything that happens - a peer's message, a client request, a timer tick -
calls one core input and the node collects the effects. At the end of the turn (scheduled
once with `call_soon`, so it runs after everything already readable was handled) the node
calls `flush` - the core batches queued commands into slots - then writes the turn's records
and syncs them with ONE fsync (group commit), and only then sends the turn's messages and
answers its clients. A crash at any instant therefore loses nothing that was acknowledged.

One exception, the leader's own Accept messages (Raft's "write to the leader's disk in
parallel", thesis 10.2.1): they leave just BEFORE the turn's fsync, so the followers' fsyncs
overlap the leader's (`early_accepts = false` in the config turns this off). That reveals no
acceptor state: an Accept is the proposer's request, not a vote, and its commit point is cut
to `durable_commit`, what turns already synced had chosen. The leader's own vote for the slot
is counted at once but cannot make anything chosen before the turn's fsync has returned: a
quorum needs a follower's Accepted, which can only be handled in a later turn (in a one-node
cluster there are no followers and nothing is sent early), and every reply, Accepted,
Promise and Commit still waits for the sync of its own turn. A leader that crashes before
its sync loses its vote, not the Paxos invariant: it never proposes in that ballot again (a
restarted node must win a new, higher ballot).

Clients get one code path into the engine whatever the front end: `submit` (a future) and
`execute` (a coroutine). Writes go through the log - a follower forwards them to the leader
and answers when it has applied them itself - and reads are linearizable on any node
(read-index, confirmed by the leader with a quorum). A write whose outcome cannot be known
(timeout, leader lost) fails with `Unavailable`, whose outcome is "unknown": retrying it with
the same client id and sequence number is safe, the state machine applies it at most once.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from paxosd.core.effects import Effects
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import Accept
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope
from paxosd.runtime.config import NodeConfig
from paxosd.runtime.errors import BadRequest, Damaged, NotLeader, Overloaded, Unavailable
from paxosd.runtime.transport import PeerTransport
from paxosd.service import (
    AdvanceTime,
    BadCommand,
    DecisionGet,
    Get,
    LockStatus,
    NameLookup,
    Request,
    StateMachine,
    encode,
    validate,
)
from paxosd.storage import CorruptLog, make_identity, open_store

log = logging.getLogger("paxosd.node")

READS = (Get, NameLookup, DecisionGet, LockStatus)
pending_requests_max = 100_000
# While a lease may be live, log time keeps moving even without traffic, so that it expires.
time_advance_ms = 100
latency_window = 2048
events_kept = 50


@dataclass(slots=True)
class _Write:
    future: asyncio.Future[Any]
    payload: bytes
    deadline: float
    started: float
    proposed: bool = False


@dataclass(slots=True)
class _Read:
    future: asyncio.Future[Any]
    op: Any
    deadline: float
    started: float
    asked: bool = False


@dataclass(slots=True)
class _Turn:
    records: list[Any] = field(default_factory=list)
    answers: list[tuple[asyncio.Future[Any], Any, float]] = field(default_factory=list)


class Node:
    """One paxosd node process: storage, replica, peers, client front ends."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.cluster_id = config.cluster_id
        t = config.timeouts
        self.tick_s = t.tick_ms / 1000
        self.request_timeout_s = t.request_timeout_ms / 1000
        self.engine_config = EngineConfig(
            heartbeat_ticks=max(1, t.heartbeat_ms // t.tick_ms),
            election_ticks_min=max(2, t.election_ms_min // t.tick_ms),
            election_ticks_max=max(2, t.election_ms_max // t.tick_ms),
            retransmit_ticks=max(2, 2 * t.heartbeat_ms // t.tick_ms),
            catchup_timeout_ticks=max(2, 3 * t.heartbeat_ms // t.tick_ms),
            variant=config.variant,
            # The leader's clock stamp heads every batch: room for it beside the commands.
            batch_commands_max=config.batch_commands_max + 1,
        )
        self.replica: Replica | None = None
        self.damage: str | None = None
        self.transport: PeerTransport | None = None
        self.store: Any = None
        self.turn = _Turn()
        self.turn_scheduled = False
        # chosen_upto as of the last turn whose records are durable: all that an Accept sent
        # before its own turn's fsync may tell.
        self.durable_commit = 0
        self.early = Accept if config.early_accepts else None  # the type sent early, if any
        self.writes: dict[tuple[str, int], _Write] = {}
        self.reads: dict[int, _Read] = {}
        self.read_ids = itertools.count(1)
        # Requests that come without a client session (plain HTTP, no headers) get an
        # anonymous id: applied once, but no session is kept for them in the state machine.
        self.client_id = f"~n{self.node_id}-{uuid.uuid4().hex[:12]}"
        self.seqs = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.servers: list[Any] = []
        self.started = time.time()
        self.last_time_advance = 0.0
        self.last_role = "follower"
        self.last_leader: int | None = None
        self.leader_changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=events_kept)
        self.latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self.ops_total = 0
        self.turns = 0
        self.stopping = False
        self._tick_handle: asyncio.TimerHandle | None = None
        self._metrics()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, serve_clients: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        if self.config.variant != "correct":
            log.warning("running the planted bug %r: this node is NOT safe", self.config.variant)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        identity = make_identity(self.cluster_id, self.node_id)
        self.store = open_store(
            self.config.data_dir,
            "sqlite" if self.config.storage == "sqlite" else "file",
            identity=identity,
            fsync=self.config.fsync,
        )
        try:
            recovered = self.store.load()
        except CorruptLog as error:
            # Damaged durable state: voting with it could break agreement. Stay up so an
            # operator can see why, but take no part in the protocol.
            self.damage = str(error)
            self._event("damaged", detail=self.damage)
            log.error("durable state is damaged, this node will not vote: %s", error)
        else:
            members = [m.id for m in self.config.members]
            self.replica = Replica(
                self.node_id,
                members,
                random.Random(),
                self.engine_config,
                StateMachine(),
                StateMachine.restore,
                recovered.records(),
            )
            self.durable_commit = self.replica.chosen_upto
            self.transport = PeerTransport(self.config, self._on_peer_message)
            await self.transport.start()
            self._tick_handle = self.loop.call_later(self.tick_s, self._tick)
        self._event("started")
        if serve_clients:
            await self._serve_clients()

    async def _serve_clients(self) -> None:
        from paxosd.api.http import serve_http
        from paxosd.api.metrics import HttpMetrics
        from paxosd.api.resp import serve_resp

        me = self.config.me
        self.servers.append(await serve_http(self, *me.http, metrics=HttpMetrics(self.registry)))
        self.servers.append(await serve_resp(self, *me.resp))

    async def stop(self) -> None:
        """Graceful shutdown: stop taking requests, answer what can be answered, sync, close."""
        if self.stopping:
            return
        self.stopping = True
        for server in self.servers:
            cleanup = getattr(server, "cleanup", None)
            if cleanup is not None:
                await cleanup()
            else:
                server.close()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self.replica is not None:
            self._end_turn()
        for pending in list(self.writes.values()):
            _fail(pending.future, Unavailable("the node is shutting down; outcome unknown"))
        for read in list(self.reads.values()):
            _fail(read.future, NotLeader("the node is shutting down"))
        self.writes.clear()
        self.reads.clear()
        if self.transport is not None:
            await self.transport.close()
        if self.store is not None:
            self.store.close()

    # -- the NodeService front-end API ----------------------------------------------------

    def submit(
        self, op: Any, *, client_id: str | None = None, seq: int | None = None
    ) -> asyncio.Future[Any]:
        loop = self.loop
        assert loop is not None
        future: asyncio.Future[Any] = loop.create_future()
        if self.damage is not None or self.replica is None:
            future.set_exception(Damaged(f"node {self.node_id} is damaged: {self.damage}"))
            return future
        if self.stopping:
            future.set_exception(NotLeader("the node is shutting down"))
            return future
        try:
            validate(op)
        except BadCommand as error:
            future.set_exception(BadRequest(str(error)))
            return future
        now = loop.time()
        if isinstance(op, READS):
            if len(self.reads) >= pending_requests_max:
                future.set_exception(Overloaded("too many reads in flight on this node"))
                return future
            read_id = next(self.read_ids)
            self.reads[read_id] = _Read(future, op, now + self.request_timeout_s, now)
            self._ask_read(read_id)
            return future
        if client_id is None or seq is None:
            client_id, seq = self.client_id, next(self.seqs)
        key = (client_id, seq)
        existing = self.writes.get(key)
        if existing is not None:
            return _chain(existing.future, loop)  # a retry while the first try is in flight
        if len(self.writes) >= pending_requests_max:
            future.set_exception(Overloaded("too many writes in flight on this node"))
            return future
        try:
            payload = encode(Request(client_id=client_id, seq=seq, op=op))
        except BadCommand as error:
            future.set_exception(BadRequest(str(error)))
            return future
        write = _Write(future, payload, now + self.request_timeout_s, now)
        self.writes[key] = write
        self._propose(write)
        return future

    async def execute(
        self,
        op: Any,
        *,
        client_id: str | None = None,
        seq: int | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        return await self.submit(op, client_id=client_id, seq=seq)

    def members(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.config.members]

    # -- inputs -----------------------------------------------------------------------------

    def _propose(self, write: _Write) -> None:
        replica = self.replica
        assert replica is not None
        if replica.is_leader or replica.leader_hint is not None:
            write.proposed = True
            self._absorb(replica.propose(write.payload))
        self._schedule_turn()

    def _ask_read(self, read_id: int) -> None:
        replica = self.replica
        assert replica is not None
        read = self.reads[read_id]
        read.asked = True
        self._absorb(replica.read(read_id))
        self._schedule_turn()

    def _on_peer_message(self, src: int, msg: Any) -> None:
        replica = self.replica
        if replica is None or self.stopping:
            return
        self._absorb(replica.step(Envelope(src, self.node_id, msg)))
        self._schedule_turn()

    def _tick(self) -> None:
        replica = self.replica
        loop = self.loop
        assert replica is not None and loop is not None
        self._tick_handle = loop.call_later(self.tick_s, self._tick)
        self._absorb(replica.tick())
        now = loop.time()
        if (
            replica.is_leader
            and cast(StateMachine, replica.machine).leases_may_be_live
            and now - self.last_time_advance >= time_advance_ms / 1000
        ):
            self.last_time_advance = now
            self._absorb(replica.propose(self._clock()))
        self._retry_and_expire(now)
        self._observe_roles()
        self._schedule_turn()

    def _retry_and_expire(self, now: float) -> None:
        """Unproposed writes wait for a leader; refused reads are asked again; anything past
        its deadline fails - with an unknown outcome if it may have been proposed."""
        replica = self.replica
        assert replica is not None
        for key, write in list(self.writes.items()):
            if now >= write.deadline:
                del self.writes[key]
                if write.proposed:
                    _fail(write.future, Unavailable("no answer in time; outcome unknown"))
                else:
                    _fail(write.future, NotLeader("no leader in time; not applied"))
                self.m_requests.labels(
                    kind="write", outcome="unknown" if write.proposed else "failed"
                ).inc()
            elif not write.proposed and (replica.is_leader or replica.leader_hint is not None):
                self._propose(write)
        for read_id, read in list(self.reads.items()):
            if now >= read.deadline:
                del self.reads[read_id]
                _fail(read.future, Unavailable("no leader confirmed the read in time"))
                self.m_requests.labels(kind="read", outcome="failed").inc()
            elif not read.asked:
                self._ask_read(read_id)

    # -- the turn: effects, then persist, then send, then answer ---------------------------

    def _absorb(self, effects: Effects) -> None:
        turn = self.turn
        if effects.persist:
            turn.records.extend(effects.persist)
        transport = self.transport
        assert transport is not None
        early = self.early
        for envelope in effects.send:
            msg = envelope.msg
            if type(msg) is early:
                transport.send_early(envelope.dst, msg)
            else:
                transport.send(envelope.dst, msg)
        if effects.decided:
            self._applied(effects.decided)
        if effects.reads:
            self._reads_ready(effects.reads)

    def _applied(self, applied: list[Any]) -> None:
        replica = self.replica
        assert replica is not None
        writes = self.writes
        answers = self.turn.answers
        for entry in applied:
            key = entry.request
            if key is None:
                continue
            write = writes.pop(key, None)
            if write is not None:
                answers.append((write.future, entry.result, write.started))

    def _reads_ready(self, ready: list[tuple[Any, bool]]) -> None:
        replica = self.replica
        assert replica is not None
        for read_id, ok in ready:
            read = self.reads.get(read_id)
            if read is None:
                continue
            if not ok:
                read.asked = False  # ask again at the next tick
                continue
            del self.reads[read_id]
            self.turn.answers.append((read.future, replica.machine.read(read.op), read.started))

    def _schedule_turn(self) -> None:
        if not self.turn_scheduled:
            self.turn_scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._end_turn)

    def _clock(self) -> bytes:
        return encode(AdvanceTime(now_ms=int(time.time() * 1000)))

    def _end_turn(self) -> None:
        self.turn_scheduled = False
        replica = self.replica
        if replica is None:
            return
        self._absorb(replica.flush(self._clock() if replica.is_leader else None))
        turn, self.turn = self.turn, _Turn()
        transport = self.transport
        assert transport is not None
        # The leader's Accepts leave now, while the fsync below runs, their commit point cut
        # to what earlier turns made durable: see the module's docstring.
        transport.flush_early(self.durable_commit)
        if turn.records:
            started = time.perf_counter()
            try:
                self.store.write(turn.records)
                self.store.sync()  # BEFORE anything else of this turn leaves the node
            except Exception as error:  # a failed fsync: nothing may be sent; stop hard
                log.critical("storage failed, stopping this node: %s", error)
                os._exit(70)
            self.m_fsync.observe(time.perf_counter() - started)
        self.durable_commit = replica.chosen_upto
        transport.flush()
        if turn.answers:
            assert self.loop is not None
            now = self.loop.time()
            latencies = self.latencies
            for future, result, started_at in turn.answers:
                if not future.done():
                    future.set_result(result)
                latencies.append(now - started_at)
            self.ops_total += len(turn.answers)
            self.m_ok.inc(len(turn.answers))
        self.turns += 1
        if self.turns % 1000 == 0:
            replica.invariants()

    # -- observation ----------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> None:
        self.events.append({"at": _iso(time.time()), "event": kind, **fields})

    def _observe_roles(self) -> None:
        replica = self.replica
        assert replica is not None
        leader = replica.node_id if replica.is_leader else replica.leader_hint
        if replica.role != self.last_role:
            self._event("role", role=replica.role, ballot=str(replica.ballot))
            self.last_role = replica.role
        if leader != self.last_leader and leader is not None:
            ballot = replica.ballot if replica.is_leader else replica.highest_seen
            self.leader_changes.append(
                {"at": _iso(time.time()), "leader": leader, "ballot": str(ballot)}
            )
            self.last_leader = leader
        self.g_role.set({"follower": 0, "candidate": 1, "leader": 2}[replica.role])
        self.g_chosen.set(replica.chosen_upto)
        self.g_applied.set(replica.applied)
        self.g_ballot.set(replica.acceptor.promised.round if replica.acceptor.promised else 0)

    def status(self) -> dict[str, Any]:
        replica = self.replica
        connected = set(self.transport.connected()) if self.transport else set()
        members = []
        for member in self.config.members:
            info = member.to_json()
            info["connected"] = member.id == self.node_id or member.id in connected
            members.append(info)
        latencies = sorted(self.latencies)
        status: dict[str, Any] = {
            "node_id": self.node_id,
            "cluster_id": self.cluster_id,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "members": members,
            "ops_total": self.ops_total,
            "latency_ms": {
                "p50": _percentile(latencies, 0.50) * 1000,
                "p99": _percentile(latencies, 0.99) * 1000,
            },
            "leader_changes": list(self.leader_changes),
            "recent_events": list(self.events),
            "pending": {"writes": len(self.writes), "reads": len(self.reads)},
        }
        if replica is None:
            status.update(role="damaged", leader=None, damage=self.damage)
            return status
        core = replica.status()
        leader = self.node_id if replica.is_leader else replica.leader_hint
        status.update(
            role=core["role"],
            leader=leader,
            ballot=core["ballot"] if core["role"] != "follower" else core["promised"],
            promised=core["promised"],
            commit=core["chosen_upto"],
            applied=core["applied"],
            lag=core["chosen_upto"] - core["applied"],
            next_slot=core["next_slot"],
            snapshot_slot=core["snapshot_slot"],
            inflight_slots=core["inflight_slots"],
            elections=replica.stats["elections"],
            disk_bytes=self.store.disk_bytes() if self.store is not None else 0,
        )
        return status

    def _metrics(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.m_requests = Counter(
            "paxosd_requests",
            "Client requests by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.m_ok = self.m_requests.labels(kind="any", outcome="ok")
        self.m_fsync = Histogram(
            "paxosd_fsync_seconds",
            "Time to write and sync one turn's records",
            buckets=(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
            registry=r,
        )
        self.g_role = Gauge("paxosd_role", "0 follower, 1 candidate, 2 leader", registry=r)
        self.g_chosen = Gauge("paxosd_chosen_slot", "Highest slot known chosen", registry=r)
        self.g_applied = Gauge("paxosd_applied_slot", "Highest slot applied", registry=r)
        self.g_ballot = Gauge("paxosd_ballot_round", "Round of the promised ballot", registry=r)

    def metrics_text(self) -> bytes:
        if self.replica is not None:
            self._observe_roles()
        return generate_latest(self.registry)


def _fail(future: asyncio.Future[Any], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


def _chain(source: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    target: asyncio.Future[Any] = loop.create_future()

    def copy(done: asyncio.Future[Any]) -> None:
        if target.done():
            return
        if done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)
    return target


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
