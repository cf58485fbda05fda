"""The explorer for questions asked one after another: a breadth-first search that remembers.

Theory of operation. The lab's coach is asked "what can still happen from here?" about one
state after another of the same run: the learner delivers a message and asks again, steps back
and asks again. The states reachable from the new question are mostly ones the last search
already met. A `Store` keeps, for the whole session, every state met so far (one per orbit
when a `Symmetry` is given), whether it was expanded, and its successors as numbers. A
`search` from any state is then an ordinary breadth-first search with its own numbering and
depths (so its counterexamples are shortest from *this* start), which walks remembered edges
for free and calls the cores only at states never expanded before. Every question therefore
gets deeper than the last one could, and going back to an earlier step answers at once.

A search stops at a deadline, a cancel, or when the store is full, and then says how far it
got: every run of up to `depth_checked` steps from the start was looked at. What it found is
certain (a violation, a value decided, a stuck state all of whose future was explored); what
it did not find is "unknown beyond that depth", never "holds".

With a symmetry, a remembered state stands for its whole orbit. An edge then carries the value
renaming that turns the remembered state into the actual successor, so that "which values can
still be decided" is computed in the right names; paths are replayed from the real start
state, choosing at each step the successor in the next state's orbit, so every path shown is
a real run.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from paxosd.check.consensus import Verdict
from paxosd.sim.explorer import (
    Control,
    Exploration,
    Explorer,
    ExState,
    Graph,
    Step,
    disagreement,
    disagrees,
)
from paxosd.sim.symmetry import Symmetry

__all__ = ["Progress", "Result", "Store", "search"]

# Limits. A store of 300,000 states takes about 600 MB; the coach keeps at most a few.
store_states_max_default = 300_000
progress_every_expansions = 256

_FAULT = 1
_RENAMING_SHIFT = 1
_RENAMING_BITS = 7  # group_size_max (48) < 128
_TARGET_SHIFT = _RENAMING_SHIFT + _RENAMING_BITS


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a search has got, for a progress bar."""

    states: int  # states of this search so far
    depth: int  # every run this long from the start has been looked at
    new_states: int  # states met for the first time by this search (the rest were remembered)
    elapsed_s: float


class Store:
    """Every state a session's searches have met, by orbit, with the successors of those
    expanded so far (see the module docstring). Not thread-safe: one search at a time."""

    def __init__(
        self,
        explorer: Explorer,
        symmetry: Symmetry | None = None,
        states_max: int = store_states_max_default,
    ) -> None:
        self.explorer = explorer
        self.symmetry = symmetry if symmetry is not None and not symmetry.trivial else None
        self.states_max = states_max
        self.index: dict[Hashable, int] = {}
        self.states: list[ExState] = []
        self.renaming: list[int] = []  # the renaming that gave each stored state its key
        self.edges: list[array[int] | None] = []
        self.goal = bytearray()
        self.bounded = bytearray()
        self.decided: list[frozenset[Any]] = []
        self.unsafe = bytearray()  # bit 1: two values decided; bit 2: an unproposed one
        # Value renamings between a stored state and an actual one, as index maps.
        self.value_maps: list[tuple[int, ...]] = []
        self._value_map_ids: dict[tuple[int, ...], int] = {}
        self._value_map(tuple(range(len(explorer.values))))  # number 0: the identity

    def __len__(self) -> int:
        return len(self.states)

    @property
    def full(self) -> bool:
        return len(self.states) >= self.states_max

    def _value_map(self, mapping: tuple[int, ...]) -> int:
        known = self._value_map_ids.get(mapping)
        if known is None:
            known = self._value_map_ids[mapping] = len(self.value_maps)
            self.value_maps.append(mapping)
        return known

    def key(self, state: ExState) -> tuple[Hashable, int]:
        """The orbit key of a state and the renaming (a group index) that gives it."""
        key = state.key()
        if self.symmetry is None:
            return key, 0
        return self.symmetry.canonical(key)

    def find(self, state: ExState) -> tuple[int, int] | None:
        """(stored number, value map from the stored state to this one), or None if unmet."""
        key, renaming = self.key(state)
        number = self.index.get(key)
        if number is None:
            return None
        return number, self._between(number, renaming)

    def _between(self, number: int, renaming: int) -> int:
        """The value map taking stored state `number` to a state whose key came from
        `renaming`: the inverse of that renaming after the stored state's own."""
        if self.symmetry is None:
            return 0
        stored = self.symmetry.value_map(self.renaming[number])
        inverse = self.symmetry.group[renaming].inverse_values()
        return self._value_map(tuple(inverse[stored[i]] for i in range(len(stored))))

    def add(self, state: ExState) -> tuple[int, int, bool]:
        """(number, value map, whether it is new) for a state, storing it if unmet."""
        key, renaming = self.key(state)
        number = self.index.get(key)
        if number is not None:
            return number, self._between(number, renaming), False
        number = len(self.states)
        self.index[key] = number
        self.states.append(state)
        self.renaming.append(renaming)
        self.edges.append(None)
        explorer = self.explorer
        self.goal.append(explorer._goal(state))
        self.bounded.append(explorer._bounded(state))
        decided = frozenset(v for _, v in state.decided)
        self.decided.append(decided)
        proposed = {explorer.values[i] for i in state.proposed}
        invalid = bool(explorer.invalid_decision(state)) if decided - proposed else False
        self.unsafe.append(disagrees(state.decided) | (invalid << 1))
        return number, 0, True

    def expand(self, number: int) -> tuple[array[int], int]:
        """The successors of a stored state, encoded (target, value map, fault); and how many
        of them were new."""
        known = self.edges[number]
        if known is not None:
            return known, 0
        encoded = array("q")
        fresh = 0
        for step, successor in self.explorer.successors(self.states[number]):
            target, mapping, new = self.add(successor)
            fresh += new
            encoded.append(
                (target << _TARGET_SHIFT) | (mapping << _RENAMING_SHIFT) | (_FAULT * step.fault)
            )
        self.edges[number] = encoded
        return encoded, fresh

    def successor_steps(self, state: ExState) -> list[tuple[Step, ExState, int | None]]:
        """A state's successors with the stored number of each (None if unmet)."""
        found = []
        for step, successor in self.explorer.successors(state):
            known = self.find(successor)
            found.append((step, successor, None if known is None else known[0]))
        return found


