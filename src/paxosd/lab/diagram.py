"""Space-time (Lamport) diagrams of a run's trace: a standalone SVG, or one self-contained page.

Layout, top to bottom: an optional title, a legend of only what the run uses, one header box
"node N" per node (left to right by id), the lifelines, a repeat of the headers at the bottom
(long runs scroll), and the highlight's caption. A narrow gutter on the left prints the virtual
time `t` wherever it changes.

Time flows downward. With `time_axis="seq"` every event owns a row of `row_height_px`, so the
picture is compact and nothing happening "at the same instant" is squeezed together. With
`time_axis="t"` the row sits at a height proportional to `t`, but never closer than
`min_row_gap_px` to the previous one, so labels still have room.

A message is an arrow from the sender's lifeline at its `send` row to the receiver's at its
`recv` row, coloured by message family (phase 1, phase 2, Nack, ...), labelled at a point along
it with the message text on a small white box (a lab value such as red gets a coloured dot).
Labels are placed greedily: fixed labels (notes, decisions, crashes) first, then each message
label at the first of a few points along its arrow where it overlaps nothing already placed and,
if possible, hides no lifeline; a coarse grid keeps that check cheap, so thousands of events stay
linear. A drop ends in a cross part-way (at the wall, for a partition), a copy made by the
network is dash-dotted, a message still in flight at the end is a dashed stub. Marks on
lifelines: flag (propose), diamond (decide), bold cross (crash; the lifeline turns grey and
dashed), circular arrow (restart), clock (timeout), dotted lifeline (slow), a jagged wall between
the separated groups (partition, until the heal).

Every drawn event is a `<g class="ev" data-seq="...">` holding a `<title>` with the event's text
(a message's arrow also carries `data-from`, the seq of its send). The HTML page uses those to
link the picture with its numbered event list and to replay the run step by step.

Output depends only on the input: no random ids, no clock, so equal traces give equal bytes.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from paxosd.sim.trace import render

__all__ = ["Highlight", "render_html", "render_svg", "write"]

Event = Mapping[str, Any]
NodeKey = int | str

# -- sizes (px) --------------------------------------------------------------------------------

margin_px = 16
gutter_width_px = 52  # the time labels on the left
first_lane_offset_px = 60  # from the gutter to the first lifeline: room for "crashed ✕"
lane_width_px = 220  # between two lifelines; widened when messages are long
lane_width_max_px = 340
notes_margin_px = 190  # right of the last lifeline: its notes and labels need room
row_height_px = 24  # one event per row in `time_axis="seq"`
loop_width_px = 28  # how far a node's message to itself bulges right of its lifeline
min_row_gap_px = 18  # `time_axis="t"`: never closer than this
title_height_px = 28
legend_row_height_px = 20
header_height_px = 26
header_gap_px = 14  # header box to first row
witness_tag_height_px = 16
caption_line_height_px = 17

msg_font_px = 10.5  # monospace message labels
mark_font_px = 11  # sans labels next to marks
note_font_px = 10.5
note_max_chars = 34
mono_char_ratio = 0.6  # width of a monospace glyph / font size
sans_char_ratio = 0.56  # average for sans-serif text; only used to avoid overlaps

# -- colours -----------------------------------------------------------------------------------

INK = "#212529"
MUTED = "#868e96"
LIFELINE = "#adb5bd"
DEAD = "#ced4da"
DANGER = "#c92a2a"
GOOD = "#2b8a3e"
WALL = "#f08c00"
CHOSEN = "#e67700"


@dataclass(frozen=True, slots=True)
class _Family:
    key: str
    legend: str
    colour: str


# Hues chosen to stay apart from the value colours (red, blue, green dots) they carry.
_FAMILIES: tuple[_Family, ...] = (
    _Family("phase1", "Prepare / Promise (phase 1)", "#4257d6"),
    _Family("phase2", "Accept / Accepted (phase 2)", "#0c8599"),
    _Family("nack", "Nack", "#c2255c"),
    _Family("learn", "Decided / Query", "#868e96"),
    _Family("vote", "Propose / Vote", "#a0620a"),
    _Family("heartbeat", "Heartbeat", "#9c36b5"),
    _Family("client", "Set / Get / Value", "#5c940d"),
    _Family("other", "other messages", "#495057"),
)
_FAMILY_BY_KEY = {f.key: f for f in _FAMILIES}
_FAMILY_OF_NAME = {
    "Prepare": "phase1",
    "Promise": "phase1",
    "Accept": "phase2",
    "Accepted": "phase2",
    "Nack": "nack",
    "Decided": "learn",
    "Query": "learn",
    "Propose": "vote",
    "Vote": "vote",
    "Heartbeat": "heartbeat",
    "Set": "client",
    "Get": "client",
    "Value": "client",
}

# The lab's value names (paxosd.lab.values.COLOURS) drawn in their own colour.
VALUE_COLOURS: dict[str, str] = {
    "red": "#e03131",
    "blue": "#1c7ed6",
    "green": "#2f9e44",
    "amber": "#f59f00",
    "violet": "#7048e8",
    "cyan": "#15aabf",
    "white": "#ffffff",
    "black": "#212529",
}
_VALUE_WORD = re.compile(r"\b(" + "|".join(VALUE_COLOURS) + r")\b")
_MSG_NAME = re.compile(r"^\s*([A-Za-z_]\w*)")

_REQUIRED: dict[str, tuple[str, ...]] = {
    "send": ("src", "dst", "msg", "id"),
    "recv": ("src", "dst", "msg", "id"),
    "drop": ("src", "dst", "msg", "id", "why"),
    "dup": ("src", "dst", "msg", "id"),
    "propose": ("node", "value"),
    "decide": ("node", "value"),
    "note": ("node", "text"),
    "crash": ("node",),
    "restart": ("node",),
    "cut": ("links",),
    "heal": (),
    "slow": ("node", "factor"),
    "timeout": ("node",),
    "phase": ("name",),
}
_NODE_FIELDS = ("src", "dst", "node")
_WHY = {"loss": "lost", "partition": "partition", "crashed": "crashed"}


@dataclass(frozen=True)
class Highlight:
    """What to point out in a run: where a value was chosen and why it survived.

    `witness` is the acceptor in both the quorum that accepted the value and the quorum that
    later promised a higher ballot (it reports the value, so the new proposer must carry it on).
    """

    chosen_at: int | None = None
    witness: int | None = None
    accepting_quorum: tuple[int, ...] = ()
    promising_quorum: tuple[int, ...] = ()
    caption: str = ""


# -- public API --------------------------------------------------------------------------------


def render_svg(
    trace: list[dict[str, Any]],
    *,
    nodes: list[int] | None = None,
    title: str = "",
    highlight: Highlight | None = None,
    time_axis: str = "seq",
) -> str:
    """The run as a standalone SVG document (a string starting with `<svg`)."""
    return _render(trace, nodes, title, highlight, time_axis, interactive=False).svg


def render_html(
    trace: list[dict[str, Any]],
    *,
    nodes: list[int] | None = None,
    title: str = "",
    highlight: Highlight | None = None,
    description: str = "",
    time_axis: str = "seq",
) -> str:
    """One self-contained HTML page: the diagram, the numbered event list, step controls."""
    drawing = _render(trace, nodes, title, highlight, time_axis, interactive=True)
    return _html_page(drawing, title, description)


def write(path: str | Path, trace: list[dict[str, Any]], **kwargs: Any) -> None:
    """Render `trace` to `path`; the suffix (.svg or .html) picks the format."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".svg":
        text = render_svg(trace, **kwargs)
    elif suffix in (".html", ".htm"):
        text = render_html(trace, **kwargs)
    else:
        raise ValueError(
            f"cannot tell which format to write for {str(target)!r}: "
            f"use a path ending in .svg (the picture) or .html (interactive page), "
            f"not {suffix or 'no suffix'!r}"
        )
    target.write_text(text, encoding="utf-8")


# -- input -------------------------------------------------------------------------------------


