"""The explorer as a coach: from the state the learner is looking at, what can still happen?

The coach explores every continuation of the session's current state with the explorer's own
successor function, under the fault budget of the session's configuration less what the run
has already spent (so from the initial state it finds exactly the counterexamples `lab check
--explore` prints for the same configuration; from a later state, the shortest way to break
from there). It answers with the state's valence (the values some continuation still decides:
bivalent, univalent, stuck, in the FLP chapter's words), the shortest run to each violation,
and the critical messages: deliveries that fix the outcome, with what crashing their receiver
instead would do.

It answers within seconds, whatever the state. The search (`sim.search`) is breadth-first
with a deadline and a cancel, and it remembers every state of the session's earlier
questions, so each question starts where the last one left off; interchangeable nodes are
searched once (`sim.symmetry`). When the whole future does not fit in the time, the answer
says how far it got: every run of up to N more steps was checked. What it found is certain
(a violation and its run, a value some run decides, a stuck state whose whole future it saw);
what it did not reach is "unknown beyond N steps", never "holds", and the fault-tolerance
line follows the same rule as `lab check`.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from paxosd.check.consensus import PROPERTIES
from paxosd.lab import algorithms
from paxosd.lab.check import fault_tolerance
from paxosd.lab.flp import rename_mask, valences, value_names_of
from paxosd.lab.play.session import Session
from paxosd.sim.explorer import Control, Explorer, ExState, LogEntry, Step
from paxosd.sim.search import Progress, Result, Store, search

__all__ = ["Advice", "CoachMemory", "advise", "coach_seconds_default", "coach_seconds_max"]

# Limits, units last.
coach_seconds_default = 3.0  # one answer's search (the page's first answer, and each one)
coach_seconds_max = 60.0  # "think longer"
coach_store_states_max = 300_000  # states a session's coach remembers (about 600 MB)
closed_future_states_max = 5_000  # a successor's future followed in full to judge it critical
search_share = 0.85  # of an answer's time, for the search; the rest judges what it found
# Renaming states costs time on every step of the search; it pays for itself only in larger
# clusters, where it also lets the session remember more (docs/lab.md has the measurements).
symmetry_nodes_min = 4


@dataclass(slots=True)
class Critical:
    message: int  # the session's id of the message in flight
    receiver: int
    text: str
    after: list[str]  # valence once it is delivered
    after_crash: list[str] | None  # valence if its receiver crashes instead (None: no crash left)

    @property
    def fatal(self) -> bool:
        return self.after_crash == []


@dataclass(slots=True)
class Advice:
    step: int
    version: int
    states: int
    complete: bool
    valence: list[str]  # values some continuation decides (all of them if complete)
    outlook: str  # decided, univalent, bivalent, stuck, open or unknown
    verdicts: dict[str, dict[str, str]]
    fault_tolerance: dict[str, str]
    depth: int = 0  # every run of up to this many more steps was checked
    stopped: str | None = None  # why the search ended early (time limit, cancelled, ...)
    elapsed_s: float = 0.0
    new_states: int = 0  # states met for the first time (the rest were remembered)
    paths: dict[str, list[Step]] = field(default_factory=dict)
    witnesses: dict[str, int] = field(default_factory=dict)  # value: steps to its decision
    critical: list[Critical] = field(default_factory=list)
    command: str = ""
    reduced_by: str = ""  # the symmetry used, in words ("" if none)
    summary: str = ""  # the answer in one sentence

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "version": self.version,
            "states": self.states,
            "complete": self.complete,
            "depth": self.depth,
            "stopped": self.stopped,
            "elapsed_s": round(self.elapsed_s, 3),
            "new_states": self.new_states,
            "valence": self.valence,
            "outlook": self.outlook,
            "verdicts": self.verdicts,
            "fault_tolerance": self.fault_tolerance,
            "witnesses": self.witnesses,
            "paths": {
                prop: [{"text": step.render(), **step.to_json()} for step in steps]
                for prop, steps in self.paths.items()
            },
            "critical": [
                {
                    "message": c.message,
                    "receiver": c.receiver,
                    "text": c.text,
                    "after": c.after,
                    "after_crash": c.after_crash,
                    "fatal": c.fatal,
                }
                for c in self.critical
            ],
            "command": self.command,
            "reduced_by": self.reduced_by,
            "summary": self.summary,
        }


class CoachMemory:
    """What a session's coach keeps between questions: the explorer (whose cache of core
    steps it fills), the store of every state met, and the answers that were complete."""

    def __init__(self, session: Session, states_max: int = coach_store_states_max) -> None:
        budget = replace(session.coach_budget, states_max=states_max, memory_mb_max=None)
        self.explorer = Explorer(
            session.factory, budget, session.core_config, session.values,
            proposers=session.explorer.proposers,
        )  # fmt: skip
        algorithm = algorithms.get(session.config.algorithm)
        proposers = [self.explorer.proposer_of(i) for i in range(len(session.values))]
        symmetry = None
        if session.config.nodes >= symmetry_nodes_min:
            symmetry = algorithm.symmetry(
                session.config.variant, session.config.nodes, session.values, proposers
            )
        self.store = Store(self.explorer, symmetry, states_max)
        self.reduced_by = _describe(symmetry, proposers, session.config.nodes)
        self.answers: dict[tuple[int, int], Advice] = {}

    @property
    def states(self) -> int:
        return len(self.store)

    def forget(self) -> None:
        """Start afresh (the store is full): what is remembered is the explorer's cache of
        core steps and the store; both are dropped."""
        self.explorer = Explorer(
            self.explorer.factory, self.explorer.budget, self.explorer.config,
            self.explorer.values, proposers=self.explorer.proposers,
        )  # fmt: skip
        self.store = Store(self.explorer, self.store.symmetry, self.store.states_max)
        self.answers.clear()
        release()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a search runs, then what it built frozen out of the
    collector's way. A search allocates millions of small objects that live on in the store,
    and the collector would walk all of them again and again (a third of the search's time,
    measured, and pauses of seconds once a session remembers much); the store holds no
    cycles, so reference counting frees it when it is dropped."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def release() -> None:
    """A store was dropped: let the collector see every object again, so that any cyclic
    garbage frozen along with a store (a server's request objects, say) is collected."""
    gc.unfreeze()


def advise(
    session: Session,
    seconds: float = coach_seconds_default,
    cancel: Any = None,
    progress: Callable[[Progress], None] | None = None,
    memory: CoachMemory | None = None,
    states_max: int | None = None,
) -> Advice:
    """Explore the continuations of the session's current state for up to `seconds` (or until
    `cancel`, a threading.Event, is set, or `states_max` states), remembering what it met in
    `memory` (the session's own by default). Any cluster the page plays can be coached: a
    large one gets an answer that says how deep it checked."""
    if memory is None:
        memory = session.coach_memory
        if memory is None or memory.store.full:
            if memory is not None:
                release()
            memory = session.coach_memory = CoachMemory(session)
    elif memory.store.full:
        memory.forget()
    start = session.coach_state()
    store = memory.store
    known = store.find(start)
    if known is not None and known in memory.answers:
        return _restamped(memory.answers[known], session)
    control = Control(deadline=time.monotonic() + seconds * search_share, cancel=cancel)
    with _collector_paused():
        result = search(store, start, control, progress, states_max)
        advice = _advice(session, memory, start, result)
    if advice.complete:
        found = store.find(start)
        if found is not None:
            memory.answers[found] = advice
    return advice


def _restamped(advice: Advice, session: Session) -> Advice:
    """A remembered answer for the state on screen (same state, maybe another step)."""
    command = session.config.command() if session.cursor == 0 else ""
    return replace(
        advice, step=session.cursor, version=session.version, command=command, elapsed_s=0.0,
        new_states=0,
    )  # fmt: skip


def _universe(session: Session, graph: Any, start: ExState) -> list[Any]:
    """What a valence is made of: the session's values, or for a replicated log the entries
    (slot, value) some explored run decides."""
    entries = {v for values in graph.decided_values for v in values if isinstance(v, LogEntry)}
    entries |= {v for _, v in start.decided if isinstance(v, LogEntry)}
    return sorted(entries) if entries else list(session.values)


def _advice(session: Session, memory: CoachMemory, start: ExState, result: Result) -> Advice:
    exploration = result.exploration
    graph = exploration.graph
    values = _universe(session, graph, start)
    complete = exploration.complete
    masks: list[int] | None = None
    if complete:
        masks = valences(graph, values, result.edge_maps, result.value_maps)
        here = rename_mask(masks[0], result.value_maps[result.start_map], len(values))
    else:
        here = _witnessed(result, values)
    real = [v for i, v in enumerate(values) if here >> i & 1]
    by_slot: dict[Any, list[Any]] = {}
    for value in real:
        slot = value.slot if isinstance(value, LogEntry) else None
        by_slot.setdefault(slot, []).append(value)
    widest = max((len(v) for v in by_slot.values()), default=0)
    decided = {v for _, v in start.decided}
    if (
        decided
        and len(decided) == 1
        and not isinstance(next(iter(decided)), LogEntry)
        and all(c is None or c.query() for c in start.cores)
    ):
        outlook = "decided"
    elif widest >= 2:
        outlook = "bivalent"  # two values reached: certain, however far the search got
    elif not complete:
        outlook = "open" if real else "unknown"
    elif here == 0:
        outlook = "stuck"
    else:
        outlook = "univalent"
    verdicts = {
        prop: {"status": v.status, "detail": v.detail, "kind": v.kind}
        for prop, v in exploration.verdicts.items()
        if prop in PROPERTIES
    }
    tolerance = fault_tolerance(exploration.verdicts)
    advice = Advice(
        step=session.cursor,
        version=session.version,
        states=len(graph),
        complete=complete,
        valence=value_names_of(here, values),
        outlook=outlook,
        verdicts=verdicts,
        fault_tolerance={"status": tolerance.status, "detail": tolerance.detail},
        depth=exploration.depth_checked,
        stopped=exploration.stopped,
        elapsed_s=result.elapsed_s,
        new_states=result.new_states,
        paths=dict(exploration.counterexamples),
        witnesses=_witnesses(result, values),
        command=session.config.command() if session.cursor == 0 else "",
        reduced_by=memory.reduced_by,
    )
    advice.summary = _summary(outlook, by_slot, advice)
    if widest >= 2 and not isinstance(values[0], LogEntry):
        advice.critical = _critical(session, memory.store, start, result, masks, values)
    return advice


def _summary(outlook: str, by_slot: dict[Any, list[Any]], advice: Advice) -> str:
    """The answer in one sentence: which values can still be decided, and how surely."""

    def within(value: Any) -> str:
        steps = advice.witnesses.get(str(value))
        shown = value.value if isinstance(value, LogEntry) else value
        return f"{shown}" if steps is None else f"{shown} in {_steps(steps)}"

    depth = _steps(advice.depth)
    if outlook == "stuck":
        return "stuck: no value can ever be decided from here"
    if outlook == "unknown":
        return f"no decision in any run of up to {depth} from here; beyond that, unknown"
    if None in by_slot or not by_slot:  # one decision
        values = by_slot.get(None, [])
        names = " or ".join(str(v) for v in values)
        reached = ", ".join(within(v) for v in values)
        return {
            "bivalent": f"bivalent: {names} can still be decided ({reached})",
            "univalent": f"univalent: only {names} can be decided now",
            "decided": f"decided: {names}",
            "open": f"{reached} can still be decided; whether another value can, the search "
            "did not settle",
        }[outlook]
    slots = "; ".join(
        f"slot {slot}: {' or '.join(within(v) for v in values)}"
        for slot, values in sorted(by_slot.items())
    )
    return {
        "bivalent": f"bivalent: a slot can still go more than one way ({slots})",
        "univalent": f"univalent: what each slot holds is fixed ({slots})",
        "open": f"can still be decided: {slots}; whether anything else can, the search did "
        "not settle",
    }[outlook]


def _steps(count: int) -> str:
    return f"{count} step" if count == 1 else f"{count} steps"


def _witnessed(result: Result, values: list[Any]) -> int:
    """The start's valence as far as the search saw: every state of the graph is reachable
    from the start, so each value decided anywhere in it is one some run decides (in the
    names of that run), and a state beyond the ballot bound is one some run reaches."""
    graph = result.graph
    identity = not result.value_maps[1:]
    maps = None if identity else result.maps_to_start()
    mask = 0
    for number in range(len(graph)):
        if graph.bounded[number]:
            mask |= 1 << len(values)
        for value in graph.decided_values[number]:
            index = values.index(value)
            mask |= 1 << (index if maps is None else maps[number][index])
    return mask


def _witnesses(result: Result, values: list[Any]) -> dict[str, int]:
    """For each value some explored run decides, the fewest steps to a state deciding it."""
    graph = result.graph
    maps = result.maps_to_start() if result.value_maps[1:] else None
    found: dict[str, int] = {}
    for number in range(len(graph)):  # breadth-first numbering: shallowest first
        for value in graph.decided_values[number]:
            if maps is not None:
                value = values[maps[number][values.index(value)]]
            found.setdefault(str(value), graph.depth[number])
        if len(found) == len(values):
            break
    return found


def _critical(
    session: Session,
    store: Store,
    start: ExState,
    result: Result,
    masks: list[int] | None,
    values: list[Any],
) -> list[Critical]:
    """Deliveries from a bivalent state that leave one value possible, with what crashing
    their receiver instead would leave. Judged only where the search saw the successor's
    whole future: everywhere if it was complete, else where a successor's future is small
    enough to have been explored in full (and the values need no renaming)."""
    graph = result.graph
    if masks is None and result.value_maps[1:]:
        return []

    def outcome(successor: ExState) -> int | None:
        """The successor's valence mask in the start's names, if its future was all seen."""
        known = store.find(successor)
        if known is None:
            return None
        number, mapping = known
        local = result.local.get(number)
        if local is None:
            return None
        if masks is not None:
            return rename_mask(masks[local], store.value_maps[mapping], len(values))
        return _closed_future(graph, local, values)

    successors = store.successor_steps(start)
    crash_of = {
        step.node: outcome(successor) for step, successor, _ in successors if step.kind == "crash"
    }
    found: list[Critical] = []
    for step, successor, _ in successors:
        if step.kind != "deliver" or step.envelope is None:
            continue
        mask = outcome(successor)
        if mask is None or mask >> len(values) & 1 or bin(mask).count("1") != 1:
            continue
        receiver = step.envelope.dst
        crash = crash_of.get(receiver)
        found.append(
            Critical(
                message=session.message_id(step.envelope),
                receiver=receiver,
                text=step.render(),
                after=value_names_of(mask, values),
                after_crash=None if crash is None else value_names_of(crash, values),
            )
        )
    found.sort(key=lambda c: (not c.fatal, c.message))
    return found


def _closed_future(graph: Any, start: int, values: list[Any]) -> int | None:
    """The values decided anywhere in the future of local state `start` (and the beyond-the-
    bound bit), if every state of that future was expanded; None if any was not, or if the
    future is larger than `closed_future_states_max`."""
    mask = 0
    seen = {start}
    work = [start]
    while work:
        state = work.pop()
        if not graph.expanded[state] or len(seen) > closed_future_states_max:
            return None
        if graph.bounded[state]:
            mask |= 1 << len(values)
        for value in graph.decided_values[state]:
            mask |= 1 << values.index(value)
        for target, _ in graph.edges[state]:
            if target not in seen:
                seen.add(target)
                work.append(target)
    return mask


def _describe(symmetry: Any, proposers: list[int], nodes: int) -> str:
    if symmetry is None:
        return ""
    alike = [n for n in range(1, nodes + 1) if n not in proposers]
    words = []
    if len(symmetry.swap_nodes) >= 2:
        words.append(f"nodes {', '.join(map(str, alike))} are interchangeable")
    if len(symmetry.bases) > 1:
        words.append("the proposers are interchangeable, each with its value")
    return "; ".join(words)
