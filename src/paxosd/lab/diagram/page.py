"""One self-contained HTML page: the diagram, the numbered event list and step controls.

The page's stylesheet and script are package files (`page.css`, `page.js`) embedded inline, so
the page works opened from disk with no network. It opens at step 0 (nothing has happened
yet); the controls are plain words and shapes every default font has.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources

from paxosd.lab.diagram.events import MESSAGE_KINDS, Event, family_key, text
from paxosd.lab.diagram.render import Drawing
from paxosd.lab.diagram.svg import DANGER, GOOD, INK, MUTED, TIMER, WALL, esc, family

__all__ = ["PAGE_CSS", "PAGE_JS", "html_page"]


def _asset(name: str) -> str:
    return resources.files("paxosd.lab.diagram").joinpath(name).read_text(encoding="utf-8")


PAGE_CSS = _asset("page.css")
PAGE_JS = _asset("page.js")

_KIND_COLOURS = {
    "propose": INK,
    "decide": INK,
    "crash": DANGER,
    "restart": GOOD,
    "cut": WALL,
    "heal": GOOD,
    "timeout": TIMER,
    "phase": "#495057",
}


def _kind_colour(event: Event) -> str:
    kind = event["ev"]
    if kind in MESSAGE_KINDS:
        return DANGER if kind == "drop" else family(family_key(event)).colour
    return _KIND_COLOURS.get(kind, MUTED)


def _event_list(events: Sequence[Event]) -> str:
    items = []
    for event in events:
        seq = int(event["seq"])
        items.append(
            f'<li value="{seq}" data-seq="{seq}" tabindex="-1">'
            f'<span class="chip" style="background:{_kind_colour(event)}"></span>'
            f'<span class="tt">t={esc(event["t"])}</span> {esc(text(event))}</li>'
        )
    return '<ol class="pxd-events" id="pxd-events" start="0">\n' + "\n".join(items) + "\n</ol>"


def html_page(drawing: Drawing, title: str, description: str) -> str:
    page_title = title or "space-time diagram"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", description) if p.strip()]
    intro = "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    steps = json.dumps([[seq, round(y, 1)] for seq, y in drawing.steps], separators=(",", ":"))
    total = len(drawing.steps)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(page_title)}</title>
<style>{PAGE_CSS}</style>
</head>
<body>
<header><h1>{esc(page_title)}</h1>{intro}</header>
<nav class="pxd-controls" aria-label="replay">
<button type="button" id="pxd-first" title="first step (Home)">first</button>
<button type="button" id="pxd-back" title="step back (left arrow)">&#9664; back</button>
<button type="button" id="pxd-fwd" title="step forward (right arrow)">step &#9654;</button>
<button type="button" id="pxd-last" title="last step (End)">last</button>
<button type="button" id="pxd-play" title="play / pause (space)">play</button>
<input type="range" id="pxd-slider" min="0" max="{total}" value="0" aria-label="step">
<label class="opt"><input type="checkbox" id="pxd-fade" checked> fade delivered messages</label>
<label class="opt"><input type="checkbox" id="pxd-fit" checked> fit to width</label>
<span id="pxd-status" class="status">step 0 / {total}: nothing has happened yet</span>
</nav>
<main>
<section class="pxd-diagram fit" id="pxd-diagram">
{drawing.svg}</section>
<aside class="pxd-list"><h2>Events</h2>
<p class="hint">Hover or click an event to find it in the diagram, and the other way round.</p>
{_event_list(drawing.events)}
</aside>
</main>
<script type="application/json" id="pxd-steps">{steps}</script>
<script>{PAGE_JS}</script>
</body>
</html>
"""
