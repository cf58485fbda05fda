"""Throughput of the engine in one process: 3 replicas, each under the shared driver
(runtime/driver.py) exactly as the node and the simulator run it, messages handed over
directly.

No network, no disk (an in-memory log whose sync is free): this measures the protocol, the
driver's turn and the state machine alone - the ceiling the real node's I/O can only lower.
Reports commands per second, CPU microseconds per command (applied on every replica) and how
many of those the garbage collector took, with batching on and off, under the collector
settings `paxosd node` uses (cli/node.py) and, with `--gc`, under the interpreter's defaults.

    .venv/bin/python bench/engine_core.py [--commands 50000] [--outstanding 256] [--gc]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from paxosd.cli.node import gc_thresholds
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.ready import Applied, Note
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope, NodeId
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import ServiceError
from paxosd.service import Request, StateMachine, encode
from paxosd.service.kv import Put
from paxosd.storage import MemoryLog, make_identity

rounds = 3


class _Clock:
    """Virtual time: advanced by the loop below, one tick per round."""

    now_ms = 0.0

    def monotonic_ms(self) -> float:
        return self.now_ms

    def wall_ms(self) -> float:
        return self.now_ms


class _Host:
    """A node's host with nothing in between: turns run when the loop asks, syncs are free."""

    def __init__(self, inbox: deque[Envelope]) -> None:
        self.inbox = inbox
        self.turn_wanted = False
        self.answered = 0

    def send(self, envelopes: Sequence[Envelope]) -> None:  # the peer sink
        self.inbox.extend(envelopes)

    def schedule_turn(self) -> None:
        self.turn_wanted = True

    def sync(self, done: Callable[[], None]) -> None:
        done()

    def answer(self, token: Any, result: Any) -> None:
        self.answered += 1

    def fail(self, token: Any, error: ServiceError) -> None:
        raise AssertionError(f"a write failed in a fault-free run: {error}")

    def event(self, event: Note) -> None:
        pass

    def applied(self, entry: Applied) -> None:
        pass

    def background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        done(work())  # no snapshot is due in a run this short


class _CollectorTime:
    """Seconds spent in the garbage collector while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def run(commands: int, outstanding: int, batch_max: int) -> tuple[float, float, float]:
    """(commands/s, CPU µs per command, of which garbage collection)."""
    config = EngineConfig(batch_commands_max=batch_max, pipeline_slots_max=64)
    members: tuple[NodeId, ...] = (1, 2, 3)
    configuration = Configuration(members)
    rng = random.Random(1)
    clock = _Clock()
    inbox: deque[Envelope] = deque()
    hosts = {n: _Host(inbox) for n in members}
    drivers = {}
    for n in members:
        disk = MemoryLog(make_identity("bench", n))
        replica = Replica(n, configuration, rng, config, StateMachine())
        options = DriverOptions(restore=StateMachine.restore)
        drivers[n] = Driver(replica, disk, hosts[n], clock, hosts[n], options)
    # Node 1 is the first whose election timer runs out.
    for n in (2, 3):
        drivers[n].replica.quiet_ticks = config.election_ticks_min  # type: ignore[attr-defined]

    def settle() -> None:
        """Deliver every message and run every wanted turn, until nothing is left."""
        while True:
            while inbox:
                envelope = inbox.popleft()
                drivers[envelope.dst].deliver(envelope.src, envelope.msg)
            wanted = [n for n in members if hosts[n].turn_wanted]
            if not wanted:
                return
            for n in wanted:
                hosts[n].turn_wanted = False
                drivers[n].end_turn()

    while drivers[1].replica.leader != 1:
        clock.now_ms += 10
        drivers[1].tick()
        settle()
    requests = [
        Request(
            client_id=f"c{i % outstanding}",
            seq=i + 1,
            op=Put(key=b"k%d" % (i % 1000), value=b"%d" % i),
        )
        for i in range(commands)
    ]
    payloads = [encode(request) for request in requests]
    leader, answers = drivers[1], hosts[1]
    sent = 0
    collector = _CollectorTime()
    gc.callbacks.append(collector)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    while answers.answered < commands:
        # Keep `outstanding` commands in flight, as that many clients would.
        while sent < commands and sent - answers.answered < outstanding:
            request = requests[sent]  # answered under its exactly-once identity
            key = (request.client_id, request.seq)
            leader.submit_write(key, payloads[sent], sent, retry_safe=True)
            sent += 1
        settle()
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    gc.callbacks.remove(collector)
    return commands / wall, cpu / commands * 1e6, collector.seconds / commands * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument("--outstanding", type=int, default=256)
    parser.add_argument("--gc", action="store_true", help="Also under the default collector.")
    args = parser.parse_args()
    table = Table(
        title=f"Multi-Paxos engine (driver + core), 3 replicas (CPU summed) in one process, "
        f"{args.outstanding} outstanding"
    )
    table.add_column("collector")
    table.add_column("batching (commands a slot)")
    table.add_column("commands/s", justify="right")
    table.add_column("CPU µs per command", justify="right")
    table.add_column("of which GC", justify="right")
    settings = [("paxosd node's", gc_thresholds)]
    if args.gc:
        settings.append(("default", gc.get_threshold()))
    run(args.commands // 5, args.outstanding, 2048)  # warm-up: the first run pays for more
    for name, thresholds in settings:
        gc.set_threshold(*thresholds)
        for label, batch_max in (("on: 2048", 2048), ("off: 1", 1)):
            # The best of a few rounds: other work on a shared machine only ever adds.
            rate, cpu_us, gc_us = min(
                (run(args.commands, args.outstanding, batch_max) for _ in range(rounds)),
                key=lambda result: result[1],
            )
            table.add_row(name, label, f"{rate:,.0f}", f"{cpu_us:.1f}", f"{gc_us:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
