"""Finding free TCP ports on 127.0.0.1 for local clusters, tests and benchmarks.

Every search stays below Linux's ephemeral range (32768+), so that outgoing connections made
meanwhile never take a port a cluster is about to listen on."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

EPHEMERAL_START = 32768
RANGE_VARIABLE = "PAXOSD_PORTS"


def search_range() -> tuple[int, int]:
    """Where searches look by default: 20000 up to the ephemeral range, or what
    $PAXOSD_PORTS (FIRST-LAST) says. Test runs give each parallel worker its own range, so
    clusters started by different workers (and by the programs they run) never share ports."""
    raw = os.environ.get(RANGE_VARIABLE)
    if raw:
        first, _, last = raw.partition("-")
        return int(first), int(last)
    return 20000, EPHEMERAL_START


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind host:port now. SO_REUSEADDR like the node's own
    listeners: a port whose old connections linger in TIME_WAIT counts as free."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def all_free(ports: Iterable[int], host: str = "127.0.0.1") -> bool:
    return all(port_free(port, host) for port in ports)


class NoFreePorts(RuntimeError):
    """No run of free ports where they were looked for."""


def free_block(count: int, first: int | None = None, last: int | None = None) -> int:
    """The lowest p in [first, last) with p .. p+count-1 all free (default: search_range())."""
    first = search_range()[0] if first is None else first
    last = search_range()[1] if last is None else last
    port = first
    while port + count <= last:
        taken = next((p for p in range(port, port + count) if not port_free(p)), None)
        if taken is None:
            return port
        port = taken + 1
    raise NoFreePorts(f"no {count} free ports in a row in {first}..{last}")


def layout_ports(nodes: int, base_port: int) -> list[int]:
    """The ports of `local_cluster(nodes, ..., base_port)`: RESP base-600+i, HTTP base+i,
    peers base+100+i."""
    return [
        p
        for i in range(1, nodes + 1)
        for p in (base_port - 600 + i, base_port + i, base_port + 100 + i)
    ]


def free_layout(nodes: int, first: int | None = None, last: int | None = None) -> int:
    """A base port in [first+600, last-107) for which every port of the local layout is free
    (default: search_range())."""
    first = search_range()[0] if first is None else first
    last = search_range()[1] if last is None else last
    for base in range(first + 600, last - 107):
        if all_free(layout_ports(nodes, base)):
            return base
    raise NoFreePorts(f"no free port layout for {nodes} nodes in {first}..{last}")
