"""An exhaustive, breadth-first explorer of every way a small cluster can run.

Theory of operation. A state is everything that can affect the future: each node's core state
(or, for a crashed node, its durable records), the messages in flight, which values were
proposed, which faults remain in the budget, which links are cut, and every decision made so
far. From each state the explorer tries every enabled action - propose, deliver any message in
any order, a timer firing, and, within budget, crash, restart, partition, heal, loss and
duplication - by cloning the cores and calling the same `step`/`tick`/`propose` the simulator
calls. Breadth-first order means the first state that breaks a property is reached by a
shortest path, so every counterexample is as short as it can be.

Two network models:
- `consume`: a message is in flight until it is delivered (once), dropped (the loss fault) or
  delivered and kept (the duplication fault).
- `grow`: the messages ever sent form a set that only grows, and any node may receive any
  message sent to it, any number of times, in any order, or never. This is the abstraction of
  Lamport's Paxos spec; it covers loss, duplication, reordering and delay at once, and since
  "which copies were delivered" is not part of the state, the state space is far smaller.

Two timing models: `async`, where any node's timer may fire at any moment (FLP's world), and
`bounded`, where time advances for all nodes together and only when no deliverable message is
left, i.e. messages always beat timeouts (the world the book's failover design hopes for).

Termination has two parts. First, from every reachable state a state where every live node has
decided must stay reachable without further faults; a state where that is lost is "stuck".
Second, even if it is never stuck an algorithm may run forever: the livelock search looks for a
fair run that comes back to the same shape of state (same roles and messages, ballots renamed
in order) with no decision, a loop that can repeat without end.
"""

from __future__ import annotations

import random
import resource
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from paxosd.check.consensus import Verdict
from paxosd.core.protocol import Core, CoreConfig, CoreFactory
from paxosd.core.types import Ballot, Envelope, NodeId, describe

# Limits. About 3.5 KB of memory per explored state for Paxos with every fault, so the state
# limit and the memory limit meet near 600,000 states: either one stops the search on a laptop.
states_max_default = 1_000_000
memory_mb_max_default = 2_048
livelock_states_max = 200_000
check_every_states = 2_000  # progress reports and the memory check, every this many states

TIMINGS = {
    "async": "any timer may fire at any moment, even while messages are on their way",
    "local": "a node's timer fires only when no message to or from that node is in flight",
    "bounded": "messages arrive before timers fire: time advances for all nodes together, "
    "only when no deliverable message is left in flight",
}
NETWORKS = {
    "consume": "each message is delivered once, unless lost or duplicated by a fault",
    "grow": "sent messages form a set that only grows; any may be received any number of "
    "times, or never (loss, duplication and reordering at once)",
}


NOOP = "no-op"  # what a new leader puts in a slot it found empty


@dataclass(frozen=True, slots=True, order=True)
class LogEntry:
    """A decision of a replicated log: the value chosen in one slot (`NOOP` for a slot that a
    new leader filled). A core whose decisions are log entries is judged per slot: Agreement
    holds if no two nodes decide different values for the same slot, Validity if every value
    decided is a proposed one or a no-op."""

    slot: int
    value: Any

    def __str__(self) -> str:
        return f"slot {self.slot}: {self.value}"


def _slot_and_value(decision: Any) -> tuple[int | None, Any]:
    if isinstance(decision, LogEntry):
        return decision.slot, decision.value
    return None, decision


def disagrees(decided: frozenset[tuple[NodeId, Any]]) -> bool:
    """Whether decisions break Agreement: two values for one decision (for a log, one slot)."""
    chosen: dict[int | None, Any] = {}
    for _, decision in decided:
        slot, value = _slot_and_value(decision)
        if chosen.setdefault(slot, value) != value:
            return True
    return False


@dataclass(slots=True)
class Control:
    """What may end a search besides its state and memory limits: a deadline on the monotonic
    clock (the coach answers within seconds) and a cancel flag another thread may set. Both
    are looked at every `check_every` expansions, so a search stops within milliseconds.

    Neither changes what a search finds, only how far it gets: a search that stops says how
    deep it got (`Exploration.depth_checked`) and judges nothing beyond that."""

    deadline: float | None = None
    cancel: threading.Event | None = None
    check_every: int = 64

    def why_stop(self) -> str | None:
        if self.cancel is not None and self.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "time limit"
        return None


@dataclass(frozen=True, slots=True)
class Budget:
    """What the explorer may do besides delivering messages and firing timers."""

    nodes: int = 3
    values: int = 2
    crashes: int = 1
    restarts: bool = False
    loss: bool = False
    duplicate: bool = False
    partitions: int = 0
    asymmetric: bool = False
    # How many times a timer may fire in one run (None: any number). Timers are most of an
    # engine's branching (each firing may send heartbeats or start an election); a bound
    # brings the deep runs of a real engine within reach, and says plainly what was not
    # explored.
    timeouts: int | None = None
    # Explore runs of up to this many steps (None: as deep as the state space goes).
    depth_max: int | None = None
    timing: str = "async"
    network: str = "consume"
    states_max: int = states_max_default
    memory_mb_max: int | None = memory_mb_max_default

    def __post_init__(self) -> None:
        assert self.timing in TIMINGS, f"unknown timing {self.timing!r}"
        assert self.network in NETWORKS, f"unknown network model {self.network!r}"