def _validated(trace: Iterable[Any]) -> list[Event]:
    """Events in seq order; ValueError naming the seq of the first malformed one."""
    events: list[Event] = []
    for index, event in enumerate(trace):
        if not isinstance(event, Mapping):
            raise ValueError(f"trace entry #{index} is not an event dict: {event!r}")
        if "seq" not in event:
            raise ValueError(f"trace entry #{index} has no 'seq' field: {dict(event)!r}")
        seq = event["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"event with seq {seq!r}: 'seq' must be an integer")
        missing = [name for name in ("t", "ev") if name not in event]
        missing += [name for name in _REQUIRED.get(str(event.get("ev")), ()) if name not in event]
        if missing:
            kind = event.get("ev", "?")
            raise ValueError(
                f"event seq {seq} ({kind}) is missing required field(s): {', '.join(missing)}"
            )
        for name in _NODE_FIELDS:
            if name in event and not _is_node(event[name]):
                raise ValueError(f"event seq {seq}: {name} must be a node id, not {event[name]!r}")
        if "id" in event and not _is_node(event["id"]):  # ids are ints; strings are harmless
            raise ValueError(f"event seq {seq}: id must be an integer, not {event['id']!r}")
        if event["ev"] in ("cut", "heal") and event.get("links") is not None:
            _links(event)  # raises on a malformed list
        events.append(event)
    events.sort(key=lambda e: e["seq"])
    return events


def _is_node(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _links(event: Event) -> list[tuple[NodeKey, NodeKey]]:
    links: list[tuple[NodeKey, NodeKey]] = []
    raw = event.get("links") or []
    if not isinstance(raw, list | tuple):
        raise ValueError(f"event seq {event['seq']}: links must be a list of [src, dst] pairs")
    for link in raw:
        if not isinstance(link, list | tuple) or len(link) != 2 or not all(map(_is_node, link)):
            raise ValueError(f"event seq {event['seq']}: bad link {link!r}, want [src, dst]")
        links.append((link[0], link[1]))
    return links


def _node_order(node: NodeKey) -> tuple[int, int, str]:
    return (0, node, "") if isinstance(node, int) else (1, 0, node)


def _lanes(events: Sequence[Event], nodes: Sequence[NodeKey] | None) -> list[NodeKey]:
    """Every node given or mentioned, by id. Mentioned-but-not-given nodes get a lane too,
    rather than an error, so a partial `nodes` list never loses events."""
    seen: set[NodeKey] = set(nodes or ())
    for event in events:
        for name in _NODE_FIELDS:
            if name in event:
                seen.add(event[name])
        if event["ev"] in ("cut", "heal"):
            for a, b in _links(event):
                seen.update((a, b))
    return sorted(seen, key=_node_order)


def _text(event: Event) -> str:
    """The trace module's one-line rendering, never failing on odd input."""
    try:
        line = render(dict(event))
    except (KeyError, TypeError, ValueError):
        line = json.dumps(dict(event), sort_keys=True, default=str)
    if event["ev"] == "crash" and event.get("lost_writes"):
        line += f" (unsynced writes lost: {event['lost_writes']})"
    return line


def _full_title(event: Event) -> str:
    return f"#{event['seq']}  t={event['t']}  {_text(event)}"


def _family(msg: str) -> _Family:
    match = _MSG_NAME.match(msg)
    key = _FAMILY_OF_NAME.get(match.group(1), "other") if match else "other"
    return _FAMILY_BY_KEY[key]


def _value_colour(text: str) -> str | None:
    """The colour of the first lab value named in `text` ("Accept(1.2, red)" -> red)."""
    match = _VALUE_WORD.search(text)
    return VALUE_COLOURS[match.group(1)] if match else None


# -- small formatting helpers ------------------------------------------------------------------


def _n(x: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros, never "-0"."""
    text = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _attr(value: Any) -> str:
    return quoteattr(str(value))


def _esc(text: Any) -> str:
    return escape(str(text))


def _text_width(text: str, font_px: float, mono: bool) -> float:
    return len(text) * font_px * (mono_char_ratio if mono else sans_char_ratio)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _factor(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return _n(number) if abs(number - round(number, 1)) < 1e-9 else f"{number:g}"


def _wrap(text: str, width_chars: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width_chars:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


# -- label placement ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: _Box) -> bool:
        apart_x = self.x1 <= other.x0 or other.x1 <= self.x0
        return not apart_x and self.y0 < other.y1 and other.y0 < self.y1


class _Placer:
    """Boxes already taken, bucketed on a coarse grid so each check looks at a few neighbours."""

    cell_w = 80.0
    cell_h = 40.0

    def __init__(self) -> None:
        self._grid: dict[tuple[int, int], list[_Box]] = {}

    def _cells(self, box: _Box) -> Iterable[tuple[int, int]]:
        for cx in range(int(box.x0 // self.cell_w), int(box.x1 // self.cell_w) + 1):
            for cy in range(int(box.y0 // self.cell_h), int(box.y1 // self.cell_h) + 1):
                yield cx, cy

    def free(self, box: _Box) -> bool:
        return not any(
            box.overlaps(other) for cell in self._cells(box) for other in self._grid.get(cell, ())
        )

    def take(self, box: _Box) -> None:
        for cell in self._cells(box):
            self._grid.setdefault(cell, []).append(box)


# -- geometry ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Geometry:
    lanes: list[NodeKey]
    lane_x: dict[NodeKey, float]
    lane_w: float
    row_y: list[float]  # by event index
    width: float
    title_y: float
    legend_top: float
    header_top: float
    life_top: float
    life_bottom: float
    bottom_header_top: float
    caption_top: float
    height: float = 0.0


def _lane_width(events: Sequence[Event]) -> float:
    """Wide enough that the longest message label fits between two neighbouring lifelines."""
    longest = max(
        (len(str(e["msg"])) for e in events if e["ev"] in ("send", "recv", "drop")), default=0
    )
    wanted = _text_width("x" * longest, msg_font_px, mono=True) + 14 + 50
    return min(lane_width_max_px, max(float(lane_width_px), wanted))


def _row_positions(events: Sequence[Event], top: float, time_axis: str) -> list[float]:
    if time_axis == "seq":
        return [top + (i + 0.5) * row_height_px for i in range(len(events))]
    times: list[float] = []
    for event in events:
        try:
            times.append(float(event["t"]))
        except (TypeError, ValueError):
            raise ValueError(
                f"event seq {event['seq']}: t={event['t']!r} is not a number "
                '(use time_axis="seq" for such traces)'
            ) from None
    if not times:
        return []
    start = min(times)
    span = max(times) - start
    distinct = len(set(times))
    # On average one row per distinct instant; events at the same instant stack by the gap.
    scale = (distinct * row_height_px / span) if span > 0 else 0.0
    positions: list[float] = []
    previous = -math.inf
    for t in times:
        y = max(previous + min_row_gap_px, top + row_height_px / 2 + (t - start) * scale)
        positions.append(y)
        previous = y
    return positions


def _legend_items(events: Sequence[Event], highlight: Highlight | None) -> list[tuple[str, str]]:
    """(icon kind, text) for what this run actually shows, in a fixed order."""
    families: set[str] = set()
    kinds: set[str] = set()
    delivered: set[Any] = set()
    received: dict[Any, int] = {}
    for event in events:
        kind = event["ev"]
        kinds.add(kind)
        if kind in ("send", "recv", "drop", "dup"):
            families.add(_family(str(event["msg"])).key)
        if kind in ("recv", "drop"):
            delivered.add(event["id"])
        if kind == "recv":
            received[event["id"]] = received.get(event["id"], 0) + 1
    items = [("family:" + f.key, f.legend) for f in _FAMILIES if f.key in families]
    if "drop" in kinds:
        items.append(("drop", "dropped"))
    if any(e["ev"] == "send" and e["id"] not in delivered for e in events):
        items.append(("inflight", "in flight at the end"))
    if any(count > 1 for count in received.values()):
        items.append(("dup", "duplicate copy"))
    symbols = [
        ("crash", "crash"),
        ("restart", "restart"),
        ("timeout", "timeout"),
        ("slow", "slow node"),
        ("cut", "partition"),
    ]
    items += [(kind, text) for kind, text in symbols if kind in kinds]
    if highlight is not None:
        if highlight.witness is not None:
            items.append(("witness", "witness"))
        if highlight.accepting_quorum:
            items.append(("badge:A", "accepting quorum"))
        if highlight.promising_quorum:
            items.append(("badge:P", "promising quorum"))
    return items


_LEGEND_ICON_W = 26.0
_LEGEND_GAP = 18.0


def _legend_rows(items: list[tuple[str, str]], width: float) -> list[list[tuple[str, str, float]]]:
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = 0.0
    for icon, text in items:
        w = _LEGEND_ICON_W + 6 + _text_width(text, mark_font_px, mono=False)
        if rows[-1] and x + w > width:
            rows.append([])
            x = 0.0
        rows[-1].append((icon, text, x))
        x += w + _LEGEND_GAP
    return rows if rows[0] else []


def _geometry(
    events: Sequence[Event],
    lanes: list[NodeKey],
    title: str,
    highlight: Highlight | None,
    time_axis: str,
    legend_rows: int,
    caption_lines: int,
    lane_w: float,
) -> _Geometry:
    first_x = margin_px + gutter_width_px + first_lane_offset_px
    lane_x = {node: first_x + i * lane_w for i, node in enumerate(lanes)}
    last_x = first_x + max(0, len(lanes) - 1) * lane_w
    width = last_x + notes_margin_px + margin_px
    y = float(margin_px)
    title_y = y + 16
    if title:
        y += title_height_px
    legend_top = y
    y += legend_rows * legend_row_height_px + (8 if legend_rows else 0)
    if highlight is not None and highlight.witness is not None:
        y += witness_tag_height_px
    header_top = y
    life_top = header_top + header_height_px
    rows_top = life_top + header_gap_px
    row_y = _row_positions(events, rows_top, time_axis)
    life_bottom = (row_y[-1] if row_y else rows_top) + row_height_px * 1.5
    bottom_header_top = life_bottom
    caption_top = bottom_header_top + header_height_px + 12
    height = caption_top + caption_lines * caption_line_height_px + margin_px
    return _Geometry(
        lanes=lanes,
        lane_x=lane_x,
        lane_w=lane_w,
        row_y=row_y,
        width=width,
        title_y=title_y,
        legend_top=legend_top,
        header_top=header_top,
        life_top=life_top,
        life_bottom=life_bottom,
        bottom_header_top=bottom_header_top,
        caption_top=caption_top,
        height=height,
    )


# -- SVG primitives ----------------------------------------------------------------------------


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, extra: str = "") -> str:
    return (
        f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
        f'stroke="{stroke}"{" " + extra if extra else ""}/>'
    )


def _label(
    x: float, y: float, text: str, cls: str, fill: str, anchor: str = "start", extra: str = ""
) -> str:
    """Text vertically centred on y (the baseline shift avoids relying on dominant-baseline)."""
    size = msg_font_px if cls == "m" else mark_font_px
    baseline = y + size * 0.35
    anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return (
        f'<text x="{_n(x)}" y="{_n(baseline)}" class="{cls}" fill="{fill}"{anchor_attr}'
        f"{' ' + extra if extra else ''}>{_esc(text)}</text>"
    )


def _cross(x: float, y: float, size: float, colour: str, width: float) -> str:
    d = f"M{_n(x - size)},{_n(y - size)}L{_n(x + size)},{_n(y + size)}"
    d += f"M{_n(x - size)},{_n(y + size)}L{_n(x + size)},{_n(y - size)}"
    return (
        f'<path d="{d}" stroke="{colour}" stroke-width="{_n(width)}" '
        f'stroke-linecap="round" fill="none"/>'
    )


def _dot(x: float, y: float, r: float, fill: str) -> str:
    stroke = ' stroke="#495057" stroke-width="0.8"' if fill.lower() in ("#ffffff", "#fff") else ""
    return f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" fill="{fill}"{stroke}/>'


def _bolt(x: float, y: float, colour: str) -> str:
    pts = [(1, -9), (-4, 1), (0, 1), (-2, 9), (5, -2), (1, -2), (3, -9)]
    d = "M" + "L".join(f"{_n(x + px)},{_n(y + py)}" for px, py in pts) + "Z"
    return f'<path d="{d}" fill="#ffd43b" stroke="{colour}" stroke-width="1.2"/>'


def _clock(x: float, y: float) -> str:
    colour = "#5f3dc4"
    return (
        f'<circle cx="{_n(x)}" cy="{_n(y)}" r="6.5" fill="#fff" stroke="{colour}" '
        f'stroke-width="1.6"/>'
        f'<path d="M{_n(x)},{_n(y - 4)}V{_n(y)}H{_n(x + 3.5)}" stroke="{colour}" '
        f'stroke-width="1.4" fill="none" stroke-linecap="round"/>'
        f'<path d="M{_n(x - 2)},{_n(y - 9.5)}h4" stroke="{colour}" stroke-width="1.6" '
        f'stroke-linecap="round"/>'
    )


def _restart_icon(x: float, y: float) -> str:
    """↻ drawn as a path, so it does not depend on a font having the glyph."""
    r = 6.0
    start = math.radians(-60)
    end = math.radians(-120)
    sx, sy = x + r * math.cos(start), y + r * math.sin(start)
    ex, ey = x + r * math.cos(end), y + r * math.sin(end)
    # The head sits at the arc's end and points along it (clockwise on screen).
    head = f"M{_n(ex - 4)},{_n(ey - 3.2)}L{_n(ex + 0.8)},{_n(ey)}L{_n(ex - 3.6)},{_n(ey + 3)}"
    return (
        f'<circle cx="{_n(x)}" cy="{_n(y)}" r="8.5" fill="#fff"/>'
        f'<path d="M{_n(sx)},{_n(sy)}A{_n(r)},{_n(r)} 0 1 1 {_n(ex)},{_n(ey)}" '
        f'stroke="{GOOD}" stroke-width="2" fill="none" stroke-linecap="round"/>'
        f'<path d="{head}" stroke="{GOOD}" stroke-width="2" fill="none" '
        f'stroke-linecap="round" stroke-linejoin="round"/>'
    )


def _flag(x: float, y: float, fill: str) -> str:
    return (
        f'<path d="M{_n(x)},{_n(y + 6)}V{_n(y - 8)}" stroke="{INK}" stroke-width="1.4"/>'
        f'<path d="M{_n(x)},{_n(y - 8)}L{_n(x + 11)},{_n(y - 4.5)}L{_n(x)},{_n(y - 1)}Z" '
        f'fill="{fill}" stroke="{INK}" stroke-width="0.8" stroke-linejoin="round"/>'
    )


def _diamond(x: float, y: float, fill: str) -> str:
    s = 7.0
    d = f"M{_n(x)},{_n(y - s)}L{_n(x + s)},{_n(y)}L{_n(x)},{_n(y + s)}L{_n(x - s)},{_n(y)}Z"
    return f'<path d="{d}" fill="{fill}" stroke="{INK}" stroke-width="1.2"/>'


def _badge(x: float, y: float, letter: str) -> str:
    colour = _FAMILY_BY_KEY["phase2" if letter == "A" else "phase1"].colour
    return (
        f'<circle cx="{_n(x)}" cy="{_n(y)}" r="8" fill="{colour}"/>'
        f'<text x="{_n(x)}" y="{_n(y + 3.8)}" class="b" text-anchor="middle">{letter}</text>'
    )


def _zigzag(x: float, y0: float, y1: float) -> str:
    """A jagged vertical line: the 'wall' a partition puts between two groups of nodes."""
    points = [f"{_n(x)},{_n(y0)}"]
    y, side, step = y0, 1, 6.0
    while y + step < y1:
        y += step
        points.append(f"{_n(x + 3 * side)},{_n(y)}")
        side = -side
    points.append(f"{_n(x)},{_n(y1)}")
    return (
        f'<rect x="{_n(x - 7)}" y="{_n(y0)}" width="14" height="{_n(max(0.0, y1 - y0))}" '
        f'fill="#fff4e6" opacity="0.8"/>'
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{WALL}" stroke-width="1.5" '
        f'stroke-linejoin="round"/>'
    )


# -- the drawing -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Layers:
    """Later layers paint over earlier ones: labels last, so their boxes and halos hide the
    arrows and lifelines beneath them."""

    back: list[str] = field(default_factory=list)
    lifelines: list[str] = field(default_factory=list)
    arrows: list[str] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def _group(seq: int, title: str, body: str, data_from: Sequence[int] = ()) -> str:
    extra = f" data-from={_attr(' '.join(map(str, data_from)))}" if data_from else ""
    return f'<g class="ev" data-seq="{seq}"{extra}><title>{_esc(title)}</title>{body}</g>'


@dataclass(slots=True)
class _Drawing:
    svg: str
    events: list[Event]
    steps: list[tuple[int, float]]  # (seq, y) in order


class _Renderer:
    def __init__(
        self,
        events: list[Event],
        geo: _Geometry,
        highlight: Highlight | None,
        title: str,
        legend: list[list[tuple[str, str, float]]],
        caption: list[str],
    ) -> None:
        self.events = events
        self.geo = geo
        self.highlight = highlight
        self.title = title
        self.legend = legend
        self.caption = caption
        self.layers = _Layers()
        self.placer = _Placer()
        self.sends: dict[Any, int] = {}  # message id -> index of its send
        self.delivered: set[Any] = set()
        self.received: dict[Any, int] = {}  # message id -> recv count so far
        self.dups: dict[Any, list[int]] = {}  # message id -> indices of its dup events
        self.lane_xs = sorted(geo.lane_x.values())
        self.walls: list[tuple[float, float, list[float]]] = []  # y0, y1, x of each wall

    # -- helpers --

    def x(self, node: NodeKey) -> float:
        return self.geo.lane_x[node]

    def y(self, index: int) -> float:
        return self.geo.row_y[index]

    def seq(self, index: int) -> int:
        return int(self.events[index]["seq"])

    def crosses_lifeline(self, box: _Box) -> bool:
        i = bisect.bisect_left(self.lane_xs, box.x0)
        return i < len(self.lane_xs) and self.lane_xs[i] <= box.x1

    def fixed_label(
        self, index: int, x: float, y: float, text: str, cls: str, fill: str, anchor: str = "start"
    ) -> None:
        """A label that stays where its mark is; message labels will avoid it."""
        size = msg_font_px if cls == "m" else mark_font_px
        w = _text_width(text, size, mono=cls == "m") * (1.1 if cls == "kb" else 1.0)
        x0 = x - w if anchor == "end" else (x - w / 2 if anchor == "middle" else x)
        self.placer.take(_Box(x0 - 2, y - size * 0.65, x0 + w + 2, y + size * 0.65))
        event = self.events[index]
        self.layers.labels.append(
            _group(self.seq(index), _full_title(event), _label(x, y, text, cls, fill, anchor))
        )

    def mark(self, index: int, body: str, x: float, y: float, r: float = 8) -> None:
        self.placer.take(_Box(x - r, y - r, x + r, y + r))
        event = self.events[index]
        self.layers.marks.append(_group(self.seq(index), _full_title(event), body))

    # -- passes --

    def run(self) -> str:
        for index, event in enumerate(self.events):
            if event["ev"] == "send":
                self.sends.setdefault(event["id"], index)
            elif event["ev"] in ("recv", "drop"):
                self.delivered.add(event["id"])
            elif event["ev"] == "dup":
                self.dups.setdefault(event["id"], []).append(index)
        self.draw_lifelines()
        self.draw_partitions()
        for index, event in enumerate(self.events):
            self.draw_fixed(index, event)
        self.draw_highlight()
        for index, event in enumerate(self.events):
            self.draw_message(index, event)
        return self.assemble()

    def draw_fixed(self, index: int, event: Event) -> None:
        kind = event["ev"]
        y = self.y(index)
        if kind == "phase":
            self.draw_phase(index, event, y)
            return
        if kind in ("cut", "heal", "send", "recv", "drop", "dup"):
            return  # drawn with the partitions or the messages
        node = event.get("node")
        if node not in self.geo.lane_x:
            node = self.geo.lanes[0] if self.geo.lanes else None
        if node is None:
            return
        x = self.x(node)
        match kind:
            case "propose":
                colour = VALUE_COLOURS.get(str(event["value"]), "#dee2e6")
                self.mark(index, _flag(x, y, colour), x + 5, y, 8)
                self.fixed_label(index, x + 16, y, f"propose {event['value']}", "k", INK)
            case "decide":
                colour = VALUE_COLOURS.get(str(event["value"]), "#495057")
                self.mark(index, _diamond(x, y, colour), x, y)
                self.fixed_label(index, x + 12, y, f"decides {event['value']}", "kb", INK)
            case "crash":
                self.mark(index, _cross(x, y, 7, DANGER, 3.4), x, y)
                self.fixed_label(index, x + 12, y, "crash", "kb", DANGER)
            case "restart":
                self.mark(index, _restart_icon(x, y), x, y)
                self.fixed_label(index, x + 12, y, "restart", "kb", GOOD)
            case "timeout":
                self.mark(index, _clock(x, y), x, y, 9)
                self.fixed_label(index, x + 12, y, "timeout", "k", "#5f3dc4")
            case "slow":
                factor = _factor(event["factor"])
                text = "normal speed" if factor == "1" else f"slow ×{factor}"
                self.mark(index, _dot(x, y, 3, "#495057"), x, y, 4)
                self.fixed_label(index, x + 10, y, text, "k", "#495057")
            case _:  # note, and any kind this version does not know: a grey note
                text = str(event["text"]) if kind == "note" else _text(event)
                self.mark(index, _dot(x, y, 2.2, MUTED), x, y, 3)
                self.fixed_label(index, x + 8, y, _truncate(text, note_max_chars), "n", MUTED)

    def draw_phase(self, index: int, event: Event, y: float) -> None:
        x0 = margin_px + gutter_width_px
        x1 = self.geo.width - margin_px
        body = _line(x0, y, x1, y, "#495057", 'stroke-width="1.2" stroke-dasharray="8 5"')
        self.layers.back.append(_group(self.seq(index), _full_title(event), body))
        text = f"{event['name']} phase"
        self.fixed_label(index, x1 - 4, y - 8, text, "kb", "#495057", anchor="end")
        self.placer.take(_Box(x0, y - 2, x1, y + 2))

    def draw_lifelines(self) -> None:
        """Each lifeline is cut into segments: normal, slow (dotted) and crashed (grey dashed)."""
        geo = self.geo
        changes: dict[NodeKey, list[tuple[float, str, Any]]] = {n: [] for n in geo.lanes}
        for index, event in enumerate(self.events):
            if event["ev"] in ("crash", "restart", "slow") and event["node"] in changes:
                changes[event["node"]].append((self.y(index), event["ev"], event.get("factor")))
        styles = {
            "normal": f'stroke="{LIFELINE}" stroke-width="1.6"',
            "slow": 'stroke="#495057" stroke-width="2.2" stroke-dasharray="0.1 5" '
            'stroke-linecap="round"',
            "dead": f'stroke="{DEAD}" stroke-width="1.6" stroke-dasharray="5 5"',
        }
        for node in geo.lanes:
            x = self.x(node)
            crashed, slow = False, False
            start = geo.life_top
            for y, kind, factor in changes[node] + [(geo.life_bottom, "end", None)]:
                style = "dead" if crashed else ("slow" if slow else "normal")
                if y > start:
                    self.layers.lifelines.append(
                        f'<line x1="{_n(x)}" y1="{_n(start)}" x2="{_n(x)}" y2="{_n(y)}" '
                        f"{styles[style]}/>"
                    )
                start = y
                if kind == "crash":
                    crashed = True
                elif kind == "restart":
                    crashed = False
                elif kind == "slow":
                    slow = _factor(factor) != "1"
            self.draw_header(node, geo.header_top)
            self.draw_header(node, geo.bottom_header_top)

    def draw_header(self, node: NodeKey, top: float) -> None:
        x = self.x(node)
        text = f"node {node}"
        w = max(56.0, _text_width(text, 12, mono=False) + 18)
        box = (
            f'<rect x="{_n(x - w / 2)}" y="{_n(top)}" width="{_n(w)}" '
            f'height="{header_height_px}" rx="6" fill="#f1f3f5" stroke="#495057" '
            f'stroke-width="1.2"/>'
            f'<text x="{_n(x)}" y="{_n(top + header_height_px / 2 + 4.2)}" class="h" '
            f'text-anchor="middle">{_esc(text)}</text>'
        )
        self.layers.marks.append(box)

    def draw_partitions(self) -> None:
        """A wall per gap between separated groups, from the cut to the heal (or the end)."""
        active: set[tuple[NodeKey, NodeKey]] = set()
        opened: tuple[int, float] | None = None  # index and y of the event that set `active`
        for index, event in enumerate(self.events):
            if event["ev"] not in ("cut", "heal"):
                continue
            y = self.y(index)
            if opened is not None and active:
                self.draw_walls(opened[0], active, opened[1], y)
            links = set(_links(event))
            if event["ev"] == "cut":
                active |= links
                self.draw_cut(index, event, links, y)
            else:
                healed = links or set(active)  # a heal that lists no links heals them all
                active -= healed
                self.draw_heal(index, healed, y)
            opened = (index, y)
        if opened is not None and active:
            self.draw_walls(opened[0], active, opened[1], self.geo.life_bottom)

    def wall_xs(self, links: set[tuple[NodeKey, NodeKey]]) -> list[float]:
        lanes = [n for n in self.geo.lanes if any(n in link for link in links)]
        groups = _groups(lanes, links)
        xs: list[float] = []
        for a, b in itertools.pairwise(lanes):
            separated = groups[a] != groups[b] if groups else ((a, b) in links or (b, a) in links)
            if separated:
                xs.append(self.x(a) + self.geo.lane_w / 2)
        return xs

    def wall_hit(self, x_src: float, x_dst: float, y: float) -> float | None:
        """Where a message cut by a partition meets the first wall on its way, if drawn."""
        direction = 1.0 if x_dst > x_src else -1.0
        for y0, y1, xs in self.walls:
            if y0 <= y <= y1:
                between = [x for x in xs if min(x_src, x_dst) < x < max(x_src, x_dst)]
                if between:
                    return min(between, key=lambda x: abs(x - x_src)) - 6 * direction
        return None

    def draw_walls(
        self, index: int, links: set[tuple[NodeKey, NodeKey]], y0: float, y1: float
    ) -> None:
        xs = self.wall_xs(links)
        self.walls.append((y0, y1, xs))
        body = "".join(_zigzag(x, y0, y1) for x in xs)
        if body:
            self.layers.back.append(_group(self.seq(index), _full_title(self.events[index]), body))

    def draw_cut(
        self, index: int, event: Event, links: set[tuple[NodeKey, NodeKey]], y: float
    ) -> None:
        lanes = [n for n in self.geo.lanes if any(n in link for link in links)]
        groups = _groups(lanes, links)
        if groups:
            members: dict[int, list[str]] = {}
            for node in lanes:
                members.setdefault(groups[node], []).append(str(node))
            text = "partition " + " | ".join("{" + ",".join(m) + "}" for m in members.values())
        else:
            text = "partition " + ", ".join(f"{a}↛{b}" for a, b in sorted(links, key=str))
        xs = self.wall_xs(links) or [self.first_x()]
        body = "".join(_bolt(x, y, WALL) for x in xs)
        self.mark(index, body, xs[0], y, 9)
        for x in xs[1:]:
            self.placer.take(_Box(x - 9, y - 9, x + 9, y + 9))
        self.fixed_label(index, xs[0] + 10, y, text, "kb", CHOSEN)

    def first_x(self) -> float:
        """Where to put marks that belong to no node: on the first lifeline."""
        return self.geo.lane_x[self.geo.lanes[0]] if self.geo.lanes else margin_px + gutter_width_px

    def draw_heal(self, index: int, healed: set[tuple[NodeKey, NodeKey]], y: float) -> None:
        xs = self.wall_xs(healed) or [self.first_x()]
        body = "".join(_line(x - 9, y, x + 9, y, GOOD, 'stroke-width="2.5"') for x in xs)
        self.mark(index, body, xs[0], y, 9)
        self.fixed_label(index, xs[0] + 12, y, "partition heals", "kb", GOOD)

    def draw_highlight(self) -> None:
        hl = self.highlight
        if hl is None:
            return
        geo = self.geo
        if hl.chosen_at is not None:
            found = [i for i, e in enumerate(self.events) if e["seq"] == hl.chosen_at]
            if found:
                self.draw_chosen(found[0])
        top = geo.header_top
        for node in geo.lanes:
            x = self.x(node)
            w = max(56.0, _text_width(f"node {node}", 12, mono=False) + 18)
            if node == hl.witness:
                self.layers.marks.append(
                    f'<rect x="{_n(x - w / 2 - 4)}" y="{_n(top - 4)}" width="{_n(w + 8)}" '
                    f'height="{header_height_px + 8}" rx="9" fill="none" stroke="{CHOSEN}" '
                    f'stroke-width="2.5"/>'
                    f'<text x="{_n(x)}" y="{_n(top - 8)}" class="kb" fill="{CHOSEN}" '
                    f'text-anchor="middle">witness</text>'
                )
            badges = [
                letter
                for letter, quorum in (("A", hl.accepting_quorum), ("P", hl.promising_quorum))
                if node in quorum
            ]
            for i, letter in enumerate(badges):
                self.layers.marks.append(_badge(x + w / 2 + 14 + 19 * i, top + 13, letter))

    def draw_chosen(self, index: int) -> None:
        """A line just below the choosing event (from here on the value is chosen), drawn
        between two rows so it does not run through that event's own labels."""
        geo = self.geo
        y_event = self.y(index)
        y_next = self.y(index + 1) if index + 1 < len(self.events) else y_event + row_height_px
        y = (y_event + y_next) / 2
        event = self.events[index]
        value = _VALUE_WORD.search(_text(event))
        text = "value chosen" + (f": {value.group(1)}" if value else "")
        x0 = margin_px + gutter_width_px
        x1 = geo.width - margin_px
        text_w = _text_width(text, mark_font_px, mono=False) * 1.1  # bold
        dot_w = 12.0 if value else 0.0
        line_end = x1 - text_w - dot_w - 8
        body = (
            f'<rect x="{_n(x0)}" y="{_n(y - 3.5)}" width="{_n(line_end - x0)}" height="7" '
            f'fill="#fff3bf"/>'
            + _line(x0, y, line_end, y, CHOSEN, 'stroke-width="1.6" stroke-dasharray="10 4"')
        )
        if value is not None:
            body += _dot(x1 - text_w - 6, y, 4, VALUE_COLOURS[value.group(1)])
        self.layers.back.append(
            _group(int(event["seq"]), "value chosen: " + _full_title(event), body)
        )
        self.fixed_label(index, x1, y, text, "kb", CHOSEN, anchor="end")
        self.placer.take(_Box(x0, y - 5, x1, y + 5))  # keep message labels off the line

    # -- messages --

    def draw_message(self, index: int, event: Event) -> None:
        kind = event["ev"]
        if kind == "send":
            self.draw_send(index, event)
        elif kind in ("recv", "drop"):
            self.draw_delivery(index, event)
        elif kind == "dup":
            self.draw_dup(index, event)

    def draw_send(self, index: int, event: Event) -> None:
        family = _family(str(event["msg"]))
        x, y = self.x(event["src"]), self.y(index)
        self.mark(index, _dot(x, y, 2.6, family.colour), x, y, 3)
        if event["id"] in self.delivered:
            return
        # Never delivered nor dropped: still in flight when the run ended.
        tx, ty = self.toward(event["src"], event["dst"], 0.4, y + row_height_px * 1.2)
        shape = (
            f'<path d="M{_n(x)},{_n(y)}L{_n(tx)},{_n(ty)}" stroke="{family.colour}" '
            f'stroke-width="1.4" stroke-dasharray="5 4" fill="none" '
            f'marker-end="url(#pxd-ah-{family.key})"/>'
        )
        title = _full_title(event) + "  (still in flight at the end of the run)"
        self.arrow(index, shape, title, (x, y), (tx, ty), str(event["msg"]), family, ())

    def toward(self, src: NodeKey, dst: NodeKey, fraction: float, y: float) -> tuple[float, float]:
        xs, xd = self.x(src), self.x(dst)
        if src == dst:
            return xs + loop_width_px, y
        return xs + (xd - xs) * fraction, y

    def draw_delivery(self, index: int, event: Event) -> None:
        family = _family(str(event["msg"]))
        src, dst = event["src"], event["dst"]
        end_y = self.y(index)
        send = self.sends.get(event["id"])
        if send is not None and send < index:
            start = (self.x(src), self.y(send))
            data_from = [self.seq(send)]
        else:  # the trace does not show the send: start one row up
            start = (self.x(src), end_y - row_height_px)
            data_from = []
        data_from += [self.seq(i) for i in self.dups.get(event["id"], []) if i < index]
        title_parts = [_full_title(self.events[send])] if send is not None else []
        title_parts.append(_full_title(event))
        if event["ev"] == "drop":
            fraction = 0.85 if event["why"] == "crashed" else 0.55
            end_y = max(end_y, start[1] + row_height_px * 0.8)
            ex, ey = self.toward(src, dst, fraction, end_y)
            if event["why"] == "partition" and src != dst:
                ex = self.wall_hit(start[0], self.x(dst), end_y) or ex
            shape = self.path(start, (ex, ey), src == dst, family, "", marker=False)
            shape += _cross(ex, ey, 4.5, DANGER, 2.2)
            why = _WHY.get(str(event["why"]), str(event["why"]))
            label_x = ex + (8 if ex >= start[0] else -8)
            anchor = "start" if ex >= start[0] else "end"
            self.fixed_label(index, label_x, ey, why, "kb", DANGER, anchor)
        else:
            copies = self.received.get(event["id"], 0)
            self.received[event["id"]] = copies + 1
            dash = 'stroke-dasharray="7 3 1.5 3"' if copies else ""
            ex, ey = self.x(dst), end_y
            shape = self.path(start, (ex, ey), src == dst, family, dash, marker=True)
            if copies:
                title_parts.append("(a duplicate copy made by the network)")
        self.arrow(
            index,
            shape,
            "\n".join(title_parts),
            start,
            (ex, ey),
            str(event["msg"]),
            family,
            data_from,
        )

    def path(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        loop: bool,
        family: _Family,
        dash: str,
        *,
        marker: bool,
    ) -> str:
        (x0, y0), (x1, y1) = start, end
        if loop:  # a node's message to itself: a small loop to the right of its lifeline
            reach = loop_width_px * 4 / 3  # a cubic's control points overshoot its bulge
            bend = f"{_n(x0 + reach)},{_n(y0)} {_n(x1 + reach)},{_n(y1)}"
            d = f"M{_n(x0)},{_n(y0)}C{bend} {_n(x1)},{_n(y1)}"
        else:
            d = f"M{_n(x0)},{_n(y0)}L{_n(x1)},{_n(y1)}"
        extra = f' marker-end="url(#pxd-ah-{family.key})"' if marker else ""
        extra += f" {dash}" if dash else ""
        hit = f'<path d="{d}" class="hit"/>'
        line = f'<path d="{d}" stroke="{family.colour}" stroke-width="1.4" fill="none"{extra}/>'
        return hit + line

    def arrow(
        self,
        index: int,
        shape: str,
        title: str,
        start: tuple[float, float],
        end: tuple[float, float],
        msg: str,
        family: _Family,
        data_from: Sequence[int],
    ) -> None:
        seq = self.seq(index)
        self.layers.arrows.append(_group(seq, title, shape, data_from))
        self.layers.labels.append(
            _group(seq, title, self.place_label(start, end, msg, family), data_from)
        )

    def place_label(
        self, start: tuple[float, float], end: tuple[float, float], msg: str, family: _Family
    ) -> str:
        """The message text at the first free point along the arrow (midpoint preferred)."""
        value = _value_colour(msg)
        dot_w = 10.0 if value else 0.0
        w = _text_width(msg, msg_font_px, mono=True) + dot_w
        h = msg_font_px * 1.3
        (x0, y0), (x1, y1) = start, end
        if abs(x1 - x0) < 1:  # a loop: beside it, not on the lifeline
            beside = x0 + loop_width_px + 6 + w / 2
            candidates = [(beside, (y0 + y1) / 2 + dy) for dy in (0, -h, h, -2 * h, 2 * h)]
        else:
            fractions = (0.5, 0.36, 0.64, 0.25, 0.75, 0.43, 0.57, 0.18, 0.82)
            candidates = [(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f) for f in fractions]

        def box(at: tuple[float, float]) -> _Box:
            return _Box(at[0] - w / 2 - 1, at[1] - h / 2, at[0] + w / 2 + 1, at[1] + h / 2)

        # Best: overlap nothing and leave lifelines visible; next: overlap nothing; else midpoint.
        free = [c for c in candidates if self.placer.free(box(c))]
        clear = [c for c in free if not self.crosses_lifeline(box(c))]
        cx, cy = (clear or free or candidates)[0]
        self.placer.take(box((cx, cy)))
        left = cx - w / 2
        # A box, not just a halo: a halo hugs the glyphs and the arrow shows between letters.
        parts = [
            f'<rect x="{_n(left - 3)}" y="{_n(cy - h / 2)}" width="{_n(w + 6)}" '
            f'height="{_n(h)}" rx="3" fill="#fff" fill-opacity="0.92"/>'
        ]
        if value is not None:
            parts.append(_dot(left + 4, cy, 3.6, value))
        parts.append(_label(left + dot_w, cy, msg, "m", family.colour))
        return "".join(parts)

    def draw_dup(self, index: int, event: Event) -> None:
        x, y = self.x(event["src"]), self.y(index)
        body = (
            f'<rect x="{_n(x + 5)}" y="{_n(y - 6.5)}" width="22" height="13" rx="3" '
            f'fill="#fff" stroke="#495057" stroke-width="0.8"/>'
            f'<text x="{_n(x + 16)}" y="{_n(y + 3.5)}" class="d" text-anchor="middle">×2</text>'
        )
        self.placer.take(_Box(x + 5, y - 7, x + 27, y + 7))
        send = self.sends.get(event["id"])
        data_from = [self.seq(send)] if send is not None else []
        self.layers.marks.append(_group(self.seq(index), _full_title(event), body, data_from))

    # -- frame --

    def draw_gutter(self) -> list[str]:
        parts = [
            f'<text x="{_n(margin_px + gutter_width_px - 8)}" '
            f'y="{_n(self.geo.header_top + header_height_px / 2 + 4)}" class="g" '
            f'text-anchor="end">t</text>'
        ]
        last_text = ""
        last_y = -math.inf
        for index, event in enumerate(self.events):
            y = self.y(index)
            t = event["t"]
            number = isinstance(t, int | float) and not isinstance(t, bool)
            text = _truncate(_n(float(t)) if number else str(t), 9)
            if text == last_text or y - last_y < 13:
                continue
            parts.append(
                f'<text x="{_n(margin_px + gutter_width_px - 8)}" y="{_n(y + 3.5)}" class="g" '
                f'text-anchor="end">{_esc(text)}</text>'
            )
            parts.append(
                _line(margin_px + gutter_width_px - 4, y, margin_px + gutter_width_px, y, "#ced4da")
            )
            last_text, last_y = text, y
        return parts

    def draw_legend(self) -> list[str]:
        parts: list[str] = []
        for row_index, row in enumerate(self.legend):
            y = self.geo.legend_top + row_index * legend_row_height_px + legend_row_height_px / 2
            for icon, text, offset in row:
                x = margin_px + offset
                parts.append(_legend_icon(icon, x, y))
                parts.append(_label(x + _LEGEND_ICON_W + 6, y, text, "k", "#343a40"))
        return parts

    def draw_caption(self) -> list[str]:
        top = self.geo.caption_top + 12
        return [
            f'<text x="{margin_px}" y="{_n(top + i * caption_line_height_px)}" class="c">'
            f"{_esc(line)}</text>"
            for i, line in enumerate(self.caption)
        ]

    def assemble(self) -> str:
        geo = self.geo
        w, h = _n(geo.width), _n(geo.height)
        head = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" class="pxd" role="img"'
            f"{' aria-label=' + _attr(self.title) if self.title else ''}>",
            f"<title>{_esc(self.title or 'space-time diagram')}</title>",
            f"<style>{_SVG_CSS}</style>",
            "<defs>" + "".join(_marker(f) for f in _FAMILIES) + "</defs>",
            f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
        ]
        if self.title:
            head.append(
                f'<text x="{margin_px}" y="{_n(geo.title_y)}" class="t">{_esc(self.title)}</text>'
            )
        body: list[str] = []
        body += self.draw_legend()
        body += self.draw_gutter()
        for name in ("back", "lifelines", "arrows", "marks", "labels"):
            body.append(f'<g class="layer-{name}">')
            body += getattr(self.layers, name)
            body.append("</g>")
        body += self.draw_caption()
        if not self.events:
            body.append(
                f'<text x="{_n(geo.width / 2)}" y="{_n(geo.life_top + row_height_px)}" '
                f'class="n" fill="{MUTED}" text-anchor="middle">(no events)</text>'
            )
        return "\n".join(head + body + ["</svg>"]) + "\n"


def _groups(lanes: list[NodeKey], links: set[tuple[NodeKey, NodeKey]]) -> dict[NodeKey, int] | None:
    """Group number per node if `links` cuts the nodes into clean groups (every link between
    groups cut both ways, none inside a group), else None."""
    parent = {n: n for n in lanes}

    def find(n: NodeKey) -> NodeKey:
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(lanes):
        for b in lanes[i + 1 :]:
            if (a, b) not in links and (b, a) not in links:
                parent[find(b)] = find(a)
    roots: dict[NodeKey, int] = {}
    groups = {n: roots.setdefault(find(n), len(roots)) for n in lanes}
    if len(roots) < 2:
        return None
    for i, a in enumerate(lanes):
        for b in lanes[i + 1 :]:
            cut_both = (a, b) in links and (b, a) in links
            if (groups[a] != groups[b]) != cut_both:
                return None
    return groups


def _marker(family: _Family) -> str:
    return (
        f'<marker id="pxd-ah-{family.key}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="6.5" markerHeight="6.5" orient="auto">'
        f'<path d="M0,1L10,5L0,9Z" fill="{family.colour}"/></marker>'
    )


def _legend_icon(icon: str, x: float, y: float) -> str:
    x1 = x + _LEGEND_ICON_W - 4
    if icon.startswith("family:"):
        family = _FAMILY_BY_KEY[icon.split(":", 1)[1]]
        return (
            f'<path d="M{_n(x)},{_n(y)}H{_n(x1)}" stroke="{family.colour}" stroke-width="2" '
            f'marker-end="url(#pxd-ah-{family.key})"/>'
        )
    if icon.startswith("badge:"):
        return _badge(x + 12, y, icon.split(":", 1)[1])
    grey = _FAMILY_BY_KEY["other"]
    match icon:
        case "drop":
            return _line(x, y, x + 16, y, "#495057", 'stroke-width="1.4"') + _cross(
                x + 17, y, 4, DANGER, 2.2
            )
        case "inflight":
            return (
                f'<path d="M{_n(x)},{_n(y)}H{_n(x1)}" stroke="#495057" stroke-width="1.4" '
                f'stroke-dasharray="5 4" marker-end="url(#pxd-ah-{grey.key})"/>'
            )
        case "dup":
            return (
                f'<path d="M{_n(x)},{_n(y)}H{_n(x1)}" stroke="#495057" stroke-width="1.4" '
                f'stroke-dasharray="7 3 1.5 3" marker-end="url(#pxd-ah-{grey.key})"/>'
            )
        case "crash":
            return _line(
                x + 11, y - 9, x + 11, y + 9, DEAD, 'stroke-width="1.6" stroke-dasharray="3"'
            ) + _cross(x + 11, y, 5.5, DANGER, 3)
        case "restart":
            return _restart_icon(x + 11, y)
        case "timeout":
            return _clock(x + 11, y + 1)
        case "slow":
            return _line(
                x + 11,
                y - 8,
                x + 11,
                y + 8,
                "#495057",
                'stroke-width="2.2" stroke-dasharray="0.1 5" stroke-linecap="round"',
            )
        case "cut":
            return _bolt(x + 11, y, WALL)
        case "witness":
            return (
                f'<rect x="{_n(x + 1)}" y="{_n(y - 7)}" width="20" height="14" rx="5" '
                f'fill="none" stroke="{CHOSEN}" stroke-width="2.2"/>'
            )
    return ""


_SVG_CSS = (
    ".pxd text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,"
    "sans-serif}"
    ".pxd .m{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',"
    f"monospace;font-size:{msg_font_px}px}}"
    ".pxd .k,.pxd .kb,.pxd .n{paint-order:stroke;stroke:#fff;stroke-width:3.5px;"
    "stroke-linejoin:round}"
    f".pxd .k{{font-size:{mark_font_px}px}}"
    f".pxd .kb{{font-size:{mark_font_px}px;font-weight:600}}"
    f".pxd .n{{font-size:{note_font_px}px;font-style:italic}}"
    ".pxd .h{font-size:12px;font-weight:600;fill:#212529}"
    ".pxd .g{font-size:10px;fill:#868e96}"
    ".pxd .t{font-size:17px;font-weight:650;fill:#212529}"
    ".pxd .c{font-size:12.5px;font-style:italic;fill:#343a40}"
    ".pxd .b{font-size:10px;font-weight:700;fill:#fff}"
    ".pxd .d{font-size:9.5px;font-weight:600;fill:#495057}"
    ".pxd .hit{stroke:#000;stroke-opacity:0;stroke-width:9px;fill:none}"
)


def _render(
    trace: list[dict[str, Any]],
    nodes: Sequence[NodeKey] | None,
    title: str,
    highlight: Highlight | None,
    time_axis: str,
    *,
    interactive: bool,
) -> _Drawing:
    if time_axis not in ("seq", "t"):
        raise ValueError(f'time_axis must be "seq" or "t", not {time_axis!r}')
    if nodes is not None and not all(map(_is_node, nodes)):
        raise ValueError(f"nodes must be a list of node ids, not {nodes!r}")
    events = _validated(trace)
    lanes = _lanes(events, nodes)
    lane_w = _lane_width(events)
    width_guess = (
        margin_px * 2
        + gutter_width_px
        + first_lane_offset_px
        + notes_margin_px
        + max(0, len(lanes) - 1) * lane_w
    )
    legend = _legend_rows(_legend_items(events, highlight), width_guess - 2 * margin_px)
    caption_text = highlight.caption if highlight is not None else ""
    caption = _wrap(caption_text, int((width_guess - 2 * margin_px) / 7)) if caption_text else []
    geo = _geometry(events, lanes, title, highlight, time_axis, len(legend), len(caption), lane_w)
    renderer = _Renderer(events, geo, highlight, title, legend, caption)
    svg = renderer.run()
    steps = [(int(e["seq"]), geo.row_y[i]) for i, e in enumerate(events)]
    if interactive:
        # A "now" line for the step-by-step replay; hidden until the page moves it.
        now = (
            f'<g id="pxd-now" style="display:none"><line x1="{margin_px}" y1="0" '
            f'x2="{_n(geo.width - margin_px)}" y2="0" stroke="#fab005" stroke-width="2"/></g>\n'
        )
        svg = svg.replace("</svg>\n", now + "</svg>\n")
    return _Drawing(svg=svg, events=events, steps=steps)


# -- HTML --------------------------------------------------------------------------------------


def _kind_colour(event: Event) -> str:
    kind = event["ev"]
    if kind in ("send", "recv", "drop", "dup"):
        return DANGER if kind == "drop" else _family(str(event["msg"])).colour
    return {
        "propose": INK,
        "decide": INK,
        "crash": DANGER,
        "restart": GOOD,
        "cut": WALL,
        "heal": GOOD,
        "timeout": "#5f3dc4",
        "phase": "#495057",
    }.get(kind, MUTED)


def _event_list(events: Sequence[Event]) -> str:
    items = []
    for event in events:
        seq = int(event["seq"])
        items.append(
            f'<li value="{seq}" data-seq="{seq}" tabindex="-1">'
            f'<span class="chip" style="background:{_kind_colour(event)}"></span>'
            f'<span class="tt">t={_esc(event["t"])}</span> {_esc(_text(event))}</li>'
        )
    return '<ol class="pxd-events" id="pxd-events" start="0">\n' + "\n".join(items) + "\n</ol>"


def _html_page(drawing: _Drawing, title: str, description: str) -> str:
    page_title = title or "space-time diagram"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", description) if p.strip()]
    intro = "".join(f"<p>{_esc(p)}</p>" for p in paragraphs)
    steps = json.dumps([[seq, round(y, 1)] for seq, y in drawing.steps], separators=(",", ":"))
    total = len(drawing.steps)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(page_title)}</title>
<style>{_PAGE_CSS}</style>
</head>
<body>
<header><h1>{_esc(page_title)}</h1>{intro}</header>
<nav class="pxd-controls" aria-label="replay">
<button type="button" id="pxd-first" title="first (Home)">⏮</button>
<button type="button" id="pxd-back" title="step back (←)">◀ back</button>
<button type="button" id="pxd-fwd" title="step forward (→)">step ▶</button>
<button type="button" id="pxd-last" title="last (End)">⏭</button>
<button type="button" id="pxd-play" title="play / pause (space)">play</button>
<input type="range" id="pxd-slider" min="0" max="{total}" value="{total}" aria-label="step">
<span id="pxd-status" class="status">all {total} events</span>
</nav>
<main>
<section class="pxd-diagram" id="pxd-diagram">
{drawing.svg}</section>
<aside class="pxd-list"><h2>Events</h2>
<p class="hint">Hover or click an event to find it in the diagram, and the other way round.</p>
{_event_list(drawing.events)}
</aside>
</main>
<script type="application/json" id="pxd-steps">{steps}</script>
<script>{_PAGE_JS}</script>
</body>
</html>
"""


_PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;
color:#212529;background:#f8f9fa}
header{padding:18px 24px 2px;max-width:1100px}
h1{font-size:22px;margin:0 0 6px}
header p{margin:0 0 8px;color:#343a40}
.pxd-controls{position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;gap:8px;
align-items:center;padding:8px 24px;background:rgba(248,249,250,.95);
border-bottom:1px solid #dee2e6}
.pxd-controls button{font:inherit;padding:4px 12px;border:1px solid #adb5bd;border-radius:6px;
background:#fff;cursor:pointer}
.pxd-controls button:hover{background:#e9ecef}
.pxd-controls input[type=range]{flex:1 1 220px;min-width:160px}
.status{flex:1 1 100%;color:#495057;font-size:13px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}
main{display:grid;grid-template-columns:minmax(0,1fr) minmax(300px,380px);gap:16px;
padding:16px 24px;align-items:start}
.pxd-diagram{overflow:auto;background:#fff;border:1px solid #dee2e6;border-radius:8px}
.pxd-diagram svg{display:block}
.pxd-list{position:sticky;top:96px;max-height:calc(100vh - 112px);overflow:auto;background:#fff;
border:1px solid #dee2e6;border-radius:8px;padding:8px 8px 8px 0}
.pxd-list h2{font-size:15px;margin:2px 0 0 16px}
.hint{font-size:12px;color:#868e96;margin:2px 0 6px 16px}
.pxd-events{margin:0;padding-left:52px;font-size:12.5px}
.pxd-events li{padding:2px 6px;border-radius:4px;cursor:pointer;scroll-margin:40px}
.pxd-events li::marker{color:#adb5bd;font-size:11px}
.pxd-events li:hover,.pxd-events li.hl{background:#fff3bf}
.pxd-events li.current{outline:2px solid #fab005}
.pxd-events li.future{opacity:.4}
.chip{display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:6px}
.tt{color:#868e96;font-variant-numeric:tabular-nums;margin-right:4px}
.pxd .ev{cursor:pointer}
.pxd.focus .ev{opacity:.22}
.pxd.focus .ev.hl{opacity:1}
.pxd .ev.hl path:not(.hit),.pxd .ev.hl line{stroke-width:2.6px}
.pxd .ev.hl text{font-weight:700}
.pxd .ev.future{display:none}
.pxd .ev.pending{opacity:.28}
.pxd.focus .ev.pending.hl{opacity:.6}
@media (max-width:1000px){main{grid-template-columns:1fr}
.pxd-list{position:static;max-height:60vh}}
"""

_PAGE_JS = """
(function () {
  "use strict";
  var svg = document.querySelector("#pxd-diagram svg");
  var list = document.getElementById("pxd-events");
  var steps = JSON.parse(document.getElementById("pxd-steps").textContent);
  var slider = document.getElementById("pxd-slider");
  var status = document.getElementById("pxd-status");
  var now = document.getElementById("pxd-now");
  var index = new Map(), items = new Map(), bySeq = new Map();
  steps.forEach(function (s, i) { if (!index.has(s[0])) index.set(s[0], i); });
  list.querySelectorAll("li[data-seq]").forEach(function (li) { items.set(+li.dataset.seq, li); });
  var els = Array.prototype.slice.call(svg.querySelectorAll(".ev[data-seq]"));
  function related(el) {
    var r = [+el.dataset.seq];
    if (el.dataset.from) el.dataset.from.split(" ").forEach(function (s) { r.push(+s); });
    return r;
  }
  els.forEach(function (el) {
    related(el).forEach(function (s) {
      if (!bySeq.has(s)) bySeq.set(s, []);
      bySeq.get(s).push(el);
    });
  });
  var lit = [], pinned = null;
  function light(seqs) {
    lit.forEach(function (n) { n.classList.remove("hl"); });
    lit = [];
    var all = new Set(seqs);
    seqs.forEach(function (s) {
      (bySeq.get(s) || []).forEach(function (el) {
        related(el).forEach(function (r) { all.add(r); });
      });
    });
    all.forEach(function (s) {
      (bySeq.get(s) || []).forEach(function (el) { el.classList.add("hl"); lit.push(el); });
      var li = items.get(s);
      if (li) { li.classList.add("hl"); lit.push(li); }
    });
    svg.classList.toggle("focus", seqs.length > 0);
  }
  function seqsOf(target) {
    var el = target.closest && target.closest("[data-seq]");
    if (!el) return null;
    return el.tagName.toLowerCase() === "li" ? [+el.dataset.seq] : related(el);
  }
  function reveal(li) {
    var box = list.parentNode, top = li.offsetTop - box.clientHeight / 2;
    box.scrollTo({top: Math.max(0, top), behavior: "smooth"});
  }
  function hover(e) { if (pinned) return; var s = seqsOf(e.target); light(s || []); }
  function leave() { if (!pinned) light([]); }
  svg.addEventListener("mouseover", hover);
  svg.addEventListener("mouseleave", leave);
  list.addEventListener("mouseover", hover);
  list.addEventListener("mouseleave", leave);
  svg.addEventListener("click", function (e) {
    var s = seqsOf(e.target);
    pinned = s; light(s || []);
    if (s && items.get(s[0])) reveal(items.get(s[0]));
  });
  list.addEventListener("click", function (e) {
    var s = seqsOf(e.target);
    if (!s) return;
    pinned = (pinned && pinned[0] === s[0]) ? null : s;
    light(pinned || s);
    var el = (bySeq.get(s[0]) || [])[0];
    if (el) el.scrollIntoView({block: "center", inline: "nearest", behavior: "smooth"});
  });
  var cur = steps.length, timer = null;
  function show(k) {
    cur = Math.max(0, Math.min(steps.length, k));
    slider.value = cur;
    els.forEach(function (el) {
      var i = index.get(+el.dataset.seq), from = el.dataset.from;
      var sent = Infinity;
      if (from) from.split(" ").forEach(function (s) { sent = Math.min(sent, index.get(+s)); });
      el.classList.toggle("future", i >= cur && !(sent < cur));
      el.classList.toggle("pending", i >= cur && sent < cur);
    });
    items.forEach(function (li, s) {
      var i = index.get(s);
      li.classList.toggle("future", i >= cur);
      li.classList.toggle("current", i === cur - 1 && cur < steps.length);
    });
    if (cur > 0 && cur < steps.length) {
      var y = steps[cur - 1][1];
      now.setAttribute("transform", "translate(0," + y + ")");
      now.style.display = "";
      var li = items.get(steps[cur - 1][0]);
      status.textContent = "step " + cur + " / " + steps.length + ": " + (li ? li.textContent : "");
      if (li) reveal(li);
    } else {
      now.style.display = "none";
      status.textContent = cur === 0 ? "step 0 / " + steps.length + ": nothing has happened yet"
                                     : "all " + steps.length + " events";
    }
  }
  function stop() { if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; } }
  var play = document.getElementById("pxd-play");
  document.getElementById("pxd-first").onclick = function () { stop(); show(0); };
  document.getElementById("pxd-back").onclick = function () { stop(); show(cur - 1); };
  document.getElementById("pxd-fwd").onclick = function () { stop(); show(cur + 1); };
  document.getElementById("pxd-last").onclick = function () { stop(); show(steps.length); };
  slider.oninput = function () { stop(); show(+slider.value); };
  play.onclick = function () {
    if (timer) { stop(); return; }
    if (cur >= steps.length) show(0);
    play.textContent = "pause";
    timer = setInterval(function () { if (cur >= steps.length) stop(); else show(cur + 1); }, 600);
  };
  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    var keys = {ArrowLeft: -1, ArrowRight: 1};
    if (e.key in keys) { stop(); show(cur + keys[e.key]); e.preventDefault(); }
    else if (e.key === "Home") { stop(); show(0); e.preventDefault(); }
    else if (e.key === "End") { stop(); show(steps.length); e.preventDefault(); }
    else if (e.key === " ") { play.onclick(); e.preventDefault(); }
  });
})();
"""
