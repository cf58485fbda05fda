"""The RESP front end, through the redis Python client (redis.asyncio) and raw sockets.

Every test runs `serve_resp` on 127.0.0.1 with an ephemeral port over `RespFakeNode`, in a
background event loop (`ServerThread`), and stops it at the end. The framing itself is tested
with bytes alone in test_resp_wire.py; the cost per command is measured by
bench/resp_micro.py.
"""

from __future__ import annotations

import asyncio
import random
import resource
import socket
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import hiredis
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from paxosd.api.resp import RespLimits, close_resp_clients
from paxosd.api.resp_commands import COMMANDS, result_error_reply
from paxosd.runtime.errors import BadRequest, Damaged, NotLeader, Overloaded, Unavailable
from paxosd.service import Error as ResultError
from paxosd.service.kv import Put, Range

from .resp_fakes import LOOP_KINDS, RespFakeNode, ServerThread

T = TypeVar("T")

# How long one test waits for the server, in seconds.
wait_s = 30.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, wait_s))


def client(port: int, **options: Any) -> aioredis.Redis:
    options.setdefault("protocol", 2)
    # No retries: redis-py retries connection-level errors (AUTH, max clients) with backoff,
    # which would only slow the tests that provoke them.
    options.setdefault("retry", Retry(NoBackoff(), 0))
    return aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True, **options)


def command(*words: bytes | str) -> bytes:
    """One command in RESP framing."""
    raw = [word.encode() if isinstance(word, str) else word for word in words]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in raw)


