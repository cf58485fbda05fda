"""Throughput of the Multi-Paxos core in one process: 3 replicas, messages handed over directly.

No network, no disk: this measures the protocol and the state machine alone - the ceiling the
real node's I/O can only lower. Reports commands per second and CPU microseconds per command
(applied on every replica), with batching on and off.

    .venv/bin/python bench/engine_core.py [--commands 50000] [--outstanding 256]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

from rich.console import Console
from rich.table import Table

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope
from paxosd.service import Put, Request, StateMachine, encode


def run(commands: int, outstanding: int, batch_max: int) -> tuple[float, float]:
    config = EngineConfig(batch_commands_max=batch_max, pipeline_slots_max=64)
    members = (1, 2, 3)
    rng = random.Random(1)
    nodes = {
        n: Replica(n, members, rng, config, StateMachine(), StateMachine.restore) for n in members
    }
    inbox: deque[Envelope] = deque()
    done = 0

    def absorb(effects: object) -> int:
        inbox.extend(effects.send)  # type: ignore[attr-defined]
        return sum(1 for a in effects.decided if a.payload)  # type: ignore[attr-defined]

    # Elect node 1.
    for other in members:
        nodes[other].quiet_ticks = config.election_ticks_min
    while not nodes[1].is_leader:
        absorb(nodes[1].tick())
        while inbox:
            env = inbox.popleft()
            absorb(nodes[env.dst].step(env))
    payloads = [
        encode(
            Request(client_id=f"c{i % outstanding}", seq=i + 1, op=Put(key=f"k{i % 1000}", value=i))
        )
        for i in range(commands)
    ]
    leader = nodes[1]
    sent = applied_leader = 0
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    while applied_leader < commands:
        # Keep `outstanding` commands in flight, as that many clients would.
        while sent < commands and sent - applied_leader < outstanding:
            leader.propose(payloads[sent])
            sent += 1
        applied_leader += absorb(leader.flush())
        while inbox:
            env = inbox.popleft()
            count = absorb(nodes[env.dst].step(env))
            if env.dst == 1:
                applied_leader += count
        for n in (2, 3):
            absorb(nodes[n].flush())
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    del done
    return commands / wall, cpu / commands * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument("--outstanding", type=int, default=256)
    args = parser.parse_args()
    table = Table(
        title=f"Multi-Paxos core, 3 replicas in one process, {args.outstanding} outstanding"
    )
    table.add_column("batching")
    table.add_column("commands/s", justify="right")
    table.add_column("CPU µs per command (3 replicas)", justify="right")
    for label, batch_max in (("on (up to 2048 per slot)", 2048), ("off (1 per slot)", 1)):
        rate, cpu_us = run(args.commands, args.outstanding, batch_max)
        table.add_row(label, f"{rate:,.0f}", f"{cpu_us:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
