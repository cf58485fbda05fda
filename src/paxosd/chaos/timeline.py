"""The timeline page of a chaos run: one self-contained HTML file with an SVG swimlane.

Lanes, top to bottom, on one time axis (seconds since the clients started):

- **faults**: one bar per fault, from the moment it took effect to the moment it was undone;
- **node i**: that node's role as /v1/status reported it (leader, follower, candidate, down:
  killed, paused, or not answering in time), one segment per sample;
- **writes ok**: a tick for every successful probe write (gaps are unavailability);
- **one lane per client**: every operation from its invocation to its completion, green ok,
  grey fail, amber info (unknown).

Every shape has a tooltip (SVG `<title>`) with the details. No scripts, styles or fonts are
fetched: the file opens anywhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from paxosd.chaos.runner import RunData
from paxosd.check.history import Event

lane_h = 18
gap = 4
label_w = 110
px_per_s_min = 12.0
width_min = 1100
width_max = 40_000
OUTCOME_COLORS = {"ok": "#2e9d4a", "fail": "#9aa0a6", "info": "#f0a020"}
ROLE_COLORS = {
    "leader": "#2e9d4a",
    "follower": "#8ab4f8",
    "candidate": "#f0a020",
    "rebuilding": "#12b5cb",
    "down": "#d93025",
    "damaged": "#7b1fa2",
}
FAULT_COLORS = {
    "kill": "#d93025", "kill-leader": "#a50e0e", "pause": "#7b1fa2",
    "partition": "#1a73e8", "isolate-leader": "#174ea6", "bridge": "#4285f4",
    "one-way": "#669df6", "delay": "#e37400", "loss": "#f29900", "duplicate": "#fbbc04",
    "reset": "#80868b", "failing-write": "#3c4043",
}  # fmt: skip


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


class _Svg:
    def __init__(self, end_s: float) -> None:
        self.end_s = max(end_s, 1.0)
        self.px_per_s = max(px_per_s_min, width_min / self.end_s)
        self.width = min(width_max, int(self.end_s * self.px_per_s) + label_w + 20)
        self.px_per_s = (self.width - label_w - 20) / self.end_s
        self.parts: list[str] = []
        self.y = 20

    def x(self, t: float) -> float:
        return round(label_w + max(0.0, min(t, self.end_s)) * self.px_per_s, 1)

    def lane(self, label: str) -> int:
        y = self.y
        self.parts.append(
            f'<text x="4" y="{y + lane_h - 5}" class="lbl">{_esc(label)}</text>'
            f'<line x1="{label_w}" x2="{self.width}" y1="{y + lane_h + gap / 2}" '
            f'y2="{y + lane_h + gap / 2}" class="sep"/>'
        )
        self.y += lane_h + gap
        return y

    def bar(self, y: int, start: float, end: float, color: str, tip: str, text: str = "") -> None:
        x0, x1 = self.x(start), self.x(end)
        w = max(1.0, x1 - x0)
        self.parts.append(
            f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{lane_h}" fill="{color}">'
            f"<title>{_esc(tip)}</title></rect>"
        )
        if text and w > 7 * len(text):
            self.parts.append(
                f'<text x="{x0 + 2}" y="{y + lane_h - 5}" class="in">{_esc(text)}</text>'
            )

    def axis(self) -> None:
        step = next(s for s in (1, 2, 5, 10, 30, 60, 120, 300, 600) if s * self.px_per_s >= 60)
        t = 0
        while t <= self.end_s:
            x = self.x(t)
            self.parts.append(
                f'<line x1="{x}" x2="{x}" y1="14" y2="{self.y}" class="grid"/>'
                f'<text x="{x + 2}" y="12" class="ax">{t}s</text>'
            )
            t += step

    def render(self) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
            f'height="{self.y + 10}">{"".join(self.parts)}</svg>'
        )


def _pairs(events: Sequence[Event]) -> dict[str, list[tuple[Event, Event | None]]]:
    """Each process's operations as (invoke, completion or None)."""
    lanes: dict[str, list[tuple[Event, Event | None]]] = {}
    pending: dict[str, Event] = {}
    for e in events:
        process = str(e.process)
        if str(e.type) == "invoke":
            pending[process] = e
        elif process in pending:
            lanes.setdefault(process, []).append((pending.pop(process), e))
    for process, e in pending.items():
        lanes.setdefault(process, []).append((e, None))
    return lanes