def exchange(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send `data`, optionally half-close, and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def replies(data: bytes) -> list[Any]:
    """Every reply in `data`; fails the test if the server wrote anything that is not RESP."""
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    while (reply := reader.gets()) is not False:
        out.append(reply)
    assert not reader.has_data(), f"trailing bytes in server output: {data[-80:]!r}"
    return out


def ping_works(port: int) -> bool:
    async def go() -> bool:
        async with client(port) as r:
            return bool(await r.ping())

    return run(go())


@pytest.fixture
def resp_node() -> RespFakeNode:
    return RespFakeNode()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(resp_node: RespFakeNode, loop_kind: str) -> Iterator[ServerThread]:
    harness = ServerThread(resp_node, loop_kind=loop_kind)
    yield harness
    harness.close()


def limited_server(node: RespFakeNode, loop_kind: str, **limits: int) -> ServerThread:
    return ServerThread(node, RespLimits(**limits), loop_kind=loop_kind)


# ---------------------------------------------------------------------------------------------
# Commands


@pytest.mark.parametrize("protocol", [2, 3])
def test_kv_commands(server: ServerThread, protocol: int) -> None:
    async def go() -> None:
        async with client(server.port, protocol=protocol) as r:
            assert await r.get("k") is None
            assert await r.set("k", "v1") is True
            assert await r.get("k") == "v1"
            assert await r.execute_command("gEt", "k") == "v1"  # names are case-insensitive
            assert await r.set("k", "v2", nx=True) is None
            assert await r.set("n", "x", nx=True) is True
            assert await r.setnx("n", "y") is False
            assert await r.setnx("m", "y") is True
            assert await r.exists("k", "n", "nope", "k") == 3
            assert await r.exists("nope") == 0
            assert await r.mget("k", "nope", "m") == ["v1", None, "y"]
            assert await r.mset({"a": "1", "b": "2"}) is True
            assert await r.get("b") == "2"
            assert await r.delete("a", "b", "nope") == 2
            assert await r.delete("k") == 1
            assert await r.delete("k") == 0
            assert await r.set("unicode", "Grüße ✓") is True
            assert await r.get("unicode") == "Grüße ✓"
            assert await r.set("empty", "") is True
            assert await r.get("empty") == ""

    run(go())


def test_values_are_the_bytes_sent(server: ServerThread, resp_node: RespFakeNode) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            await r.set("k", "42")

    run(go())
    assert server.call(lambda: resp_node.stored("k")) == "42"  # the bytes b"42"


def test_cas(server: ServerThread) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            assert await r.execute_command("CAS", "k", "a", "b") == [0, None]
            assert await r.execute_command("CASNX", "k", "a") == [1, "a"]
            assert await r.execute_command("CASNX", "k", "z") == [0, "a"]
            assert await r.execute_command("CAS", "k", "x", "b") == [0, "a"]
            assert await r.execute_command("CAS", "k", "a", "b") == [1, "b"]
            assert await r.get("k") == "b"

    run(go())


def test_locks(server: ServerThread, resp_node: RespFakeNode) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            acquired = await r.execute_command("LOCK", "job", "alice", "5000")
            assert acquired == [1, "alice", 1, 5000]
            assert await r.execute_command("LOCK", "job", "bob", 5000) == [0, "alice", 1, 5000]
            status = await r.execute_command("LOCKSTATUS", "job")
            assert status == [1, "alice", 1, 5000]
            with pytest.raises(ResponseError, match=r"^NOTHOLDER 'bob' does not hold lock"):
                await r.execute_command("UNLOCK", "job", "bob")
            with pytest.raises(ResponseError, match="does not hold"):
                await r.execute_command("REFRESH", "job", "bob", 5000)
            server.call(lambda: setattr(resp_node, "clock_ms", 1_002_000))
            refreshed = await r.execute_command("REFRESH", "job", "alice", 5000)
            assert refreshed == [1, "alice", 1, 5000]
            assert await r.execute_command("UNLOCK", "job", "alice") == 1
            assert await r.execute_command("UNLOCK", "job", "alice") == 0  # already free
            assert await r.execute_command("LOCKSTATUS", "job") == [0, None, None, None]
            # A new grant gets a higher fencing token.
            assert (await r.execute_command("LOCK", "job", "bob", 100))[2] == 2
            # Leases expire on log time.
            server.call(lambda: setattr(resp_node, "clock_ms", 1_010_000))
            assert (await r.execute_command("LOCK", "job", "carol", 100))[:3] == [1, "carol", 3]

    run(go())


def test_lock_errors_use_notholder(server: ServerThread) -> None:
    data = exchange(server.port, command("UNLOCK", "free", "bob"))
    assert data.startswith(b"-NOTHOLDER 'bob' does not hold lock 'free'")


def test_names_and_decisions(server: ServerThread) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            assert await r.execute_command("LOOKUP", "svc") is None
            assert await r.execute_command("REGISTER", "svc", "alice") == [1, "alice"]
            assert await r.execute_command("REGISTER", "svc", "bob") == [0, "alice"]
            assert await r.execute_command("REGISTER", "svc", "alice") == [1, "alice"]
            assert await r.execute_command("LOOKUP", "svc") == "alice"
            assert await r.execute_command("QUERY", "d") is None
            assert await r.execute_command("PROPOSE", "d", "v1") == "v1"
            assert await r.execute_command("PROPOSE", "d", "v2") == "v1"
            assert await r.execute_command("QUERY", "d") == "v1"

    run(go())


def test_connection_commands(server: ServerThread) -> None:
    async def go() -> None:
        async with client(server.port) as r:
            assert await r.ping() is True
            assert await r.echo("echo me") == "echo me"
            assert await r.execute_command("SELECT", "0") is True
            assert await r.execute_command("SELECT", "00") is True
            with pytest.raises(ResponseError, match="DB index is out of range"):
                await r.execute_command("SELECT", "1")
            assert await r.client_setname("worker-1") is True
            assert await r.client_getname() == "worker-1"
            with pytest.raises(ResponseError, match="cannot contain spaces"):
                await r.client_setname("has space")
            client_id = await r.client_id()
            info = await r.client_info()
            assert info["id"] == client_id and info["name"] == "worker-1"
            assert len(str(info["paxosd-client-id"])) == 32
            assert await r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "x") == "OK"
            assert await r.command_count() == len(COMMANDS)
            assert await r.config_get("save") == {"save": ""}
            assert await r.config_get("appendonly") == {"appendonly": "yes"}
            assert set(await r.config_get("*")) >= {"save", "appendonly"}
            server_info = await r.info()
            assert server_info["role"] == "leader"
            assert server_info["leader"] == 1
            assert server_info["tcp_port"] == server.port
            assert "paxosd_version" in server_info
            with pytest.raises(ResponseError, match="DBSIZE is not supported"):
                await r.dbsize()
            hello = await r.execute_command("HELLO", "2")
            assert dict(zip(hello[::2], hello[1::2], strict=True))["server"] == "paxosd"
            with pytest.raises(ResponseError, match="NOPROTO"):
                await r.execute_command("HELLO", "4")
            with pytest.raises(AuthenticationError, match="without any password configured"):
                await r.execute_command("AUTH", "secret")
            assert await r.execute_command("AUTH", "default", "anything") is True
            assert await r.execute_command("RESET") == "RESET"
            assert await r.client_getname() is None

    run(go())
    # redis-py's COMMAND callbacks expect Redis's full tables: look at the raw replies.
    got = replies(
        exchange(
            server.port,
            command("COMMAND", "DOCS")
            + command("COMMAND", "LIST")
            + command("COMMAND", "INFO", "get")
            + command("PING", "hello"),
        )
    )
    assert got[0] == [] and b"lockstatus" in got[1] and got[2] == [None] and got[3] == b"hello"


