"""RESP key expiry on leases (api/resp_expire.py) through the redis Python client and
redis-cli, over RespFakeNode: the key ends when log time passes its lease, never before."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .resp_fakes import RespFakeNode, ServerThread

T = TypeVar("T")
wait_s = 30.0
REDIS_CLI = shutil.which("redis-cli")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, wait_s))


def client(port: int) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True, protocol=2)


@pytest.fixture
def node() -> RespFakeNode:
    return RespFakeNode(record=False)


@pytest.fixture
def server(node: RespFakeNode) -> Iterator[ServerThread]:
    harness = ServerThread(node)
    yield harness
    harness.close()


async def later(r: aioredis.Redis, node: RespFakeNode, ms: int) -> None:
    """Log time moves on by `ms` (the fake stamps it before the next write: one is made)."""
    node.clock_ms += ms
    await r.set("clock", str(node.clock_ms))


def test_set_ex_and_px_end_on_log_time(server: ServerThread, node: RespFakeNode) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            assert await r.set("s", "1", ex=10) is True
            assert await r.set("p", "2", px=1500) is True
            assert await r.ttl("s") == 10 and await r.pttl("p") == 1500
            assert await r.ttl("missing") == -2
            await r.set("plain", "3")
            assert await r.ttl("plain") == -1
            await later(r, node, 1499)
            assert await r.pttl("p") == 1 and await r.get("p") == "2"
            await later(r, node, 1)
            assert await r.get("p") == "2"  # the lease's last millisecond is still live
            await later(r, node, 1)
            assert await r.get("p") is None and await r.ttl("p") == -2
            assert await r.ttl("s") == 8  # 8,499 ms left, rounded to the nearest second
            await later(r, node, 8500)
            assert await r.exists("s") == 0 and await r.get("plain") == "3"

    run(go())


def test_a_plain_set_drops_the_expiry_and_keepttl_keeps_it(
    server: ServerThread, node: RespFakeNode
) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            await r.set("a", "1", px=1000)
            await r.set("b", "1", px=1000)
            await r.set("a", "2")
            assert await r.set("b", "2", keepttl=True) is True
            assert await r.set("c", "new", keepttl=True) is True  # no key: no expiry
            assert await r.ttl("a") == -1 and await r.pttl("b") == 1000
            assert await r.ttl("c") == -1
            await later(r, node, 1001)
            assert await r.mget("a", "b", "c") == ["2", None, "new"]

    run(go())


def test_set_nx_with_expiry_and_exat(server: ServerThread, node: RespFakeNode) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            assert await r.set("n", "1", nx=True, px=2000) is True
            assert await r.set("n", "2", nx=True, px=9000) is None
            assert await r.get("n") == "1" and await r.pttl("n") == 2000
            at = int(time.time()) + 100
            assert await r.set("at", "x", exat=at) is True
            assert 95 <= await r.ttl("at") <= 100
            pxat = int(time.time() * 1000) + 60_000
            assert await r.set("pat", "x", pxat=pxat) is True
            assert 55_000 <= await r.pttl("pat") <= 60_000
            with pytest.raises(ResponseError, match="shortest expiry is 600 ms"):
                await r.set("past", "x", exat=int(time.time()) - 5)
            assert await r.exists("past") == 0

    run(go())


def test_expire_persist_and_their_answers(server: ServerThread, node: RespFakeNode) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            await r.set("k", "v")
            assert await r.expire("k", 5) is True
            assert await r.ttl("k") == 5 and await r.get("k") == "v"
            assert await r.pexpire("k", 700) is True and await r.pttl("k") == 700
            assert await r.expire("missing", 5) is False
            assert await r.persist("k") is True and await r.ttl("k") == -1
            assert await r.persist("k") is False and await r.persist("missing") is False
            await later(r, node, 10_000)
            assert await r.get("k") == "v"  # persisted: no lease ends it
            assert await r.expire("k", 0) is True  # as Redis: a time <= 0 deletes
            assert await r.exists("k") == 0

    run(go())


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("SET", "k", "v", "EX", "0"), r"invalid expire time in 'set' command"),
        (("SET", "k", "v", "PX", "599"), r"shortest expiry is 600 ms"),
        (("SET", "k", "v", "EX", "9000000001"), r"^invalid expire time in 'set' command$"),
        (("SET", "k", "v", "EX"), r"^syntax error$"),
        (("SET", "k", "v", "EX", "5", "KEEPTTL"), r"^syntax error$"),
        (("SET", "k", "v", "KEEPTTL", "PX", "900"), r"^syntax error$"),
        (("SET", "k", "v", "GET"), r"SET option 'GET' is not supported"),
        (("EXPIRE", "k", "x"), r"not an integer or out of range"),
        (("EXPIRE", "k", "10", "NX"), r"EXPIRE option 'NX' is not supported"),
        (("PEXPIRE", "k", "100"), r"invalid expire time in 'pexpire' command"),
        (("TTL",), r"wrong number of arguments for 'ttl' command"),
        (("PERSIST", "a", "b"), r"wrong number of arguments for 'persist' command"),
    ],
)
def test_bad_expiry_commands_are_refused_and_change_nothing(
    server: ServerThread, node: RespFakeNode, args: tuple[str, ...], pattern: str
) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            with pytest.raises(ResponseError, match=pattern):
                await r.execute_command(*args)
            assert await r.exists("k") == 0

    run(go())
    assert server.call(lambda: len(node.machine.kv.leases)) == 0


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-tools not installed")
def test_redis_cli_sets_reads_and_clears_expiry(server: ServerThread, node: RespFakeNode) -> None:
    def cli(*args: str) -> str:
        assert REDIS_CLI is not None
        return subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(server.port), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    assert cli("SET", "session:1", "alice", "EX", "30") == "OK\n"
    assert cli("TTL", "session:1") == "30\n"
    assert cli("PEXPIRE", "session:1", "2000") == "1\n"
    assert cli("PTTL", "session:1") == "2000\n"
    assert cli("PERSIST", "session:1") == "1\n"
    assert cli("TTL", "session:1") == "-1\n"
    assert cli("EXPIRE", "session:1", "1") == "1\n"
    node.clock_ms += 1001
    assert cli("SET", "tick", "1") == "OK\n"  # a write: the fake stamps the new log time
    assert cli("GET", "session:1") == "\n" and cli("TTL", "session:1") == "-2\n"
