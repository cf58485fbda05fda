"""SVG primitives and marks: numbers, escaping, arrows' colours, and the icons on lifelines.

Every icon is drawn as paths rather than taken from a font, so the picture looks the same on
a machine with only Debian's default fonts. Output depends only on the arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from paxosd.lab.diagram.layout import (
    legend_icon_width_px,
    mark_font_px,
    msg_font_px,
    note_font_px,
)
from paxosd.sim.trace import FAMILIES

__all__ = ["FAMILY_BY_KEY", "SVG_CSS", "Family", "family"]

INK = "#212529"
MUTED = "#868e96"
LIFELINE = "#adb5bd"
DEAD = "#ced4da"
DANGER = "#c92a2a"
GOOD = "#2b8a3e"
WALL = "#f08c00"
CHOSEN = "#e67700"
TIMER = "#5f3dc4"


@dataclass(frozen=True, slots=True)
class Family:
    key: str
    legend: str
    colour: str


# Hues chosen to stay apart from the value colours (red, blue, green dots) they carry.
_COLOURS = {
    "phase1": "#4257d6",
    "phase2": "#0c8599",
    "nack": "#c2255c",
    "learn": "#868e96",
    "vote": "#a0620a",
    "election": "#6741d9",
    "heartbeat": "#9c36b5",
    "catchup": "#d9480f",
    "read": "#087f5b",
    "forward": "#364fc7",
    "rebuild": "#e67700",
    "client": "#5c940d",
    "other": "#495057",
}
assert _COLOURS.keys() == FAMILIES.keys(), "every message family needs a colour"
FAMILY_BY_KEY = {key: Family(key, legend, _COLOURS[key]) for key, legend in FAMILIES.items()}


def family(key: str) -> Family:
    return FAMILY_BY_KEY.get(key, FAMILY_BY_KEY["other"])


SVG_CSS = (
    resources.files("paxosd.lab.diagram")
    .joinpath("svg.css")
    .read_text(encoding="utf-8")
    .replace("\n", "")
    .replace("MSG_FONT", f"{msg_font_px}px")
    .replace("MARK_FONT", f"{mark_font_px}px")
    .replace("NOTE_FONT", f"{note_font_px}px")
)


def n(x: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros, never "-0"."""
    text = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def attr(value: Any) -> str:
    return quoteattr(str(value))


def esc(text: Any) -> str:
    return escape(str(text))


def factor(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return n(number) if abs(number - round(number, 1)) < 1e-9 else f"{number:g}"


def group(seq: int, title: str, body: str, data_from: Sequence[int] = ()) -> str:
    extra = f" data-from={attr(' '.join(map(str, data_from)))}" if data_from else ""
    return f'<g class="ev" data-seq="{seq}"{extra}><title>{esc(title)}</title>{body}</g>'


def line(x1: float, y1: float, x2: float, y2: float, stroke: str, extra: str = "") -> str:
    return (
        f'<line x1="{n(x1)}" y1="{n(y1)}" x2="{n(x2)}" y2="{n(y2)}" '
        f'stroke="{stroke}"{" " + extra if extra else ""}/>'
    )


def label(
    x: float, y: float, text: str, cls: str, fill: str, anchor: str = "start", extra: str = ""
) -> str:
    """Text vertically centred on y (the baseline shift avoids relying on dominant-baseline)."""
    size = msg_font_px if cls == "m" else mark_font_px
    baseline = y + size * 0.35
    anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return (
        f'<text x="{n(x)}" y="{n(baseline)}" class="{cls}" fill="{fill}"{anchor_attr}'
        f"{' ' + extra if extra else ''}>{esc(text)}</text>"
    )


def cross(x: float, y: float, size: float, colour: str, width: float) -> str:
    d = f"M{n(x - size)},{n(y - size)}L{n(x + size)},{n(y + size)}"
    d += f"M{n(x - size)},{n(y + size)}L{n(x + size)},{n(y - size)}"
    return (
        f'<path d="{d}" stroke="{colour}" stroke-width="{n(width)}" '
        f'stroke-linecap="round" fill="none"/>'
    )


def dot(x: float, y: float, r: float, fill: str) -> str:
    stroke = ' stroke="#495057" stroke-width="0.8"' if fill.lower() in ("#ffffff", "#fff") else ""
    return f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(r)}" fill="{fill}"{stroke}/>'


def bolt(x: float, y: float, colour: str) -> str:
    pts = [(1, -9), (-4, 1), (0, 1), (-2, 9), (5, -2), (1, -2), (3, -9)]
    d = "M" + "L".join(f"{n(x + px)},{n(y + py)}" for px, py in pts) + "Z"
    return f'<path d="{d}" fill="#ffd43b" stroke="{colour}" stroke-width="1.2"/>'


def clock(x: float, y: float) -> str:
    return (
        f'<circle cx="{n(x)}" cy="{n(y)}" r="6.5" fill="#fff" stroke="{TIMER}" '
        f'stroke-width="1.6"/>'
        f'<path d="M{n(x)},{n(y - 4)}V{n(y)}H{n(x + 3.5)}" stroke="{TIMER}" '
        f'stroke-width="1.4" fill="none" stroke-linecap="round"/>'
        f'<path d="M{n(x - 2)},{n(y - 9.5)}h4" stroke="{TIMER}" stroke-width="1.6" '
        f'stroke-linecap="round"/>'
    )


