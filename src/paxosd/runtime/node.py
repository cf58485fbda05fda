"""A paxosd node process: the asyncio shell around the one driver (runtime/driver.py).

Theory of operation. The node owns what the simulator does not have: sockets (the peer
transport, the HTTP and RESP front ends), timers, futures, the real disk and clock, metrics
and logs. Everything that decides what happens in which order - the turn, persist before send,
the early Accepts, pending requests and their deadlines, log time - is the driver's, and the
simulator runs the very same code. A turn is scheduled with `call_soon`, so it runs after
everything already readable was handled (group commit across all of it), and the sync happens
inside the turn: nothing of the turn leaves before `fsync` returns. A failed sync stops the
process at once (exit 70): after a failed fsync the page cache may already have dropped the
data, so nothing that depends on it may ever be sent.

Clients get one code path into the engine whatever the front end: `submit` (a future) and
`execute` (a coroutine). Writes go through the log - a follower forwards them to the leader
and answers when it has applied them itself - and reads are linearizable on any node
(read-index, confirmed by the leader with a quorum). A write whose outcome cannot be known
(timeout, leader lost) fails with `Unavailable`, whose outcome is "unknown": retrying it with
the same client id and sequence number is safe, the state machine applies it at most once.

Start. A node opens its store and refuses to start if there is none (runtime/datadir.py): a
member must never quietly begin again with an empty store. A store that fails its checks
leaves the node up but "damaged": it serves its status, saying why, and takes no part in the
protocol.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import logging
import os
import random
import resource
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from functools import partial
from typing import Any, BinaryIO, Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from paxosd.api.limits import ClientLimits
from paxosd.api.version import VERSION
from paxosd.core.multi import epochs
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.ready import Applied, Note, Role
from paxosd.core.multi.replica import Replica
from paxosd.runtime import codec, datadir, incarnation, recovery, removal, sqlite_pin
from paxosd.runtime.config import ConfigError, Member, NodeConfig, parse_contact
from paxosd.runtime.configuration_json import configuration_json
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import BadRequest, Damaged, NotLeader, ServiceError
from paxosd.runtime.logs import event
from paxosd.runtime.rebuild_report import RebuildReport
from paxosd.runtime.transport import PeerTransport
from paxosd.runtime.variants import Variant
from paxosd.service import (
    ANONYMOUS_PREFIX,
    AdvanceTime,
    BadCommand,
    Request,
    StateMachine,
    encode,
    is_read,
    validate,
)
from paxosd.service.kv import InvalidRequest, Range, Txn
from paxosd.service.kv.checks import KvLimits
from paxosd.service.kv.compaction import AutoCompactor
from paxosd.service.namespace import Options
from paxosd.service.sql import SqlQuery
from paxosd.storage import CorruptLog, LogStore
from paxosd.storage.backup import BackupMeta, engine_slot, spool_state
from paxosd.storage.sql_files import SqlFiles
from paxosd.watch import MachineHistory, WatchHub, compaction_due

# The SQL database's directory in the data directory.
SQL_DIR: Final = "sql"
log = logging.getLogger("paxosd.node")
T = TypeVar("T")

# While a lease may be live, log time keeps moving even without traffic, so that it expires.
time_advance_ms = 100
latency_window = 2048
events_kept = 50
# A sync slower than this is logged as a warning: the disk is the cluster's latency.
fsync_slow_ms = 100
# A wall clock that moves this much more (or less) than the monotonic clock between two
# readings has jumped; the node does not use it, but an operator should know.
clock_jump_ms = 1_000
clock_check_ms = 1_000
# How often a rebuilding node looks at whom it waits for (runtime/rebuild_report.py).
rebuild_check_ms = 1_000


class SystemClock:
    """The machine's clocks, with an optional wall-clock offset for fault tests (the system
    clock is shared by every node on one machine, so a skew is injected here instead)."""

    def __init__(self, clock_file: os.PathLike[str] | None = None) -> None:
        self.clock_file = clock_file
        self.wall_offset_ms = 0.0

    def monotonic_ms(self) -> float:
        return time.monotonic() * 1000

    def wall_ms(self) -> float:
        return time.time() * 1000 + self.wall_offset_ms

    def reload(self) -> None:
        if self.clock_file is None:
            return
        try:
            with open(self.clock_file) as file:
                self.wall_offset_ms = float(json.load(file).get("wall_offset_ms", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            self.wall_offset_ms = 0.0


class Node:
    """One paxosd node process: storage, the driven replica, peers, client front ends."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.cluster_id = config.cluster_id
        self.variant = Variant(config.variant)
        t = config.timeouts
        self.tick_s = t.tick_ms / 1000
        self.engine_config = EngineConfig(
            heartbeat_ticks=max(1, t.heartbeat_ms // t.tick_ms),
            election_ticks_min=max(2, t.election_ms_min // t.tick_ms),
            election_ticks_max=max(2, t.election_ms_max // t.tick_ms),
            retransmit_ticks=max(2, 2 * t.heartbeat_ms // t.tick_ms),
            catchup_timeout_ticks=max(2, 3 * t.heartbeat_ms // t.tick_ms),
            variant=self.variant.core,
            # The leader's clock stamp heads every batch: room for it beside the commands.
            batch_commands_max=config.batch_commands_max + 1,
            early_accepts=config.early_accepts,
            snapshot_every_slots=config.snapshot_every_slots,
            auto_promote=config.auto_promote,
        )
        self.clock = SystemClock(config.clock_file)
        self.driver: Driver | None = None
        # Every watch this node serves, fed by the apply path (None while damaged).
        self.watches: WatchHub | None = None
        self.damage: str | None = None
        self.transport: PeerTransport | None = None
        self.store: LogStore | None = None
        # This data directory's store incarnation (runtime/incarnation.py), once started.
        self.incarnation: int | None = None
        # The configuration the transport was last given (see `_follow_configuration`).
        self._configuration: Configuration | None = None
        self._removal_remembered = False  # runtime/removal.py's file written (or tried)
        # Requests that come without a client session (plain HTTP, no headers) get an
        # anonymous id: applied once, but no session is kept for them in the state machine.
        self.client_id = f"{ANONYMOUS_PREFIX}n{self.node_id}-{uuid.uuid4().hex[:12]}"
        self.seqs = iter(range(1, 1 << 62))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.servers: list[Any] = []
        self.started = time.time()
        self.version = VERSION
        self.leader_changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=events_kept)
        self.latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self.ops_total = 0
        self._ops_counted = 0  # of ops_total, how many the ok counter has seen
        self.stopping = False
        self._started_at: dict[int, float] = {}  # id(future) -> when the request came
        self._clock_check = (0.0, 0.0)  # (monotonic, wall) at the last check
        self._tick_handle: asyncio.TimerHandle | None = None
        # What the node configures in its state machines ([kv] limits), and the leader's
        # automatic compaction of the key-value store's history (service/kv/compaction.py).
        # The SQL database lives in a file of its own under the data directory
        # (storage/sql_files.py).
        self.machine_options = Options(
            kv_limits=config.kv,
            variant=self.variant.service,
            sql_files=SqlFiles(config.data_dir / SQL_DIR),
        )
        self.compactor = AutoCompactor(config.kv)
        self.snapshot_thread = ThreadPoolExecutor(1, thread_name_prefix="paxosd-snapshot")
        self.snapshot_work_ms = 0.0  # the last snapshot work's time in the snapshot thread
        self.rebuild_report = RebuildReport(config, time.monotonic)
        self._rebuild_checked_ms = 0.0
        self._metrics()

    def _new_machine(self) -> StateMachine:
        """An empty state machine with this node's options ([kv] limits)."""
        return StateMachine(options=self.machine_options)

    def _restore_machine(self, inp: Any) -> StateMachine:
        """A state machine from a snapshot, with this node's options."""
        return StateMachine.restore(inp, options=self.machine_options)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, serve_clients: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        if self.variant.name != "correct":
            self._event("unsafe_variant", logging.WARNING, variant=self.variant.name,
                        detail="a planted bug: this node is NOT safe")  # fmt: skip
        try:
            self.store = datadir.open_existing(self.config, create=self.variant.amnesia)
            # What an earlier run left there is no state (rebuilt from snapshot and log); the
            # store's lock, held now, keeps any other node off this directory.
            SqlFiles(self.config.data_dir / SQL_DIR).clear()
            recovered = self.store.load()
            settled = datadir.settle_configuration(self.config, self.store, recovered)
            sqlite_pin.settle(self.config.data_dir, self.node_id)
            self.incarnation, made = incarnation.settle(
                self.config.data_dir, fsync=self.config.fsync
            )
            if made:  # a data directory from before ids (why that is safe: incarnation.py)
                self._event("incarnation_made", incarnation=incarnation.show(self.incarnation))
            started = time.perf_counter()
            machine, recovered = recovery.recover(
                self.store, settled.recovered, self._restore_machine, self._new_machine
            )
        except CorruptLog as error:
            # Damaged durable state: voting with it could break agreement. Stay up so an
            # operator can see why, but take no part in the protocol. Clients (status, error
            # answers) get the damage without the node's paths; its log has them.
            self.damage = _without(str(error), self.config.data_dir)
            self._event("damaged", logging.ERROR, detail=str(error))
        except (datadir.MembershipMismatch, sqlite_pin.SqliteMismatch, incarnation.BadIncarnation):
            if self.store is not None:
                self.store.close()
                self.store = None
            raise
        else:
            if recovered.snapshot is not None:
                took_ms = round((time.perf_counter() - started) * 1000)
                self._event("snapshot_loaded", slot=recovered.snapshot.slot, ms=took_ms)
            if settled.adopted:
                self._event(
                    "configuration_adopted", logging.WARNING,
                    configuration=_describe(recovered.configuration),
                    detail="this store was made before stores recorded their members: it "
                    "now holds the members of its config file, and refuses any other",
                )  # fmt: skip
            if recovered.repaired_tail_bytes:
                self._event("storage_repaired", torn_tail_bytes=recovered.repaired_tail_bytes)
            if recovered.rebuilding:
                self._event("rebuilding", detail="rebuilding a lost store from every peer")
            replica = Replica(
                self.node_id,
                datadir.configuration_of(self.config),
                random.Random(),
                self.engine_config,
                machine,
                recovered.records(),
            )
            self.transport = PeerTransport(
                self.config, self._on_peer_message, incarnation=self.incarnation
            )
            self._configuration = replica.configuration
            self.transport.adopt(replica.configuration)
            options = DriverOptions(
                request_timeout_ms=float(self.config.timeouts.request_timeout_ms),
                time_advance_ms=time_advance_ms,
                time_command=_time_command,
                full_invariants_every_turns=1000,
                variant=self.variant.driver,
                restore=self._restore_machine,
            )
            self.driver = Driver(replica, self.store, self.transport, self.clock, self, options)
            kv = self.config.kv
            self.watches = WatchHub(
                MachineHistory(lambda: replica.learner.machine),
                replace(self.config.watch, variant=self.variant.watch),
                compaction_due(kv.history_revisions_max, kv.history_bytes_max),
            )
            await self.transport.start()
            self._tick_handle = self.loop.call_later(self.tick_s, self._tick)
        self._remember("started", version=self.version, data=str(self.config.data_dir))
        if serve_clients:
            await self._serve_clients()

    async def _serve_clients(self) -> None:
        from paxosd.api.http import serve_http
        from paxosd.api.metrics import HttpMetrics
        from paxosd.api.resp import serve_resp

        me = self.config.me
        limits = fit_open_files(self.config.limits)
        metrics = HttpMetrics(self.registry)
        self.servers.append(await serve_http(self, *me.http, limits=limits.http, metrics=metrics))
        self.servers.append(await serve_resp(self, *me.resp, limits=limits.resp))

    async def stop(self, cause: str = "asked to stop") -> None:
        """Graceful shutdown: stop taking requests, finish the turn, fail what is pending,
        sync, close."""
        if self.stopping:
            return
        self.stopping = True
        self._remember("stopping", cause=cause)
        if self.watches is not None:
            # Each watch's stream ends with where to resume, before its connection closes.
            self.watches.close_all("the node is shutting down: watch on another node")
        for server in self.servers:
            cleanup = getattr(server, "cleanup", None)
            if cleanup is not None:
                await cleanup()
            else:
                server.close()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        driver = self.driver
        if driver is not None:
            driver.end_turn()
            driver.stop()
        if self.transport is not None:
            await self.transport.close()
        # A snapshot still being written is abandoned: nothing names its file, which the next
        # start removes (the interpreter waits for the thread before the process exits).
        self.snapshot_thread.shutdown(wait=False, cancel_futures=True)
        if self.store is not None:
            self.store.close()

    # -- the NodeService front-end API ----------------------------------------------------

    def submit(
        self, op: Any, *, client_id: str | None = None, seq: int | None = None
    ) -> asyncio.Future[Any]:
        loop = self.loop
        assert loop is not None
        future: asyncio.Future[Any] = loop.create_future()
        driver = self.driver
        if driver is None:
            future.set_exception(Damaged(f"node {self.node_id} is damaged: {self.damage}"))
            return future
        if self.stopping:
            future.set_exception(NotLeader("the node is shutting down"))
            return future
        if is_read(op):
            try:
                validate(op, self.config.kv)
            except BadCommand as error:
                future.set_exception(_bad_request(error))
                return future
            if _serializable(op):
                # The node's own state, without confirming it is current (etcd's
                # serializable reads): answered now, never stale by more than this node lags.
                future.set_result(driver.replica.learner.machine.read(op))
                return future
            self._started_at[id(future)] = loop.time()
            driver.submit_read(op, future)
            return future
        if client_id is None or seq is None:
            client_id, seq = self.client_id, next(self.seqs)
        try:
            if type(op) is Txn:
                validate(op, self.config.kv)  # the node's limits on transactions
            # Encoding checks the op as `validate` would (and that it is a client op).
            payload = encode(Request(client_id=client_id, seq=seq, op=op))
        except BadCommand as error:
            future.set_exception(_bad_request(error))
            return future
        self._started_at[id(future)] = loop.time()
        retry_safe = not client_id.startswith(ANONYMOUS_PREFIX)
        driver.submit_write((client_id, seq), payload, future, retry_safe=retry_safe)
        return future

    async def execute(
        self,
        op: Any,
        *,
        client_id: str | None = None,
        seq: int | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """`submit`, awaited; with `timeout_s`, at most that long (then `Unavailable`, as the
        node's own deadline would give: a write's outcome is then unknown)."""
        future = self.submit(op, client_id=client_id, seq=seq)
        if timeout_s is None:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            from paxosd.runtime.errors import Unavailable

            raise Unavailable(f"no answer within {timeout_s} s; outcome unknown") from None

    def transfer_leadership(self, target: int) -> str | None:
        """Hand leadership to node `target`: None once the handover has begun, else why not
        (not the leader, not a voter, one already under way)."""
        if self.driver is None:
            return f"node {self.node_id} is damaged: {self.damage}"
        refused = self.driver.transfer_leadership(target)
        if refused is None:
            self._event("transfer_asked", target=target)
        return refused

    def change_members(
        self, voters: list[int], learners: list[int], joining: Joined | None = None
    ) -> str:
        """Change the membership through the log (core/multi/epochs.py): "" once the change
        is under way, else why not (not the leader, one under way, no quorum would answer).
        `joining`: a node that joins as a learner, with its identity and addresses (the
        members learn how to reach it from its record: it is in no config file)."""
        if self.driver is None:
            return f"node {self.node_id} is damaged: {self.damage}"
        configuration = self.driver.replica.configuration
        known = {m.id for m in self.config.members} | set(configuration.members)
        if joining is not None:
            try:
                member = parse_contact(joining.node, joining.contact)
            except ConfigError as error:
                return str(error)
            # Messages for it would reach another node: refuse an address a member has.
            for other in self.known_members():
                shared = {member.peer, member.http, member.resp} & {
                    other.peer,
                    other.http,
                    other.resp,
                }
                if other.id != joining.node and shared:
                    host, port = sorted(shared)[0]
                    return f"node {joining.node}'s address {host}:{port} is node {other.id}'s"
            known.add(joining.node)
        unknown = sorted(set(voters + learners) - known)
        if unknown:
            return (
                f"node(s) {','.join(map(str, unknown))} are not in this node's config file nor "
                f"members: a new node joins with its addresses (paxosd node --join)"
            )
        needed = codec.protocol_version_members
        if joining is not None:
            # A member at 5 could neither dial the new node nor check its identity.
            needed = codec.protocol_version_identities
        transport = self.transport
        if transport is not None:
            older = sorted(
                (node, version)
                for node, version in transport.peer_versions.items()
                if version < needed and configuration.is_member(node)
            )
            if older:
                node, version = older[0]
                what = "a node joining" if joining is not None else "a membership change"
                return (
                    f"node {node} speaks peer protocol {version}, which takes no part in "
                    f"{what}: upgrade every member first"
                )
        refused = self.driver.change_members(voters, learners, joining)
        if not refused:
            extra = {} if joining is None else {"joining": joining.node}
            self._event("members_change_asked", voters=voters, learners=learners, **extra)
        return refused

    def members(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.known_members()]

    def known_members(self) -> list[Member]:
        """Every node this node knows the addresses of: the config file's members, and the
        members of its configuration that joined through the log (their records' addresses,
        which are newer than a config file's), by id."""
        found = {m.id: m for m in self.config.members}
        driver = self.driver
        if driver is not None:
            for entry in driver.replica.configuration.joined:
                try:
                    found[entry.node] = parse_contact(entry.node, entry.contact)
                except ConfigError:
                    continue  # logged by the transport, which cannot dial it either
        return [found[node] for node in sorted(found)]

    def _follow_configuration(self, driver: Driver) -> None:
        """After the replica adopted a configuration: the transport dials its new members
        and stops dialing (and admitting) the ones that left or were replaced."""
        configuration = driver.replica.configuration
        if configuration is self._configuration or self.transport is None:
            return
        self._configuration = configuration
        self.transport.adopt(configuration)

    async def backup(self) -> tuple[BackupMeta, BinaryIO]:
        """The state for `paxosd snapshot save`, and what it holds: an unnamed temporary file
        (removed when closed) holding the state machine's snapshot at one slot.

        It first confirms a linearizable read, so the backup holds every write acknowledged
        before it was asked for; then the snapshot view and the figures of the meta are taken
        in one step of the loop (nothing applies in between: one slot, one revision), and the
        view is written off the loop, in the snapshot thread, while writes go on."""
        if self.driver is None:
            raise Damaged(f"node {self.node_id} is damaged: {self.damage}")
        await self.execute(_BACKUP_BARRIER)
        assert self.loop is not None and self.driver is not None
        router = _router(self.driver)
        store = router.kv.store
        meta = BackupMeta(
            cluster_id=self.cluster_id, node_id=self.node_id, slot=engine_slot(router.applied_slot),
            revision=router.revision, compact_revision=store.compact_revision,
            keys=store.live_keys, state_bytes=0, created_at=_iso(time.time()),
            paxosd_version=self.version,
        )  # fmt: skip
        view = router.snapshot_view()
        try:
            work = partial(spool_state, view, self.config.data_dir)
            file, size = await self.loop.run_in_executor(
                self.snapshot_thread, partial(collector_paused, work)
            )
        finally:
            view.close()
        self._event("backup_taken", slot=meta.slot, revision=meta.revision, bytes=size)
        return replace(meta, state_bytes=size), file

    @property
    def kv_limits(self) -> KvLimits:
        return self.config.kv

    @property
    def lease_ttl_ms_min(self) -> int:
        return self.config.timeouts.lease_ttl_ms_min

    def term(self) -> int:
        driver = self.driver
        if driver is None:
            return 0
        promised = driver.replica.status().promised
        return promised.round if promised is not None else 0

    # -- the driver's host ------------------------------------------------------------------

    def schedule_turn(self) -> None:
        assert self.loop is not None and self.driver is not None
        self.loop.call_soon(self.driver.end_turn)

    def sync(self, done: Callable[[], None]) -> None:
        store = self.store
        assert store is not None
        started = time.perf_counter()
        try:
            store.sync()  # BEFORE anything else of this turn leaves the node
        except Exception as error:  # a failed fsync: nothing may be sent; stop hard
            event(log, "storage_failed", logging.CRITICAL, node=self.node_id, error=error)
            os._exit(70)
        took = time.perf_counter() - started
        self.m_fsync.observe(took)
        if took * 1000 > fsync_slow_ms:
            event(log, "fsync_slow", logging.WARNING, node=self.node_id, ms=round(took * 1000))
        done()

    def answer(self, token: Any, result: Any) -> None:
        future: asyncio.Future[Any] = token
        started = self._started_at.pop(id(future), None)
        if not future.done():
            future.set_result(result)
        if started is not None and self.loop is not None:
            self.latencies.append(self.loop.time() - started)
        self.ops_total += 1  # the ok counter catches up in _observe: one inc per tick

    def fail(self, token: Any, error: ServiceError) -> None:
        future: asyncio.Future[Any] = token
        self._started_at.pop(id(future), None)
        if not future.done():
            future.set_exception(error)
        self.m_requests.labels(kind="any", outcome=error.outcome).inc()

    def event(self, note: Note) -> None:
        fields = dict(note.fields)
        fields.pop("node", None)
        if note.event == "leader_changed":
            change = {"at": _iso(time.time()), "leader": fields.get("leader")}
            self.leader_changes.append({**change, "ballot": str(fields.get("ballot"))})
        if note.event in _SNAPSHOT_WORK_DONE:
            # The core reads no clock: the log says how long the host's part took (writing
            # the file, or checking and restoring a peer's), so an operator sees where a
            # learner's time went (the transfer is the rest).
            fields["work_ms"] = round(self.snapshot_work_ms)
        level = logging.WARNING if note.event in _WARNINGS else logging.INFO
        self._event(note.event, level, **fields)

    def applied(self, entry: Applied) -> None:
        watches = self.watches
        if watches is not None:
            watches.applied(entry.events)

    def background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Snapshot work, in the node's one snapshot thread: one snapshot is written or
        restored at a time, while the event loop goes on with the protocol."""
        assert self.loop is not None

        def finished(future: asyncio.Future[Any]) -> None:
            try:
                result = future.result()
            except BaseException as error:  # reported to the replica, which notes it
                result = error
            done(result)

        def timed() -> Any:
            began = time.monotonic()
            try:
                return collector_paused(work)
            finally:
                self.snapshot_work_ms = (time.monotonic() - began) * 1000

        self.loop.run_in_executor(self.snapshot_thread, timed).add_done_callback(finished)

    # -- inputs -----------------------------------------------------------------------------

    def _on_peer_message(self, src: int, msg: Any) -> None:
        if self.driver is not None and not self.stopping:
            self.driver.deliver(src, msg)

    def _tick(self) -> None:
        loop, driver = self.loop, self.driver
        assert loop is not None and driver is not None
        self._tick_handle = loop.call_later(self.tick_s, self._tick)
        driver.tick()
        self._follow_configuration(driver)
        self._compact_if_due(driver)
        removed = driver.removed()
        if removed is not None and not self._removal_remembered:
            self._remember_removal(driver)
        if self.watches is not None:
            self.watches.tick(self.clock.monotonic_ms())
            if removed is not None:  # its watchers would hear of nothing again
                self.watches.close_all(f"{removed}: watch on a member")
        self._watch_clock()
        self._observe()
        now = self.clock.monotonic_ms()
        if now - self._rebuild_checked_ms >= rebuild_check_ms:
            self._rebuild_checked_ms = now
            connected = self.transport.connected() if self.transport else []
            self.rebuild_report.tick(driver.replica.status(), connected)

    def _remember_removal(self, driver: Driver) -> None:
        """Once removed, write the configuration that left this node out beside its store
        (runtime/removal.py): `paxosd up` then leaves the node out next time."""
        self._removal_remembered = True
        configuration = epochs.removed_by(driver.replica)
        if configuration is None:
            return
        try:
            removal.remember(self.config.data_dir, configuration)
        except OSError as error:
            self._event("removal_not_recorded", logging.WARNING, error=str(error))

    def _compact_if_due(self, driver: Driver) -> None:
        """As leader, propose a Compact when the key-value history is over its limits."""
        if driver.replica.role is not Role.LEADER or self.stopping:
            return
        compact = self.compactor.due(_router(driver).kv.store)
        if compact is not None:
            self._event("compaction_proposed", revision=compact.revision)
            self.submit(compact).add_done_callback(_ignore_outcome)

    def _watch_clock(self) -> None:
        """Warn when the wall clock jumps (it is only ever read for logs)."""
        mono, wall = self.clock.monotonic_ms(), self.clock.wall_ms()
        last_mono, last_wall = self._clock_check
        if mono - last_mono < clock_check_ms:
            return
        self.clock.reload()
        wall = self.clock.wall_ms()
        if last_mono and abs((wall - last_wall) - (mono - last_mono)) > clock_jump_ms:
            jump = round((wall - last_wall) - (mono - last_mono))
            event(log, "clock_jumped", logging.WARNING, node=self.node_id, ms=jump)
        self._clock_check = (mono, wall)

    # -- observation ----------------------------------------------------------------------

    def _event(self, kind: str, level: int = logging.INFO, **fields: Any) -> None:
        """An event for the log and for the status page's recent events."""
        self._remember(kind, **fields)
        event(log, kind, level, node=self.node_id, **fields)

    def _remember(self, kind: str, **fields: Any) -> None:
        """An event for the status page only (cli/node.py logs starting and stopping)."""
        self.events.append({"at": _iso(time.time()), "event": kind, **_jsonable(fields)})

    def _observe(self) -> None:
        driver = self.driver
        if driver is None:
            return
        status = driver.status
        if self.ops_total != self._ops_counted:
            self.m_ok.inc(self.ops_total - self._ops_counted)
            self._ops_counted = self.ops_total
        self.g_role.set(_ROLE_GAUGE[status.role])
        self.g_chosen.set(status.chosen_upto)
        self.g_applied.set(status.applied)
        self.g_ballot.set(status.promised.round if status.promised else 0)
        store = _router(driver).kv.store
        self.g_kv_revision.set(store.revision)
        self.g_kv_compacted.set(store.compact_revision)
        self.g_kv_keys.set(store.live_keys)
        self.g_kv_history.set(store.history_bytes)

    def status(self) -> dict[str, Any]:
        connected = set(self.transport.connected()) if self.transport else set()
        members = []
        for member in self.known_members():
            info = member.to_json()
            info["connected"] = member.id == self.node_id or member.id in connected
            refused = self.transport.refusals.get(member.id) if self.transport else None
            if refused is not None:
                info["refused"] = refused  # it refuses this node's connection, and why
            members.append(info)
        latencies = sorted(self.latencies)
        driver = self.driver
        writes, reads = driver.pending() if driver is not None else (0, 0)
        status: dict[str, Any] = {
            "node_id": self.node_id,
            "cluster_id": self.cluster_id,
            "incarnation": incarnation.show(self.incarnation),
            "version": self.version,
            "protocol": {"version": codec.protocol_version, "oldest": codec.protocol_version_min},
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "members": members,
            "ops_total": self.ops_total,
            "latency_ms": {
                "p50": round(_percentile(latencies, 0.50) * 1000, 3),
                "p99": round(_percentile(latencies, 0.99) * 1000, 3),
            },
            "leader_changes": list(self.leader_changes),
            "recent_events": list(self.events),
            "pending": {"writes": writes, "reads": reads},
            # A node that joins takes the cluster's timeouts from a member (cli/join.py).
            "timeouts": asdict(self.config.timeouts),
        }
        if driver is None:
            status.update(role="damaged", leader=None, damage=self.damage)
            return status
        core = driver.replica.status()
        ballot = core.ballot if core.ballot is not None else core.promised
        configuration = driver.replica.configuration
        status["configuration"] = configuration_json(configuration)
        store = self.store
        log_bytes = store.disk_bytes() if store is not None else 0
        snapshot_bytes = store.snapshots.disk_bytes() if store is not None else 0
        status.update(
            role=core.role.value,
            leader=core.leader,
            ballot=None if ballot is None else str(ballot),
            promised=None if core.promised is None else str(core.promised),
            commit=core.chosen_upto,
            applied=core.applied,
            lag=core.chosen_upto - core.applied,
            next_slot=core.next_slot,
            snapshot_slot=core.snapshot_slot,
            inflight_slots=core.inflight_slots,
            elections=core.elections,
            rebuilding=core.rebuilding,
            transferring_to=core.transferring_to,
            # The log and the snapshot files beside it; snapshot_bytes: the files alone.
            disk_bytes=log_bytes + snapshot_bytes,
            snapshot_bytes=snapshot_bytes,
            kv=_kv_status(_router(driver)),
            sql=_router(driver).sql.status(),
        )
        if core.rebuilding:
            reasons = self.rebuild_report.reasons(core, connected)
            status["rebuild_waiting_for"] = {str(peer): why for peer, why in reasons.items()}
        if self.watches is not None:
            status["watches"] = self.watches.status()
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
        self.g_role = Gauge(
            "paxosd_role", "0 follower, 1 candidate, 2 leader, 3 rebuilding", registry=r
        )
        self.g_chosen = Gauge("paxosd_chosen_slot", "Highest slot known chosen", registry=r)
        self.g_applied = Gauge("paxosd_applied_slot", "Highest slot applied", registry=r)
        self.g_ballot = Gauge("paxosd_ballot_round", "Round of the promised ballot", registry=r)
        self.g_kv_revision = Gauge(
            "paxosd_kv_revision", "The key-value store's revision", registry=r
        )
        self.g_kv_compacted = Gauge(
            "paxosd_kv_compact_revision",
            "The compacted revision: reads below it are refused (-1: none)",
            registry=r,
        )
        self.g_kv_keys = Gauge("paxosd_kv_keys", "Live keys in the key-value store", registry=r)
        self.g_kv_history = Gauge(
            "paxosd_kv_history_bytes",
            "Bytes held for reads at past revisions (superseded versions, tombstones)",
            registry=r,
        )

    def metrics_text(self) -> bytes:
        self._observe()
        return generate_latest(self.registry)


_ROLE_GAUGE = {Role.FOLLOWER: 0, Role.CANDIDATE: 1, Role.LEADER: 2, Role.REBUILDING: 3}

# Core notes an operator should see as warnings rather than information.
_WARNINGS = frozenset(
    {
        "quorum_lost",
        "ballot_refused",
        "ballot_space_exhausted",
        "snapshot_refused",
        "snapshot_failed",
        "snapshot_unreadable",
        "forward_dropped",
    }
)


# Core notes that end a piece of snapshot work done in the background (one at a time).
_SNAPSHOT_WORK_DONE = frozenset({"snapshot_taken", "snapshot_installed"})


# Open files a node keeps for itself (its store, peers, logs) beside the client connections.
files_reserved = 256


def fit_open_files(limits: ClientLimits) -> ClientLimits:
    """The limits, with each client port's connection cap lowered so that both fit the
    process's open-file limit: at the cap a node refuses new connections and goes on serving,
    where running out of file descriptors would stop it opening its own files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits
    share = max(16, (soft - files_reserved) // 2)
    http, resp = limits.http, limits.resp
    if http.connections_max <= share and resp.connections_max <= share:
        return limits
    event(log, "connection_caps_lowered", logging.WARNING, open_files=soft, per_port=share)
    return replace(
        limits,
        http=replace(http, connections_max=min(http.connections_max, share)),
        resp=replace(resp, connections_max=min(resp.connections_max, share)),
    )


def _without(text: str, data_dir: os.PathLike[str]) -> str:
    """`text` with the data directory's path taken out ("paxos.log at offset 120: ..."): what
    a client is told must not reveal where the node keeps its files."""
    where = os.fspath(data_dir)
    absolute = os.path.abspath(where)
    for path in sorted({absolute, where}, key=len, reverse=True):
        text = text.replace(path + os.sep, "").replace(path, "the data directory")
    return text


def _describe(configuration: Any) -> str:
    return "none" if configuration is None else str(configuration.describe())


def _bad_request(error: BadCommand) -> BadRequest:
    """A refused request; one etcd refuses too carries etcd's error (kv/errors.py)."""
    return BadRequest(str(error), error.error if isinstance(error, InvalidRequest) else None)


def _kv_status(machine: StateMachine) -> dict[str, Any]:
    """The key-value store in /v1/status: its revision, the compacted one (reads below it are
    refused), its keys, what its history costs, its live leases and how long the soonest to
    end has left in log time (None: no lease)."""
    store = machine.kv.store
    leases = machine.kv.leases
    soonest = leases.soonest_deadline_ms()
    return {
        "revision": store.revision,
        "compact_revision": store.compact_revision,
        "keys": store.live_keys,
        "history_bytes": store.history_bytes,
        "leases": len(leases),
        "soonest_lease_ms": None if soonest is None else max(0, soonest - leases.now_ms),
    }


def _router(driver: Driver) -> StateMachine:
    """The node's replicated state machine (the engine knows it only as a `Machine`)."""
    machine = driver.replica.learner.machine
    assert isinstance(machine, StateMachine)
    return machine


def _serializable(op: Any) -> bool:
    """A Range marked serializable, or a read-only Txn whose ranges all are (etcd's rule), or
    an SQL query at the `none` level."""
    if type(op) is SqlQuery:
        return op.local
    if type(op) is Range:
        return bool(op.serializable)
    if type(op) is Txn:
        ranges = list(_ranges(op))
        return bool(ranges) and all(r.serializable for r in ranges)
    return False


def _ranges(op: Txn) -> Any:
    for child in (*op.success, *op.failure):
        if type(child) is Txn:
            yield from _ranges(child)
        elif type(child) is Range:
            yield child


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    """A proposal made by the node itself (a compaction): its answer is not awaited; a
    failure is retried by whoever proposed it."""
    if not future.cancelled():
        future.exception()


def collector_paused(work: Callable[[], T]) -> T:
    """Run snapshot work with the cycle collector paused, and freeze what survives it.

    Writing a snapshot allocates a row per key, and restoring one allocates the whole new
    state machine: collections meanwhile would walk millions of objects, each holding the
    interpreter for hundreds of milliseconds at a million keys while the event loop (and the
    heartbeats) wait. Paused, the work's garbage is still freed by reference counting (the
    rows and the state are acyclic); afterwards everything alive is frozen out of later
    collections, as cli/node.py does after a start, so the state is never walked again.

    No collection runs after a success: with the collector paused, the young generation
    holds every object the work allocated (a restored machine's millions), and collecting it
    would hold the interpreter for seconds (1.9 s at 300,000 keys on a loaded 2-core
    machine): the very stall this avoids. A failed restore is different: its half-built
    machine may hang on the exception's traceback cycle, so it is collected (rare, and
    better than keeping it frozen forever)."""
    gc.disable()
    try:
        result = work()
    except BaseException:
        gc.enable()
        gc.collect()
        raise
    gc.freeze()
    gc.enable()
    return result


# A linearizable read of nothing in particular: once it is answered, the state holds every
# write acknowledged before it was asked (a backup's promise).
_BACKUP_BARRIER = Range(key=b"\x00", limit=1, count_only=True)


def _time_command(now_ms: int) -> bytes:
    return encode(AdvanceTime(now_ms=now_ms))


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if value is None or isinstance(value, bool | int | float | str) else str(value)
        for key, value in fields.items()
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


__all__ = ["Node", "SystemClock"]
