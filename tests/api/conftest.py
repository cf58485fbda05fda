"""Test support for the HTTP API: a fake node and a synchronous client for it.

`FakeNode` implements `paxosd.runtime.service_api.NodeService` over a local StateMachine:
writes are encoded (as a `Request` when the call carries exactly-once identity) and applied
at increasing slots, each preceded by an AdvanceTime so lock leases see time; reads go through
`machine.read`. Switches make it raise the node's typed errors, and every call is recorded.

`Api` runs an aiohttp test server for an app on an event loop in a background thread and
offers a blocking `request`, so tests (Hypothesis ones included) are plain functions. Every
server is stopped by `close()` (the fixtures do it).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy
from prometheus_client import CollectorRegistry, generate_latest

from paxosd.api.http import make_app
from paxosd.api.metrics import HttpMetrics
from paxosd.service import AdvanceTime, Request, StateMachine, encode
from paxosd.service.commands import is_read
from paxosd.service.kv.checks import DEFAULT_LIMITS, KvLimits
from paxosd.watch import MachineHistory, WatchHub

# How long a test waits for one request before calling the server hung, in seconds.
request_timeout_s = 30.0


@dataclass
class Call:
    """One recorded execute() call."""

    op: Any
    client_id: str | None
    seq: int | None


class FakeNode:
    """A single-replica "cluster": NodeService over a local StateMachine.

    status() has the shape of paxosd.runtime.node.Node.status() (commit/applied slots, ballot
    as "round.node"); tests can override any field through `status_extra`.
    """

    def __init__(self, node_id: int = 1, *, cluster_id: str = "test-cluster") -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.machine = StateMachine()
        self.slot = 0
        self.clock_ms = 1_000_000  # log time stamped before every write (tests move it)
        self.calls: list[Call] = []
        self.fail: Exception | None = None  # raised by execute() instead of running the op
        self.fail_result: Any = None  # answered by execute() instead (a results.Error)
        self.leader: int | None = node_id
        self.ballot: Any = f"1.{node_id}"  # the real node shows Ballot as "round.node"
        self.ops_total = 0
        self.status_extra: dict[str, Any] = {}  # merged over status(), last
        self.member_list: list[dict[str, Any]] = [
            {"id": node_id, "http": None, "resp": None, "peer": None, "connected": True}
        ]
        self.registry = CollectorRegistry()
        self.http_metrics = HttpMetrics(self.registry)
        self.status_calls = 0
        self.limits = DEFAULT_LIMITS  # the node's [kv] limits (tests may narrow them)
        self.lease_ttl_ms_min = 600  # 1.5 times the default longest election timeout
        # Watches, fed with what every apply changed, as the node's apply path feeds them.
        self.watches: WatchHub | None = WatchHub(MachineHistory(lambda: self.machine))

    async def execute(
        self,
        op: Any,
        *,
        client_id: str | None = None,
        seq: int | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        self.calls.append(Call(op, client_id, seq))
        if self.fail is not None:
            raise self.fail
        if self.fail_result is not None:
            return self.fail_result
        self.ops_total += 1
        if is_read(op):
            return self.machine.read(op)
        self._apply(AdvanceTime(now_ms=self.clock_ms))
        if client_id is None or seq is None:
            return self._apply(op)
        return self._apply(Request(client_id=client_id, seq=seq, op=op))

    def _apply(self, command: Any) -> Any:
        self.slot += 1
        result = self.machine.apply(self.slot, encode(command))[0]
        if self.watches is not None:
            self.watches.applied(self.machine.events)
        return result

    def submit(
        self, op: Any, *, client_id: str | None = None, seq: int | None = None
    ) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self.execute(op, client_id=client_id, seq=seq))

    def status(self) -> dict[str, Any]:
        self.status_calls += 1
        status: dict[str, Any] = {
            "node_id": self.node_id,
            "cluster_id": self.cluster_id,
            "pid": os.getpid(),
            "role": "leader" if self.leader == self.node_id else "follower",
            "leader": self.leader,
            "ballot": self.ballot,
            "commit": self.slot,
            "applied": self.slot,
            "members": self.members(),
            "ops_total": self.ops_total,
            "uptime_s": 3725.0,
            "disk_bytes": 5 * 1024 * 1024 + 300 * 1024,
            "latency_ms": self.http_metrics.latency_ms(),
            "leader_changes": [
                {"at": "2024-01-01T00:00:00Z", "leader": self.leader, "ballot": self.ballot}
            ],
            "recent_events": [{"at": "2024-01-01T00:00:00Z", "event": "started", "pid": 1}],
            "kv": {"revision": self.machine.revision, "compact_revision": 1},
        }
        status.update(self.status_extra)
        return status

    def members(self) -> list[dict[str, Any]]:
        return [dict(member) for member in self.member_list]

    @property
    def kv_limits(self) -> KvLimits:
        return self.limits

    def term(self) -> int:
        return int(str(self.ballot).split(".")[0]) if self.ballot else 0

    def metrics_text(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A test server for `make_app(node)` on a background loop, with blocking requests."""

    def __init__(self, node: FakeNode, **app_options: Any) -> None:
        self.node = node
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        app_options.setdefault("metrics", node.http_metrics)
        self.app = make_app(node, **app_options)
        self.client: TestClient[web.Request, web.Application] = self._run(self._start())

    async def _start(self) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(self.app))
        await client.start_server()
        return client

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(request_timeout_s)

    def request(self, method: str, path: str, **options: Any) -> Reply:
        async def go() -> Reply:
            async with self.client.request(method, path, **options) as response:
                return Reply(response.status, response.headers, await response.read())

        reply: Reply = self._run(go())
        return reply

    def get(self, path: str, **options: Any) -> Reply:
        return self.request("GET", path, **options)

    def post(self, path: str, body: Any = None, **options: Any) -> Reply:
        if body is not None:
            options["json"] = body
        return self.request("POST", path, **options)

    def put(self, path: str, body: Any = None, **options: Any) -> Reply:
        if body is not None:
            options["json"] = body
        return self.request("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Reply:
        return self.request("DELETE", path, **options)

    def close(self) -> None:
        self._run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(request_timeout_s)
        self.loop.close()


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def api(node: FakeNode) -> Iterator[Api]:
    harness = Api(node)
    try:
        yield harness
    finally:
        harness.close()
