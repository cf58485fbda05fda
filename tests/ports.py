"""Ports for tests that start real listeners: each pytest-xdist worker owns its own slice of
20000..32000, so parallel workers never race for a port. Offsets keep different uses within
one test apart. $PAXOSD_TEST_PORT_BASE moves the whole range (two test runs on one machine,
each with its own base, never meet)."""

from __future__ import annotations

import os

from paxosd.runtime import ports

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_index = int(_worker) if _worker.isdigit() else 0
SLICE = 3000
BASE = int(os.environ.get("PAXOSD_TEST_PORT_BASE", "20000"))
FIRST = BASE + SLICE * (_index % 4)
LAST = FIRST + SLICE


def free_block(count: int, offset: int = 0) -> int:
    return ports.free_block(count, FIRST + offset, LAST)


def free_layout(nodes: int, offset: int = 0) -> int:
    return ports.free_layout(nodes, FIRST + offset, LAST)
