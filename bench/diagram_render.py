"""How long the lab's diagrams take to draw a busy trace (2,000 events, 5 nodes).

.venv/bin/python bench/diagram_render.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lab.test_diagram import synthetic

from paxosd.lab.diagram import render_html, render_svg


def main() -> None:
    trace = synthetic(2000)
    for name, draw in (
        ("svg", lambda: render_svg(trace, time_axis="seq")),
        ("html", lambda: render_html(trace)),
    ):
        best = min(_timed(draw) for _ in range(3))
        print(f"{name}: {best * 1000:.0f} ms for {len(trace)} events (best of 3)")


def _timed(draw: object) -> float:
    start = time.perf_counter()
    draw()  # type: ignore[operator]
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
