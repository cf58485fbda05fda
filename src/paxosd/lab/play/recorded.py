"""A recorded run (from the seeded simulator) to step through: one event per step.

A simulated run cannot be replayed action by action (its timers are not in the trace), so it
is shown as recorded: the timeline is its events, the cursor says how many have happened, and
each node's state is what the events say (up or crashed, what it decided). Moving the cursor
is the only change, and it bumps `version` like a live session's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paxosd.lab.play.session import BadAction, Stale
from paxosd.sim.trace import Event, render

__all__ = ["RecordedRun"]


@dataclass
class RecordedRun:
    algorithm: str
    nodes: int
    trace: list[Event]
    title: str = ""
    story: str = ""
    id: str = ""
    version: int = 0
    cursor: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def goto(self, step: int, version: int | None = None) -> None:
        if version is not None and version != self.version:
            raise Stale(version, self.version)
        if not 0 <= step <= len(self.trace):
            raise BadAction(f"no step {step}: this run has steps 0 to {len(self.trace)}")
        if step != self.cursor:
            self.cursor = step
            self.version += 1

    def timeline(self) -> list[dict[str, Any]]:
        return [{"step": i + 1, "text": render(event)} for i, event in enumerate(self.trace)]

    def seen(self) -> list[Event]:
        return self.trace[: self.cursor]

    def node_views(self) -> list[dict[str, Any]]:
        up = dict.fromkeys(range(1, self.nodes + 1), True)
        decided: dict[int, Any] = {}
        for event in self.seen():
            node = event.get("node")
            if event["ev"] == "crash" and node in up:
                up[node] = False
            elif event["ev"] == "restart" and node in up:
                up[node] = True
            elif event["ev"] == "decide" and node in up:
                decided[node] = event.get("value")
        return [
            {
                "id": node,
                "up": up[node],
                "decided": decided.get(node),
                "rows": [["decided", "-" if node not in decided else str(decided[node])]],
            }
            for node in up
        ]

    def in_flight(self) -> list[dict[str, Any]]:
        pending: dict[Any, Event] = {}
        for event in self.seen():
            if event["ev"] == "send":
                pending[event["id"]] = event
            elif event["ev"] in ("recv", "drop"):
                pending.pop(event.get("id"), None)
        return [
            {
                "id": event["id"],
                "src": event["src"],
                "dst": event["dst"],
                "msg": event["msg"],
                "family": event.get("family", "other"),
            }
            for event in pending.values()
        ]