class Frozen:
    """A hashable value whose hash is computed once. A core's state key is hashed every time
    a state containing it is looked up, and most successors share all but one core with
    their parent, so caching the hash of each core's key saves most of the hashing."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: Hashable) -> None:
        self.value = value
        self._hash = hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, Frozen) and self._hash == other._hash and self.value == other.value
        )

    def __repr__(self) -> str:
        return f"Frozen({self.value!r})"


_DOWN = Frozen(("down",))


def core_key(core: Core | None) -> Frozen:
    return _DOWN if core is None else Frozen(core.state_key())


@dataclass(slots=True)
class ExState:
    """One global state of the explored system (cores are live objects, never shared).

    `core_keys` holds each core's state key and `disk_keys` each durable record, wrapped (see
    `Frozen`) so that their hashes are computed once; they MUST be updated whenever a core or
    a record is replaced, which `with_core` does."""

    cores: tuple[Core | None, ...]
    disks: tuple[Any, ...]
    network: frozenset[Envelope]
    proposed: frozenset[int]
    crashes_left: int
    partitions_left: int
    blocked: frozenset[tuple[NodeId, NodeId]]
    decided: frozenset[tuple[NodeId, Any]]
    timeouts_left: int | None = None  # None: timers are not budgeted
    core_keys: tuple[Frozen, ...] = ()
    disk_keys: tuple[Frozen | None, ...] = ()

    def __post_init__(self) -> None:
        if len(self.core_keys) != len(self.cores):
            self.core_keys = tuple(core_key(core) for core in self.cores)
        if len(self.disk_keys) != len(self.disks):
            self.disk_keys = tuple(disk_key(disk) for disk in self.disks)

    def key(self) -> tuple[Any, ...]:
        return (
            self.core_keys,
            self.disk_keys,
            self.network,
            self.proposed,
            self.crashes_left,
            self.partitions_left,
            self.blocked,
            self.decided,
            self.timeouts_left,
        )

    def but(self, **changes: Any) -> ExState:
        """A copy with some fields changed (not `cores` or `disks`: use `with_core`)."""
        assert _PER_NODE_FIELDS.isdisjoint(changes)
        new = self._copy()
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def _copy(self) -> ExState:
        new = ExState.__new__(ExState)  # not copy.copy: this runs millions of times
        new.cores = self.cores
        new.disks = self.disks
        new.network = self.network
        new.proposed = self.proposed
        new.crashes_left = self.crashes_left
        new.partitions_left = self.partitions_left
        new.blocked = self.blocked
        new.decided = self.decided
        new.timeouts_left = self.timeouts_left
        new.core_keys = self.core_keys
        new.disk_keys = self.disk_keys
        return new

    def with_core(
        self,
        index: int,
        core: Core | None,
        key: Frozen | None = None,
        disk: tuple[Any, Frozen | None] | None = None,
        *,
        network: frozenset[Envelope] | None = None,
        decided: frozenset[tuple[NodeId, Any]] | None = None,
        crashes_left: int | None = None,
    ) -> ExState:
        """A copy with node `index`'s core replaced, and its durable record if `disk` (the
        record and its key) is given (and the network, decisions and crash budget if given:
        the fields a core's step or a crash changes, named here rather than passed through
        `but`, since this runs for every successor)."""
        new = self._copy()
        if network is not None:
            new.network = network
        if decided is not None:
            new.decided = decided
        if crashes_left is not None:
            new.crashes_left = crashes_left
        new.cores = self.cores[:index] + (core,) + self.cores[index + 1 :]
        fresh = core_key(core) if key is None else key
        new.core_keys = self.core_keys[:index] + (fresh,) + self.core_keys[index + 1 :]
        if disk is not None:
            record, record_key = disk
            new.disks = self.disks[:index] + (record,) + self.disks[index + 1 :]
            new.disk_keys = self.disk_keys[:index] + (record_key,) + self.disk_keys[index + 1 :]
        return new


_PER_NODE_FIELDS = frozenset({"cores", "core_keys", "disks", "disk_keys"})


def disk_key(record: Any) -> Frozen | None:
    return None if record is None else Frozen(record)


@dataclass(frozen=True, slots=True)
class Step:
    """One action of an explored run, for printing and replaying."""

    kind: str  # propose deliver duplicate drop timeout tick crash restart partition heal
    node: NodeId = 0
    envelope: Envelope | None = None
    value: Any = None
    links: frozenset[tuple[NodeId, NodeId]] = frozenset()
    notes: tuple[tuple[NodeId, str], ...] = ()
    sent: tuple[Envelope, ...] = ()
    fault: bool = False

    def render(self) -> str:
        match self.kind:
            case "propose":
                who = getattr(self.value, "asked_by", "client")  # an operator's, say
                text = f"{who} at {self.node} proposes {self.value}"
            case "deliver" | "duplicate" | "drop":
                assert self.envelope is not None
                env = self.envelope
                verb = {
                    "deliver": "receives",
                    "duplicate": "receives (and the network keeps a copy of)",
                    "drop": "will never receive (lost)",
                }[self.kind]
                text = f"{env.dst} {verb} {describe(env.msg)} from {env.src}"
            case "timeout":
                text = f"{self.node} times out"
            case "tick":
                text = "time passes (every node's timer ticks)"
            case "crash":
                text = f"{self.node} crashes"
            case "restart":
                text = f"{self.node} restarts from its durable state"
            case "partition":
                text = "partition: " + ", ".join(f"{a}-/->{b}" for a, b in sorted(self.links))
            case "heal":
                text = "the partition heals"
            case _:
                text = self.kind
        if self.notes:
            local = self.kind in ("propose", "deliver", "duplicate", "timeout")
            text += (
                "  ["
                + "; ".join(note if local else f"{node} {note}" for node, note in self.notes)
                + "]"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "text": self.render()}
        if self.node:
            data["node"] = self.node
        if self.envelope is not None:
            data.update(
                src=self.envelope.src, dst=self.envelope.dst, msg=describe(self.envelope.msg)
            )
        if self.value is not None:
            data["value"] = self.value
        if self.links:
            data["links"] = sorted(list(link) for link in self.links)
        if self.notes:
            data["notes"] = [{"node": node, "text": note} for node, note in self.notes]
        if self.sent:
            data["sent"] = [{"src": e.src, "dst": e.dst, "msg": describe(e.msg)} for e in self.sent]
        return data


@dataclass(frozen=True, slots=True)
class Outputs:
    """What one core input said (notes, by node) and sent."""

    notes: tuple[tuple[NodeId, str], ...]
    sent: tuple[Envelope, ...]


@dataclass(slots=True)
class Graph:
    """The explored state graph, by state number (0 is the initial state, numbering is
    breadth-first, so a lower number is never deeper)."""

    parent: list[int] = field(default_factory=list)
    via: list[Step | None] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    edges: list[list[tuple[int, bool]]] = field(default_factory=list)  # (target, is_fault)
    goal: list[bool] = field(default_factory=list)
    bounded: list[bool] = field(default_factory=list)
    expanded: list[bool] = field(default_factory=list)
    decided_values: list[frozenset[Any]] = field(default_factory=list)
    # A graph whose edges do not keep their steps (a `sim.search` graph) rebuilds a path by
    # replaying it from the start state instead.
    replay: Callable[[int], list[Step]] | None = None

    def path(self, state: int) -> list[Step]:
        if self.replay is not None:
            return self.replay(state)
        steps: list[Step] = []
        while self.parent[state] >= 0:
            step = self.via[state]
            assert step is not None
            steps.append(step)
            state = self.parent[state]
        steps.reverse()
        return steps

    def __len__(self) -> int:
        return len(self.parent)


@dataclass(slots=True)
class Exploration:
    """Everything the explorer found."""

    graph: Graph
    verdicts: dict[str, Verdict]
    counterexamples: dict[str, list[Step]]
    complete: bool
    states: list[ExState] | None = None
    index: dict[Hashable, int] | None = None
    livelock_states: int = 0
    # Why the search ended before visiting every state: "state limit", "depth limit",
    # "memory limit", "interrupted" (Ctrl-C), "time limit", "cancelled" or "violation" (a
    # `stop_on` property broke); None if complete.
    stopped: str | None = None
    # Every run of up to this many steps from the start was checked: each state it reaches
    # is in the graph and was judged for Agreement and Validity. For a complete search, the
    # deepest level; for one that stopped early, the level it was working on.
    depth_checked: int = 0

    @property
    def depth(self) -> int:
        """The deepest level reached (some states at this depth may not have been visited:
        see `depth_checked` for the level up to which every state was)."""
        return self.graph.depth[-1] if len(self.graph) else 0

    def summary(self) -> str:
        """One line on how far the search got, for a run that stopped early."""
        safety = [p for p in ("agreement", "validity") if self.verdicts[p].status == "violated"]
        quiet = "no violation so far" if self.stopped else "no violation"
        found = f"{' and '.join(safety)} violated" if safety else quiet
        how = {
            None: "explored every state",
            "state limit": "stopped at the state limit (--max-states)",
            "depth limit": "stopped at the depth limit (--max-depth)",
            "memory limit": "stopped at the memory limit (--max-memory-mb)",
            "interrupted": "interrupted (Ctrl-C)",
            "time limit": "stopped at its time limit",
            "cancelled": "cancelled",
            "violation": "stopped at the first violation",
        }[self.stopped]
        if self.stopped is None or self.stopped == "violation":
            return f"{how}: {len(self.graph):,} states, depth {self.depth} reached; {found}"
        return (
            f"{how}: {len(self.graph):,} states, every run of up to {self.depth_checked} "
            f"steps checked (depth {self.depth} reached); {found}"
        )


class Explorer:
    """Breadth-first search over every interleaving of a small configuration."""

    def __init__(
        self,
        factory: CoreFactory,
        budget: Budget,
        config: CoreConfig,
        values: list[Any],
        keep_states: bool = False,
        proposers: Sequence[NodeId] | None = None,
    ) -> None:
        assert len(values) == budget.values
        assert proposers is None or len(proposers) == len(values)
        self.factory = factory
        self.budget = budget
        self.config = config
        self.values = values
        self.members = tuple(range(1, budget.nodes + 1))
        # Where each value is proposed: by default value i at node i+1, round the members.
        self.proposers = tuple(
            proposers or (self.members[i % len(self.members)] for i in range(len(values)))
        )
        # Chance plays no part in an explored run: every outcome is tried. The generator is
        # only here because cores expect one; explored configs use backoff bounds of 1.
        self.rng = random.Random(0)
        self.keep_states = keep_states
        self._memo: dict[Hashable, tuple[Core, Any, Frozen, Any, frozenset[Envelope]]] = {}
        # One `Frozen` per distinct core state, so that comparing two equal keys is an
        # identity check rather than a walk through both.
        self._frozen: dict[Frozen, Frozen] = {}
        self._judgements: dict[tuple[Frozen, ...], tuple[bool, bool]] = {}
        self._safety: dict[tuple[frozenset[Any], frozenset[int]], tuple[bool, str]] = {}
        # Each envelope met, with its place in the order deliveries are tried and a number
        # that stands for it in `_memo`'s keys (an int hashes at once; an envelope hashes its
        # whole message every time).
        self._order: dict[Envelope, tuple[tuple[int, int, str], int]] = {}

    def proposer_of(self, index: int) -> NodeId:
        """Value number `index` is proposed by a client at this node."""
        return self.proposers[index]

    # -- states and actions -----------------------------------------------------------------

    def initial(self) -> ExState:
        cores = tuple(
            self.factory(n, self.members, self.rng, self.config, None) for n in self.members
        )
        return ExState(
            cores=cores,
            disks=tuple(None for _ in self.members),
            network=frozenset(),
            proposed=frozenset(),
            crashes_left=self.budget.crashes,
            partitions_left=self.budget.partitions,
            blocked=frozenset(),
            decided=frozenset(),
            timeouts_left=self.budget.timeouts,
        )

    def _run(
        self, state: ExState, index: int, call: Callable[[Core], Any], memo: Hashable
    ) -> tuple[ExState, Outputs]:
        """Apply one core input to a clone of node `index`; what it sends joins the network.

        Cores are deterministic, so the outcome of an input depends only on the core's state
        and the input (`memo`); outcomes are cached, and a cached core is shared between
        states, which is safe because every input is applied to a fresh clone."""
        core = state.cores[index]
        assert core is not None
        cache_key = (index, state.core_keys[index], memo)
        cached = self._memo.get(cache_key)
        if cached is None:
            clone = core.clone()
            effects = call(clone)
            clone.invariants()
            fresh = core_key(clone)
            record = None
            if effects.persist:
                record = (effects.persist[-1], disk_key(effects.persist[-1]))
            sent = frozenset(effects.send)
            cached = (clone, effects, self._frozen.setdefault(fresh, fresh), record, sent)
            self._memo[cache_key] = cached
        clone, effects, key, record, sent = cached
        decided = state.decided
        if effects.decided:
            decided = decided | {(self.members[index], v) for v in effects.decided}
        network = state.network | sent if sent else state.network
        new = state.with_core(index, clone, key, record, network=network, decided=decided)
        node = self.members[index]
        return new, Outputs(tuple((node, note) for note in effects.notes), tuple(effects.send))

    def _ranked(
        self, network: frozenset[Envelope]
    ) -> list[tuple[tuple[int, int, str], int, Envelope]]:
        """The envelopes of a network in delivery order, each with its number (see `_order`).
        Orders are distinct, so the numbers and envelopes never decide the sort."""
        order = self._order
        ranked = []
        for envelope in network:
            known = order.get(envelope)
            if known is None:
                known = order[envelope] = (_envelope_order(envelope), len(order))
            ranked.append((known[0], known[1], envelope))
        ranked.sort()
        return ranked

    def _deliverable(self, state: ExState, envelope: Envelope) -> bool:
        return (
            state.cores[envelope.dst - 1] is not None
            and (envelope.src, envelope.dst) not in state.blocked
        )

    def successors(self, state: ExState) -> Iterator[tuple[Step, ExState]]:
        yield from self._proposals(state)
        yield from self._deliveries(state)
        if self.budget.timing == "bounded":
            if not any(self._deliverable(state, e) for e in state.network):
                yield from self.tick_all(state)
        else:
            yield from self._tick_each(state)
        yield from self._faults(state)

    def _proposals(self, state: ExState) -> Iterator[tuple[Step, ExState]]:
        for index, value in enumerate(self.values):
            node = self.proposer_of(index)
            if index in state.proposed or state.cores[node - 1] is None:
                continue
            new, out = self._run(state, node - 1, _proposing(value), ("propose", value))
            new.proposed = state.proposed | {index}
            yield Step("propose", node=node, value=value, notes=out.notes, sent=out.sent), new

    def _deliveries(self, state: ExState) -> Iterator[tuple[Step, ExState]]:
        grow = self.budget.network == "grow"
        for _, number, envelope in self._ranked(state.network):
            if not self._deliverable(state, envelope):
                continue
            new, out = self._run(state, envelope.dst - 1, _stepping(envelope), number)
            step = Step("deliver", envelope=envelope, notes=out.notes, sent=out.sent)
            if grow:
                yield step, new
                continue
            if self.budget.duplicate:
                yield replace(step, kind="duplicate", fault=True), new
            sent = new.network - state.network
            yield step, new.but(network=(state.network - {envelope}) | sent)
            if self.budget.loss:
                lost = state.but(network=state.network - {envelope})
                yield Step("drop", envelope=envelope, fault=True), lost

    def tick_all(self, state: ExState) -> Iterator[tuple[Step, ExState]]:
        """Bounded timing: one unit of time passes for every live node together."""
        if state.timeouts_left == 0:
            return
        new = state
        notes: list[tuple[NodeId, str]] = []
        sent: list[Envelope] = []
        for i, core in enumerate(state.cores):
            if core is not None:
                new, out = self._run(new, i, lambda c: c.tick(), "tick")
                notes.extend(out.notes)
                sent.extend(out.sent)
        if new.key() != state.key():
            yield Step("tick", notes=tuple(notes), sent=tuple(sent)), _timer_fired(new)

    def _tick_each(self, state: ExState) -> Iterator[tuple[Step, ExState]]:
        """Any one node's timer may fire now (under `local` timing, only a node none of whose
        messages, sent or awaited, is still deliverable)."""
        if state.timeouts_left == 0:
            return
        waiting: set[NodeId] = set()
        if self.budget.timing == "local":
            for envelope in state.network:
                if self._deliverable(state, envelope):
                    waiting.update((envelope.src, envelope.dst))
        for i, core in enumerate(state.cores):
            if core is None or self.members[i] in waiting:
                continue
            new, out = self._run(state, i, lambda c: c.tick(), "tick")
            if new.core_keys[i] != state.core_keys[i] or new.network != state.network:
                step = Step("timeout", node=self.members[i], notes=out.notes, sent=out.sent)
                yield step, _timer_fired(new)

    def _faults(self, state: ExState) -> Iterator[tuple[Step, ExState]]:
        """Partitions, crashes, restarts and healing, as the budget allows. Partitions come
        first so that, among equally short counterexamples, the book's split brain is shown."""
        budget = self.budget
        if state.partitions_left > 0:
            for links in self._partitions():
                yield (
                    Step("partition", links=links, fault=True),
                    state.but(
                        partitions_left=state.partitions_left - 1, blocked=state.blocked | links
                    ),
                )
        if state.crashes_left > 0:
            for i, core in enumerate(state.cores):
                if core is None:
                    continue
                node = self.members[i]
                network = state.network
                if not budget.restarts:
                    # A node that never comes back never reads its mail.
                    network = frozenset(e for e in network if e.dst != node)
                yield (
                    Step("crash", node=node, fault=True),
                    state.with_core(i, None, network=network, crashes_left=state.crashes_left - 1),
                )
        if budget.restarts:
            for i, core in enumerate(state.cores):
                if core is not None:
                    continue
                node = self.members[i]
                disk = state.disks[i]
                durable = [] if disk is None else [disk]
                revived = self.factory(node, self.members, self.rng, self.config, durable)
                yield (
                    Step("restart", node=node),
                    state.with_core(i, revived),
                )
        if state.blocked:
            yield Step("heal"), state.but(blocked=frozenset())

    def _partitions(self) -> Iterator[frozenset[tuple[NodeId, NodeId]]]:
        """Every split of the members into two sides (and one-way cuts if asymmetric)."""
        members = self.members
        seen: set[frozenset[NodeId]] = set()
        for mask in range(1, 2 ** len(members) - 1):
            side = frozenset(m for bit, m in enumerate(members) if mask >> bit & 1)
            other = frozenset(members) - side
            if len(side) > len(other) or side in seen or other in seen:
                continue
            seen.add(side)
            there = frozenset((a, b) for a in side for b in other)
            back = frozenset((b, a) for a in side for b in other)
            yield there | back
            if self.budget.asymmetric:
                yield there
                yield back

    # -- the search -------------------------------------------------------------------------

    def explore(
        self,
        progress: Callable[[int], None] | None = None,
        stop_on: frozenset[str] = frozenset(),
        start: ExState | None = None,
        livelock: bool = True,
        control: Control | None = None,
    ) -> Exploration:
        """Visit every reachable state; judge agreement, validity and termination.

        `stop_on` names safety properties whose first (shortest) violation ends the search
        early; the other verdicts are then "unknown". `start` explores from a given state
        instead of the initial one (the lab's coach asks "from here, what can happen?");
        `livelock=False` skips the search for a livelock (which starts from the initial state);
        `control` adds a deadline and a cancel flag."""
        graph = Graph()
        index: dict[Hashable, int] = {}
        verdicts: dict[str, Verdict] = {}
        counterexamples: dict[str, list[Step]] = {}
        kept: list[ExState] = []
        queue: deque[tuple[int, ExState]] = deque()

        def add(state: ExState, parent: int, step: Step | None) -> int:
            key = state.key()
            known = index.get(key)
            if known is not None:
                return known
            number = len(graph)
            index[key] = number
            graph.parent.append(parent)
            graph.via.append(step)
            graph.depth.append(0 if parent < 0 else graph.depth[parent] + 1)
            graph.edges.append([])
            graph.goal.append(self._goal(state))
            graph.bounded.append(self._bounded(state))
            graph.expanded.append(False)
            graph.decided_values.append(frozenset(v for _, v in state.decided))
            if self.keep_states:
                kept.append(state)
            self._check_safety(state, number, graph, verdicts, counterexamples)
            queue.append((number, state))
            return number

        stopped: str | None = None
        working = 0  # the depth of the state being expanded: every shallower run was checked
        every = control.check_every if control is not None else check_every_states
        try:
            add(self.initial() if start is None else start, -1, None)
            while queue:
                number, state = queue[0]
                working = graph.depth[number]
                if stop_on & verdicts.keys():
                    stopped = "violation"
                    break
                if len(graph) >= self.budget.states_max:
                    stopped = "state limit"
                    break
                if self.budget.depth_max is not None and working >= self.budget.depth_max:
                    stopped = "depth limit"  # every state up to it is in the graph, judged
                    break
                if control is not None and number % every == 0:
                    stopped = control.why_stop()
                    if stopped is not None:
                        break
                queue.popleft()
                edges = graph.edges[number]
                for step, successor in self.successors(state):
                    edges.append((add(successor, number, step), step.fault))
                graph.expanded[number] = True
                if number % check_every_states == 0:
                    if progress is not None:
                        progress(len(graph))
                    if _over_memory(self.budget.memory_mb_max):
                        stopped = "memory limit"
                        break
        except KeyboardInterrupt:
            # Ctrl-C: keep what was found, to report it. Termination is not judged on a graph
            # that may end in a half-added state.
            stopped = "interrupted"
        if progress is not None:
            progress(len(graph))
        complete = stopped is None
        if complete:
            working = graph.depth[-1] if len(graph) else 0
        elif stopped == "memory limit" and queue:
            working = graph.depth[queue[0][0]]
        exploration = Exploration(
            graph, verdicts, counterexamples, complete,
            kept if self.keep_states else None, index if self.keep_states else None,
            stopped=stopped, depth_checked=working,
        )  # fmt: skip
        self._judge_safety(exploration)
        if stopped in ("violation", "interrupted", "memory limit", "cancelled"):
            verdicts["termination"] = Verdict(
                "termination", "unknown", f"not judged: the search ended at {_ENDED[stopped]}"
            )
        else:
            self._judge_termination(exploration, livelock)
        return exploration

    @staticmethod
    def _judge_safety(exploration: Exploration) -> None:
        """Agreement and Validity where no violation was found: holds if every state was
        visited; otherwise unknown, with how far the search got."""
        stopped = exploration.stopped
        states = len(exploration.graph)
        for prop in ("agreement", "validity"):
            if prop in exploration.verdicts:
                continue
            if stopped is None:
                verdict = Verdict(prop, "holds", f"in all {states:,} reachable states")
            elif stopped == "violation":
                verdict = Verdict(prop, "unknown", "not judged: the search ended at the first "
                                  "violation")  # fmt: skip
            else:
                verdict = Verdict(
                    prop, "unknown", f"{checked(exploration)}; the search stopped at "
                    f"{_ENDED[stopped]}",
                )  # fmt: skip
            exploration.verdicts[prop] = verdict

    def _check_safety(
        self,
        state: ExState,
        number: int,
        graph: Graph,
        verdicts: dict[str, Verdict],
        counterexamples: dict[str, list[Step]],
    ) -> None:
        # Many states share their decisions: each set of them is judged once.
        judged = self._safety.get((state.decided, state.proposed))
        if judged is None:
            judged = disagrees(state.decided), self.invalid_decision(state)
            self._safety[(state.decided, state.proposed)] = judged
        split, invalid = judged
        if "agreement" not in verdicts and split:
            verdicts["agreement"] = Verdict("agreement", "violated", disagreement(state))
            counterexamples["agreement"] = graph.path(number)
        if "validity" not in verdicts and invalid:
            verdicts["validity"] = Verdict("validity", "violated", invalid)
            counterexamples["validity"] = graph.path(number)

    def invalid_decision(self, state: ExState) -> str:
        """What breaks Validity in a state ("" if nothing does)."""
        proposed = {self.values[i] for i in state.proposed}
        for node, decision in sorted(state.decided, key=repr):
            slot, value = _slot_and_value(decision)
            if value not in proposed and not (slot is not None and value == NOOP):
                return f"node {node} decided {decision}, never proposed"
        return ""

    def _bounded(self, state: ExState) -> bool:
        """A proposer wanted a ballot beyond the explorer's bound: what follows is unexplored."""
        return self._judged(state)[0]

    def _goal(self, state: ExState) -> bool:
        """Every live node knows the decision, or nothing is left that could be decided (no
        live node proposed or will propose), or a core hit the explorer's round bound."""
        return self._judged(state)[1]

    def _judged(self, state: ExState) -> tuple[bool, bool]:
        """(bounded, goal) for a state; both depend on the cores alone, so they are kept by
        the cores' keys."""
        known = self._judgements.get(state.core_keys)
        if known is not None:
            return known
        bounded = any(getattr(c, "bound_reached", lambda: False)() for c in state.cores if c)
        up = [core for core in state.cores if core is not None]
        goal = (
            bounded
            or (bool(up) and all(core.query() is not None for core in up))
            or all(state.cores[self.proposer_of(i) - 1] is None for i in range(len(self.values)))
        )
        self._judgements[state.core_keys] = (bounded, goal)
        return bounded, goal

    def _judge_termination(self, exploration: Exploration, livelock: bool = True) -> None:
        graph = exploration.graph
        hopeful = reach_backwards(graph, lambda s: graph.goal[s] or not graph.expanded[s])
        for state in range(len(graph)):
            if not hopeful[state]:
                exploration.verdicts["termination"] = Verdict(
                    "termination",
                    "violated",
                    "stuck: a reachable state from which no decision is possible, ever",
                    kind="stuck",
                )
                exploration.counterexamples["termination"] = graph.path(state)
                return
        if not livelock:
            if exploration.complete:
                verdict = Verdict(
                    "termination", "holds", "never stuck (no search for a livelock was made)"
                )
            else:
                verdict = Verdict(
                    "termination", "unknown", f"no stuck state found: {checked(exploration)}"
                )
            exploration.verdicts["termination"] = verdict
            return
        try:
            # The user's state limit bounds this search too: a short check stays short.
            lasso, searched = self.find_livelock(min(livelock_states_max, self.budget.states_max))
        except KeyboardInterrupt:
            exploration.stopped = exploration.stopped or "interrupted"
            exploration.verdicts["termination"] = Verdict(
                "termination", "unknown", "interrupted during the search for a livelock"
            )
            return
        exploration.livelock_states = searched
        if lasso is not None:
            never_stuck = (
                "a decision stays possible from every state, yet "
                if exploration.complete
                else f"no stuck state found ({checked(exploration)}), and "
            )
            exploration.verdicts["termination"] = Verdict(
                "termination",
                "violated",
                f"not guaranteed: {never_stuck}this run comes back to the same situation with "
                "higher ballots and still no decision, and can repeat that forever (livelock)",
                kind="livelock",
            )
            exploration.counterexamples["termination"] = lasso
            return
        if not exploration.complete:
            exploration.verdicts["termination"] = Verdict(
                "termination", "unknown", f"no stuck state and no livelock found: "
                f"{checked(exploration)}",
            )  # fmt: skip
            return
        exploration.verdicts["termination"] = Verdict(
            "termination", "holds", "a decision stays reachable from every state, no livelock"
        )

    def find_livelock(self, states_max: int = livelock_states_max) -> tuple[list[Step] | None, int]:
        """Breadth-first search, without faults, for the shortest fair run that returns to the
        shape of an earlier undecided state after a proposal. Fair: every message in flight at
        the start of the loop is delivered within it, so the loop starves no one. Under
        asynchronous timing the shortest such loop is usually a proposer whose timer keeps
        firing just before the promises it waits for arrive; dueling proposers, which pre-empt
        each other, are the same story told with two nodes (see the `dueling-proposers`
        scenario)."""
        quiet = Explorer(
            self.factory,
            replace(self.budget, crashes=0, partitions=0, loss=False, duplicate=False,
                    restarts=False, network="consume"),
            replace(self.config, rounds_max=None),
            self.values,
            proposers=self.proposers,
        )  # fmt: skip
        start = quiet.initial()
        seen: dict[Hashable, int] = {start.key(): 0}
        parents: list[int] = [-1]
        steps: list[Step | None] = [None]
        shapes: list[Hashable] = [_shape(start.key())]
        networks: list[frozenset[Envelope]] = [start.network]
        queue = deque([(0, start)])
        while queue and len(parents) < states_max:
            number, state = queue.popleft()
            for step, successor in quiet.successors(state):
                if successor.decided:
                    continue
                key = successor.key()
                if key in seen:
                    continue
                child = len(parents)
                seen[key] = child
                parents.append(number)
                steps.append(step)
                shapes.append(_shape(key))
                networks.append(successor.network)
                if successor.proposed:
                    loop = _loop_back(child, parents, steps, shapes, networks, timers_min=1)
                    if loop is not None:
                        return loop, len(parents)
                queue.append((child, successor))
        return None, len(parents)