def test_resp3_default_client(server: ServerThread) -> None:
    """redis-py 8 speaks RESP3 by default (HELLO 3); it must work without options."""

    async def go() -> None:
        async with aioredis.Redis(host="127.0.0.1", port=server.port) as r:
            assert await r.set("k", "v") is True
            assert await r.get("k") == b"v"
            assert await r.get("nope") is None
            assert await r.mget("k", "nope") == [b"v", None]
            assert await r.config_get("save") == {"save": ""}
            assert await r.execute_command("LOCKSTATUS", "free") == [0, None, None, None]
            assert await r.client_info()

    run(go())
    assert replies(exchange(server.port, command("HELLO", "3") + command("GET", "nope")))[1:] == [
        None
    ]


def test_quit_answers_then_closes(server: ServerThread, resp_node: RespFakeNode) -> None:
    data = exchange(
        server.port, command("QUIT") + command("SET", "after", "quit"), half_close=False
    )
    assert data == b"+OK\r\n"
    assert not any(call.op == Put(key=b"after", value=b"quit") for call in resp_node.calls)


def test_inline_commands(server: ServerThread) -> None:
    data = exchange(server.port, b"PING\r\nSET a b\r\nget  a\n\r\nECHO x\r\nPING hi\r\n")
    assert replies(data) == [b"PONG", b"OK", b"b", b"x", b"hi"]


def test_http_on_the_resp_port_is_dropped(server: ServerThread) -> None:
    request = b"POST / HTTP/1.1\r\nHost: example\r\n\r\nSET a b\r\n"
    assert exchange(server.port, request, half_close=False) == b""
    assert exchange(server.port, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", half_close=False) == (
        b"-ERR wrong number of arguments for 'get' command\r\n"
    )
    assert ping_works(server.port)


def test_empty_command_is_ignored(server: ServerThread) -> None:
    assert replies(exchange(server.port, b"*0\r\n" + command("PING"))) == [b"PONG"]


# ---------------------------------------------------------------------------------------------
# Error replies


def test_error_replies(server: ServerThread, resp_node: RespFakeNode) -> None:
    server.call(lambda: resp_node.put_raw("json", b'{"a":1}'))  # as /v1 stores {"a": 1}

    async def go() -> None:
        async with client(server.port) as r:
            cases: list[tuple[tuple[Any, ...], str]] = [
                (("NOSUCH", "a", "b"), r"^unknown command 'NOSUCH', with args beginning with: 'a'"),
                (("GET",), r"^wrong number of arguments for 'get' command$"),
                (("GET", "a", "b"), r"wrong number of arguments for 'get' command"),
                (("MSET", "a", "1", "b"), r"wrong number of arguments for 'mset' command"),
                (("SET", "k", "v", "XX"), r"SET option 'XX' is not supported by paxosd"),
                (("SET", "k", "v", "EX", "ten"), r"not an integer or out of range"),
                (("SET", "k", "v", "PX", "10"), r"shortest expiry is 600 ms"),
                (("SET", "k", "v", "EX", "1", "PX", "900"), r"^syntax error$"),
                (("SET", "k", "v", "BOGUS"), r"^syntax error$"),
                (("LOCK", "l", "me", "soon"), r"not an integer or out of range"),
                (("LOCK", "l", "me", "-5"), r"not an integer or out of range"),
                (("LOCK", "l", "me", "5"), r"LockAcquire.ttl_ms: 5 is outside"),
                (("SET", "", "v"), r"Put.key is empty"),
                (("SET", "k" * 2000, "v"), r"Put.key is 2000 bytes, more than 1024"),
                (("DEL", "ok", ""), r"DeleteRange.key is empty"),
                (("CLIENT", "KILL", "x"), r"CLIENT KILL is not supported"),
                (("CONFIG", "SET", "save", ""), r"CONFIG SET is not supported"),
            ]
            for args, pattern in cases:
                with pytest.raises(ResponseError, match=pattern):
                    await r.execute_command(*args)
            assert await r.get("json") == '{"a":1}'  # a value is its bytes, whoever wrote it
            # A bad key in a multi-key command refuses it whole.
            assert await r.set("ok", "1")
            assert await r.get("ok") == "1"

    run(go())


