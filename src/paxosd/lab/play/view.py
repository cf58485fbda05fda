"""What the page shows of a session, as one JSON object (rebuilt after every change)."""

from __future__ import annotations

from typing import Any

from paxosd.lab import algorithms
from paxosd.lab.diagram import render_svg
from paxosd.lab.play.recorded import RecordedRun
from paxosd.lab.play.session import Session, message_view
from paxosd.sim.explorer import disagrees

__all__ = ["recorded_view", "session_view"]

_MESSAGE_KINDS = ("deliver", "drop", "duplicate")
_LABELS = {
    "propose": "propose {value} at {node}",
    "timeout": "fire {node}'s timer",
    "crash": "crash {node}",
    "restart": "restart {node}",
    "tick": "time passes (every timer)",
    "heal": "heal the partition",
}


def _label(kind: str, action: Any) -> str:
    step = action.step
    if kind == "partition":
        return "partition " + " | ".join(
            "{" + side.replace(">", "->") + "}" for side in action.id.split(":", 1)[1].split("|")
        )
    return _LABELS.get(kind, kind).format(node=step.node, value=step.value)


def session_view(session: Session) -> dict[str, Any]:
    state = session.state
    actions = session.actions()
    by_message: dict[int, dict[str, str]] = {}
    other: list[dict[str, Any]] = []
    for action in actions:
        kind = action.step.kind
        if kind in _MESSAGE_KINDS:
            number = int(action.id.split(":", 1)[1])
            by_message.setdefault(number, {})[kind] = action.id
        else:
            entry: dict[str, Any] = {"id": action.id, "kind": kind, "label": _label(kind, action)}
            if action.step.node:
                entry["node"] = action.step.node
            other.append(entry)
    messages = []
    for envelope in session.in_flight():
        ident = session.message_id(envelope)
        item = message_view(envelope, ident)
        item["actions"] = by_message.get(ident, {})
        item["deliverable"] = "deliver" in item["actions"]
        messages.append(item)
    nodes = []
    for number, core in enumerate(state.cores, 1):
        view = getattr(core, "view", None)
        nodes.append(
            {
                "id": number,
                "up": core is not None,
                "decided": None if core is None else core.query(),
                "rows": [list(row) for row in view()] if callable(view) else [],
            }
        )
    algorithm = algorithms.get(session.config.algorithm)
    branch = session.branch
    timeline = [
        {"step": number, "text": step.render()}
        for number, step in enumerate(session.steps(len(branch.points) - 1), 1)
    ]
    title = f"{algorithm.name}: you are the network"
    if session.tour:
        title = session.tour.tour.title
    data: dict[str, Any] = {
        "kind": "live",
        "session": session.id,
        "version": session.version,
        "config": session.config.to_json(),
        "command": session.config.command(),
        "algorithm": {"name": algorithm.name, "summary": algorithm.summary, "flaw": algorithm.flaw},
        "title": title,
        "step": session.cursor,
        "last": len(branch.points) - 1,
        "timeline": timeline,
        "branch": session.current,
        "branches": [
            {"index": i, "steps": len(b.points) - 1, "forked_at": b.forked_at}
            for i, b in enumerate(session.branches)
        ],
        "nodes": nodes,
        "messages": messages,
        "actions": other,
        "blocked": sorted(list(link) for link in state.blocked),
        "decided": sorted([node, value] for node, value in state.decided),
        "safety": {
            "agreement": "violated" if disagrees(state.decided) else "holds",
            "validity": "violated" if session.explorer.invalid_decision(state) else "holds",
        },
        "svg": render_svg(session.trace(), nodes=list(range(1, session.config.nodes + 1))),
        "tour": session.tour.to_json() if session.tour else None,
        "story": "",
    }
    return data


def recorded_view(run: RecordedRun) -> dict[str, Any]:
    return {
        "kind": "recorded",
        "session": run.id,
        "version": run.version,
        "config": run.config,
        "command": "",
        "algorithm": {"name": run.algorithm, "summary": "", "flaw": ""},
        "title": run.title or f"a recorded {run.algorithm} run",
        "story": run.story,
        "step": run.cursor,
        "last": len(run.trace),
        "timeline": run.timeline(),
        "branch": 0,
        "branches": [{"index": 0, "steps": len(run.trace), "forked_at": 0}],
        "nodes": run.node_views(),
        "messages": [{**m, "actions": {}, "deliverable": False} for m in run.in_flight()],
        "actions": [],
        "blocked": [],
        "decided": [],
        "safety": {},
        "svg": render_svg(run.seen(), nodes=list(range(1, run.nodes + 1))),
        "tour": None,
    }