def _loop_back(
    state: int,
    parents: list[int],
    steps: list[Step | None],
    shapes: list[Hashable],
    networks: list[frozenset[Envelope]],
    timers_min: int,
) -> list[Step] | None:
    """If an ancestor has the same shape, and the stretch from it delivered every message it
    had in flight, proposed nothing new and fired the timers of `timers_min` nodes or more,
    return the whole path."""
    delivered: set[Envelope] = set()
    timers: set[NodeId] = set()
    current = state
    while parents[current] >= 0:
        step = steps[current]
        assert step is not None
        if step.kind == "propose":
            return None
        if step.envelope is not None:
            delivered.add(step.envelope)
        if step.kind == "timeout":
            timers.add(step.node)
        current = parents[current]
        if (
            shapes[current] == shapes[state]
            and networks[current] <= delivered
            and len(timers) >= timers_min
        ):
            path: list[Step] = []
            walk = state
            while parents[walk] >= 0:
                taken = steps[walk]
                assert taken is not None
                path.append(taken)
                walk = parents[walk]
            path.reverse()
            return path
    return None


_ENDED = {
    "state limit": "the state limit",
    "depth limit": "the depth limit",
    "memory limit": "the memory limit",
    "interrupted": "Ctrl-C",
    "time limit": "its time limit",
    "cancelled": "a cancel",
    "violation": "the first violation",
}


