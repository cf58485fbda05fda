"""Micro-benchmark: microseconds per RESP command through `RespProtocol`, in process.

Not a test. Run: python bench/resp_micro.py [--rounds 20000] [--pipeline 1,100] [--server]

Each figure is the best of several rounds of feeding SET or GET commands to one
`RespProtocol.data_received` (one command per call, or `--pipeline` commands per call) and
discarding what it writes, in CPU time of this process (`time.process_time`), so that other
work on a shared machine disturbs it less than wall time would. Two nodes behind it:

* `layer`: a node whose futures are resolved before `submit` returns, with a canned answer:
  the cost of the RESP layer alone (scan, parse, dispatch, render, write);
* `machine`: the same, with every operation applied to a local `StateMachine` first (what a
  single-node cluster with no consensus and no disk would cost).

`--server` also serves a `machine` node on 127.0.0.1 (an ephemeral port) for as long as
`--serve-s` says, and prints the port, so redis-benchmark can run against the RESP layer
without a cluster: `redis-benchmark -p PORT -t set,get -n 100000 -c 20 -q`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from paxosd.api.resp import RespProtocol, serve_resp
from paxosd.service import AdvanceTime, Request, StateMachine, encode
from paxosd.service.commands import is_read
from paxosd.service.kv.checks import DEFAULT_LIMITS
from paxosd.service.kv.types import KeyValue, PutResponse, Range, RangeResponse

ROUNDS = 7
KEY = "key:000000000042"


class _Node:
    """A NodeService whose futures are done when `submit` returns."""

    node_id = 1
    cluster_id = "bench"

    def __init__(self, machine: bool) -> None:
        self.machine = StateMachine() if machine else None
        self.slot = 0
        if self.machine is not None:
            self._apply(encode(AdvanceTime(now_ms=1)))
        # What the store answers SET and GET (the RESP layer's renderers read these).
        self._written = PutResponse(revision=2)
        stored = KeyValue(KEY.encode(), 2, 2, 1, b"xxx", 0)
        self._value = RangeResponse(revision=2, kvs=(stored,), count=1)

    def _apply(self, payload: bytes) -> Any:
        assert self.machine is not None
        self.slot += 1
        return self.machine.apply(self.slot, payload)

    def submit(
        self, op: Any, *, client_id: str | None = None, seq: int | None = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.machine is None:
            future.set_result(self._value if isinstance(op, Range) else self._written)
        elif is_read(op):
            future.set_result(self.machine.read(op))
        elif client_id is not None and seq is not None:
            future.set_result(self._apply(encode(Request(client_id=client_id, seq=seq, op=op))))
        else:
            future.set_result(self._apply(encode(op)))
        return future

    async def execute(self, op: Any, **kwargs: Any) -> Any:
        return await self.submit(op, **kwargs)

    def status(self) -> dict[str, Any]:
        return {"node_id": 1, "cluster_id": "bench", "pid": os.getpid(), "role": "leader"}

    def members(self) -> list[dict[str, Any]]:
        return []

    kv_limits = DEFAULT_LIMITS  # the node's [kv] limits

    def term(self) -> int:
        return 1

    def metrics_text(self) -> bytes:
        return b""


class _Sink(asyncio.Transport):
    """A transport that counts the writes it is given and drops their bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def command(*words: str) -> bytes:
    raw = [word.encode() for word in words]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in raw)


def measure(machine: bool, rounds: int, pipeline: int) -> dict[str, float]:
    """Best-of-ROUNDS microseconds per command, for SET and GET; and "writes", the transport
    writes per data_received call (1: a pipeline's replies leave in one write)."""

    async def go() -> dict[str, float]:
        protocol = RespProtocol(_Node(machine))  # type: ignore[arg-type]
        sink = _Sink()
        protocol.connection_made(sink)
        figures = {}
        for name, request in (("SET", command("SET", KEY, "xxx")), ("GET", command("GET", KEY))):
            chunk = request * pipeline
            calls = max(1, rounds // pipeline)
            best = float("inf")
            for _ in range(ROUNDS):
                started = time.process_time()
                for _ in range(calls):
                    protocol.data_received(chunk)
                best = min(best, time.process_time() - started)
            figures[name] = best / (calls * pipeline) * 1e6
        figures["writes"] = sink.writes / (2 * ROUNDS * calls)
        return figures

    return asyncio.run(go())


async def serve(seconds: float) -> None:
    server = await serve_resp(_Node(machine=True), "127.0.0.1", 0)  # type: ignore[arg-type]
    print(f"serving RESP on 127.0.0.1:{server.sockets[0].getsockname()[1]} for {seconds} s")
    try:
        await asyncio.sleep(seconds)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000, help="commands per measurement")
    parser.add_argument("--pipeline", default="1,100", help="commands per data_received call")
    parser.add_argument("--server", action="store_true", help="then serve RESP on 127.0.0.1")
    parser.add_argument("--serve-s", type=float, default=60.0, help="how long to serve")
    options = parser.parse_args()
    for depth in (int(part) for part in options.pipeline.split(",")):
        for label, machine in (("layer", False), ("machine", True)):
            figures = measure(machine, options.rounds, depth)
            writes = figures.pop("writes")
            shown = "  ".join(f"{name} {us:5.2f}" for name, us in figures.items())
            print(
                f"pipeline {depth:>3}  {label:<7}  µs per command: {shown}"
                f"  (transport writes per call: {writes:.2f})"
            )
    if options.server:
        asyncio.run(serve(options.serve_s))


if __name__ == "__main__":
    main()