def render(data: RunData, results: dict[str, Any]) -> str:
    end_s = max([e.time or 0.0 for e in data.events] + [data.chaos_end])
    svg = _Svg(end_s)
    y = svg.lane("faults")
    for f in data.faults:
        stop = f["end"] if f["end"] is not None else end_s
        targets = " | ".join(",".join(map(str, g)) for g in f["targets"])
        detail = {k: v for k, v in f["detail"].items() if k not in ("cut_links",)}
        tip = f"{f['kind']} {targets} {f['start']}-{stop} s {json.dumps(detail)}"
        svg.bar(y, f["start"], stop, FAULT_COLORS.get(f["kind"], "#444"), tip, f["kind"])
    by_node: dict[int, list[dict[str, Any]]] = {}
    for s in data.samples:
        by_node.setdefault(s["node"], []).append(s)
    for node in sorted(by_node):
        y = svg.lane(f"node {node}")
        samples = by_node[node]
        for s, after in zip(samples, [*samples[1:], None], strict=True):
            stop = after["t"] if after is not None else s["t"] + 0.25
            tip = f"node {node} {s['role']} (leader: {s['leader']}) at {s['t']} s"
            svg.bar(y, s["t"], stop, ROLE_COLORS.get(s["role"], "#ccc"), tip)
    y = svg.lane("writes ok")
    for w in data.probe_ok:
        svg.parts.append(
            f'<rect x="{svg.x(w)}" y="{y}" width="1" height="{lane_h}" fill="#2e9d4a"/>'
        )
    for process, ops in sorted(_pairs(data.events).items()):
        y = svg.lane(process)
        for invoke, done in ops:
            outcome = "info" if done is None else str(done.type)
            stop = done.time if done is not None and done.time is not None else end_s
            value = done.value if done is not None and outcome == "ok" else invoke.value
            tip = (
                f"{process} {invoke.f} {invoke.key} {json.dumps(value, default=str)} -> "
                f"{outcome} at {done.node if done is not None else '?'} "
                f"[{invoke.time}-{stop} s]"
            )
            svg.bar(y, invoke.time or 0.0, stop, OUTCOME_COLORS.get(outcome, "#444"), tip)
    svg.axis()
    return _page(svg.render(), results)


def _page(svg: str, results: dict[str, Any]) -> str:
    verdicts = "".join(
        f"<li class={'ok' if v['ok'] else 'bad'}>{_esc(name)}: "
        f"{'ok' if v['ok'] else 'VIOLATED'} ({v['checked']} checked)"
        + "".join(f"<div class=p>{_esc(p)}</div>" for p in v["problems"][:3])
        + "</li>"
        for name, v in results["verdicts"].items()
    )
    ops = results["operations"]
    legend = " ".join(
        f'<span style="background:{c}">&nbsp;&nbsp;</span> {_esc(k)}'
        for k, c in {**OUTCOME_COLORS, **ROLE_COLORS}.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>paxosd chaos: seed {results["seed"]}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 16px; color: #202124; }}
.lbl {{ font: 11px monospace; }} .ax {{ font: 10px monospace; fill: #5f6368; }}
.in {{ font: 10px monospace; fill: #fff; }} .grid {{ stroke: #e8eaed; }}
.sep {{ stroke: #f1f3f4; }} .ok {{ color: #188038; }} .bad {{ color: #d93025; }}
.p {{ font: 11px monospace; color: #5f6368; white-space: pre-wrap; }}
.scroll {{ overflow-x: auto; border: 1px solid #dadce0; }}
</style></head><body>
<h1>paxosd chaos: {results["nodes"]} nodes, seed {results["seed"]},
variant {_esc(results["variant"])}</h1>
<p><code>{_esc(results["command"])}</code></p>
<p><b>{"no anomalies" if results["valid"] else "ANOMALIES FOUND"}</b>;
{ops["total"]} operations ({ops["ok"]} ok, {ops["fail"]} fail, {ops["info"]} info);
{results["faults"]["total"]} faults; availability {results["availability"]}</p>
<ul>{verdicts}</ul>
<p>{legend}</p>
<div class="scroll">{svg}</div>
</body></html>
"""