def disagreement(state: ExState) -> str:
    """Who decided what, in a state that breaks Agreement (for a log, in the slots where
    nodes disagree)."""
    by_slot: dict[int | None, set[Any]] = {}
    for _, decision in state.decided:
        slot, value = _slot_and_value(decision)
        by_slot.setdefault(slot, set()).add(value)
    split = {slot for slot, values in by_slot.items() if len(values) > 1}
    by_node: dict[NodeId, list[str]] = {}
    for node, decision in sorted(state.decided, key=repr):
        if _slot_and_value(decision)[0] in split:
            by_node.setdefault(node, []).append(str(decision))
    return ", ".join(f"node {n} decided {' then '.join(vs)}" for n, vs in sorted(by_node.items()))


def checked(exploration: Exploration) -> str:
    """What a search that stopped early covered, in words."""
    depth = exploration.depth_checked
    runs = "the start alone" if depth == 0 else f"every run of up to {depth} steps"
    return f"{runs} checked ({len(exploration.graph):,} states)"


def _over_memory(memory_mb_max: int | None) -> bool:
    """Whether this process has grown past the budget: its resident size now (Linux), or its
    peak resident size where that is all the system tells (the kernel counts it in kilobytes
    on Linux and in bytes on macOS). Now rather than peak where possible: a long-lived process
    (the lab's server, a test run) may once have been larger for reasons of its own."""
    if memory_mb_max is None:
        return False
    return _resident_mb() > memory_mb_max