def test_keys_and_values_are_binary_safe(server: ServerThread) -> None:
    """Any bytes, UTF-8 or not, are stored and read back exactly, as Redis does."""
    data = exchange(
        server.port,
        command("SET", "k", b"\xff\xfe\x00v")
        + command("SET", b"\xc3", b"\x80\xc3")
        + command("GET", "k")
        + command("GET", b"\xc3")
        + command("MGET", b"\xc3", "k", "missing")
        + command("EXISTS", b"\xc3", "k", "missing"),
    )
    got = replies(data)
    assert got[:4] == [b"OK", b"OK", b"\xff\xfe\x00v", b"\x80\xc3"]
    assert got[4] == [b"\x80\xc3", b"\xff\xfe\x00v", None]
    assert got[5] == 2


NODE_ERRORS: list[tuple[BaseException, bool, bytes]] = [
    (NotLeader("not the leader", leader=2), True, b"-NOTLEADER leader=2 127.0.0.1:6402 "),
    (NotLeader("no leader known"), False, b"-NOTLEADER leader=none - no leader known"),
    (Unavailable("timed out"), True, b"-UNKNOWN outcome unknown: timed out; the write may"),
    (Unavailable("timed out"), False, b"-TRYAGAIN no answer in time: timed out;"),
    (Overloaded("too many writes"), True, b"-BUSY overloaded: too many writes"),
    (BadRequest("bad thing"), True, b"-ERR bad thing\r\n"),
    (Damaged("checksum"), False, b"-DAMAGED checksum"),
    (RuntimeError("bug"), True, b"-ERR internal error: RuntimeError\r\n"),
]


@pytest.mark.parametrize(("failure", "write", "expected"), NODE_ERRORS)
def test_node_errors_become_error_replies(
    server: ServerThread,
    resp_node: RespFakeNode,
    failure: BaseException,
    write: bool,
    expected: bytes,
) -> None:
    resp_node.fail = failure
    request = command("SET", "k", "v") if write else command("GET", "k")
    data = exchange(server.port, request + command("PING"))
    assert data.startswith(expected)
    assert data.endswith(b"+PONG\r\n")  # the connection goes on
    with_many = command("DEL", "a", "b") if write else command("MGET", "a", "b")
    assert exchange(server.port, with_many).startswith(expected)


def test_result_errors() -> None:
    stale = result_error_reply(ResultError(code="stale_request", message="seq 1 < 2"), True)
    assert stale.startswith(b"-UNKNOWN outcome unknown: stale request (seq 1 < 2)")
    mismatch = result_error_reply(ResultError(code="request_mismatch", message="seq 3"), True)
    assert mismatch.startswith(b"-ERR request_mismatch: seq 3; ")
    assert b"was not applied" in mismatch and mismatch.endswith(b"\r\n")
    other = result_error_reply(ResultError(code="bad_command", message="x\r\ny"), True)
    assert other == b"-ERR bad_command: x  y\r\n"  # one line, whatever the message holds


# ---------------------------------------------------------------------------------------------
# Pipelining, ordering and exactly-once identity


