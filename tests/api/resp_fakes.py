"""Test support for the RESP front end: a fake node, a fake transport and a threaded server.

`RespFakeNode` implements `paxosd.runtime.service_api.NodeService` over a local StateMachine:
writes are applied at increasing slots (as a `Request` when they carry exactly-once identity),
preceded by an AdvanceTime whenever the test clock moved, so lock leases see time; reads go
through `machine.read`. By default the state changes when `submit` is called, in call order,
like a log, and when the future RESOLVES is a separate switch (at once, after a delay, or held
until `release()`), so tests can make answers arrive out of order. With `commit_delay_s` set it
behaves like the real node instead: a write is applied (committed) that much later, in submit
order, while reads are answered at once from the state as it is, so a read does not see a
write still in flight. Other switches make every call fail with one of the node's typed
errors.

`ServerThread` runs `serve_resp` on an event loop in a background thread, so tests can use
blocking sockets, redis-cli, and `asyncio.run` with redis.asyncio side by side. `close()` stops
the listener, the connections and the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from paxosd.api.resp import RespLimits, close_resp_clients, serve_resp
from paxosd.runtime.errors import BadRequest
from paxosd.service import AdvanceTime, Request, StateMachine, encode
from paxosd.service.commands import is_read
from paxosd.service.errors import BadCommand
from paxosd.service.kv import Put, Range
from paxosd.service.kv.checks import DEFAULT_LIMITS

T = TypeVar("T")

try:
    import uvloop  # noqa: F401  # only to know whether it is there
except ImportError:
    HAVE_UVLOOP = False
else:
    HAVE_UVLOOP = True

# Event loops to run the server on: asyncio's, and uvloop's (what the node uses) if installed.
LOOP_KINDS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="no uvloop")),
]

# How long a test waits for the server thread to do something, in seconds.
thread_timeout_s = 30.0


@dataclass
class Call:
    """One recorded submit() call."""

    op: Any
    client_id: str | None
    seq: int | None


class RespFakeNode:
    """A single-replica "cluster" behind NodeService, with switches for tests."""

    def __init__(
        self, node_id: int = 1, *, cluster_id: str = "resp-test", record: bool = True
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.machine = StateMachine()
        self.slot = 0
        self.clock_ms = 1_000_000  # log time; stamped before a write when it moved
        self.lease_ttl_ms_min = 600  # 1.5 times the default longest election timeout
        self._stamped_ms = -1
        self.record = record
        self.calls: list[Call] = []
        self.fail: BaseException | None = None  # every submit resolves to this error
        self.leader: int | None = node_id
        # Seconds until a write's / read's future resolves; None: resolved before submit returns.
        self.write_delay: Callable[[], float] | None = None
        self.read_delay: Callable[[], float] | None = None
        self.hold = False  # keep futures unresolved until release()
        # Seconds until a write is applied and answered (in submit order); None: at submit.
        self.commit_delay_s: float | None = None
        self._uncommitted: deque[tuple[asyncio.Future[Any], Any, str | None, int | None]] = deque()
        self.held: list[tuple[asyncio.Future[Any], Any]] = []
        self.member_list: list[dict[str, Any]] = [
            {
                "id": i,
                "http": f"127.0.0.1:{8400 + i}",
                "resp": f"127.0.0.1:{6400 + i}",
                "peer": f"127.0.0.1:{7400 + i}",
            }
            for i in (1, 2, 3)
        ]

    # NodeService -------------------------------------------------------------------------

    def submit(
        self, op: Any, *, client_id: str | None = None, seq: int | None = None
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.record:
            self.calls.append(Call(op, client_id, seq))
        if self.fail is not None:
            future.set_exception(self.fail)
            return future
        if self.commit_delay_s is not None and not is_read(op):
            self._uncommitted.append((future, op, client_id, seq))
            loop.call_later(self.commit_delay_s, self._commit_oldest)
            return future
        try:
            if is_read(op):
                result = self.machine.read(op)
                delay = self.read_delay
            else:
                result = self._write(op, client_id, seq)
                delay = self.write_delay
        except BadCommand as exc:
            future.set_exception(BadRequest(str(exc)))
            return future
        if self.hold:
            self.held.append((future, result))
        elif delay is None:
            future.set_result(result)
        else:
            loop.call_later(delay(), _resolve, future, result)
        return future

    async def execute(
        self,
        op: Any,
        *,
        client_id: str | None = None,
        seq: int | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        return await self.submit(op, client_id=client_id, seq=seq)

    def status(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "cluster_id": self.cluster_id,
            "pid": os.getpid(),
            "role": "leader" if self.leader == self.node_id else "follower",
            "leader": self.leader,
            "members": self.members(),
        }

    def members(self) -> list[dict[str, Any]]:
        return [dict(member) for member in self.member_list]

    kv_limits = DEFAULT_LIMITS  # the node's [kv] limits

    def term(self) -> int:
        return 1

    def metrics_text(self) -> bytes:
        return b""

    # Test helpers ------------------------------------------------------------------------

    def release(self) -> None:
        """Resolve every held future (in the loop's thread) and stop holding."""
        self.hold = False
        held, self.held = self.held, []
        for future, result in held:
            _resolve(future, result)

    def _commit_oldest(self) -> None:
        # Each timer commits the OLDEST pending write, so commits keep submit order even if
        # timers with equal deadlines fire in another order.
        future, op, client_id, seq = self._uncommitted.popleft()
        try:
            result = self._write(op, client_id, seq)
        except BadCommand as exc:
            if not future.done():
                future.set_exception(BadRequest(str(exc)))
            return
        _resolve(future, result)

    def stored(self, key: str) -> str | None:
        """The value the state machine holds for `key`, as RESP text (None if absent)."""
        result = self.machine.read(Range(key=key.encode()))
        if not result.kvs:
            return None
        return result.kvs[0].value.decode("utf-8", "surrogateescape")

    def put_raw(self, key: str, value: bytes) -> None:
        """Store `value`'s bytes, as any interface could."""
        self._write(Put(key=key.encode(), value=value), None, None)

    def _write(self, op: Any, client_id: str | None, seq: int | None) -> Any:
        if self._stamped_ms != self.clock_ms:
            self._stamped_ms = self.clock_ms
            self._apply(encode(AdvanceTime(now_ms=self.clock_ms)))
        if client_id is None or seq is None:
            return self._apply(encode(op))
        return self._apply(encode(Request(client_id=client_id, seq=seq, op=op)))

    def _apply(self, payload: bytes) -> Any:
        self.slot += 1
        return self.machine.apply(self.slot, payload)[0]


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


class ServerThread:
    """`serve_resp(node)` on 127.0.0.1, an ephemeral port, in a background event loop."""

    def __init__(
        self, node: RespFakeNode, limits: RespLimits | None = None, *, loop_kind: str = "asyncio"
    ) -> None:
        self.node = node
        # The node runs on uvloop when it is installed, whose transports and servers are not
        # asyncio's own classes: tests run the server on both.
        self.loop: asyncio.AbstractEventLoop
        if loop_kind == "uvloop":
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = self.run(serve_resp(node, "127.0.0.1", 0, limits=limits))
        self.port: int = self.server.sockets[0].getsockname()[1]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(thread_timeout_s)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the server's loop (node switches, release())."""

        async def go() -> T:
            return function()

        return self.run(go())

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            close_resp_clients(self.server)
            await self.server.wait_closed()
            await asyncio.sleep(0)  # let connection_lost callbacks run

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(thread_timeout_s)
        self.loop.close()
