"""Reading runs back: an explored trace as the steps that made it, a simulated one as is.

An explored run's trace (`steps_as_trace`) has one `t` per step, and the step's own event
comes first at that `t` (a `recv`, `drop`, `propose`, `timeout`, `crash`, `restart`, `cut`,
`heal` or `tick`; a `dup` before a `recv` means the network kept a copy). What follows at the
same `t` (notes, decisions, sends) is what the step caused, and the replay recomputes it with
the real cores rather than trusting the file.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from paxosd.lab.play.session import BadAction, PlayConfig, Session
from paxosd.lab.tracefile import LabTrace
from paxosd.sim.trace import Event

__all__ = ["session_from_trace", "step_specs"]

_NODE_STEPS = ("timeout", "crash", "restart")


def step_specs(trace: list[Event]) -> list[dict[str, Any]]:
    """The step specs (see `Session.find`) of an explored trace, in order."""
    specs: list[dict[str, Any]] = []
    for t, group in groupby(trace, key=lambda e: e.get("t")):
        events = list(group)
        first = events[0]
        kind = first.get("ev")
        where = f"the events at t={t!r}"
        try:
            if kind == "dup" and len(events) > 1 and events[1].get("ev") == "recv":
                specs.append(_message("duplicate", events[1]))
            elif kind == "recv":
                specs.append(_message("deliver", first))
            elif kind == "drop":
                specs.append(_message("drop", first))
            elif kind == "propose":
                specs.append({"kind": "propose", "node": first["node"], "value": first["value"]})
            elif kind in _NODE_STEPS:
                specs.append({"kind": kind, "node": first["node"]})
            elif kind == "cut":
                links = sorted([int(a), int(b)] for a, b in first["links"])
                specs.append({"kind": "partition", "links": links})
            elif kind in ("heal", "tick"):
                specs.append({"kind": kind})
            else:
                raise ValueError(f"{where} start with a {kind!r} event, which is no step")
        except (KeyError, TypeError) as error:
            raise ValueError(f"{where}: a malformed {kind!r} event ({error})") from None
    return specs


def _message(kind: str, event: Event) -> dict[str, Any]:
    return {"kind": kind, "src": event["src"], "dst": event["dst"], "msg": event["msg"]}


def session_from_trace(lab_trace: LabTrace) -> Session:
    """A live session that has taken every step of an explored run, its cursor at step 0."""
    if lab_trace.model != "explored":
        raise ValueError("only an explored run can be replayed step by step")
    config = PlayConfig.from_json(lab_trace.config)
    session = Session(config)
    specs = step_specs(lab_trace.trace)
    for number, spec in enumerate(specs, 1):
        try:
            session.apply(session.find(spec))
        except BadAction:
            raise ValueError(
                f"step {number} of the file cannot be taken in this configuration "
                f"({', '.join(f'{k}={v}' for k, v in spec.items())}): was it written for "
                "another algorithm, variant or number of nodes?"
            ) from None
    session.goto(0)
    session.version = 0
    return session