@pytest.mark.parametrize("mode", ["late answers", "late commits"])
def test_pipeline_of_1000_mixed_commands_answers_in_order(
    server: ServerThread, resp_node: RespFakeNode, mode: str
) -> None:
    # "late answers": writes take effect at once but answer after random delays, reads answer
    # at once, so answers complete out of order and the FIFO must put them back in order.
    # "late commits": writes take effect only when they answer, as with a real node, so a read
    # sent right after a write would miss it unless the connection keeps program order.
    rng = random.Random(7)
    delays = random.Random(8)
    if mode == "late answers":
        resp_node.write_delay = lambda: delays.uniform(0.0, 0.005)
    else:
        resp_node.commit_delay_s = 0.002
    keys = [f"key{i}" for i in range(8)]
    model: dict[str, str] = {}
    commands: list[tuple[Any, ...]] = []
    expected: list[Any] = []
    for i in range(1000):
        key, other = rng.choice(keys), rng.choice(keys)
        kind = rng.randrange(8)
        value = f"v{i}"
        if kind == 0:
            commands.append(("SET", key, value))
            expected.append(True)
            model[key] = value
        elif kind == 1:
            commands.append(("GET", key))
            expected.append(model.get(key))
        elif kind == 2:
            commands.append(("DEL", key, other))
            expected.append(sum(k in model for k in {key, other}))
            model.pop(key, None)
            model.pop(other, None)
        elif kind == 3:
            commands.append(("EXISTS", key, other))
            expected.append((key in model) + (other in model))
        elif kind == 4:
            current = model.get(key)
            guess = current if rng.random() < 0.5 and current is not None else "nope"
            commands.append(("CAS", key, guess, value))
            if current is not None and guess == current:
                model[key] = value
                expected.append([1, value])
            else:
                expected.append([0, current])
        elif kind == 5:
            commands.append(("SETNX", key, value))
            expected.append(1 if key not in model else 0)
            model.setdefault(key, value)
        elif kind == 6:
            commands.append(("MGET", key, other))
            expected.append([model.get(key), model.get(other)])
        else:
            commands.append(("PING",))
            expected.append(True)

    async def go() -> list[Any]:
        async with client(server.port) as r:
            pipe = r.pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            return list(await pipe.execute())

    got = run(go())
    got = [1 if g is True and e == 1 else g for g, e in zip(got, expected, strict=True)]
    assert got == expected


def test_a_pipeline_reads_its_own_writes_in_program_order(
    server: ServerThread, resp_node: RespFakeNode
) -> None:
    resp_node.commit_delay_s = 0.005

    async def go() -> list[Any]:
        async with client(server.port) as r:
            pipe = r.pipeline(transaction=False)
            for args in [
                ("SET", "k", "1"),
                ("GET", "k"),
                ("SET", "k", "2"),
                ("GET", "k"),
                ("EXISTS", "k"),
                ("DEL", "k"),
                ("GET", "k"),
                ("SET", "a", "x"),
                ("SET", "b", "y"),
                ("MGET", "a", "b"),
            ]:
                pipe.execute_command(*args)
            return list(await pipe.execute())

    assert run(go()) == [True, "1", True, "2", 1, 1, None, True, True, ["x", "y"]]


def test_runs_of_one_kind_stay_concurrent(server: ServerThread, resp_node: RespFakeNode) -> None:
    resp_node.commit_delay_s = 0.05  # 200 writes one after another would take 10 s

    async def go() -> float:
        async with client(server.port) as r:
            pipe = r.pipeline(transaction=False)
            for i in range(200):
                pipe.set(f"k{i}", str(i))
            for i in range(200):
                pipe.get(f"k{i}")
            started = time.monotonic()
            got = await pipe.execute()
            assert got == [True] * 200 + [str(i) for i in range(200)]
            return time.monotonic() - started

    assert run(go()) < 2.0


