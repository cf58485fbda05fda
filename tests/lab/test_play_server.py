"""The lab play API over HTTP (aiohttp's test server): every bad request gets a clear 4xx, two
clients on one session stay consistent, and a run exports and imports as the lab's trace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from paxosd.lab.play import server as play_server
from paxosd.lab.play.server import make_app

Client = TestClient  # type: ignore[type-arg]


async def with_client(body: Callable[[Client], Awaitable[None]]) -> None:
    client = TestClient(TestServer(make_app()))
    await client.start_server()
    try:
        await body(client)
    finally:
        await client.close()


def run(body: Callable[[Client], Awaitable[None]]) -> None:
    asyncio.run(with_client(body))


async def post(client: Client, path: str, data: Any) -> tuple[int, dict[str, Any]]:
    raw = data if isinstance(data, str) else json.dumps(data)
    response = await client.post(path, data=raw, headers={"Content-Type": "application/json"})
    return response.status, await response.json()


async def new(client: Client, **config: Any) -> dict[str, Any]:
    status, view = await post(client, "/api/sessions", {"config": {"algorithm": "paxos", **config}})
    assert status == 201, view
    return view


def test_bad_input_gets_a_clear_4xx() -> None:
    async def body(client: Client) -> None:
        view = await new(client)
        sid = view["session"]
        status, answer = await post(client, f"/api/sessions/{sid}/apply",
                                    {"action": "deliver:42", "version": 0})  # fmt: skip
        assert status == 400 and "no action 'deliver:42'" in answer["error"]
        status, answer = await post(client, f"/api/sessions/{sid}/apply", "{not json")
        assert status == 400 and "not valid JSON" in answer["error"]
        status, answer = await post(client, f"/api/sessions/{sid}/apply", [1, 2])
        assert status == 400 and "JSON object" in answer["error"]
        status, answer = await post(client, f"/api/sessions/{sid}/apply", {"action": 7})
        assert status == 400 and "action id" in answer["error"]
        status, answer = await post(client, f"/api/sessions/{sid}/goto", {"step": 9})
        assert status == 400 and "steps 0 to 0" in answer["error"]
        status, answer = await post(client, f"/api/sessions/{sid}/goto", {"step": "x"})
        assert status == 400 and "integer" in answer["error"]
        status, answer = await post(client, "/api/sessions/nope/apply", {"action": "tick"})
        assert status == 404 and "no session 'nope'" in answer["error"]
        status, answer = await post(client, "/api/sessions", {"config": {"algorithm": "raft"}})
        assert status == 400 and "unknown algorithm" in answer["error"]
        status, answer = await post(client, "/api/sessions", {"tour": "nope"})
        assert status == 400 and "no tour 'nope'" in answer["error"]
        status, answer = await post(client, "/api/import", {"format": "something else"})
        assert status == 400 and "not a lab trace" in answer["error"]
        status, answer = await post(client, f"/api/sessions/{sid}/tour/next", {})
        assert status == 400 and "not a tour" in answer["error"]
        response = await client.get("/static/secrets.txt")
        assert response.status == 404
        response = await client.post("/api/import", data=b"x" * (play_server.body_bytes_max + 1))
        assert response.status == 413 and "too large" in (await response.json())["error"]

    run(body)


def test_a_stale_step_is_refused_and_a_second_client_sees_every_change() -> None:
    """Two tabs: the second follows the first by long poll, and its out-of-date request is
    refused with 409 and the current version, never applied to a state it has not seen."""

    async def body(client: Client) -> None:
        view = await new(client)
        sid = view["session"]
        waiting = asyncio.create_task(client.get(f"/api/sessions/{sid}/wait?version=0"))
        await asyncio.sleep(0.1)
        assert not waiting.done(), "nothing changed yet: the long poll waits"
        status, first = await post(client, f"/api/sessions/{sid}/apply",
                                   {"action": "propose:1:red", "version": 0})  # fmt: skip
        assert status == 200 and first["version"] == 1
        seen = await (await asyncio.wait_for(waiting, 10)).json()
        assert seen["version"] == 1 and seen["step"] == 1
        status, answer = await post(client, f"/api/sessions/{sid}/apply",
                                    {"action": "propose:2:blue", "version": 0})  # fmt: skip
        assert status == 409 and answer["version"] == 1 and "another tab" in answer["error"]
        current = await (await client.get(f"/api/sessions/{sid}")).json()
        assert current["step"] == 1 and [t["text"] for t in current["timeline"]] == [
            t["text"] for t in first["timeline"]
        ]

    run(body)


def test_export_then_import_gives_the_same_run_at_step_0() -> None:
    async def body(client: Client) -> None:
        view = await new(client)
        sid = view["session"]
        version = 0
        for action in ("propose:1:red", "crash:3"):
            status, view = await post(client, f"/api/sessions/{sid}/apply",
                                      {"action": action, "version": version})  # fmt: skip
            assert status == 200, view
            version = view["version"]
        prepare = next(m for m in view["messages"] if m["dst"] == 2)
        deliver = {"action": prepare["actions"]["deliver"], "version": version}
        status, view = await post(client, f"/api/sessions/{sid}/apply", deliver)
        exported = await (await client.get(f"/api/sessions/{sid}/export")).json()
        assert exported["format"] == "paxosd-lab-trace" and exported["model"] == "explored"
        status, opened = await post(client, "/api/import", exported)
        assert status == 201, opened
        assert opened["step"] == 0 and opened["last"] == 3
        assert [t["text"] for t in opened["timeline"]] == [t["text"] for t in view["timeline"]]

    run(body)
