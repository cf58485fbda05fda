"""Space-time (Lamport) diagrams of a run's trace: a standalone SVG, or one self-contained page.

The package is split by concern: `events` checks the trace and reads it, `layout` places lanes,
rows and labels, `svg` holds the drawing primitives and colours, `render` runs the drawing
passes, and `page` wraps a drawing in the interactive HTML page (its script and stylesheet are
package files, `page.js` and `page.css`). Message colours come from the `family` each message
event carries in the trace, recorded from the message object when it was sent.

Output depends only on the input: no random ids, no clock, so equal traces give equal bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paxosd.lab.diagram.events import VALUE_COLOURS, Highlight, NodeKey
from paxosd.lab.diagram.page import html_page
from paxosd.lab.diagram.render import render

__all__ = ["VALUE_COLOURS", "Highlight", "render_html", "render_svg", "write"]


def render_svg(
    trace: list[dict[str, Any]],
    *,
    nodes: list[NodeKey] | None = None,
    title: str = "",
    highlight: Highlight | None = None,
    time_axis: str = "seq",
) -> str:
    """The run as a standalone SVG document (a string starting with `<svg`)."""
    return render(trace, nodes, title, highlight, time_axis, interactive=False).svg


def render_html(
    trace: list[dict[str, Any]],
    *,
    nodes: list[NodeKey] | None = None,
    title: str = "",
    highlight: Highlight | None = None,
    description: str = "",
    time_axis: str = "seq",
) -> str:
    """One self-contained HTML page: the diagram, the numbered event list, step controls."""
    drawing = render(trace, nodes, title, highlight, time_axis, interactive=True)
    return html_page(drawing, title, description)


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
