"""RESP over many keys - SCAN, KEYS, MULTI/EXEC/DISCARD, WATCH/UNWATCH, REVISION, GETMETA -
through the redis Python client, redis-cli and raw sockets, over RespFakeNode."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ExecAbortError, ResponseError, WatchError

from paxosd.api.resp_kv import _cursor, _cursor_of, _pattern, keys_max
from paxosd.service.kv.types import Put as KvPut
from tests.mvcc_store import needs_store

from .resp_fakes import RespFakeNode, ServerThread

T = TypeVar("T")
wait_s = 30.0
REDIS_CLI = shutil.which("redis-cli")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, wait_s))


def client(port: int, **options: Any) -> aioredis.Redis:
    options.setdefault("protocol", 2)
    return aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True, **options)


@pytest.fixture
def node() -> RespFakeNode:
    return RespFakeNode(record=False)


@pytest.fixture
def server(node: RespFakeNode) -> Iterator[ServerThread]:
    harness = ServerThread(node)
    yield harness
    harness.close()


def raw(port: int, data: bytes, *, replies: int, close: bool = True) -> bytes:
    """Send `data`, read until `replies` replies arrived (counted by their first byte lines)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + wait_s
        while received.count(b"\r\n") < replies and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


# ---------------------------------------------------------------------------------------------
# Cursors and patterns


@pytest.mark.parametrize("key", [b"a", b"\x00\x00k", b"\xff" * 1024, "é".encode()])
def test_cursors_name_the_next_key(key: bytes) -> None:
    cursor = _cursor_of(key).decode()
    assert cursor.isdigit() and cursor != "0"
    assert _cursor(cursor) == key


@pytest.mark.parametrize("text", ["-1", "x", "1.5", "2", "255", "9" * 3000])
def test_bad_cursors(text: str) -> None:
    assert _cursor(text) is None


def test_patterns() -> None:
    assert _pattern("user:*") == (b"user:", b"user;")
    assert _pattern("*") == (b"\0", b"\0")
    assert _pattern("exact") == (b"exact", b"")
    assert _pattern("a\\*b*") == (b"a*b", b"a*c")
    for unsupported in ("a*b", "?x", "[ab]*", "*a", "a\\", ""):
        assert _pattern(unsupported) is None


# ---------------------------------------------------------------------------------------------
# Refusals that need no store


def test_multi_protocol_errors(server: ServerThread) -> None:
    async def go() -> None:
        r = client(server.port)
        assert await r.execute_command("MULTI") == "OK"
        with pytest.raises(ResponseError, match="nested"):
            await r.execute_command("MULTI")
        with pytest.raises(ResponseError, match="WATCH inside MULTI"):
            await r.execute_command("WATCH", "k")
        assert await r.execute_command("DISCARD") == "OK"
        with pytest.raises(ResponseError, match="EXEC without MULTI"):
            await r.execute_command("EXEC")
        with pytest.raises(ResponseError, match="DISCARD without MULTI"):
            await r.execute_command("DISCARD")
        with pytest.raises(ResponseError, match="invalid cursor"):
            await r.execute_command("SCAN", "abc")
        with pytest.raises(ResponseError, match="prefix with one trailing"):
            await r.execute_command("KEYS", "a*b")
        with pytest.raises(ResponseError, match="COUNT"):
            await r.execute_command("SCAN", "0", "COUNT", "0")
        await r.aclose()

    run(go())


def test_a_doomed_block_applies_nothing(server: ServerThread, node: RespFakeNode) -> None:
    async def go() -> None:
        r = client(server.port)
        assert await r.execute_command("MULTI") == "OK"
        assert await r.execute_command("GET", "k") == "QUEUED"
        await r.execute_command("MSET", "k", "v")  # (redis-py reads QUEUED as False here)
        with pytest.raises(ResponseError, match="cannot be queued in MULTI"):
            await r.execute_command("LOCK", "l", "me", "1000")
        with pytest.raises(ResponseError, match="unknown command"):
            await r.execute_command("INCR", "k")
        with pytest.raises(ResponseError, match="wrong number of arguments"):
            await r.execute_command("GET")
        with pytest.raises(ExecAbortError):
            await r.execute_command("EXEC")
        assert await r.execute_command("ECHO", "out") == "out"  # out of MULTI again
        await r.aclose()

    run(go())
    assert node.slot == 0  # nothing reached the log


def test_an_unterminated_multi_applies_nothing(server: ServerThread, node: RespFakeNode) -> None:
    got = raw(
        server.port,
        b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
        replies=2,
    )
    assert got == b"+OK\r\n+QUEUED\r\n"
    time.sleep(0.2)  # the server has seen the connection close
    assert node.slot == 0


# ---------------------------------------------------------------------------------------------
# With the store


