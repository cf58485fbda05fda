"""``paxosd check HISTORY --html FILE``: one self-contained page that shows a checked history.

The page has no external resources (no CDN, no fonts to fetch): the data is embedded as
JSON and a small script draws it as SVG. Per key (partition):

- one lane per client process; every operation is a bar from its invocation to its return;
  an operation with an unknown outcome runs to the right edge, hatched, marked ``?``;
- for a key that is not linearizable, the longest linearizable prefix the search found is
  green and numbered in linearization order, the operation that cannot be placed is red,
  and the operations that could have gone next are outlined; the explanation and the state
  after each step of the prefix are listed below the diagram;
- for a linearizable key, the bars are numbered in the order of one linearization.

The x axis is event order by default (every invocation and return gets the next slot, so
short operations stay readable next to long ones, as in Porcupine's visualizer); a toggle
switches to real time. Keys that failed come first in the list on the left.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Hashable, Sequence
from typing import Any

from paxosd.check.history import Operation, process_label, show_value
from paxosd.check.models import Model, partition
from paxosd.check.results import CheckResult, KeyResult, Verdict, clip, key_label

OPERATIONS_SHOWN_MAX = 60_000
"""Operations embedded in one page; past this, linearizable keys are left out first."""

DESCRIPTION_CHARS = 160
STATE_CHARS = 300

_RANK = {Verdict.NOT_LINEARIZABLE: 0, Verdict.UNKNOWN: 1, Verdict.LINEARIZABLE: 2}


def render(
    result: CheckResult,
    ops: Sequence[Operation],
    model: Model,
    *,
    title: str,
    notes: Sequence[str] = (),
) -> str:
    """The page for ``result``, the check of ``ops`` against ``model``."""
    parts = partition(ops, model)
    by_key = {key_label(key): part for key, part in parts}
    keys = sorted(result.keys, key=lambda k: _RANK[k.verdict])
    budget = OPERATIONS_SHOWN_MAX
    shown: list[dict[str, Any]] = []
    left_out = 0
    for k in keys:
        part = by_key.get(key_label(k.key), [])
        if len(part) > budget:
            left_out += 1
            continue
        budget -= len(part)
        shown.append(_key_data(k, part, model))
    data = {
        "title": title,
        "model": result.model,
        "verdict": str(result.verdict),
        "summary": _summary(result),
        "notes": list(notes) + list(result.notes),
        "leftOut": left_out,
        "keys": shown,
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        _TEMPLATE.replace("{{title}}", html.escape(title))
        .replace("{{style}}", _STYLE)
        .replace("{{script}}", _SCRIPT)
        .replace("{{data}}", payload)
    )


def _summary(result: CheckResult) -> str:
    counts = {v: sum(1 for k in result.keys if k.verdict is v) for v in Verdict}
    text = f"{result.operations} operations, {len(result.keys)} keys"
    if counts[Verdict.NOT_LINEARIZABLE]:
        text += f", {counts[Verdict.NOT_LINEARIZABLE]} not linearizable"
    if counts[Verdict.UNKNOWN]:
        text += f", {counts[Verdict.UNKNOWN]} unknown"
    return f"{text}; checked in {result.elapsed_s:.2f} s"


def _key_data(k: KeyResult, part: Sequence[Operation], model: Model) -> dict[str, Any]:
    lanes: dict[Hashable, int] = {}
    for op in part:
        lanes.setdefault(op.process, len(lanes))
    times = sorted(
        [(op.call, 0, n) for n, op in enumerate(part)]
        + [(op.ret, 1, n) for n, op in enumerate(part) if op.known]
    )
    call_rank = [0] * len(part)
    ret_rank: list[int | None] = [None] * len(part)
    for rank, (_, kind, n) in enumerate(times):
        if kind == 0:
            call_rank[n] = rank
        else:
            ret_rank[n] = rank
    finite = [t for t, _, _ in times if t != math.inf]
    entries = []
    for n, op in enumerate(part):
        entries.append(
            {
                "id": op.index,
                "lane": lanes[op.process],
                "f": op.f,
                "label": _short(op),
                "desc": clip(op.describe())[:DESCRIPTION_CHARS],
                "call": op.call,
                "ret": op.ret if op.known else None,
                "cr": call_rank[n],
                "rr": ret_rank[n],
            }
        )
    data: dict[str, Any] = {
        "label": key_label(k.key),
        "verdict": str(k.verdict),
        "reason": str(k.reason),
        "lanes": [process_label(p) for p in lanes],
        "ops": entries,
        "slots": len(times),
        "t0": min(finite, default=0.0),
        "t1": max(finite, default=1.0),
        "elapsed": round(k.elapsed_s, 4),
        "states": k.states_explored,
        "pruned": k.pruned,
    }
    by_index = {op.index: op for op in part}
    if k.violation is not None:
        v = k.violation
        data["prefix"] = [op.index for op in v.prefix]
        data["steps"] = _replay(v.prefix, model)
        data["stuck"] = v.stuck.index
        data["pending"] = [op.index for op, _ in v.pending]
        data["explanation"] = v.explain()
    elif k.order:
        order = [by_index[i] for i in k.order if i in by_index]
        data["prefix"] = [op.index for op in order]
        data["steps"] = _replay(order, model)
    return data


def _replay(order: Sequence[Operation], model: Model) -> list[str]:
    """The state after each operation of ``order`` (which the model accepts in turn)."""
    state = model.init()
    out = []
    for op in order:
        _, state = model.step(state, op)
        out.append(clip(show_value(state))[:STATE_CHARS])
    return out


def _short(op: Operation) -> str:
    """What fits on a bar: ``put 3``, ``get -> 3``, ``append 'x'``."""
    if op.input is not None and (not op.known or op.output is None or op.output == op.input):
        return f"{op.f} {show_value(op.input)}"[:40]
    if op.known:
        return f"{op.f} -> {show_value(op.output)}"[:40]
    return op.f


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>{{style}}</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <div id="verdict"></div>
  <div id="summary"></div>
  <ul id="notes"></ul>
</header>
<div id="main">
  <nav id="keys" aria-label="keys"></nav>
  <section id="view">
    <div id="key-head"></div>
    <div id="controls">
      <label><input type="radio" name="axis" value="order" checked> event order</label>
      <label><input type="radio" name="axis" value="time"> real time</label>
      <label>zoom <select id="zoom">
        <option value="0.5">0.5x</option><option value="1" selected>1x</option>
        <option value="2">2x</option><option value="4">4x</option></select></label>
      <span class="legend"><i class="sw prefix"></i>linearized (order)
        <i class="sw stuck"></i>cannot be placed <i class="sw pending"></i>could go next
        <i class="sw unknown"></i>unknown outcome <i class="sw other"></i>other</span>
    </div>
    <div id="diagram"><div id="lanes"></div><div id="scroll"></div></div>
    <pre id="explanation"></pre>
    <table id="steps"></table>
  </section>
</div>
<div id="tip" hidden></div>
<script id="data" type="application/json">{{data}}</script>
<script>{{script}}</script>
</body>
</html>
"""