def restart_icon(x: float, y: float) -> str:
    """↻ drawn as a path, so it does not depend on a font having the glyph."""
    r = 6.0
    start = math.radians(-60)
    end = math.radians(-120)
    sx, sy = x + r * math.cos(start), y + r * math.sin(start)
    ex, ey = x + r * math.cos(end), y + r * math.sin(end)
    # The head sits at the arc's end and points along it (clockwise on screen).
    head = f"M{n(ex - 4)},{n(ey - 3.2)}L{n(ex + 0.8)},{n(ey)}L{n(ex - 3.6)},{n(ey + 3)}"
    return (
        f'<circle cx="{n(x)}" cy="{n(y)}" r="8.5" fill="#fff"/>'
        f'<path d="M{n(sx)},{n(sy)}A{n(r)},{n(r)} 0 1 1 {n(ex)},{n(ey)}" '
        f'stroke="{GOOD}" stroke-width="2" fill="none" stroke-linecap="round"/>'
        f'<path d="{head}" stroke="{GOOD}" stroke-width="2" fill="none" '
        f'stroke-linecap="round" stroke-linejoin="round"/>'
    )


def flag(x: float, y: float, fill: str) -> str:
    return (
        f'<path d="M{n(x)},{n(y + 6)}V{n(y - 8)}" stroke="{INK}" stroke-width="1.4"/>'
        f'<path d="M{n(x)},{n(y - 8)}L{n(x + 11)},{n(y - 4.5)}L{n(x)},{n(y - 1)}Z" '
        f'fill="{fill}" stroke="{INK}" stroke-width="0.8" stroke-linejoin="round"/>'
    )


def diamond(x: float, y: float, fill: str) -> str:
    s = 7.0
    d = f"M{n(x)},{n(y - s)}L{n(x + s)},{n(y)}L{n(x)},{n(y + s)}L{n(x - s)},{n(y)}Z"
    return f'<path d="{d}" fill="{fill}" stroke="{INK}" stroke-width="1.2"/>'


def badge(x: float, y: float, letter: str) -> str:
    colour = FAMILY_BY_KEY["phase2" if letter == "A" else "phase1"].colour
    return (
        f'<circle cx="{n(x)}" cy="{n(y)}" r="8" fill="{colour}"/>'
        f'<text x="{n(x)}" y="{n(y + 3.8)}" class="b" text-anchor="middle">{letter}</text>'
    )


def zigzag(x: float, y0: float, y1: float) -> str:
    """A jagged vertical line: the 'wall' a partition puts between two groups of nodes."""
    points = [f"{n(x)},{n(y0)}"]
    y, side, step = y0, 1, 6.0
    while y + step < y1:
        y += step
        points.append(f"{n(x + 3 * side)},{n(y)}")
        side = -side
    points.append(f"{n(x)},{n(y1)}")
    return (
        f'<rect x="{n(x - 7)}" y="{n(y0)}" width="14" height="{n(max(0.0, y1 - y0))}" '
        f'fill="#fff4e6" opacity="0.8"/>'
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{WALL}" stroke-width="1.5" '
        f'stroke-linejoin="round"/>'
    )


def marker(fam: Family) -> str:
    return (
        f'<marker id="pxd-ah-{fam.key}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="6.5" markerHeight="6.5" orient="auto">'
        f'<path d="M0,1L10,5L0,9Z" fill="{fam.colour}"/></marker>'
    )


def legend_icon(icon: str, x: float, y: float) -> str:
    x1 = x + legend_icon_width_px - 4
    if icon.startswith("family:"):
        fam = family(icon.split(":", 1)[1])
        return (
            f'<path d="M{n(x)},{n(y)}H{n(x1)}" stroke="{fam.colour}" stroke-width="2" '
            f'marker-end="url(#pxd-ah-{fam.key})"/>'
        )
    if icon.startswith("badge:"):
        return badge(x + 12, y, icon.split(":", 1)[1])
    grey = FAMILY_BY_KEY["other"]
    match icon:
        case "drop":
            return line(x, y, x + 16, y, "#495057", 'stroke-width="1.4"') + cross(
                x + 17, y, 4, DANGER, 2.2
            )
        case "inflight":
            return (
                f'<path d="M{n(x)},{n(y)}H{n(x1)}" stroke="#495057" stroke-width="1.4" '
                f'stroke-dasharray="5 4" marker-end="url(#pxd-ah-{grey.key})"/>'
            )
        case "dup":
            return (
                f'<path d="M{n(x)},{n(y)}H{n(x1)}" stroke="#495057" stroke-width="1.4" '
                f'stroke-dasharray="7 3 1.5 3" marker-end="url(#pxd-ah-{grey.key})"/>'
            )
        case "crash":
            return line(
                x + 11, y - 9, x + 11, y + 9, DEAD, 'stroke-width="1.6" stroke-dasharray="3"'
            ) + cross(x + 11, y, 5.5, DANGER, 3)
        case "restart":
            return restart_icon(x + 11, y)
        case "timeout":
            return clock(x + 11, y + 1)
        case "slow":
            return line(
                x + 11,
                y - 8,
                x + 11,
                y + 8,
                "#495057",
                'stroke-width="2.2" stroke-dasharray="0.1 5" stroke-linecap="round"',
            )
        case "cut":
            return bolt(x + 11, y, WALL)
        case "witness":
            return (
                f'<rect x="{n(x + 1)}" y="{n(y - 7)}" width="20" height="14" rx="5" '
                f'fill="none" stroke="{CHOSEN}" stroke-width="2.2"/>'
            )
    return ""