@needs_store
def test_scan_and_keys(server: ServerThread) -> None:
    async def go() -> None:
        r = client(server.port)
        names = [f"user:{i:03d}" for i in range(25)] + ["other", "userx"]
        await r.mset({name: "1" for name in names})
        seen: list[str] = []
        cursor: int | str = 0
        pages = 0
        while True:
            cursor, keys = await r.scan(cursor=cursor, match="user:*", count=10)
            seen += keys
            pages += 1
            if int(cursor) == 0:
                break
        assert seen == [f"user:{i:03d}" for i in range(25)] and pages == 3
        assert [k async for k in r.scan_iter(match="*", count=7)] == sorted(names)
        assert await r.keys("user:00*") == [f"user:00{i}" for i in range(10)]
        assert await r.keys("other") == ["other"]
        assert await r.keys("nothing*") == []
        assert await r.scan(0, match="other") == (0, ["other"])
        assert await r.execute_command("SCAN", "0", "TYPE", "hash") == (0, [])
        await r.aclose()

    run(go())


@needs_store
def test_keys_is_bounded(server: ServerThread, node: RespFakeNode) -> None:
    for i in range(keys_max + 1):
        node._write(KvPut(key=b"k%05d" % i, value=b"1"), None, None)

    async def go() -> None:
        r = client(server.port)
        with pytest.raises(ResponseError, match="keys_max = 10000; use SCAN"):
            await r.keys("k*")
        assert len(await r.keys("k0*")) == 10_000
        await r.aclose()

    run(go())


@needs_store
def test_multi_exec_is_one_revision(server: ServerThread) -> None:
    async def go() -> None:
        r = client(server.port)
        await r.set("pre", "0")
        before = await r.execute_command("REVISION")
        async with r.pipeline(transaction=True) as pipe:
            pipe.set("a", "1").set("b", "2").get("a").mget("a", "b", "c").exists("a", "c")
            pipe.execute_command("REVISION").delete("zz").set("c", "3", nx=True)
            pipe.execute_command("SETNX", "pre", "9")
            results = await pipe.execute()
        assert results[:5] == [True, True, "1", ["1", "2", None], 1]
        assert results[5] == before + 1 and results[6] == 0
        assert results[7] is True and results[8] == 0
        assert await r.execute_command("REVISION") == before + 1
        meta = await r.execute_command("GETMETA", "a")
        assert meta == ["1", before + 1, before + 1, 1, 0]
        old = await r.execute_command("GETMETA", "a", str(before))
        assert old is None
        await r.aclose()

    run(go())


@needs_store
def test_watch(server: ServerThread) -> None:
    async def go() -> None:
        r, other = client(server.port), client(server.port)
        await r.set("balance", "10")
        async with r.pipeline(transaction=True) as pipe:
            await pipe.watch("balance")
            balance = int(await pipe.get("balance"))
            pipe.multi()
            pipe.set("balance", str(balance - 3))
            assert await pipe.execute() == [True]
        async with r.pipeline(transaction=True) as pipe:
            await pipe.watch("balance", "absent")
            await other.set("balance", "100")  # someone else writes in between
            pipe.multi()
            pipe.set("balance", "0")
            with pytest.raises(WatchError):
                await pipe.execute()
        assert await r.get("balance") == "100"
        # UNWATCH forgets; EXEC ends the watches.
        assert await r.execute_command("WATCH", "balance") is True  # redis-py's reading of OK
        assert await r.execute_command("UNWATCH") is True
        await other.set("balance", "5")
        assert await r.execute_command("MULTI") == "OK"
        await r.execute_command("GET", "balance")
        assert await r.execute_command("EXEC") == ["5"]
        await r.aclose()
        await other.aclose()

    run(go())


@needs_store
def test_exec_refuses_a_key_written_twice(server: ServerThread) -> None:
    async def go() -> None:
        r = client(server.port)
        assert await r.execute_command("MULTI") == "OK"
        await r.execute_command("SET", "k", "1")
        await r.execute_command("DEL", "k")
        with pytest.raises(ExecAbortError, match="duplicate_key"):
            await r.execute_command("EXEC")
        assert await r.get("k") is None
        await r.aclose()

    run(go())


@needs_store
def test_values_of_other_interfaces(server: ServerThread, node: RespFakeNode) -> None:
    node._write(KvPut(key=b"raw", value=b"\xff\x00"), None, None)
    node._write(KvPut(key=b"json", value=b"[1,2]"), None, None)

    async def go() -> None:
        r = aioredis.Redis(host="127.0.0.1", port=server.port, protocol=2)
        assert await r.execute_command("MULTI") == b"OK"
        await r.execute_command("GET", "raw")
        await r.execute_command("GET", "json")
        answer = await r.execute_command("EXEC")
        assert answer == [b"\xff\x00", b"[1,2]"]  # the bytes as stored, as GET answers
        await r.aclose()

    run(go())


@needs_store
@pytest.mark.skipif(REDIS_CLI is None, reason="redis-tools not installed")
def test_redis_cli_multi_and_scan(server: ServerThread) -> None:
    assert REDIS_CLI is not None
    script = "MULTI\nSET x 1\nSET y 2\nEXEC\nSCAN 0 MATCH * COUNT 10\nREVISION\n"
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(server.port)],
        input=script,
        capture_output=True,
        text=True,
        timeout=wait_s,
        check=True,
    )
    assert done.stdout.split() == ["OK", "QUEUED", "QUEUED", "OK", "OK", "0", "x", "y", "2"]