_STYLE = """
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 0; color: #222;
  background: #fafafa; font-size: 14px; }
header { padding: 10px 16px; background: #fff; border-bottom: 1px solid #ddd; }
h1 { font-size: 18px; margin: 0 0 4px 0; font-weight: 600; }
#verdict { font-weight: 700; font-size: 16px; }
.v-linearizable { color: #1a7f37; } .v-not { color: #c62828; } .v-unknown { color: #9a6700; }
#summary { color: #555; margin-top: 2px; }
#notes { margin: 4px 0 0 0; padding-left: 18px; color: #444; }
#main { display: flex; align-items: flex-start; }
#keys { width: 210px; flex: none; max-height: calc(100vh - 90px); overflow-y: auto;
  border-right: 1px solid #ddd; background: #fff; }
#keys button { display: block; width: 100%; text-align: left; border: 0;
  border-bottom: 1px solid #eee; background: none; padding: 6px 10px; cursor: pointer;
  font: inherit; }
#keys button.current { background: #e8f0fe; }
#keys .badge { float: right; font-size: 12px; }
#view { flex: 1; min-width: 0; padding: 10px 16px; }
#key-head { font-weight: 600; margin-bottom: 6px; }
#controls { margin-bottom: 8px; color: #444; }
#controls label { margin-right: 12px; }
.legend { margin-left: 8px; font-size: 12px; }
.sw { display: inline-block; width: 14px; height: 10px; margin: 0 3px 0 10px;
  vertical-align: middle; border: 1px solid #666; }
.sw.prefix { background: #7cc48a; } .sw.stuck { background: #e53935; }
.sw.pending { background: #fff; border: 2px solid #f57c00; }
.sw.unknown { background: repeating-linear-gradient(45deg, #ccc 0 3px, #fff 3px 6px); }
.sw.other { background: #b0bec5; }
#diagram { display: flex; overflow-y: auto; border: 1px solid #ddd; background: #fff;
  max-height: 70vh; }
#lanes { flex: none; border-right: 1px solid #eee; }
#scroll { overflow-x: auto; flex: 1; }
svg text { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; font-size: 11px; }
.lane-label { fill: #333; } .lane-line { stroke: #eee; }
.op rect { stroke: #555; stroke-width: 1; }
.op.other rect { fill: #b0bec5; } .op.prefix rect { fill: #7cc48a; }
.op.stuck rect { fill: #e53935; stroke: #7f0000; stroke-width: 3; }
.op.pending rect { stroke: #f57c00; stroke-width: 3; }
.op.unknown rect { fill: url(#hatch); stroke-dasharray: 4 3; opacity: 0.7; }
.op.prefix.unknown rect { fill: #b6e3bf; }
.op text { fill: #111; pointer-events: none; }
.op:hover rect { stroke: #000; stroke-width: 2; }
.order { font-weight: 700; }
#explanation { white-space: pre-wrap; background: #fff; border: 1px solid #ddd;
  padding: 8px; font-size: 12px; }
#explanation:empty { display: none; }
#steps { border-collapse: collapse; font-size: 12px; margin-top: 8px; background: #fff; }
#steps td, #steps th { border: 1px solid #ddd; padding: 2px 6px; text-align: left;
  vertical-align: top; }
#steps tr.hot { background: #fff3c4; }
#tip { position: fixed; background: #222; color: #fff; padding: 6px 8px; font-size: 12px;
  border-radius: 4px; max-width: 520px; pointer-events: none; white-space: pre-wrap; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const LANE = 24, LABEL = 8, LANES = 90, TOP = 26, SLOT = 24, PAD = 20;
  let current = 0;
  const verdictClass = v => v === "linearizable" ? "v-linearizable"
    : v === "unknown" ? "v-unknown" : "v-not";
  const $ = id => document.getElementById(id);
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  $("title").textContent = data.title;
  $("verdict").textContent = "verdict: " + data.verdict + " (" + data.model + " model)";
  $("verdict").className = verdictClass(data.verdict);
  $("summary").textContent = data.summary;
  const notes = data.notes.slice();
  if (data.leftOut) notes.push(data.leftOut + " linearizable keys left out of the page");
  for (const n of notes) { const li = document.createElement("li"); li.textContent = n;
    $("notes").appendChild(li); }
  data.keys.forEach((k, i) => {
    const b = document.createElement("button");
    b.textContent = k.label;
    const badge = document.createElement("span");
    badge.className = "badge " + verdictClass(k.verdict);
    badge.textContent = k.verdict === "not linearizable" ? "FAIL"
      : k.reason === "not finished" ? "not finished" : k.verdict;
    b.appendChild(badge);
    b.addEventListener("click", () => show(i));
    $("keys").appendChild(b);
  });
  document.querySelectorAll("input[name=axis]").forEach(r => r.addEventListener("change",
    () => show(current)));
  $("zoom").addEventListener("change", () => show(current));

  function show(i) {
    current = i;
    const k = data.keys[i];
    document.querySelectorAll("#keys button").forEach((b, j) =>
      b.classList.toggle("current", j === i));
    const order = document.querySelector("input[name=axis]:checked").value === "order";
    const zoom = parseFloat($("zoom").value);
    $("key-head").textContent = "key " + k.label + ": " + k.verdict +
      (k.reason ? " (" + k.reason + ")" : "") + ", " + k.ops.length + " operations, " +
      k.states + " configurations in " + k.elapsed + " s" +
      (k.pruned ? ", " + k.pruned + " unknown operations that cannot matter left out" : "");
    $("key-head").className = verdictClass(k.verdict);
    const width = order ? k.slots * SLOT * zoom : Math.max(900, k.ops.length * 6) * zoom;
    const right = LABEL + width + PAD;
    const x = op => order ? LABEL + op.cr * SLOT * zoom
      : LABEL + (op.call - k.t0) / Math.max(k.t1 - k.t0, 1e-9) * width;
    const xr = op => op.rr === null ? right - 4 : order ? LABEL + (op.rr + 0.8) * SLOT * zoom
      : LABEL + (op.ret - k.t0) / Math.max(k.t1 - k.t0, 1e-9) * width;
    const height = TOP + k.lanes.length * LANE + 10;
    const svg = el("svg", {width: right, height: height, "data-key": k.label});
    const defs = el("defs", {}, svg);
    const hatch = el("pattern", {id: "hatch", width: 6, height: 6,
      patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)"}, defs);
    el("rect", {width: 6, height: 6, fill: "#fff"}, hatch);
    el("rect", {width: 3, height: 6, fill: "#cfd8dc"}, hatch);
    const axis = el("text", {x: LABEL, y: 14, fill: "#666"}, svg);
    axis.textContent = order ? "event order (each invocation and return is one step)"
      : "time " + k.t0 + " .. " + k.t1;
    const names = el("svg", {width: LANES, height: height});
    const head = el("text", {x: 6, y: 14, fill: "#666"}, names);
    head.textContent = "process";
    k.lanes.forEach((name, lane) => {
      const y = TOP + lane * LANE;
      el("line", {x1: 0, x2: right, y1: y + LANE - 2, y2: y + LANE - 2, class: "lane-line"}, svg);
      const t = el("text", {x: 6, y: y + 15, class: "lane-label"}, names);
      t.textContent = name.length > 12 ? name.slice(0, 11) + "." : name;
    });
    const position = new Map((k.prefix || []).map((id, n) => [id, n]));
    const pending = new Set(k.pending || []);
    let stuckX = null;
    // Unknown outcomes run to the right edge: draw them first, so the operations their
    // client went on with stay visible on top.
    const drawn = k.ops.filter(op => op.ret === null).concat(k.ops.filter(op => op.ret !== null));
    for (const op of drawn) {
      const classes = ["op"];
      if (op.id === k.stuck) classes.push("stuck");
      else if (position.has(op.id)) classes.push("prefix");
      else classes.push("other");
      if (pending.has(op.id) && op.id !== k.stuck) classes.push("pending");
      if (op.ret === null) classes.push("unknown");
      const g = el("g", {class: classes.join(" "), "data-op": op.id}, svg);
      const x0 = x(op), x1 = Math.max(xr(op), x0 + 6), y = TOP + op.lane * LANE + 3;
      el("rect", {x: x0, y: y, width: x1 - x0, height: LANE - 8, rx: 3}, g);
      let label = op.label;
      if (position.has(op.id)) label = (position.get(op.id) + 1) + ". " + label;
      if (op.ret === null) label += " ?";
      // The whole label if it fits, else the operation's name, else nothing.
      const room = Math.floor((x1 - x0 - 6) / 6.5);
      let shown = label.length <= room ? label : null;
      if (shown === null) {
        const short = (position.has(op.id) ? (position.get(op.id) + 1) + "." : "") + op.f;
        shown = short.length <= room ? short : null;
      }
      if (shown !== null) {
        const t = el("text", {x: x0 + 3, y: y + 12}, g);
        t.textContent = shown;
      }
      g.addEventListener("mousemove", ev => tip(ev, op, position));
      g.addEventListener("mouseleave", () => { $("tip").hidden = true; hot(null); });
      if (op.id === k.stuck) stuckX = x0;
    }
    $("lanes").replaceChildren(names);
    $("scroll").replaceChildren(svg);
    const view = $("scroll").clientWidth;
    $("scroll").scrollLeft = stuckX !== null && stuckX > view * 0.7 ? stuckX - view / 2 : 0;
    $("explanation").textContent = k.explanation || "";
    steps(k);
  }

  function tip(ev, op, position) {
    const box = $("tip");
    let text = op.desc;
    if (position.has(op.id)) text = "step " + (position.get(op.id) + 1) + " of the " +
      (data.keys[current].stuck !== undefined ? "longest linearizable prefix" : "linearization") +
      "\n" + text;
    text += "\ninvoked " + op.call +
      (op.ret === null ? ", outcome unknown" : ", returned " + op.ret);
    box.textContent = text;
    box.hidden = false;
    box.style.left = Math.min(ev.clientX + 14, window.innerWidth - 540) + "px";
    box.style.top = (ev.clientY + 14) + "px";
    hot(position.has(op.id) ? position.get(op.id) : null);
  }

  function hot(n) {
    document.querySelectorAll("#steps tr").forEach((tr, j) =>
      tr.classList.toggle("hot", n !== null && j === n + 1));
  }

  function steps(k) {
    const table = $("steps");
    table.replaceChildren();
    if (!k.prefix || !k.prefix.length) return;
    const byId = new Map(k.ops.map(op => [op.id, op]));
    const head = table.insertRow();
    for (const h of ["#", k.stuck !== undefined ? "longest linearizable prefix" : "a linearization",
      "state after it"]) {
      const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    }
    k.prefix.forEach((id, n) => {
      const row = table.insertRow();
      row.insertCell().textContent = n + 1;
      row.insertCell().textContent = byId.get(id).desc;
      row.insertCell().textContent = k.steps[n];
    });
    if (k.stuck !== undefined) {
      const row = table.insertRow();
      row.insertCell().textContent = "!";
      row.insertCell().textContent = byId.get(k.stuck).desc + "  (cannot be placed)";
      row.insertCell().textContent = "";
    }
  }

  if (data.keys.length) show(0);
  document.body.dataset.rendered = "true";
})();
"""


__all__ = ["render"]