def _resident_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / (1 << 20)
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def reach_backwards(graph: Graph, goal: Callable[[int], bool]) -> list[bool]:
    """States from which a goal state is reachable along fault-free edges."""
    reverse: list[list[int]] = [[] for _ in range(len(graph))]
    for source, targets in enumerate(graph.edges):
        for target, fault in targets:
            if not fault:
                reverse[target].append(source)
    reached = [False] * len(graph)
    work = [s for s in range(len(graph)) if goal(s)]
    for s in work:
        reached[s] = True
    while work:
        s = work.pop()
        for p in reverse[s]:
            if not reached[p]:
                reached[p] = True
                work.append(p)
    return reached


def _shape(key: Any) -> Any:
    """The state with every ballot replaced by its rank among the ballots in it. Paxos only
    ever compares ballots, so two states of equal shape behave alike, however high the ballots."""
    ballots: set[Ballot] = set()
    _collect_ballots(key, ballots)
    if not ballots:
        return key
    rank = {b: i for i, b in enumerate(sorted(ballots))}
    return _relabel(key, rank)


_ATOM, _BALLOT, _SEQUENCE, _SET, _RECORD = range(5)
_kinds: dict[type, tuple[int, tuple[str, ...]]] = {}


def _kind(value: Any) -> tuple[int, tuple[str, ...]]:
    """How to walk a value of this type (cached per type: this runs millions of times)."""
    klass = type(value)
    known = _kinds.get(klass)
    if known is not None:
        return known
    if klass is Ballot:
        kind: tuple[int, tuple[str, ...]] = (_BALLOT, ())
    elif klass is Frozen:
        kind = (_RECORD, ("value",))
    elif issubclass(klass, tuple | list):
        kind = (_SEQUENCE, ())
    elif issubclass(klass, frozenset | set):
        kind = (_SET, ())
    elif hasattr(klass, "__slots__") and not issubclass(klass, str | int | float | bytes):
        names: list[str] = []
        for base in klass.__mro__:
            names.extend(getattr(base, "__slots__", ()))
        kind = (_RECORD, tuple(n for n in names if not n.startswith("__")))
    else:
        kind = (_ATOM, ())
    _kinds[klass] = kind
    return kind


