"""Geometry of a diagram: sizes, where each lane and row goes, and free space for labels.

Time flows downward. With `time_axis="seq"` every event owns a row of `row_height_px`; with
`time_axis="t"` a row sits at a height proportional to `t`, but never closer than
`min_row_gap_px` to the previous one, so labels still have room.

Labels are placed greedily (see `Placer`): a coarse grid of the boxes already taken keeps each
overlap check to a few neighbours, so thousands of events stay linear.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paxosd.lab.diagram.events import MESSAGE_KINDS, Event, Highlight, NodeKey, family_key
from paxosd.sim.trace import FAMILIES

__all__ = ["Box", "Geometry", "Placer", "geometry", "lane_width", "legend_items", "legend_rows"]

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
legend_icon_width_px = 26.0
legend_gap_px = 18.0
header_height_px = 26
header_gap_px = 14  # header box to first row
witness_tag_height_px = 16
caption_line_height_px = 17

msg_font_px = 10.5  # monospace message labels
label_room_px = 4.0  # space kept clear around a message label where the arrow allows
mark_font_px = 11  # sans labels next to marks
note_font_px = 10.5
note_max_chars = 34
mono_char_ratio = 0.6  # width of a monospace glyph / font size
sans_char_ratio = 0.56  # average for sans-serif text; only used to avoid overlaps


def text_width(text: str, font_px: float, mono: bool) -> float:
    return len(text) * font_px * (mono_char_ratio if mono else sans_char_ratio)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def wrap(text: str, width_chars: int) -> list[str]:
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
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        apart_x = self.x1 <= other.x0 or other.x1 <= self.x0
        return not apart_x and self.y0 < other.y1 and other.y0 < self.y1


class Placer:
    """Boxes already taken, bucketed on a coarse grid so each check looks at a few neighbours."""

    cell_w = 80.0
    cell_h = 40.0

    def __init__(self) -> None:
        self._grid: dict[tuple[int, int], list[Box]] = {}

    def _cells(self, box: Box) -> Iterable[tuple[int, int]]:
        for cx in range(int(box.x0 // self.cell_w), int(box.x1 // self.cell_w) + 1):
            for cy in range(int(box.y0 // self.cell_h), int(box.y1 // self.cell_h) + 1):
                yield cx, cy

    def free(self, box: Box) -> bool:
        return not any(
            box.overlaps(other) for cell in self._cells(box) for other in self._grid.get(cell, ())
        )

    def take(self, box: Box) -> None:
        for cell in self._cells(box):
            self._grid.setdefault(cell, []).append(box)


# -- geometry ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Geometry:
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


def lane_width(events: Sequence[Event]) -> float:
    """Wide enough that the longest message label fits between two neighbouring lifelines."""
    longest = max(
        (len(str(e["msg"])) for e in events if e["ev"] in ("send", "recv", "drop")), default=0
    )
    wanted = text_width("x" * longest, msg_font_px, mono=True) + 14 + 50
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


def legend_items(events: Sequence[Event], highlight: Highlight | None) -> list[tuple[str, str]]:
    """(icon kind, text) for what this run actually shows, in a fixed order."""
    families: set[str] = set()
    kinds: set[str] = set()
    delivered: set[Any] = set()
    received: dict[Any, int] = {}
    for event in events:
        kind = event["ev"]
        kinds.add(kind)
        if kind in MESSAGE_KINDS:
            families.add(family_key(event))
        if kind in ("recv", "drop"):
            delivered.add(event["id"])
        if kind == "recv":
            received[event["id"]] = received.get(event["id"], 0) + 1
    items = [("family:" + key, legend) for key, legend in FAMILIES.items() if key in families]
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


def legend_rows(items: list[tuple[str, str]], width: float) -> list[list[tuple[str, str, float]]]:
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = 0.0
    for icon, text in items:
        w = legend_icon_width_px + 6 + text_width(text, mark_font_px, mono=False)
        if rows[-1] and x + w > width:
            rows.append([])
            x = 0.0
        rows[-1].append((icon, text, x))
        x += w + legend_gap_px
    return rows if rows[0] else []


def width_estimate(lane_count: int, lane_w: float) -> float:
    """The drawing's width before the geometry is known (for wrapping legend and caption)."""
    return (
        margin_px * 2
        + gutter_width_px
        + first_lane_offset_px
        + notes_margin_px
        + max(0, lane_count - 1) * lane_w
    )


def geometry(
    events: Sequence[Event],
    lanes: list[NodeKey],
    title: str,
    highlight: Highlight | None,
    time_axis: str,
    legend_rows: int,
    caption_lines: int,
    lane_w: float,
) -> Geometry:
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
    return Geometry(
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
