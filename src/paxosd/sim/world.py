"""A deterministic world for the teaching cores: virtual time, a fake network, fake disks.

Theory of operation. The world owns one `random.Random(seed)` and a priority queue of events
ordered by (virtual time in ms, sequence number). Handling an event calls one core input
(`propose`, `step` or `tick`) and then carries out the returned effects exactly as the real
driver does: persist and sync, then send, then record decisions. Sending schedules a delivery
after a random delay; the network may lose, duplicate or delay a message, a partition blocks
links, a slow node handles everything late. Crashed nodes lose their volatile state and any
unsynced writes; a restart rebuilds the core from what its disk synced.

Nothing here reads a real clock or a global random generator, so the same seed gives the same
trace, byte for byte.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from paxosd.core.effects import Effects
from paxosd.core.protocol import Core, CoreConfig, CoreFactory
from paxosd.core.types import Envelope, NodeId
from paxosd.sim.disk import MemoryDisk
from paxosd.sim.trace import Event, message_fields


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """How the simulated network behaves while faults are allowed."""

    delay_ms_min: float = 1.0
    delay_ms_max: float = 5.0
    loss: float = 0.0
    duplicate: float = 0.0
    tick_ms: float = 10.0


# Hooks a scenario can install to steer a run, e.g. to force a message to arrive late.
DelayRule = Callable[[Envelope, float], float | None]


@dataclass(order=True, slots=True)
class _Scheduled:
    time: float
    seq: int
    action: Any = field(compare=False)


@dataclass(slots=True)
class Outcome:
    """What a finished run leaves for the checkers."""

    proposals: list[tuple[float, NodeId, Any]]
    decisions: list[tuple[float, NodeId, Any]]
    live: set[NodeId]
    ever_crashed: set[NodeId]
    trace: list[Event]
    fault_counts: dict[str, int]


class World:
    """Drives N cores of one algorithm through one seeded run."""

    def __init__(
        self,
        factory: CoreFactory,
        nodes: int,
        seed: int,
        config: CoreConfig | None = None,
        network: NetworkConfig | None = None,
        unsynced_replies: bool = False,
    ) -> None:
        self.factory = factory
        self.members = tuple(range(1, nodes + 1))
        self.rng = random.Random(seed)
        self.config = config or CoreConfig()
        self.network = network or NetworkConfig()
        self.unsynced_replies = unsynced_replies
        self.now = 0.0
        self._seq = itertools.count()
        self._message_ids = itertools.count(1)
        self._queue: list[_Scheduled] = []
        self.disks = {n: MemoryDisk() for n in self.members}
        self.cores: dict[NodeId, Core | None] = {}
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.slowness = dict.fromkeys(self.members, 1.0)
        self.delay_rules: list[DelayRule] = []
        self.trace: list[Event] = []
        self.proposals: list[tuple[float, NodeId, Any]] = []
        self.decisions: list[tuple[float, NodeId, Any]] = []
        self.ever_crashed: set[NodeId] = set()
        self.fault_counts: dict[str, int] = {}
        self._epoch = dict.fromkeys(self.members, 0)  # invalidates ticks of a crashed node
        for node in self.members:
            self.cores[node] = self.factory(node, self.members, self.rng, self.config, None)
            self._schedule_tick(node, self.rng.uniform(0, self.network.tick_ms))

    # -- scheduling -------------------------------------------------------------------------

    def at(self, time: float, action: Callable[[], None]) -> None:
        """Run `action` at virtual time `time` (used by scenarios and fault plans)."""
        heapq.heappush(self._queue, _Scheduled(time, next(self._seq), action))

    def run(self, until: float) -> None:
        while self._queue and self._queue[0].time <= until:
            item = heapq.heappop(self._queue)
            self.now = item.time
            item.action()
        self.now = max(self.now, until)

    def _log(self, ev: str, **fields: Any) -> None:
        event: Event = {"t": round(self.now, 3), "seq": len(self.trace), "ev": ev}
        event.update(fields)
        self.trace.append(event)

    def _count(self, fault: str) -> None:
        self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1

    # -- inputs -----------------------------------------------------------------------------

    def propose(self, node: NodeId, value: Any) -> None:
        core = self.cores[node]
        if core is None:
            return
        self.proposals.append((self.now, node, value))
        self._log("propose", node=node, value=value)
        self._apply(node, core.propose(value))

    def _schedule_tick(self, node: NodeId, delay: float) -> None:
        epoch = self._epoch[node]
        self.at(self.now + delay, lambda: self._tick(node, epoch))

    def _tick(self, node: NodeId, epoch: int) -> None:
        core = self.cores[node]
        if core is None or epoch != self._epoch[node]:
            return
        if self.unsynced_replies:
            self.disks[node].sync()
        self._apply(node, core.tick())
        self._schedule_tick(node, self.network.tick_ms * self.slowness[node])

    def _deliver(self, envelope: Envelope, message_id: int) -> None:
        fields = message_fields(envelope, message_id)
        core = self.cores[envelope.dst]
        if core is None:
            self._log("drop", why="crashed", **fields)
            return
        if (envelope.src, envelope.dst) in self.blocked:
            self._log("drop", why="partition", **fields)
            self._count("partition_drop")
            return
        self._log("recv", **fields)
        self._apply(envelope.dst, core.step(envelope))

    # -- the driver contract: persist, then send, then decide -----------------------------

    def _apply(self, node: NodeId, effects: Effects) -> None:
        disk = self.disks[node]
        disk.write(effects.persist)
        if not self.unsynced_replies:
            disk.sync()  # BEFORE any message of this step leaves
        for text in effects.notes:
            self._log("note", node=node, text=text)
        for envelope in effects.send:
            self._transmit(envelope)
        for value in effects.decided:
            self.decisions.append((self.now, node, value))
            self._log("decide", node=node, value=value)
        core = self.cores[node]
        assert core is not None
        core.invariants()

    def _transmit(self, envelope: Envelope) -> None:
        message_id = next(self._message_ids)
        fields = message_fields(envelope, message_id)
        self._log("send", **fields)
        if envelope.src == envelope.dst:
            self.at(self.now, lambda: self._deliver(envelope, message_id))
            return
        if (envelope.src, envelope.dst) in self.blocked:
            self._log("drop", why="partition", **fields)
            self._count("partition_drop")
            return
        if self.network.loss and self.rng.random() < self.network.loss:
            self._log("drop", why="loss", **fields)
            self._count("loss")
            return
        copies = 1
        if self.network.duplicate and self.rng.random() < self.network.duplicate:
            copies = 2
            self._log("dup", **fields)
            self._count("duplicate")
        for _ in range(copies):
            delay = self._delay(envelope)
            self.at(self.now + delay, lambda: self._deliver(envelope, message_id))

    def _delay(self, envelope: Envelope) -> float:
        base = self.rng.uniform(self.network.delay_ms_min, self.network.delay_ms_max)
        for rule in self.delay_rules:
            forced = rule(envelope, self.now)
            if forced is not None:
                base = forced
        return base * self.slowness[envelope.dst]

    # -- faults -----------------------------------------------------------------------------

    def crash(self, node: NodeId) -> None:
        if self.cores[node] is None:
            return
        self.cores[node] = None
        self._epoch[node] += 1
        lost = self.disks[node].crash()
        self.ever_crashed.add(node)
        self._count("crash")
        self._log("crash", node=node, **({"lost_writes": lost} if lost else {}))

    def restart(self, node: NodeId) -> None:
        if self.cores[node] is not None:
            return
        self._count("restart")
        self._log("restart", node=node)
        durable = self.disks[node].read()
        self.cores[node] = self.factory(node, self.members, self.rng, self.config, durable)
        self._schedule_tick(node, self.rng.uniform(0, self.network.tick_ms))

    def cut(self, links: Iterable[tuple[NodeId, NodeId]]) -> None:
        new = sorted(set(links) - self.blocked)
        if new:
            self.blocked |= set(new)
            self._count("partition")
            self._log("cut", links=[list(link) for link in new])

    def partition(self, *groups: Iterable[NodeId]) -> None:
        """Split the cluster: nodes talk only within their own group."""
        sides = [set(group) for group in groups]
        links = [
            (a, b)
            for i, side in enumerate(sides)
            for j, other in enumerate(sides)
            if i != j
            for a in side
            for b in other
        ]
        self.cut(links)

    def heal(self) -> None:
        if self.blocked:
            self._log("heal", links=[list(link) for link in sorted(self.blocked)])
            self.blocked.clear()

    def slow(self, node: NodeId, factor: float) -> None:
        self.slowness[node] = factor
        if factor != 1.0:
            self._count("slow")
        self._log("slow", node=node, factor=factor)

    def phase(self, name: str) -> None:
        self._log("phase", name=name)

    # -- results ----------------------------------------------------------------------------

    def live(self) -> set[NodeId]:
        return {n for n, core in self.cores.items() if core is not None}

    def outcome(self) -> Outcome:
        return Outcome(
            proposals=list(self.proposals),
            decisions=list(self.decisions),
            live=self.live(),
            ever_crashed=set(self.ever_crashed),
            trace=list(self.trace),
            fault_counts=dict(self.fault_counts),
        )