def test_writes_carry_a_connection_id_and_increasing_seq(
    server: ServerThread, resp_node: RespFakeNode
) -> None:
    async def go() -> None:
        async with client(server.port) as one, client(server.port) as two:
            for i in range(5):
                await one.set("a", str(i))
                await one.get("a")
                await two.set("b", str(i))
            await one.delete("a", "x")  # two ops, two sequence numbers

    run(go())
    writes = [call for call in resp_node.calls if not isinstance(call.op, Range)]
    reads = [call for call in resp_node.calls if isinstance(call.op, Range)]
    assert all(call.client_id is None and call.seq is None for call in reads)
    ids = {call.client_id for call in writes}
    assert len(ids) == 2 and all(len(cid or "") == 32 for cid in ids)
    for cid in ids:
        seqs = [call.seq for call in writes if call.client_id == cid]
        assert seqs == list(range(1, len(seqs) + 1))


# ---------------------------------------------------------------------------------------------
# Hostile and broken input


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    garbage=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from([b"*", b"*1\r\n$", b"$"]),
            st.binary(max_size=100),
        ),
        st.lists(
            st.sampled_from([b"*", b"$", b"\r\n", b"3", b"-1", b"99999999999", b"GET", b"\xff"]),
            max_size=30,
        ).map(b"".join),
    )
)
def test_garbage_never_breaks_the_server(server: ServerThread, garbage: bytes) -> None:
    data = exchange(server.port, garbage)
    replies(data)  # whatever the server wrote is well-formed RESP
    assert ping_works(server.port)


# Every framing error is in test_resp_wire.py; these check the connection end to end: the
# error reply after the replies before it, no memory reserved, the port still answering.
@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"*1\r\n$2147483647\r\n", b"-ERR Protocol error: bulk of 2147483647 bytes is too large"),
        (b"*2147483647\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n*1\r\n$4\r\nPING\r\n", b"expected '$', got '*'"),
    ],
)
def test_bad_headers_get_a_protocol_error_at_once(
    server: ServerThread, request_bytes: bytes, expected: bytes
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # No half-close: the answer must come from the header alone, without waiting for the body.
    data = exchange(server.port, command("PING") + request_bytes, half_close=False)
    assert data.startswith(b"+PONG\r\n-ERR Protocol error: ")
    assert expected in data
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024, f"memory grew by {grown_kib} KiB"
    assert ping_works(server.port)


def test_the_wire_takes_a_little_more_than_a_value_can_hold_and_calls_more_too_large(
    server: ServerThread,
) -> None:
    """A value just over the state machine's limit is refused for that command only; a bulk
    past the wire's limit (which is only a little larger) is "too large", not "invalid"."""
    from paxosd.api.limits import RespLimits
    from paxosd.service import value_bytes_max

    wire_max = RespLimits().bulk_bytes_max
    assert value_bytes_max < wire_max <= value_bytes_max * 1.1
    over_value = command("SET", "k", "v" * (value_bytes_max + 1)) + command("PING")
    answers = replies(exchange(server.port, over_value))
    assert isinstance(answers[0], hiredis.ReplyError) and answers[1] == b"PONG"
    over_wire = exchange(server.port, command("SET", "k", "v" * (wire_max + 1)), half_close=False)
    expected = f"bulk of {wire_max + 1} bytes is too large (at most {wire_max})"
    assert over_wire == f"-ERR Protocol error: {expected}\r\n".encode()


def test_limits_are_enforced(loop_kind: str) -> None:
    node = RespFakeNode()
    harness = limited_server(
        node,
        loop_kind,
        bulk_bytes_max=1000,
        command_bytes_max=1500,
        command_args_max=4,
        inline_bytes_max=64,
    )
    try:
        port = harness.port
        assert replies(exchange(port, command("SET", "k", "v" * 1000))) == [b"OK"]
        too_big = exchange(port, command("SET", "k", "v" * 1001), half_close=False)
        assert too_big == b"-ERR Protocol error: bulk of 1001 bytes is too large (at most 1000)\r\n"
        too_much = exchange(port, command("MSET", "a", "v" * 800, "b", "v" * 800))
        assert too_much == b"-ERR Protocol error: invalid multibulk length\r\n"
        too_long = exchange(port, command("SET", "k" * 600, "v" * 1000), half_close=False)
        assert too_long == b"-ERR Protocol error: command too large\r\n"
        inline = exchange(port, b"PING " + b"x" * 100, half_close=False)
        assert inline == b"-ERR Protocol error: too big inline request\r\n"
        assert ping_works(port)
    finally:
        harness.close()


# ---------------------------------------------------------------------------------------------
# Flow control


def test_pending_replies_pause_reading(resp_node: RespFakeNode, loop_kind: str) -> None:
    harness = limited_server(resp_node, loop_kind, pending_replies_max=50)
    try:
        resp_node.hold = True  # no write answers until release()
        with socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s) as sock:
            sock.sendall(b"".join(command("SET", f"k{i}", str(i)) for i in range(2000)))
            deadline = time.monotonic() + wait_s
            while len(resp_node.calls) < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            assert len(resp_node.calls) == 50  # commands wait in the reader, not in the node
            harness.call(resp_node.release)
            data = b""
            while data.count(b"\r\n") < 2000:
                chunk = sock.recv(65536)
                assert chunk, "connection closed early"
                data += chunk
        assert data == b"+OK\r\n" * 2000
        assert len(resp_node.calls) == 2000
    finally:
        harness.close()


