"""The drawing passes: lifelines, partitions, marks, the highlight, then every message.

Layout, top to bottom: an optional title, a legend of only what the run uses, one header box
"node N" per node (left to right by id), the lifelines, a repeat of the headers at the bottom
(long runs scroll), and the highlight's caption. A narrow gutter on the left prints the virtual
time `t` wherever it changes.

A message is an arrow from the sender's lifeline at its `send` row to the receiver's at its
`recv` row, coloured by the family the trace recorded for it (phase 1, phase 2, Nack, ...),
labelled at a point along it with the message text on a small white box (a lab value such as
red gets a coloured dot). Fixed labels (notes, decisions, crashes) are placed first, then each
message label at the first of a few points along its arrow where it overlaps nothing already
placed and, if possible, hides no lifeline. A drop ends in a cross part-way (at the wall, for a
partition), a copy made by the network is dash-dotted, a message still in flight at the end is
a dashed stub. Marks on lifelines: flag (propose), diamond (decide), bold cross (crash; the
lifeline turns grey and dashed), circular arrow (restart), clock (timeout), dotted lifeline
(slow), a jagged wall between the separated groups (partition, until the heal).

Every drawn event is a `<g class="ev" data-seq="...">` holding a `<title>` with the event's text
(a message's arrow also carries `data-from`, the seq of its send). The HTML page uses those to
link the picture with its numbered event list and to replay the run step by step.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from paxosd.lab.diagram.events import (
    VALUE_COLOURS,
    Event,
    Highlight,
    NodeKey,
    family_key,
    full_title,
    is_node,
    validated,
    value_colour,
    value_named,
)
from paxosd.lab.diagram.events import lanes as event_lanes
from paxosd.lab.diagram.events import links as event_links
from paxosd.lab.diagram.events import text as event_text
from paxosd.lab.diagram.layout import (
    Box,
    Geometry,
    Placer,
    caption_line_height_px,
    geometry,
    gutter_width_px,
    header_height_px,
    label_room_px,
    lane_width,
    legend_icon_width_px,
    legend_items,
    legend_row_height_px,
    legend_rows,
    loop_width_px,
    margin_px,
    mark_font_px,
    msg_font_px,
    note_max_chars,
    row_height_px,
    text_width,
    truncate,
    width_estimate,
    wrap,
)
from paxosd.lab.diagram.svg import (
    CHOSEN,
    DANGER,
    DEAD,
    FAMILY_BY_KEY,
    GOOD,
    INK,
    LIFELINE,
    MUTED,
    SVG_CSS,
    TIMER,
    WALL,
    Family,
    attr,
    badge,
    bolt,
    clock,
    cross,
    diamond,
    dot,
    esc,
    flag,
    group,
    label,
    legend_icon,
    line,
    marker,
    n,
    restart_icon,
    zigzag,
)
from paxosd.lab.diagram.svg import factor as format_factor
from paxosd.lab.diagram.svg import family as family_style

__all__ = ["Drawing", "render"]

WHY = {"loss": "lost", "partition": "partition", "crashed": "crashed"}


@dataclass(slots=True)
class Layers:
    """Later layers paint over earlier ones: labels last, so their boxes and halos hide the
    arrows and lifelines beneath them."""

    back: list[str] = field(default_factory=list)
    lifelines: list[str] = field(default_factory=list)
    arrows: list[str] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Drawing:
    svg: str
    events: list[Event]
    steps: list[tuple[int, float]]  # (seq, y) in order


class Renderer:
    def __init__(
        self,
        events: list[Event],
        geo: Geometry,
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
        self.layers = Layers()
        self.placer = Placer()
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

    def crosses_lifeline(self, box: Box) -> bool:
        i = bisect.bisect_left(self.lane_xs, box.x0)
        return i < len(self.lane_xs) and self.lane_xs[i] <= box.x1

    def fixed_label(
        self, index: int, x: float, y: float, text: str, cls: str, fill: str, anchor: str = "start"
    ) -> None:
        """A label that stays where its mark is; message labels will avoid it."""
        size = msg_font_px if cls == "m" else mark_font_px
        w = text_width(text, size, mono=cls == "m") * (1.1 if cls == "kb" else 1.0)
        x0 = x - w if anchor == "end" else (x - w / 2 if anchor == "middle" else x)
        self.placer.take(Box(x0 - 2, y - size * 0.65, x0 + w + 2, y + size * 0.65))
        event = self.events[index]
        self.layers.labels.append(
            group(self.seq(index), full_title(event), label(x, y, text, cls, fill, anchor))
        )

    def mark(self, index: int, body: str, x: float, y: float, r: float = 8) -> None:
        self.placer.take(Box(x - r, y - r, x + r, y + r))
        event = self.events[index]
        self.layers.marks.append(group(self.seq(index), full_title(event), body))

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
            self.draw_phase(index, event, y, f"{event['name']} phase", "#495057")
            return
        if kind == "tick":
            self.draw_phase(index, event, y, "time passes", LIFELINE)
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
                self.mark(index, flag(x, y, colour), x + 5, y, 8)
                self.fixed_label(index, x + 16, y, f"propose {event['value']}", "k", INK)
            case "decide":
                colour = VALUE_COLOURS.get(str(event["value"]), "#495057")
                self.mark(index, diamond(x, y, colour), x, y)
                self.fixed_label(index, x + 12, y, f"decides {event['value']}", "kb", INK)
            case "crash":
                self.mark(index, cross(x, y, 7, DANGER, 3.4), x, y)
                self.fixed_label(index, x + 12, y, "crash", "kb", DANGER)
            case "restart":
                self.mark(index, restart_icon(x, y), x, y)
                self.fixed_label(index, x + 12, y, "restart", "kb", GOOD)
            case "timeout":
                self.mark(index, clock(x, y), x, y, 9)
                self.fixed_label(index, x + 12, y, "timeout", "k", TIMER)
            case "slow":
                factor = format_factor(event["factor"])
                text = "normal speed" if factor == "1" else f"slow ×{factor}"
                self.mark(index, dot(x, y, 3, "#495057"), x, y, 4)
                self.fixed_label(index, x + 10, y, text, "k", "#495057")
            case _:  # note, and any kind this version does not know: a grey note
                text = str(event["text"]) if kind == "note" else event_text(event)
                self.mark(index, dot(x, y, 2.2, MUTED), x, y, 3)
                self.fixed_label(index, x + 8, y, truncate(text, note_max_chars), "n", MUTED)

    def draw_phase(self, index: int, event: Event, y: float, text: str, colour: str) -> None:
        """A dashed line across every lifeline: a new phase of the run, or time passing."""
        x0 = margin_px + gutter_width_px
        x1 = self.geo.width - margin_px
        body = line(x0, y, x1, y, colour, 'stroke-width="1.2" stroke-dasharray="8 5"')
        self.layers.back.append(group(self.seq(index), full_title(event), body))
        self.fixed_label(index, x1 - 4, y - 8, text, "kb", colour, anchor="end")
        self.placer.take(Box(x0, y - 2, x1, y + 2))

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
                        f'<line x1="{n(x)}" y1="{n(start)}" x2="{n(x)}" y2="{n(y)}" '
                        f"{styles[style]}/>"
                    )
                start = y
                if kind == "crash":
                    crashed = True
                elif kind == "restart":
                    crashed = False
                elif kind == "slow":
                    slow = format_factor(factor) != "1"
            self.draw_header(node, geo.header_top)
            self.draw_header(node, geo.bottom_header_top)

    def draw_header(self, node: NodeKey, top: float) -> None:
        x = self.x(node)
        text = f"node {node}"
        w = max(56.0, text_width(text, 12, mono=False) + 18)
        box = (
            f'<rect x="{n(x - w / 2)}" y="{n(top)}" width="{n(w)}" '
            f'height="{header_height_px}" rx="6" fill="#f1f3f5" stroke="#495057" '
            f'stroke-width="1.2"/>'
            f'<text x="{n(x)}" y="{n(top + header_height_px / 2 + 4.2)}" class="h" '
            f'text-anchor="middle">{esc(text)}</text>'
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
            links = set(event_links(event))
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
        body = "".join(zigzag(x, y0, y1) for x in xs)
        if body:
            self.layers.back.append(group(self.seq(index), full_title(self.events[index]), body))

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
        body = "".join(bolt(x, y, WALL) for x in xs)
        self.mark(index, body, xs[0], y, 9)
        for x in xs[1:]:
            self.placer.take(Box(x - 9, y - 9, x + 9, y + 9))
        self.fixed_label(index, xs[0] + 10, y, text, "kb", CHOSEN)

    def first_x(self) -> float:
        """Where to put marks that belong to no node: on the first lifeline."""
        return self.geo.lane_x[self.geo.lanes[0]] if self.geo.lanes else margin_px + gutter_width_px

    def draw_heal(self, index: int, healed: set[tuple[NodeKey, NodeKey]], y: float) -> None:
        xs = self.wall_xs(healed) or [self.first_x()]
        body = "".join(line(x - 9, y, x + 9, y, GOOD, 'stroke-width="2.5"') for x in xs)
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
            w = max(56.0, text_width(f"node {node}", 12, mono=False) + 18)
            if node == hl.witness:
                self.layers.marks.append(
                    f'<rect x="{n(x - w / 2 - 4)}" y="{n(top - 4)}" width="{n(w + 8)}" '
                    f'height="{header_height_px + 8}" rx="9" fill="none" stroke="{CHOSEN}" '
                    f'stroke-width="2.5"/>'
                    f'<text x="{n(x)}" y="{n(top - 8)}" class="kb" fill="{CHOSEN}" '
                    f'text-anchor="middle">witness</text>'
                )
            badges = [
                letter
                for letter, quorum in (("A", hl.accepting_quorum), ("P", hl.promising_quorum))
                if node in quorum
            ]
            for i, letter in enumerate(badges):
                self.layers.marks.append(badge(x + w / 2 + 14 + 19 * i, top + 13, letter))

    def draw_chosen(self, index: int) -> None:
        """A line just below the choosing event (from here on the value is chosen), drawn
        between two rows so it does not run through that event's own labels."""
        geo = self.geo
        y_event = self.y(index)
        y_next = self.y(index + 1) if index + 1 < len(self.events) else y_event + row_height_px
        y = (y_event + y_next) / 2
        event = self.events[index]
        value = value_named(event_text(event))
        text = "value chosen" + (f": {value}" if value else "")
        x0 = margin_px + gutter_width_px
        x1 = geo.width - margin_px
        text_w = text_width(text, mark_font_px, mono=False) * 1.1  # bold
        dot_w = 12.0 if value else 0.0
        line_end = x1 - text_w - dot_w - 8
        body = (
            f'<rect x="{n(x0)}" y="{n(y - 3.5)}" width="{n(line_end - x0)}" height="7" '
            f'fill="#fff3bf"/>'
            + line(x0, y, line_end, y, CHOSEN, 'stroke-width="1.6" stroke-dasharray="10 4"')
        )
        if value is not None:
            body += dot(x1 - text_w - 6, y, 4, VALUE_COLOURS[value])
        self.layers.back.append(
            group(int(event["seq"]), "value chosen: " + full_title(event), body)
        )
        self.fixed_label(index, x1, y, text, "kb", CHOSEN, anchor="end")
        self.placer.take(Box(x0, y - 5, x1, y + 5))  # keep message labels off the line

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
        family = family_style(family_key(event))
        x, y = self.x(event["src"]), self.y(index)
        self.mark(index, dot(x, y, 2.6, family.colour), x, y, 3)
        if event["id"] in self.delivered:
            return
        # Never delivered nor dropped: still in flight when the run ended.
        tx, ty = self.toward(event["src"], event["dst"], 0.4, y + row_height_px * 1.2)
        shape = (
            f'<path d="M{n(x)},{n(y)}L{n(tx)},{n(ty)}" stroke="{family.colour}" '
            f'stroke-width="1.4" stroke-dasharray="5 4" fill="none" '
            f'marker-end="url(#pxd-ah-{family.key})"/>'
        )
        title = full_title(event) + "  (still in flight at the end of the run)"
        self.arrow(index, shape, title, (x, y), (tx, ty), str(event["msg"]), family, ())

    def toward(self, src: NodeKey, dst: NodeKey, fraction: float, y: float) -> tuple[float, float]:
        xs, xd = self.x(src), self.x(dst)
        if src == dst:
            return xs + loop_width_px, y
        return xs + (xd - xs) * fraction, y

    def draw_delivery(self, index: int, event: Event) -> None:
        family = family_style(family_key(event))
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
        title_parts = [full_title(self.events[send])] if send is not None else []
        title_parts.append(full_title(event))
        if event["ev"] == "drop":
            fraction = 0.85 if event["why"] == "crashed" else 0.55
            end_y = max(end_y, start[1] + row_height_px * 0.8)
            ex, ey = self.toward(src, dst, fraction, end_y)
            if event["why"] == "partition" and src != dst:
                ex = self.wall_hit(start[0], self.x(dst), end_y) or ex
            shape = self.path(start, (ex, ey), src == dst, family, "", marker=False)
            shape += cross(ex, ey, 4.5, DANGER, 2.2)
            why = WHY.get(str(event["why"]), str(event["why"]))
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
        family: Family,
        dash: str,
        *,
        marker: bool,
    ) -> str:
        (x0, y0), (x1, y1) = start, end
        if loop:  # a node's message to itself: a small loop to the right of its lifeline
            reach = loop_width_px * 4 / 3  # a cubic's control points overshoot its bulge
            bend = f"{n(x0 + reach)},{n(y0)} {n(x1 + reach)},{n(y1)}"
            d = f"M{n(x0)},{n(y0)}C{bend} {n(x1)},{n(y1)}"
        else:
            d = f"M{n(x0)},{n(y0)}L{n(x1)},{n(y1)}"
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
        family: Family,
        data_from: Sequence[int],
    ) -> None:
        seq = self.seq(index)
        self.layers.arrows.append(group(seq, title, shape, data_from))
        self.layers.labels.append(
            group(seq, title, self.place_label(start, end, msg, family), data_from)
        )

    def place_label(
        self, start: tuple[float, float], end: tuple[float, float], msg: str, family: Family
    ) -> str:
        """The message text at the first free point along the arrow (midpoint preferred)."""
        value = value_colour(msg)
        dot_w = 10.0 if value else 0.0
        w = text_width(msg, msg_font_px, mono=True) + dot_w
        h = msg_font_px * 1.3
        (x0, y0), (x1, y1) = start, end
        if abs(x1 - x0) < 1:  # a loop: beside it, not on the lifeline
            beside = x0 + loop_width_px + 6 + w / 2
            candidates = [(beside, (y0 + y1) / 2 + dy) for dy in (0, -h, h, -2 * h, 2 * h)]
        else:
            fractions = (0.5, 0.36, 0.64, 0.25, 0.75, 0.43, 0.57, 0.18, 0.82, 0.3, 0.7, 0.12)
            candidates = [(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f) for f in fractions]

        def box(at: tuple[float, float], room: float = 0.0) -> Box:
            return Box(
                at[0] - w / 2 - 1 - room, at[1] - h / 2 - room,
                at[0] + w / 2 + 1 + room, at[1] + h / 2 + room,
            )  # fmt: skip

        # Best: a clear margin around it and lifelines visible; then without the margin
        # (two labels that touch read as one); then overlap nothing; else the midpoint.
        free = [c for c in candidates if self.placer.free(box(c))]
        roomy = [c for c in free if self.placer.free(box(c, label_room_px))]
        clear = [c for c in roomy if not self.crosses_lifeline(box(c))]
        cx, cy = (clear or roomy or free or candidates)[0]
        self.placer.take(box((cx, cy)))
        left = cx - w / 2
        # A box, not just a halo: a halo hugs the glyphs and the arrow shows between letters.
        parts = [
            f'<rect x="{n(left - 3)}" y="{n(cy - h / 2)}" width="{n(w + 6)}" '
            f'height="{n(h)}" rx="3" fill="#fff" fill-opacity="0.92"/>'
        ]
        if value is not None:
            parts.append(dot(left + 4, cy, 3.6, value))
        parts.append(label(left + dot_w, cy, msg, "m", family.colour))
        return "".join(parts)

    def draw_dup(self, index: int, event: Event) -> None:
        x, y = self.x(event["src"]), self.y(index)
        body = (
            f'<rect x="{n(x + 5)}" y="{n(y - 6.5)}" width="22" height="13" rx="3" '
            f'fill="#fff" stroke="#495057" stroke-width="0.8"/>'
            f'<text x="{n(x + 16)}" y="{n(y + 3.5)}" class="d" text-anchor="middle">×2</text>'
        )
        self.placer.take(Box(x + 5, y - 7, x + 27, y + 7))
        send = self.sends.get(event["id"])
        data_from = [self.seq(send)] if send is not None else []
        self.layers.marks.append(group(self.seq(index), full_title(event), body, data_from))

    # -- frame --

    def draw_gutter(self) -> list[str]:
        parts = [
            f'<text x="{n(margin_px + gutter_width_px - 8)}" '
            f'y="{n(self.geo.header_top + header_height_px / 2 + 4)}" class="g" '
            f'text-anchor="end">t</text>'
        ]
        last_text = ""
        last_y = -math.inf
        for index, event in enumerate(self.events):
            y = self.y(index)
            t = event["t"]
            number = isinstance(t, int | float) and not isinstance(t, bool)
            text = truncate(n(float(t)) if number else str(t), 9)
            if text == last_text or y - last_y < 13:
                continue
            parts.append(
                f'<text x="{n(margin_px + gutter_width_px - 8)}" y="{n(y + 3.5)}" class="g" '
                f'text-anchor="end">{esc(text)}</text>'
            )
            parts.append(
                line(margin_px + gutter_width_px - 4, y, margin_px + gutter_width_px, y, "#ced4da")
            )
            last_text, last_y = text, y
        return parts

    def draw_legend(self) -> list[str]:
        parts: list[str] = []
        for row_index, row in enumerate(self.legend):
            y = self.geo.legend_top + row_index * legend_row_height_px + legend_row_height_px / 2
            for icon, text, offset in row:
                x = margin_px + offset
                parts.append(legend_icon(icon, x, y))
                parts.append(label(x + legend_icon_width_px + 6, y, text, "k", "#343a40"))
        return parts

    def draw_caption(self) -> list[str]:
        top = self.geo.caption_top + 12
        return [
            f'<text x="{margin_px}" y="{n(top + i * caption_line_height_px)}" class="c">'
            f"{esc(line)}</text>"
            for i, line in enumerate(self.caption)
        ]

    def assemble(self) -> str:
        geo = self.geo
        w, h = n(geo.width), n(geo.height)
        head = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" class="pxd" role="img"'
            f"{' aria-label=' + attr(self.title) if self.title else ''}>",
            f"<title>{esc(self.title or 'space-time diagram')}</title>",
            f"<style>{SVG_CSS}</style>",
            "<defs>" + "".join(marker(f) for f in FAMILY_BY_KEY.values()) + "</defs>",
            f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
        ]
        if self.title:
            head.append(
                f'<text x="{margin_px}" y="{n(geo.title_y)}" class="t">{esc(self.title)}</text>'
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
                f'<text x="{n(geo.width / 2)}" y="{n(geo.life_top + row_height_px)}" '
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


def render(
    trace: list[dict[str, Any]],
    nodes: Sequence[NodeKey] | None,
    title: str,
    highlight: Highlight | None,
    time_axis: str,
    *,
    interactive: bool,
) -> Drawing:
    if time_axis not in ("seq", "t"):
        raise ValueError(f'time_axis must be "seq" or "t", not {time_axis!r}')
    if nodes is not None and not all(map(is_node, nodes)):
        raise ValueError(f"nodes must be a list of node ids, not {nodes!r}")
    events = validated(trace)
    lanes = event_lanes(events, nodes)
    lane_w = lane_width(events)
    width_guess = width_estimate(len(lanes), lane_w)
    legend = legend_rows(legend_items(events, highlight), width_guess - 2 * margin_px)
    caption_text = highlight.caption if highlight is not None else ""
    caption = wrap(caption_text, int((width_guess - 2 * margin_px) / 7)) if caption_text else []
    geo = geometry(events, lanes, title, highlight, time_axis, len(legend), len(caption), lane_w)
    renderer = Renderer(events, geo, highlight, title, legend, caption)
    svg = renderer.run()
    steps = [(int(e["seq"]), geo.row_y[i]) for i, e in enumerate(events)]
    if interactive:
        # A "now" line for the step-by-step replay; hidden until the page moves it.
        now = (
            f'<g id="pxd-now" style="display:none"><line x1="{margin_px}" y1="0" '
            f'x2="{n(geo.width - margin_px)}" y2="0" stroke="#fab005" stroke-width="2"/></g>\n'
        )
        svg = svg.replace("</svg>\n", now + "</svg>\n")
    return Drawing(svg=svg, events=events, steps=steps)