@dataclass(slots=True)
class Result:
    """A search's findings: an `Exploration` in the start's own numbering, plus what the coach
    needs to relate it to the store (stored number and value map of each local state)."""

    exploration: Exploration
    stored: list[int]  # local number -> stored number
    local: dict[int, int]  # stored number -> local number
    start_map: int  # value map from the start's stored state to the start itself
    value_maps: list[tuple[int, ...]]
    edge_maps: list[list[int]] = field(default_factory=list)  # per local edge, a value map
    arrival: list[int] = field(default_factory=list)  # the edge map each state was found by
    new_states: int = 0
    elapsed_s: float = 0.0

    @property
    def graph(self) -> Graph:
        return self.exploration.graph

    def maps_to_start(self) -> list[tuple[int, ...]]:
        """For each local state, the value map from its stored state to the names of the run
        that reaches it from the start (the edge maps along its path, composed)."""
        graph = self.graph
        found: list[tuple[int, ...]] = []
        for number in range(len(graph)):  # parents come first in breadth-first numbering
            step = self.value_maps[self.arrival[number]]
            parent = graph.parent[number]
            if parent < 0:
                found.append(step)
                continue
            outer = found[parent]
            found.append(tuple(outer[step[i]] for i in range(len(step))))
        return found

    def closed(self) -> list[bool]:
        """For each local state, whether everything reachable from it was expanded (so what
        the graph says of its future is the whole truth)."""
        graph = self.graph
        open_ = [not e for e in graph.expanded]
        reverse: list[list[int]] = [[] for _ in range(len(graph))]
        for source, targets in enumerate(graph.edges):
            for target, _ in targets:
                reverse[target].append(source)
        work = [s for s in range(len(graph)) if open_[s]]
        while work:
            state = work.pop()
            for parent in reverse[state]:
                if not open_[parent]:
                    open_[parent] = True
                    work.append(parent)
        return [not o for o in open_]