def test_a_client_that_does_not_read_is_throttled(
    server: ServerThread, resp_node: RespFakeNode
) -> None:
    value = "v" * 65536
    server.call(lambda: resp_node.put_raw("big", value.encode()))
    count = 3000  # ~200 MB of replies if the server rendered them all at once
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(command("GET", "big") * count)
        time.sleep(0.5)
        assert len(resp_node.calls) < count / 2  # reading paused on the write buffer
        expected = len(b"$65536\r\n" + value.encode() + b"\r\n") * count
        received = 0
        while received < expected:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed early"
            received += len(chunk)
        assert received == expected
    assert len(resp_node.calls) == count


def test_max_connections(resp_node: RespFakeNode, loop_kind: str) -> None:
    harness = limited_server(resp_node, loop_kind, connections_max=2)

    async def go() -> None:
        async with client(harness.port) as one, client(harness.port) as two:
            assert await one.ping() and await two.ping()
            async with client(harness.port) as three:
                with pytest.raises(RedisConnectionError, match="max number of clients"):
                    await three.ping()

    try:
        run(go())
        assert ping_works(harness.port)  # the slots are free again
    finally:
        harness.close()


def test_at_the_connection_cap_new_connections_are_refused_and_old_ones_served(
    resp_node: RespFakeNode, loop_kind: str
) -> None:
    cap = 20
    harness = limited_server(resp_node, loop_kind, connections_max=cap)
    opened: list[socket.socket] = []
    try:
        for _ in range(cap):
            sock = socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s)
            opened.append(sock)
            sock.sendall(command("PING"))
            assert sock.recv(100) == b"+PONG\r\n"  # accepted and counted before the next
        # Over the cap: the error, then the server closes, whatever the client sent.
        refused = exchange(harness.port, command("SET", "k", "v"), half_close=False)
        assert refused == b"-ERR max number of clients reached\r\n"
        assert harness.call(lambda: resp_node.stored("k")) is None
        for i, sock in enumerate(opened):  # every old connection is still served
            sock.sendall(command("SET", f"k{i}", "v"))
            assert sock.recv(100) == b"+OK\r\n"
        opened.pop().close()  # one slot frees: a new connection is served again
        deadline = time.monotonic() + wait_s
        while replies(exchange(harness.port, command("PING"))) != [b"PONG"]:
            assert time.monotonic() < deadline, "the freed slot was never reused"
            time.sleep(0.05)
    finally:
        for sock in opened:
            sock.close()
        harness.close()


def test_one_address_cannot_take_every_connection(resp_node: RespFakeNode, loop_kind: str) -> None:
    harness = limited_server(
        resp_node, loop_kind, connections_max=50, connections_per_address_max=2
    )
    opened: list[socket.socket] = []

    def connect(source: str) -> socket.socket:
        return socket.create_connection(
            ("127.0.0.1", harness.port), timeout=wait_s, source_address=(source, 0)
        )

    try:
        for _ in range(2):
            sock = connect("127.0.0.2")
            opened.append(sock)
            sock.sendall(command("PING"))
            assert sock.recv(100) == b"+PONG\r\n"
        with connect("127.0.0.2") as refused:
            refused.sendall(command("SET", "k", "v"))  # sent before the answer is read
            time.sleep(0.2)
            answer = refused.recv(200)
        assert answer.startswith(b"-ERR max number of clients reached from 127.0.0.2")
        assert harness.call(lambda: resp_node.stored("k")) is None
        with connect("127.0.0.3") as other:
            other.sendall(command("PING"))
            assert other.recv(100) == b"+PONG\r\n"
    finally:
        for sock in opened:
            sock.close()
        harness.close()


