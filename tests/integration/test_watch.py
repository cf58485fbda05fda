"""Watches on a real cluster, through every interface: etcd's JSON gateway (with etcd3gw, an
unmodified etcd client, and raw streams), /v1's Server-Sent Events (curl -N, Last-Event-ID),
the Python clients and the CLI; on followers as on the leader."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from etcd3gw.client import Etcd3Client

from paxosd import AsyncClient, Client, WatchCompacted

from .cluster import Cluster


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def client(shared_cluster: Cluster) -> Iterator[Client]:
    with Client(shared_cluster.endpoints(), timeout_s=30) as made:
        yield made


def follower(cluster: Cluster) -> int:
    leader = cluster.wait_for_leader()
    return next(n for n in (1, 2, 3) if n != leader)


# -- etcd's gateway ---------------------------------------------------------------------------


def test_etcd3gw_watch_watch_prefix_watch_once_and_cancel(
    shared_cluster: Cluster, client: Client
) -> None:
    host, port = shared_cluster.http(follower(shared_cluster)).rsplit(":", 1)
    gateway = Etcd3Client(host=host, port=int(port), timeout=30)
    events, cancel = gateway.watch_prefix("gw3/")
    key_events, cancel_key = gateway.watch("gw3/b", prev_kv=True)
    got: list[Any] = []
    got_key: list[Any] = []
    readers = [
        threading.Thread(target=lambda: got.extend(events), daemon=True),
        threading.Thread(target=lambda: got_key.extend(key_events), daemon=True),
    ]
    for reader in readers:
        reader.start()
    time.sleep(0.5)  # both watches are created
    client.put("gw3/a", "one")
    client.put("gw3/b", "two")
    client.put("gw3/b", "three")
    client.delete("gw3/a")
    deadline = time.monotonic() + 20
    while (len(got) < 4 or len(got_key) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    cancel()
    cancel_key()
    assert [(e.get("type", "PUT"), e["kv"]["key"]) for e in got] == [
        ("PUT", b"gw3/a"),
        ("PUT", b"gw3/b"),
        ("PUT", b"gw3/b"),
        ("DELETE", b"gw3/a"),
    ]
    assert got[1]["kv"]["value"] == b'"two"'  # /v1 stores JSON text
    assert base64.b64decode(got_key[1]["prev_kv"]["value"]) == b'"two"'

    def change_later() -> None:
        time.sleep(0.5)
        client.put("gw3/once", 1)

    threading.Thread(target=change_later, daemon=True).start()
    event = gateway.watch_once("gw3/once", timeout=20)
    assert event["kv"]["key"] == b"gw3/once" and event["kv"]["value"] == b"1"
    gateway.session.close()


def _stream_lines(url: str, body: bytes, count: int, timeout_s: float = 20) -> list[dict[str, Any]]:
    """The first `count` lines of a /v3/watch stream."""
    lines: list[dict[str, Any]] = []
    with httpx.stream("POST", url, content=body, timeout=timeout_s) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.strip():
                lines.append(json.loads(line))
            if len(lines) >= count:
                break
    return lines


def test_a_v3_stream_carries_several_watches_with_ids_history_and_refusals(
    shared_cluster: Cluster, client: Client
) -> None:
    first = client.put("v3s/a", 1)
    client.put("v3s/b", 2)
    node = shared_cluster.http(follower(shared_cluster))
    body = b"\n".join(
        json.dumps(request).encode()
        for request in (
            {"create_request": {"key": b64("v3s/a"), "start_revision": first}},
            {"create_request": {"key": b64("v3s/"), "range_end": b64("v3s0"), "watch_id": 7,
                                "start_revision": first, "prev_kv": True}},
            {"create_request": {"key": b64("v3s/x"), "watch_id": 7}},  # a duplicate id
            {"create_request": {"key": b64("v3s/b"), "range_end": b64("v3s/a")}},  # empty
            {"progress_request": {}},
        )
    )  # fmt: skip
    lines = _stream_lines(f"http://{node}/v3/watch", body, 8)
    results = [line["result"] for line in lines]
    created = [r for r in results if r.get("created") and not r.get("canceled")]
    assert sorted(r.get("watch_id", "0") for r in created) == ["0", "7"]
    refused = [r for r in results if r.get("canceled")]
    assert sorted(r["cancel_reason"] for r in refused) == [
        "mvcc: duplicate watch ID provided on the WatchStream",
        "mvcc: watcher range is empty",
    ]
    events = [
        (r.get("watch_id", "0"), e["kv"]["key"]) for r in results for e in r.get("events", [])
    ]
    assert ("0", b64("v3s/a")) in events
    assert ("7", b64("v3s/a")) in events and ("7", b64("v3s/b")) in events
    progress = [r for r in results if not r.get("events") and not r.get("created")
                and not r.get("canceled")]  # fmt: skip
    assert progress and all(int(r["header"]["revision"]) >= first + 1 for r in progress)


def test_a_v3_watch_on_a_compacted_revision_is_created_then_canceled(
    shared_cluster: Cluster, client: Client
) -> None:
    first = client.put("v3c/a", 1)
    client.put("v3c/a", 2)
    now = client.put("v3c/a", 3)
    client.compact(now)
    node = shared_cluster.http(follower(shared_cluster))
    body = json.dumps({"create_request": {"key": b64("v3c/a"), "start_revision": first}})
    created, canceled = (line["result"] for line in _stream_lines(
        f"http://{node}/v3/watch", body.encode(), 2))  # fmt: skip
    assert created["created"] is True
    assert canceled["canceled"] is True and canceled["compact_revision"] == str(now)
    assert f"re-list at revision {now}" in canceled["cancel_reason"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "holds no WatchRequest"),
        (b"{not json", "not JSON"),
        (b'{"create_request": {"key": "@@"}}', "base64"),
        (b'{"create_request": {"key": "YQ==", "filters": ["NOPE"]}}', "unknown value"),
        (b'{"create_request": {"key": "YQ==", "start_revision": "x"}}', "int64"),
    ],
)
def test_a_malformed_first_v3_watch_request_is_refused_as_etcd_does(
    shared_cluster: Cluster, body: bytes, expected: str
) -> None:
    answer = httpx.post(f"http://{shared_cluster.http(1)}/v3/watch", content=body, timeout=20)
    assert answer.status_code == 400
    data = answer.json()
    assert data["code"] == 3 and expected in data["message"]


def test_a_v3_watch_from_a_negative_revision_is_refused_with_its_reason(
    shared_cluster: Cluster,
) -> None:
    body = b'{"create_request": {"key": "YQ==", "start_revision": -5}}'
    [refused] = _stream_lines(f"http://{shared_cluster.http(2)}/v3/watch", body, 1)
    assert refused["result"]["canceled"] is True and refused["result"]["created"] is True
    assert "start_revision" in refused["result"]["cancel_reason"]


# -- /v1: Server-Sent Events ----------------------------------------------------------------


def _sse(text: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(id, event, data) of each message."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event", "data"):
                fields[name] = value
        if "data" in fields:
            messages.append(
                (fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))
            )
    return messages


def test_curl_reads_the_event_stream_and_last_event_id_resumes_on_another_node(
    shared_cluster: Cluster, client: Client
) -> None:
    one, two = 1, 2
    first = client.put("sse/a", {"n": 1})
    curl = subprocess.Popen(
        ["curl", "-sN", "--max-time", "20",
         f"http://{shared_cluster.http(one)}/v1/watch?prefix=sse/&start_revision={first}"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        client.put("sse/b", "x")
        last = client.delete("sse/a")
        assert last is True
        out = b""
        assert curl.stdout is not None
        while out.count(b"\nid: ") + out.startswith(b"id: ") < 3:
            chunk = curl.stdout.read1(4096)  # type: ignore[attr-defined]
            assert chunk, out
            out += chunk
    finally:
        curl.kill()
        curl.wait()
    messages = _sse(out.decode())
    assert messages[0][1] == "created"
    changes = [m for m in messages if m[1] == "message"]
    assert [(m[2]["events"][0]["type"], m[2]["events"][0]["key"]) for m in changes] == [
        ("put", "sse/a"),
        ("put", "sse/b"),
        ("delete", "sse/a"),
    ]
    assert all(m[0] == str(m[2]["revision"]) for m in changes)
    # A reconnect to another node with the id of the second message gets the third, only.
    second_id = changes[1][0]
    assert second_id is not None
    with httpx.stream(
        "GET",
        f"http://{shared_cluster.http(two)}/v1/watch?prefix=sse/",
        headers={"Last-Event-ID": second_id},
        timeout=20,
    ) as response:
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if "\nid: " in text:
                break
    resumed = [m for m in _sse(text) if m[1] == "message"]
    assert resumed[0][2] == changes[2][2]


def test_a_reconnect_to_a_compacted_revision_gets_204_so_an_event_source_stops(
    shared_cluster: Cluster, client: Client
) -> None:
    first = client.put("sse204/a", 1)
    now = client.put("sse204/a", 2)
    client.compact(now)
    url = f"http://{shared_cluster.http(3)}/v1/watch?key=sse204/a"
    answer = httpx.get(url, headers={"Last-Event-ID": str(first)}, timeout=20)
    assert answer.status_code == 204
    # Asked directly, the reason comes in a cancelled event.
    with httpx.stream("GET", f"{url}&start_revision={first}", timeout=20) as response:
        text = response.read().decode()
    cancelled = [m for m in _sse(text) if m[1] == "cancelled"]
    assert cancelled[0][2]["reason"] == "compacted"
    assert cancelled[0][2]["compact_revision"] == now


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("key=a&start_revision=-1", "start_revision"),
        ("key=a&start_revision=abc", "start_revision"),
        ("key=a&filters=noput,sometimes", "filters"),
        ("prefix=a&key=b", "keys"),
        ("key=a&colour=red", "colour"),
    ],
)
def test_malformed_v1_watches_are_refused_naming_the_field(
    shared_cluster: Cluster, query: str, field: str
) -> None:
    answer = httpx.get(f"http://{shared_cluster.http(1)}/v1/watch?{query}", timeout=20)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert field in answer.json()["message"]


def test_last_event_id_that_is_not_a_revision_is_refused(shared_cluster: Cluster) -> None:
    answer = httpx.get(
        f"http://{shared_cluster.http(1)}/v1/watch?key=a",
        headers={"Last-Event-ID": "yesterday"},
        timeout=20,
    )
    assert answer.status_code == 400 and "last_event_id" in answer.json()["message"]


# -- the Python clients and the CLI -------------------------------------------------------------


def test_the_clients_replay_then_follow_and_the_async_one_too(
    shared_cluster: Cluster, client: Client
) -> None:
    first = client.put("py/a", 1)
    client.put("py/b", {"x": [1, 2]})
    client.delete("py/a")
    with client.watch(prefix="py/", start_revision=first, prev_kv=True) as watch:
        seen = []
        for event in watch:
            seen.append((event.type, event.key, event.value))
            if len(seen) == 3:
                break
        assert watch.revision == first + 2
    assert seen == [("put", "py/a", 1), ("put", "py/b", {"x": [1, 2]}), ("delete", "py/a", None)]

    async def follow() -> list[tuple[str, Any]]:
        async with AsyncClient(shared_cluster.endpoints(), timeout_s=30) as aio:
            got = []
            async with aio.watch("py/b", start_revision=first) as stream:
                async for event in stream:
                    got.append((event.key, event.value))
                    if len(got) == 2:
                        break
            return got

    def write_later() -> None:
        time.sleep(1.0)
        client.put("py/b", "later")

    threading.Thread(target=write_later, daemon=True).start()
    assert asyncio.run(follow()) == [("py/b", {"x": [1, 2]}), ("py/b", "later")]


def test_the_cli_prints_changes_as_etcdctl_and_as_json(
    shared_cluster: Cluster, client: Client
) -> None:
    first = client.put("cli/w", "one")
    client.put("cli/w", {"two": 2})
    client.delete("cli/w")
    endpoints = ",".join(shared_cluster.endpoints())
    base = [sys.executable, "-m", "paxosd", "watch", "--endpoints", endpoints]
    text = subprocess.run(
        [*base, "cli/w", "--rev", str(first), "--prev-kv", "--limit", "3"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert text.splitlines() == [
        "PUT", "cli/w", "one",
        "PUT", "cli/w", "one", "cli/w", '{"two": 2}',
        "DELETE", "cli/w", '{"two": 2}', "cli/w", "",
    ]  # fmt: skip
    lines = subprocess.run(
        [*base, "--prefix", "cli/", "--rev", str(first), "--json", "--limit", "3"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert [json.loads(line)["type"] for line in lines] == ["put", "put", "delete"]


def test_a_compacted_watch_ends_with_where_to_relist(
    shared_cluster: Cluster, client: Client
) -> None:
    first = client.put("cmp/a", 1)
    now = client.put("cmp/a", 2)
    client.compact(now)
    with pytest.raises(WatchCompacted) as raised:
        for _ in client.watch("cmp/a", start_revision=first):
            pass
    assert raised.value.compact_revision == now
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "watch", "cmp/a", "--rev", str(first),
         "--endpoints", ",".join(shared_cluster.endpoints())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "compacted" in done.stderr and str(now) in done.stderr


# -- RESP: keyspace notifications -----------------------------------------------------------


def test_redis_cli_subscribes_to_keyspace_notifications(
    shared_cluster: Cluster, client: Client
) -> None:
    port = str(shared_cluster.resp_port(follower(shared_cluster)))
    listener = subprocess.Popen(
        ["redis-cli", "-p", port, "SUBSCRIBE", "__keyspace@0__:rk/a", "__keyevent@0__:del"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert [listener.stdout.readline().strip() for _ in range(6)] == [
            "subscribe", "__keyspace@0__:rk/a", "1", "subscribe", "__keyevent@0__:del", "2",
        ]  # fmt: skip
        client.put("rk/a", "v")
        client.put("rk/b", "w")  # neither channel: nothing
        client.delete("rk/a")
        got = [listener.stdout.readline().strip() for _ in range(9)]
    finally:
        listener.kill()
        listener.wait()
    messages = {tuple(got[i : i + 3]) for i in range(0, 9, 3)}
    assert messages == {
        ("message", "__keyspace@0__:rk/a", "set"),
        ("message", "__keyspace@0__:rk/a", "del"),
        ("message", "__keyevent@0__:del", "rk/a"),
    }


def test_the_redis_client_psubscribes_with_a_pattern_and_is_refused_other_channels(
    shared_cluster: Cluster, client: Client
) -> None:
    import redis

    connection = redis.Redis(port=shared_cluster.resp_port(1), protocol=2)
    pubsub = connection.pubsub()
    pubsub.psubscribe("__keyspace@0__:rp/*")
    first = pubsub.get_message(timeout=10)
    assert first is not None and first["type"] == "psubscribe"
    client.put("rp/x", 1)
    client.put("other/x", 1)
    client.delete("rp/x")
    received = []
    deadline = time.monotonic() + 20
    while len(received) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if message is not None:
            received.append((message["channel"], message["data"]))
    assert received == [(b"__keyspace@0__:rp/x", b"set"), (b"__keyspace@0__:rp/x", b"del")]
    with pytest.raises(redis.ResponseError, match="keyspace notifications"):
        connection.publish("news", "hello")
    assert connection.config_get("notify-keyspace-events") == {"notify-keyspace-events": "KEg$"}
    pubsub.close()
    connection.close()


def test_a_websocket_carries_watches_created_cancelled_and_asked_for_progress(
    shared_cluster: Cluster, client: Client
) -> None:
    import aiohttp

    node = shared_cluster.http(follower(shared_cluster))

    async def talk() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://{node}/v3/watch") as socket,
        ):

            async def receive(count: int) -> None:
                for _ in range(count):
                    message = await asyncio.wait_for(socket.receive(), 20)
                    document = json.loads(message.data)
                    got.append(document.get("result", document))

            await socket.send_str(json.dumps({"create_request": {"key": b64("ws/a")}}))
            await socket.send_str(json.dumps({"create_request": {"key": b64("ws/b")}}))
            await receive(2)
            await asyncio.to_thread(client.put, "ws/a", 1)
            await asyncio.to_thread(client.put, "ws/b", 2)
            await receive(2)
            await socket.send_str(json.dumps({"cancel_request": {"watch_id": 1}}))
            await receive(1)
            await socket.send_str(json.dumps({"progress_request": {}}))
            await receive(1)
            await socket.send_str("{not json")
            await receive(1)
        return got

    created_a, created_b, event_a, event_b, cancel, progress, error = asyncio.run(talk())
    assert created_a["created"] and "watch_id" not in created_a  # id 0, left out as etcd does
    assert created_b["created"] and created_b["watch_id"] == "1"
    assert event_a["events"][0]["kv"]["key"] == b64("ws/a") and "watch_id" not in event_a
    assert event_b["events"][0]["kv"]["key"] == b64("ws/b") and event_b["watch_id"] == "1"
    assert cancel == {**cancel, "canceled": True, "watch_id": "1"}
    assert progress["header"]["revision"] == event_b["header"]["revision"]
    assert not progress.get("events") and "watch_id" not in progress  # the one left: id 0
    assert error["error"]["grpc_code"] == 3 and "not JSON" in error["error"]["message"]


def test_many_watchers_of_one_key_on_one_websocket_each_get_every_change_with_their_id(
    shared_cluster: Cluster, client: Client
) -> None:
    import aiohttp

    watchers, writes = 300, 3
    node = shared_cluster.http(follower(shared_cluster))
    key = b64("ws/many")

    async def talk() -> dict[str, list[tuple[str, str, bool]]]:
        seen: dict[str, list[tuple[str, str, bool]]] = {}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://{node}/v3/watch") as socket,
        ):
            for _ in range(watchers):
                await socket.send_str(json.dumps({"create_request": {"key": key}}))
            created = 0
            while created < watchers:
                message = await asyncio.wait_for(socket.receive(), 20)
                created += bool(json.loads(message.data)["result"].get("created"))
            for value in range(writes):
                await asyncio.to_thread(client.put, "ws/many", value)
            events = 0  # a watcher that fell behind gets several revisions in one message
            while events < watchers * writes:
                message = await asyncio.wait_for(socket.receive(), 20)
                result = json.loads(message.data)["result"]
                for event in result["events"]:
                    kv = event["kv"]
                    seen.setdefault(result.get("watch_id", "0"), []).append(
                        (kv["mod_revision"], kv["value"], "prev_kv" in event)
                    )
                    events += 1
        return seen

    seen = asyncio.run(talk())
    assert sorted(seen, key=int) == [str(n) for n in range(watchers)]
    values = [b64(str(value)) for value in range(writes)]
    first = seen["0"]
    assert [value for _, value, _ in first] == values
    assert sorted({revision for revision, _, _ in first}, key=int) == [r for r, _, _ in first]
    assert all(changes == first for changes in seen.values())  # the same changes, in order
    assert not any(prev for _, _, prev in first)  # none asked for the previous values