def _collect_ballots(value: Any, into: set[Ballot]) -> None:
    kind, names = _kind(value)
    if kind == _BALLOT:
        into.add(value)
    elif kind in (_SEQUENCE, _SET):
        for item in value:
            _collect_ballots(item, into)
    elif kind == _RECORD:
        for name in names:
            _collect_ballots(getattr(value, name), into)


def _relabel(value: Any, rank: dict[Ballot, int]) -> Any:
    kind, names = _kind(value)
    if kind == _ATOM:
        return value
    if kind == _BALLOT:
        return ("ballot", rank[value], value.node)
    if kind == _SEQUENCE:
        return tuple(_relabel(v, rank) for v in value)
    if kind == _SET:
        return frozenset(_relabel(v, rank) for v in value)
    return (type(value).__name__, *(_relabel(getattr(value, n), rank) for n in names))


def _timer_fired(state: ExState) -> ExState:
    """`state` with one timer firing taken from its budget, if timers are budgeted."""
    left = state.timeouts_left
    return state if left is None else state.but(timeouts_left=left - 1)


def _proposing(value: Any) -> Callable[[Core], Any]:
    return lambda core: core.propose(value)


def _stepping(envelope: Envelope) -> Callable[[Core], Any]:
    return lambda core: core.step(envelope)


def _envelope_order(envelope: Envelope) -> tuple[int, int, str]:
    return (envelope.src, envelope.dst, repr(envelope.msg))
