"""Ports for tests that start real listeners: each pytest-xdist worker owns its own slice of
20000..32000, so parallel workers never race for a port. Offsets keep different uses within
one test apart."""

from __future__ import annotations

import os

from paxosd.runtime import ports

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_index = int(_worker) if _worker.isdigit() else 0
SLICE = 3000
FIRST = 20000 + SLICE * (_index % 4)
LAST = FIRST + SLICE


def free_block(count: int, offset: int = 0) -> int:
    return ports.free_block(count, FIRST + offset, LAST)


def free_layout(nodes: int, offset: int = 0) -> int:
    return ports.free_layout(nodes, FIRST + offset, LAST)
