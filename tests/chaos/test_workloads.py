"""How the chaos clients classify answers (ok / fail / info), and the report's arithmetic.

The outcome of an operation is what every check rests on: a write recorded `fail` must
certainly not have happened, so anything that may have reached a node is `info`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from paxosd.chaos.report import ProbeWrite, availability, longest_gap, recovery
from paxosd.chaos.workloads import Caller, FencedResource, Recorder, keys_used
from paxosd.check.history import OpType
from paxosd.client import operations
from tests.ports import free_block

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handlers: dict[int, Handler]) -> tuple[dict[int, str], list[web.AppRunner]]:
    """One tiny HTTP server per fake node; node i answers every request with handlers[i]."""
    first = free_block(len(handlers), 2600)
    endpoints, runners = {}, []
    for offset, (node, handler) in enumerate(sorted(handlers.items())):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", first + offset).start()
        endpoints[node] = f"http://127.0.0.1:{first + offset}"
        runners.append(runner)
    return endpoints, runners


def answer(status: int, body: dict[str, Any]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handler


async def hang(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(2.0)  # longer than a client attempt (1.5 s)
    return web.json_response({})


def outcome_of(handlers: dict[int, Handler], op: operations.Operation, **send: Any) -> Any:
    async def body() -> Any:
        endpoints, runners = await serve(handlers)
        caller = Caller(endpoints, random.Random(1))
        try:
            session = ("test", 1) if op[0].write else None
            return await caller.send(op[0], 1, session, **send)
        finally:
            await caller.aclose()
            for runner in runners:
                await runner.cleanup()

    return asyncio.run(asyncio.wait_for(body(), 20))


unavailable = {"error": "unavailable", "message": "no quorum", "outcome": "unknown"}
not_leader = {"error": "not_leader", "message": "", "outcome": "failed", "leader": None}


def test_a_write_without_a_definite_answer_is_info_never_fail() -> None:
    result = outcome_of({1: answer(503, unavailable), 2: answer(503, unavailable)},
                        operations.put("k", 1), deadline_s=0.5)  # fmt: skip
    assert result.outcome is OpType.INFO


def test_a_write_refused_everywhere_is_fail() -> None:
    result = outcome_of({1: answer(503, not_leader), 2: answer(503, not_leader)},
                        operations.put("k", 1), deadline_s=0.5)  # fmt: skip
    assert result.outcome is OpType.FAIL


def test_a_write_that_timed_out_is_info_even_if_later_refused() -> None:
    result = outcome_of({1: hang, 2: answer(503, not_leader)}, operations.put("k", 1),
                        deadline_s=2.0)  # fmt: skip
    assert result.outcome is OpType.INFO


def test_a_write_goes_around_a_silent_node_and_names_who_answered() -> None:
    ok = answer(200, {"key": "k", "revision": 3})
    result = outcome_of({1: hang, 2: ok}, operations.put("k", 1), deadline_s=3.0)
    assert result.outcome is OpType.OK and result.node == 2


def test_a_redirect_is_followed_to_the_named_leader() -> None:
    async def body() -> Any:
        ok = answer(200, {"key": "k", "revision": 3})
        endpoints, runners = await serve({2: ok, 3: ok})
        address = endpoints[2].removeprefix("http://")
        redirect = {**not_leader, "leader": 2, "leader_http": address}
        more, more_runners = await serve({1: answer(503, redirect)})
        caller = Caller({**endpoints, **more}, random.Random(1))
        try:
            return await caller.send(operations.put("k", 1)[0], 1, ("t", 1))
        finally:
            await caller.aclose()
            for runner in runners + more_runners:
                await runner.cleanup()

    result = asyncio.run(asyncio.wait_for(body(), 20))
    assert result.outcome is OpType.OK and result.node == 2


def test_a_read_stays_at_its_node_and_fails_without_an_answer() -> None:
    ok = answer(200, {"key": "k", "value": 1, "revision": 3})
    result = outcome_of({1: hang, 2: ok}, operations.get("k"))
    assert result.outcome is OpType.FAIL and result.node == 1


def test_a_definite_refusal_is_fail() -> None:
    refused = {"error": "not_holder", "message": "b holds it", "outcome": "failed"}
    result = outcome_of({1: answer(409, refused)}, operations.release("lock", "a"))
    assert result.outcome is OpType.FAIL and "b holds it" in result.error


def test_the_fenced_resource_refuses_stale_tokens() -> None:
    resource = FencedResource()
    assert resource.use("l", 5) and resource.use("l", 5) and resource.use("l", 7)
    assert not resource.use("l", 6) and resource.refused == 1
    assert resource.use("other", 1)


def test_keys_used_finds_what_the_final_reads_must_read_back() -> None:
    recorder = Recorder()
    recorder.invoke("kv-0", "put", "k0-1", 5)
    recorder.invoke("names-0", "register", "name0-0", "names-0")
    recorder.invoke("decisions-0", "propose", "decision:d0-0", "x")
    recorder.invoke("probe-1", "put", "probe-1", 1)
    assert keys_used(recorder.events) == {
        "kv": {"k0-1"}, "names": {"name0-0"}, "decisions": {"decision:d0-0"},
    }  # fmt: skip


def test_availability_and_recovery_from_probe_writes() -> None:
    # ok writes every 0.1 s, except none between 2.0 and 3.5 s
    writes = [ProbeWrite(t / 10, t / 10 + 0.02) for t in range(0, 60) if not 20 <= t < 35]
    writes.append(ProbeWrite(2.0, None))
    assert availability(writes, 0.0, 5.0) == 0.7  # 3 of 10 half-second windows had none
    assert longest_gap(writes, 5.0) == 1.6  # from the ok at 1.92 to the one at 3.52
    agreed = [1.0, 3.8, 4.0]
    row = recovery({"kind": "kill-leader", "start": 2.0, "end": 3.0}, writes, agreed)
    assert row["write_s"] == 0.52  # the write invoked at 3.5 returned at 3.52
    assert row["converged_s"] == 0.8 and row["recovery_s"] == 0.8
    assert row["failover_s"] == 1.52 and row["unavailable_s"] == 1.52
    assert "failover_s" not in recovery({"kind": "loss", "start": 2.0, "end": 3.0}, writes, agreed)
