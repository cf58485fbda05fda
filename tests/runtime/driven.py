"""A network of nodes, each a real `Driver` over a real (in-memory) store, with hosts whose
syncs and snapshot work complete only when a test says so: what the node process does, with
the test as the scheduler.

Unlike tests/core/multi/harness.py (which carries out a replica's `Ready` itself, with a sync
that completes at once), everything here goes through the driver the node and the simulator
run: the early Accepts leave before the turn's records are written, the rest waits for the
sync, snapshot files are written and restored as background work, a restart recovers from the
store as `paxosd node` does. So a transcript can show a leader's Accept overlapping its own
sync, or an answer held back until the sync returns.

Every host call is written down in order (`out`): records persisted, syncs started and done,
messages sent, answers and failures, notes, and the snapshot work handed off and finished.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.ready import Applied, Note, ReadRefused, Ready
from paxosd.core.multi.records import Configured, Record, Snapshot
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import ServiceError
from paxosd.runtime.recovery import recover
from paxosd.service import StateMachine
from paxosd.storage import MemoryLog, make_identity


class DrivenNode:
    """One node: its store (kept across restarts), and, while it runs, its driver."""

    def __init__(self, net: DrivenNet, node_id: int) -> None:
        self.net = net
        self.node_id = node_id
        self.disk = MemoryLog(make_identity("driven", node_id))
        self.disk.write([Configured(net.configuration)])
        self.disk.sync()
        self.driver: Driver | None = None
        self.pending_sync: Callable[[], None] | None = None
        self.pending_work: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []
        self.turn_wanted = False
        self.start()

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        """As `paxosd node` starts: recover from the store, then run."""
        net = self.net
        machine, recovered = recover(
            self.disk, self.disk.load(), StateMachine.restore, StateMachine
        )
        replica = Replica(
            self.node_id, net.configuration, net.rng, net.config, machine, recovered.records()
        )
        options = DriverOptions(request_timeout_ms=10_000.0, restore=StateMachine.restore)
        self.driver = Driver(replica, self, net, net, self, options)
        self.pending_sync, self.pending_work, self.turn_wanted = None, [], False
        ready = replica.ready

        def traced_ready(stamp: bytes | None = None) -> Ready:
            handed = ready(stamp)
            self._trace_ready(handed)
            return handed

        replica.ready = traced_ready  # type: ignore[method-assign]

    def crash(self) -> None:
        """The process dies: unsynced writes and work in progress are gone."""
        self.driver = None
        self.disk.crash()

    @property
    def replica(self) -> Replica:
        assert self.driver is not None, f"node {self.node_id} is down"
        return self.driver.replica

    def _say(self, line: str) -> None:
        self.net.out.append(f"n{self.node_id} {line}")

    def _trace_ready(self, ready: Ready) -> None:
        for read in ready.reads:
            if isinstance(read, ReadRefused):
                self._say(f"read {read.read_id} refused (leader {read.leader})")
        work = ready.snapshots
        if work is not None and work.take is not None:
            self._say(f"hands over a snapshot view of slot {work.take[0]} to write")
        if work is not None and work.install is not None:
            self._say(f"hands over the staged snapshot of slot {work.install.slot} to restore")

    # -- the LogStore the driver writes to -----------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        for record in records:
            self._say(f"persists {describe_record(record)}")
        self.disk.write(records)

    def load(self) -> Any:
        return self.disk.load()

    def close(self) -> None:
        pass

    def disk_bytes(self) -> int:
        return self.disk.disk_bytes()

    @property
    def snapshots(self) -> Any:
        return self.disk.snapshots

    # -- the host --------------------------------------------------------------------------

    def schedule_turn(self) -> None:
        self.turn_wanted = True

    def sync(self, done: Callable[[], None]) -> None:
        self._say("sync starts")
        self.pending_sync = done

    def finish_sync(self) -> None:
        done, self.pending_sync = self.pending_sync, None
        assert done is not None, f"node {self.node_id} has no sync running"
        self.disk.sync()
        self._say("sync done")
        done()

    def background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.pending_work.append((work, done))

    def finish_work(self) -> None:
        waiting, self.pending_work = self.pending_work, []
        assert waiting, f"node {self.node_id} has no snapshot work running"
        for work, done in waiting:
            try:
                result = work()
            except Exception as error:
                result = error
            if isinstance(result, Snapshot):
                self._say(f"wrote the snapshot file of slot {result.slot} ({result.size_bytes} B)")
            elif isinstance(result, Exception):
                self._say(f"snapshot work failed: {result}")
            else:
                self._say("restored a state machine from the staged snapshot")
            done(result)

    def answer(self, token: Any, result: Any) -> None:
        self._say(f"answers {token}: {describe_result(result)}")

    def fail(self, token: Any, error: ServiceError) -> None:
        self._say(f"fails {token}: {type(error).__name__}")

    def event(self, event: Note) -> None:
        if event.event in ("leader_changed", "role_changed"):
            return  # the driver's own notes of what the core's notes already say
        self._say(f"note {event}")

    def applied(self, entry: Applied) -> None:
        pass


class DrivenNet:
    """`nodes` DrivenNodes on a network whose messages wait in `inbox` until delivered."""

    def __init__(self, nodes: int = 3, config: EngineConfig | None = None, seed: int = 1) -> None:
        self.config = config or EngineConfig()
        self.members = tuple(range(1, nodes + 1))
        self.configuration = Configuration(self.members)
        self.rng = random.Random(seed)
        self.now = 0.0
        self.out: list[str] = []
        self.inbox: list[Envelope] = []
        self.isolated: set[int] = set()  # nodes cut off from every peer (not from clients)
        self.nodes = {n: DrivenNode(self, n) for n in self.members}

    # the clock and the peer sink every driver shares
    def monotonic_ms(self) -> float:
        return self.now

    def wall_ms(self) -> float:
        return 1.8e12 + self.now

    def send(self, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            self.out.append(f"n{envelope.src} sends {envelope}")
            cut = self.isolated & {envelope.src, envelope.dst}
            if cut:
                self.out.append(f"lost {envelope} (n{min(cut)} is cut off)")
            else:
                self.inbox.append(envelope)

    def up(self, node: int) -> bool:
        return self.nodes[node].driver is not None

    def driver(self, node: int) -> Driver:
        driver = self.nodes[node].driver
        assert driver is not None, f"node {node} is down"
        return driver

    def run_turns(self) -> None:
        """Every node that asked for a turn gets one (a node whose sync runs waits for it)."""
        for node in self.nodes.values():
            if node.driver is not None and node.turn_wanted:
                node.turn_wanted = False
                node.driver.end_turn()

    def deliver(self, match: Callable[[Envelope], bool] = lambda e: True) -> int:
        taken = [e for e in self.inbox if match(e)]
        self.inbox = [e for e in self.inbox if not match(e)]
        for envelope in taken:
            if self.up(envelope.dst):
                self.driver(envelope.dst).deliver(envelope.src, envelope.msg)
        self.run_turns()
        return len(taken)

    def settle(self, rounds: int = 100) -> None:
        """Complete every sync and snapshot work, deliver every message, until quiet."""
        for _ in range(rounds):
            busy = False
            self.run_turns()
            for node in self.nodes.values():
                if node.driver is None:
                    continue
                if node.pending_sync is not None:
                    node.finish_sync()
                    busy = True
                if node.pending_work:
                    node.finish_work()
                    busy = True
            self.run_turns()
            if self.deliver() or busy:
                continue
            if not any(n.turn_wanted for n in self.nodes.values() if n.driver is not None):
                return

    def tick(self, node: int, times: int = 1) -> None:
        for _ in range(times):
            self.now += 10.0
            self.driver(node).tick()
        self.run_turns()

    def elect(self, node: int) -> None:
        """Make `node` time out and win; the others have long stopped hearing a leader."""
        for other in self.members:
            if self.up(other) and other != node:
                self.nodes[other].replica.quiet_ticks = self.config.election_ticks_min
        replica = self.nodes[node].replica
        while replica.campaign is None and replica.leading is None and replica.prevote is None:
            self.tick(node)
        self.settle()
        assert replica.status().is_leader, replica.status()


def describe_record(record: Record) -> str:
    fields = {k: getattr(record, k) for k in record.__dataclass_fields__}
    if "batch" in fields:
        fields["batch"] = f"<{len(fields['batch'])} cmds>"
    if "checksum" in fields:
        fields["checksum"] = fields["checksum"].hex()[:8]
    if "configuration" in fields:
        fields["configuration"] = fields["configuration"].describe()
    return f"{type(record).__name__}({', '.join(f'{k}={v}' for k, v in fields.items())})"


def describe_result(result: Any) -> str:
    to_json = getattr(result, "to_json", None)
    return str(to_json()) if to_json is not None else repr(result)
