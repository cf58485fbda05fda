"""The FLP chapter made concrete: valence, critical configurations, and what one crash does.

Theory of operation. The explorer visits every reachable state of a small cluster with a
budget of one crash (a crashed node never returns). For each state we compute its valence: the
set of values that some continuation from it decides. A state is bivalent if two or more values
are still possible, univalent if exactly one is (it may not have been decided yet, but the
outcome is already fixed), and stuck if none is.

FLP's key step is a critical configuration: a bivalent state where delivering one pending
message m makes the outcome univalent. The receiver of m is then the node whose step settles
the outcome - so consider crashing it instead, at exactly that moment:
- under majority voting the crash leaves the cluster stuck forever (split vote);
- under Paxos no delivery is final in that sense: whichever receiver crashes, the others can
  still reach a decision, and the price is that termination is not guaranteed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from paxosd.core.types import describe
from paxosd.lab.algorithms import Algorithm
from paxosd.lab.check import CheckRequest, explore_budget
from paxosd.lab.values import values as value_names
from paxosd.sim.explorer import Explorer, ExState, Graph, Step


@dataclass(slots=True)
class Critical:
    """A bivalent state, the message whose delivery fixes the outcome, and the crash."""

    path: list[Step]
    message: str
    receiver: int
    before: list[str]  # valence of the bivalent state
    after: list[str]  # valence once the message is delivered
    after_crash: list[str]  # valence if the receiver crashes instead


@dataclass(slots=True)
class FlpReport:
    algorithm: str
    nodes: int
    states: int
    bivalent: int
    univalent: int
    stuck: int
    initial_valence: list[str]
    critical: int
    crash_checks: int
    example: Critical | None
    fatal: Critical | None  # a critical configuration where the crash leaves no decision
    livelock: list[Step] | None = None
    explanation: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def crit(c: Critical | None) -> dict[str, Any] | None:
            if c is None:
                return None
            return {
                "path": [s.to_json() for s in c.path],
                "message": c.message,
                "receiver": c.receiver,
                "valence_before": c.before,
                "valence_after_delivery": c.after,
                "valence_after_crash": c.after_crash,
            }

        return {
            "algorithm": self.algorithm,
            "nodes": self.nodes,
            "states": self.states,
            "bivalent": self.bivalent,
            "univalent": self.univalent,
            "stuck": self.stuck,
            "initial_valence": self.initial_valence,
            "critical_configurations": self.critical,
            "crashes_checked": self.crash_checks,
            "example": crit(self.example),
            "fatal": crit(self.fatal),
            "livelock": None if self.livelock is None else [s.to_json() for s in self.livelock],
            "explanation": self.explanation,
        }


def valences(
    graph: Graph,
    values: list[Any],
    edge_maps: list[list[int]] | None = None,
    value_maps: list[tuple[int, ...]] | None = None,
) -> list[int]:
    """For each state, a bit mask of the values some continuation decides (bit i: value i),
    plus bit `len(values)` if some continuation leaves the explored bound (a proposer wanted
    a higher ballot than the explorer hands out), where anything could still happen.

    Computed as a fixpoint backwards over every edge: a state can reach what its successors
    can, plus what is already decided in it. A search with symmetry (`sim.search`) keeps one
    state per orbit: each edge then names the value map (`edge_maps[s][k]`, an index into
    `value_maps`) that turns the stored successor into the actual one, and the successor's
    mask is carried over in those names."""
    bit = {value: 1 << i for i, value in enumerate(values)}
    beyond = 1 << len(values)
    masks = [beyond if graph.bounded[s] else 0 for s in range(len(graph))]
    reverse: list[list[tuple[int, tuple[int, ...] | None]]] = [[] for _ in range(len(graph))]
    for source, targets in enumerate(graph.edges):
        for number, (target, _) in enumerate(targets):
            mapping = None
            if edge_maps is not None and value_maps is not None and edge_maps[source][number]:
                mapping = value_maps[edge_maps[source][number]]
            reverse[target].append((source, mapping))
    work: list[int] = []
    for state in range(len(graph)):
        for value in graph.decided_values[state]:
            masks[state] |= bit[value]
        if masks[state]:
            work.append(state)
    while work:
        state = work.pop()
        for parent, mapping in reverse[state]:
            carried = masks[state]
            if mapping is not None:
                carried = rename_mask(carried, mapping, len(values))
            merged = masks[parent] | carried
            if merged != masks[parent]:
                masks[parent] = merged
                work.append(parent)
    return masks


def rename_mask(mask: int, mapping: tuple[int, ...], values: int) -> int:
    """A valence mask with each value's bit moved where a value map sends it (the bit for
    "beyond the bound" stays)."""
    moved = mask & (1 << values)
    for old, new in enumerate(mapping):
        if mask >> old & 1:
            moved |= 1 << new
    return moved


def value_names_of(mask: int, values: list[Any]) -> list[str]:
    """The values a valence mask allows, by name (and the beyond-the-bound marker)."""
    names = [str(v) for i, v in enumerate(values) if mask >> i & 1]
    if mask >> len(values) & 1:
        names.append(BEYOND)
    return names


BEYOND = "(beyond the ballot bound)"


def _count(mask: int, values: list[Any]) -> int:
    """How many values a mask allows; -1 if the outcome is beyond the explored bound."""
    if mask >> len(values) & 1:
        return -1
    return bin(mask).count("1")


def analyse(
    algorithm: Algorithm,
    nodes: int = 3,
    progress: Callable[[int], None] | None = None,
    states_max: int = 2_000_000,
) -> FlpReport:
    request = CheckRequest(
        algorithm, nodes=nodes, values=2, crashes=1, faults=frozenset({"crash"}),
        explore=True, states_max=states_max,
    )  # fmt: skip
    budget, config = explore_budget(request)
    values = value_names(2, algorithm.value_names)
    explorer = Explorer(algorithm.factory, budget, config, values, keep_states=True)
    exploration = explorer.explore(progress)
    graph = exploration.graph
    states, index = exploration.states, exploration.index
    assert states is not None and index is not None
    masks = valences(graph, values)
    counts = [_count(m, values) for m in masks]
    real = (1 << len(values)) - 1
    possible = [bin(m & real).count("1") for m in masks]
    bivalent = sum(1 for p in possible if p >= 2)
    univalent = counts.count(1)
    stuck = counts.count(0)
    critical, crash_checks, example, fatal = 0, 0, None, None
    for state in range(len(graph)):
        if possible[state] < 2 or not graph.expanded[state]:
            continue
        crashes = _crash_successors(explorer, states[state], index)
        for step, successor in explorer.successors(states[state]):
            if step.kind != "deliver" or step.envelope is None:
                continue
            receiver = step.envelope.dst
            crash = crashes.get(receiver)
            crash_checks += 1
            target = index[successor.key()]
            settles = counts[target] == 1
            crash_stuck = crash is not None and masks[crash] == 0
            if not settles and not crash_stuck:
                continue
            found = Critical(
                path=graph.path(state) + [step],
                message=describe(step.envelope.msg),
                receiver=receiver,
                before=value_names_of(masks[state], values),
                after=value_names_of(masks[target], values),
                after_crash=[] if crash is None else value_names_of(masks[crash], values),
            )
            if settles:
                critical += 1
                if example is None:
                    example = found
            if crash_stuck and fatal is None:
                fatal = found
    report = FlpReport(
        algorithm.name, nodes, len(graph), bivalent, univalent, stuck,
        value_names_of(masks[0], values), critical, crash_checks, example, fatal,
    )  # fmt: skip
    if fatal is None and algorithm.name == "paxos":
        report.livelock, _ = explorer.find_livelock()
    report.explanation = _explain(report)
    return report


def _step_between(
    explorer: Explorer, state: ExState, index: dict[Hashable, int], target: int
) -> Step | None:
    """Recover the action that leads from a state to a given successor."""
    for step, successor in explorer.successors(state):
        if index.get(successor.key()) == target:
            return step
    return None


def _crash_successors(
    explorer: Explorer, state: ExState, index: dict[Hashable, int]
) -> dict[int, int]:
    """For each node, the state reached if it crashes now."""
    return {
        step.node: index[successor.key()]
        for step, successor in explorer.successors(state)
        if step.kind == "crash"
    }


def _explain(report: FlpReport) -> list[str]:
    lines = [
        f"{report.states:,} reachable states of {report.algorithm} with {report.nodes} nodes "
        f"and one crash: {report.bivalent:,} bivalent (two values still possible), "
        f"{report.univalent:,} univalent (the outcome is fixed), {report.stuck:,} stuck "
        "(no value can ever be decided).",
        "The initial state is "
        + ("bivalent: " if len(report.initial_valence) > 1 else "univalent: ")
        + " or ".join(v for v in report.initial_valence if v != BEYOND)
        + " can still be decided.",
    ]
    fatal = report.fatal
    if fatal is not None:
        settle = f"once node {fatal.receiver} receives {fatal.message}, the outcome is fixed:"
        if fatal.after == fatal.before or len([v for v in fatal.after if v != BEYOND]) != 1:
            settle = f"node {fatal.receiver} is about to receive {fatal.message}."
        else:
            settle += f" only {' or '.join(fatal.after)} can be decided."
        lines.append(
            f"Critical configuration, after {len(fatal.path) - 1} steps: "
            f"{' and '.join(v for v in fatal.before if v != BEYOND)} are both still possible; "
            + settle
        )
        lines.append(
            f"If node {fatal.receiver} crashes at that moment instead, no value can ever be "
            "decided: the cluster is stuck forever. One crash at the wrong instant defeats "
            "the algorithm, as FLP predicts for any algorithm that has such a message."
        )
        return lines
    lines.append(
        f"Critical configurations, where one delivery fixes the outcome for certain: "
        f"{report.critical:,}. A higher ballot can always still pre-empt a value that is not "
        "yet chosen, so no single delivery is final in the way FLP forbids."
    )
    lines.append(
        f"Crashing the receiver of any pending message in any bivalent state "
        f"({report.crash_checks:,} cases checked) never leaves the cluster stuck: the others "
        "can always still decide, with a higher ballot if need be."
    )
    lines.append(
        "The price, as FLP says it must be: termination is not guaranteed. Some runs never "
        "decide - below, one that comes back to the same situation with a higher ballot, "
        "forever."
    )
    return lines
