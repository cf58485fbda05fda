"""The explorer as a coach: from the state the learner is looking at, what can still happen?

The coach runs the same breadth-first explorer as `paxosd lab check --explore`, from the
session's current state, with the fault budget of the session's configuration less what the
run has already spent. From the initial state it therefore finds exactly the counterexamples
`lab check` prints for the same configuration; from a later state, the shortest way to break
from there. It also labels the state with its valence (the values some continuation still
decides, the FLP chapter's bivalent and univalent) and looks, among the messages in flight,
for a critical one: a message whose delivery fixes the outcome, and whose receiver crashing
instead leaves the cluster stuck forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paxosd.check.consensus import PROPERTIES
from paxosd.lab.flp import valences, value_names_of
from paxosd.lab.play.session import Session, coach_nodes_max
from paxosd.sim.explorer import Step

__all__ = ["Advice", "advise", "coach_states_max"]

coach_states_max = 250_000  # about a minute of search at worst, on a laptop


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
    valence: list[str]
    outlook: str  # decided, univalent, bivalent, stuck, or unknown
    verdicts: dict[str, dict[str, str]]
    paths: dict[str, list[Step]] = field(default_factory=dict)
    critical: list[Critical] = field(default_factory=list)
    command: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "version": self.version,
            "states": self.states,
            "complete": self.complete,
            "valence": self.valence,
            "outlook": self.outlook,
            "verdicts": self.verdicts,
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
        }


def advise(session: Session, states_max: int = coach_states_max) -> Advice:
    """Explore every continuation of the session's current state (within `states_max`).

    ValueError for a cluster too large to explore."""
    if session.config.nodes > coach_nodes_max:
        raise ValueError(
            f"the coach explores every continuation, which is for {coach_nodes_max} nodes or "
            f"fewer; this session has {session.config.nodes}"
        )
    explorer = session.coach_explorer(states_max)
    start = session.coach_state()
    exploration = explorer.explore(start=start, livelock=False)
    graph = exploration.graph
    values = session.values
    masks = valences(graph, values)
    real = (1 << len(values)) - 1
    possible = bin(masks[0] & real).count("1")
    decided = {v for _, v in start.decided}
    if decided and len(decided) == 1 and all(c is None or c.query() for c in start.cores):
        outlook = "decided"
    elif not exploration.complete:
        outlook = "unknown"
    elif masks[0] == 0:
        outlook = "stuck"
    elif possible >= 2:
        outlook = "bivalent"
    else:
        outlook = "univalent"
    advice = Advice(
        step=session.cursor,
        version=session.version,
        states=len(graph),
        complete=exploration.complete,
        valence=value_names_of(masks[0], values),
        outlook=outlook,
        verdicts={
            prop: {"status": v.status, "detail": v.detail, "kind": v.kind}
            for prop, v in exploration.verdicts.items()
            if prop in PROPERTIES
        },
        paths=dict(exploration.counterexamples),
        command=session.config.command() if session.cursor == 0 else "",
    )
    if possible >= 2 and exploration.index is not None:
        advice.critical = _critical(session, explorer, start, exploration.index, masks)
    return advice


def _critical(
    session: Session, explorer: Any, start: Any, index: dict[Any, int], masks: list[int]
) -> list[Critical]:
    """Deliveries from a bivalent state that leave one value possible; with what crashing
    their receiver instead would leave."""
    values = session.values
    successors = list(explorer.successors(start))
    crash_of = {
        step.node: index[successor.key()]
        for step, successor in successors
        if step.kind == "crash" and successor.key() in index
    }
    found: list[Critical] = []
    for step, successor in successors:
        if step.kind != "deliver" or step.envelope is None:
            continue
        target = index.get(successor.key())
        if target is None:
            continue
        mask = masks[target]
        if mask >> len(values) & 1 or bin(mask).count("1") != 1:
            continue
        receiver = step.envelope.dst
        crash = crash_of.get(receiver)
        found.append(
            Critical(
                message=session.message_id(step.envelope),
                receiver=receiver,
                text=step.render(),
                after=value_names_of(mask, values),
                after_crash=None if crash is None else value_names_of(masks[crash], values),
            )
        )
    found.sort(key=lambda c: (not c.fatal, c.message))
    return found