def test_a_connection_that_sends_nothing_is_closed_soon(
    resp_node: RespFakeNode, loop_kind: str
) -> None:
    harness = limited_server(resp_node, loop_kind, first_byte_timeout_ms=300)
    try:
        with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as silent:
            started = time.monotonic()
            assert silent.recv(100) == b""
            assert time.monotonic() - started < 3.0
        assert ping_works(harness.port)
    finally:
        harness.close()


def test_idle_connections_are_closed(resp_node: RespFakeNode, loop_kind: str) -> None:
    harness = limited_server(resp_node, loop_kind, idle_timeout_ms=300)
    try:
        with (
            socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s) as idle,
            socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s) as busy,
            socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s) as waiting,
        ):
            idle.sendall(command("PING"))
            assert idle.recv(100) == b"+PONG\r\n"
            harness.call(lambda: setattr(resp_node, "hold", True))
            waiting.sendall(command("SET", "held", "v"))  # its answer takes longer than 300 ms
            started = time.monotonic()
            while time.monotonic() - started < 1.0:  # a client that keeps talking stays
                busy.sendall(command("PING"))
                assert busy.recv(100) == b"+PONG\r\n"
                time.sleep(0.05)
            assert idle.recv(100) == b""  # closed by the server, without a word
            harness.call(resp_node.release)
            assert waiting.recv(100) == b"+OK\r\n"  # a reply owed is not idleness
    finally:
        harness.close()


def test_a_command_sent_too_slowly_is_refused(resp_node: RespFakeNode, loop_kind: str) -> None:
    harness = limited_server(resp_node, loop_kind, command_timeout_ms=300)
    try:
        with socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s) as sock:
            sock.sendall(command("PING") + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n")
            started = time.monotonic()
            answer = b""
            while time.monotonic() - started < 1.5:  # a trickle does not reset the deadline
                try:
                    sock.sendall(b"v")
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.05)
            sock.settimeout(wait_s)
            while chunk := sock.recv(1000):
                answer += chunk
        assert answer == (
            b"+PONG\r\n-ERR Protocol error: command not complete 300 ms after it began; "
            b"closing the connection\r\n"
        )
        assert harness.call(lambda: resp_node.stored("k")) is None
        # Commands that each arrive in pieces, but complete in time, are fine.
        with socket.create_connection(("127.0.0.1", harness.port), timeout=wait_s) as sock:
            for i in range(8):
                data = command("SET", f"k{i}", "v")
                sock.sendall(data[:7])
                time.sleep(0.05)
                sock.sendall(data[7:])
                assert sock.recv(100) == b"+OK\r\n"
    finally:
        harness.close()


def test_inline_commands_take_quotes_as_redis_cli_sends_them(server: ServerThread) -> None:
    data = exchange(server.port, b"SET k \"a b\"\r\nGET k\r\nSET j 'it\\'s'\r\nGET j\r\n")
    assert replies(data) == [b"OK", b"a b", b"OK", b"it's"]
    unbalanced = exchange(server.port, b'PING\r\nSET k "a b\r\nPING\r\n')
    assert unbalanced == b"+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"


def test_half_close_still_gets_slow_answers(server: ServerThread, resp_node: RespFakeNode) -> None:
    resp_node.write_delay = lambda: 0.05
    data = exchange(server.port, command("SET", "k", "v") + command("GET", "k"))
    assert replies(data) == [b"OK", b"v"]


def test_close_resp_clients(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as sock:
        sock.sendall(command("PING"))
        assert sock.recv(100) == b"+PONG\r\n"
        assert server.call(lambda: close_resp_clients(server.server)) == 1
        assert sock.recv(100) == b""