def search(
    store: Store,
    start: ExState,
    control: Control | None = None,
    progress: Callable[[Progress], None] | None = None,
    states_max: int | None = None,
) -> Result:
    """Breadth-first from `start` over the store (see the module docstring). Stops when every
    state is visited, at `control`'s deadline or cancel, at `states_max` states of this search,
    or when the store is full; the exploration says which."""
    began = time.monotonic()
    explorer = store.explorer
    graph = Graph()
    stored: list[int] = []
    local: dict[int, int] = {}
    edge_maps: list[list[int]] = []
    verdicts: dict[str, Verdict] = {}
    counterexamples: dict[str, list[Step]] = {}
    queue: deque[int] = deque()
    arrival: list[int] = []
    new_states = 0

    def run_to(number: int) -> tuple[list[Step], ExState]:
        """A real run from the start to local state `number`, one orbit at a time, and the
        state it ends in."""
        chain: list[int] = []
        walk = number
        while graph.parent[walk] >= 0:
            chain.append(stored[walk])
            walk = graph.parent[walk]
        chain.reverse()
        steps: list[Step] = []
        state = start
        for target in chain:
            for step, successor, known in store.successor_steps(state):
                if known == target:
                    steps.append(step)
                    state = successor
                    break
            else:  # pragma: no cover - the store's edges came from these very successors
                raise AssertionError("a stored edge has no successor to replay")
        return steps, state

    def replay(number: int) -> list[Step]:
        return run_to(number)[0]

    graph.replay = replay

    def visit(number: int, parent: int, mapping: int) -> int:
        known = local.get(number)
        if known is not None:
            return known
        mine = len(graph)
        local[number] = mine
        stored.append(number)
        arrival.append(mapping)
        graph.parent.append(parent)
        graph.via.append(None)
        graph.depth.append(0 if parent < 0 else graph.depth[parent] + 1)
        graph.edges.append([])
        edge_maps.append([])
        graph.goal.append(bool(store.goal[number]))
        graph.bounded.append(bool(store.bounded[number]))
        graph.expanded.append(False)
        graph.decided_values.append(store.decided[number])
        unsafe = store.unsafe[number]
        if unsafe & 1 and "agreement" not in verdicts:
            steps, end = run_to(mine)
            verdicts["agreement"] = Verdict("agreement", "violated", disagreement(end))
            counterexamples["agreement"] = steps
        if unsafe & 2 and "validity" not in verdicts:
            steps, end = run_to(mine)
            verdicts["validity"] = Verdict("validity", "violated", explorer.invalid_decision(end))
            counterexamples["validity"] = steps
        queue.append(mine)
        return mine

    first, start_map, is_new = store.add(start)
    new_states += is_new
    visit(first, -1, start_map)
    stopped: str | None = None
    working = 0
    expansions = 0
    every = control.check_every if control is not None else progress_every_expansions
    try:
        while queue:
            mine = queue[0]
            working = graph.depth[mine]
            if states_max is not None and len(graph) >= states_max:
                stopped = "state limit"
                break
            if store.full and store.edges[stored[mine]] is None:
                stopped = "state limit"
                break
            if expansions % every == 0:
                if control is not None:
                    stopped = control.why_stop()
                    if stopped is not None:
                        break
                if progress is not None and expansions % progress_every_expansions == 0:
                    elapsed = time.monotonic() - began
                    progress(Progress(len(graph), working, new_states, elapsed))
            queue.popleft()
            expansions += 1
            encoded, fresh = store.expand(stored[mine])
            new_states += fresh
            targets = graph.edges[mine]
            maps = edge_maps[mine]
            for code in encoded:
                mapping = (code >> _RENAMING_SHIFT) & ((1 << _RENAMING_BITS) - 1)
                target = visit(code >> _TARGET_SHIFT, mine, mapping)
                targets.append((target, bool(code & _FAULT)))
                maps.append(mapping)
            graph.expanded[mine] = True
    except KeyboardInterrupt:
        stopped = "interrupted"
    complete = stopped is None
    if complete:
        working = graph.depth[-1] if len(graph) else 0
    exploration = Exploration(
        graph, verdicts, counterexamples, complete, stopped=stopped, depth_checked=working
    )
    Explorer._judge_safety(exploration)
    if stopped in ("interrupted", "cancelled"):
        verdicts["termination"] = Verdict(
            "termination", "unknown", "not judged: the search was " + stopped
        )
    else:
        explorer._judge_termination(exploration, livelock=False)
    elapsed = time.monotonic() - began
    if progress is not None:
        progress(Progress(len(graph), working, new_states, elapsed))
    return Result(
        exploration, stored, local, start_map, store.value_maps, edge_maps, arrival,
        new_states, elapsed,
    )  # fmt: skip
