"""The HTTP port's limits and guards, with real sockets against `serve_http` over a FakeNode:
connection cap, idle and slow-request deadlines, percent-encoding of keys, client disconnects,
and the refusal of requests a browser was tricked into sending."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from paxosd.api.http import serve_http
from paxosd.api.limits import ClientLimits, HttpLimits, RespLimits
from paxosd.service import Error as ResultError
from paxosd.service.kv import Put

from .conftest import FakeNode

# How long a test waits for the server, in seconds.
wait_s = 30.0


class Server:
    """`serve_http(node)` on 127.0.0.1, an ephemeral port, in a background event loop."""

    def __init__(self, node: FakeNode, limits: HttpLimits | None = None) -> None:
        self.node = node
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.runner = self._run(serve_http(node, "127.0.0.1", 0, limits=limits))
        self.port: int = self.runner.addresses[0][1]

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(wait_s)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=wait_s)

    def close(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(wait_s)
        self.loop.close()


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def serve(node: FakeNode, **limits: Any) -> Server:
    return Server(node, HttpLimits(**limits))


@pytest.fixture
def server(node: FakeNode) -> Iterator[Server]:
    harness = Server(node)
    yield harness
    harness.close()


def request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    host: str | None = "127.0.0.1",
    headers: dict[str, str] | None = None,
    keep_alive: bool = True,
) -> bytes:
    """One HTTP/1.1 request (HTTP/1.0 without a Host), bytes exactly as given (the path is not
    re-encoded)."""
    lines = [f"{method} {path} HTTP/{'1.1' if host is not None else '1.0'}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any] | bytes]:
    """Read one response (Content-Length framed): its status and its JSON body (or bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    try:
        return status, json.loads(rest[:length])
    except ValueError:
        return status, rest[:length]


def exchange(server: Server, data: bytes) -> tuple[int, Any]:
    with server.connect() as sock:
        sock.sendall(data)
        return read_response(sock)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends the connection (EOF or reset) within the socket's timeout."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------------------------------------
# Connections


def test_at_the_cap_new_connections_are_refused_and_old_ones_served(node: FakeNode) -> None:
    cap = 10
    server = serve(node, connections_max=cap, reserved_connections=0)
    opened: list[socket.socket] = []
    try:
        for _ in range(cap):
            sock = server.connect()
            opened.append(sock)
            sock.sendall(request("GET", "/healthz"))
            assert read_response(sock)[0] == 200
        with server.connect() as extra:
            extra.sendall(request("PUT", "/v1/kv/over", b'{"value": 1}'))
            status, body = read_response(extra)
            assert status == 503 and isinstance(body, dict)
            assert body["error"] == "too_many_connections" and body["outcome"] == "failed"
            assert closed_by_server(extra)
        assert not node.calls  # the refused request never ran
        for i, sock in enumerate(opened):  # the node keeps serving every open connection
            sock.sendall(request("PUT", f"/v1/kv/k{i}", b'{"value": 1}'))
            assert read_response(sock)[0] == 200
        opened.pop().close()  # a slot frees, and a new connection is served
        deadline = time.monotonic() + wait_s
        while exchange(server, request("GET", "/healthz"))[0] != 200:
            assert time.monotonic() < deadline, "the freed slot was never reused"
            time.sleep(0.05)
    finally:
        for sock in opened:
            sock.close()
        server.close()


def connect_from(server: Server, source: str) -> socket.socket:
    """A connection from another loopback address (127.0.0.0/8 is all loopback on Linux)."""
    return socket.create_connection(
        ("127.0.0.1", server.port), timeout=wait_s, source_address=(source, 0)
    )


def put_like_http_client(server: Server, source: str) -> tuple[int, Any]:
    """A PUT whose request is sent whole before the answer is read (Python's http.client
    does this): at a cap it must get its 503, not a reset."""
    with connect_from(server, source) as sock:
        sock.sendall(request("PUT", "/v1/kv/over", b'{"value": "' + b"x" * 4000 + b'"}'))
        time.sleep(0.2)  # the request is in the server's socket, unread, when it answers
        return read_response(sock)


def test_one_address_cannot_take_every_connection(node: FakeNode) -> None:
    """Past `connections_per_address_max` connections from its address, a client gets its
    503 (with the request already sent: no reset), while other addresses are served."""
    server = serve(node, connections_max=50, connections_per_address_max=3)
    opened: list[socket.socket] = []
    try:
        for _ in range(3):
            sock = connect_from(server, "127.0.0.2")
            opened.append(sock)
            sock.sendall(request("GET", "/healthz"))
            assert read_response(sock)[0] == 200
        for _ in range(3):  # the answer each time, however often it tries
            status, body = put_like_http_client(server, "127.0.0.2")
            assert status == 503 and isinstance(body, dict)
            assert body["error"] == "too_many_connections"
            assert "from 127.0.0.2" in body["message"]
        status, body = put_like_http_client(server, "127.0.0.3")  # another client: served
        assert status == 200, body
        assert [call for call in node.calls if "over" in repr(call)], "the other one ran"
        for sock in opened:  # the first address's open connections are still served
            sock.sendall(request("GET", "/healthz"))
            assert read_response(sock)[0] == 200
    finally:
        for sock in opened:
            sock.close()
        server.close()


def test_a_flood_of_refused_connections_does_not_cost_others_their_answer(
    node: FakeNode,
) -> None:
    """Refused connections linger to deliver their 503, a few per address: one client that
    keeps connecting to a full port fills only its own share, and another gets its answer."""
    server = serve(node, connections_max=2, reserved_connections=0)
    held: list[socket.socket] = []
    try:
        for _ in range(2):
            held.append(connect_from(server, "127.0.3.1"))
        for _ in range(40):  # refused, and never read or closed by this client
            held.append(connect_from(server, "127.0.3.2"))
        status, body = put_like_http_client(server, "127.0.3.3")
        assert status == 503 and isinstance(body, dict), body
        assert body["error"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_a_full_port_still_answers_health_and_status(node: FakeNode) -> None:
    """The last `reserved_connections` slots serve GET /healthz and GET /v1/status only, one
    request each: a node whose port is full can still be watched."""
    server = serve(node, connections_max=8, reserved_connections=2)
    opened: list[socket.socket] = []
    try:
        for i in range(6):
            sock = connect_from(server, f"127.0.1.{i + 1}")
            opened.append(sock)
            sock.sendall(request("GET", "/healthz"))
            assert read_response(sock)[0] == 200
        status, body = put_like_http_client(server, "127.0.2.1")
        assert status == 503 and isinstance(body, dict), body
        assert "/healthz" in body["message"]
        for path in ("/healthz", "/v1/status", "/v1/status?x=1"):
            with connect_from(server, "127.0.2.2") as watcher:
                watcher.sendall(request("GET", path))
                assert read_response(watcher)[0] == 200, path
                assert closed_by_server(watcher)  # one request per reserved slot
        for sock in opened:
            sock.close()
        opened.clear()
        deadline = time.monotonic() + wait_s  # the slots free: any request is served again
        while put_like_http_client(server, "127.0.2.1")[0] != 200:
            assert time.monotonic() < deadline, "the freed slots were never reused"
            time.sleep(0.05)
    finally:
        for sock in opened:
            sock.close()
        server.close()


def test_a_connection_that_sends_nothing_is_closed_soon(node: FakeNode) -> None:
    server = serve(node, first_byte_timeout_ms=300, idle_timeout_ms=60_000)
    try:
        with server.connect() as silent, server.connect() as talking:
            started = time.monotonic()
            talking.sendall(request("GET", "/healthz"))
            assert read_response(talking)[0] == 200
            silent.settimeout(5.0)
            assert closed_by_server(silent)
            assert time.monotonic() - started < 3.0
            talking.sendall(request("GET", "/healthz"))  # a client that spoke: idle rules
            assert read_response(talking)[0] == 200
    finally:
        server.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x01b\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["header too long", "control character", "not http"],
)
def test_what_the_parser_refuses_is_answered_in_json(server: Server, raw: bytes) -> None:
    status, body = exchange(server, raw)
    assert status == 400 and isinstance(body, dict), body
    assert body["error"] == "bad_request" and body["outcome"] == "failed"
    assert body["message"].startswith("not a request this node can read: ")


def test_idle_connections_are_closed(node: FakeNode) -> None:
    server = serve(node, idle_timeout_ms=300)
    try:
        with server.connect() as silent, server.connect() as kept, server.connect() as busy:
            kept.sendall(request("GET", "/healthz"))
            assert read_response(kept)[0] == 200  # idle again after its response
            started = time.monotonic()
            while time.monotonic() - started < 1.0:  # a client that keeps asking stays
                busy.sendall(request("GET", "/healthz"))
                assert read_response(busy)[0] == 200
                time.sleep(0.05)
            silent.settimeout(2.0)
            kept.settimeout(2.0)
            assert closed_by_server(silent)
            assert closed_by_server(kept)
    finally:
        server.close()


def test_slow_headers_are_cut_off(node: FakeNode) -> None:
    server = serve(node, header_timeout_ms=300, idle_timeout_ms=60_000)
    try:
        with server.connect() as sock:
            started = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            for _ in range(40):  # one header byte every 50 ms: slowloris
                try:
                    sock.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.05)
            sock.settimeout(2.0)
            assert closed_by_server(sock)
            assert time.monotonic() - started < 1.8
    finally:
        server.close()


def test_a_slow_body_is_answered_408(node: FakeNode) -> None:
    server = serve(node, body_timeout_ms=300)
    try:
        with server.connect() as sock:
            head = request("PUT", "/v1/kv/k", b'{"value": "' + b"x" * 90 + b'"}')
            sock.sendall(head[: head.index(b"\r\n\r\n") + 4 + 10])  # headers and 10 bytes
            status, body = read_response(sock)
            assert status == 408 and isinstance(body, dict)
            assert body["error"] == "request_timeout" and body["outcome"] == "failed"
            assert "300 ms" in body["message"]
            assert closed_by_server(sock)
        assert not node.calls
    finally:
        server.close()


def test_a_client_that_disconnects_mid_request_is_no_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="paxosd.api.http"):
        with server.connect() as sock:
            data = request("PUT", "/v1/kv/k", b'{"value": "' + b"x" * 90 + b'"}')
            sock.sendall(data[:-50])
        deadline = time.monotonic() + wait_s
        while not any("disconnected" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the disconnect was never noticed"
            time.sleep(0.02)
    assert exchange(server, request("GET", "/healthz"))[0] == 200
    gone = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert gone[0].levelno == logging.DEBUG and gone[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------------------------
# Keys in paths


@pytest.mark.parametrize("path", ["/v1/kv/a%FFb", "/v1/kv/a%G1", "/v1/kv/a%", "/v1/kv/%C3"])
def test_invalid_percent_encoding_is_refused(server: Server, node: FakeNode, path: str) -> None:
    for method, body in (("PUT", b'{"value": 1}'), ("GET", b"")):
        status, answer = exchange(server, request(method, path, body))
        assert status == 400 and isinstance(answer, dict), answer
        assert answer["error"] == "bad_request" and answer["field"] == "path"
        assert "%" in answer["message"]
    assert not node.calls


def test_an_escaped_percent_is_a_percent(server: Server, node: FakeNode) -> None:
    assert exchange(server, request("PUT", "/v1/kv/a%25FFb", b'{"value": 1}'))[0] == 200
    assert node.calls[0].op == Put(key=b"a%FFb", value=b"1", prev_kv=True)
    assert exchange(server, request("PUT", "/v1/kv/caf%C3%A9", b'{"value": 2}'))[0] == 200
    assert node.calls[1].op == Put(key="café".encode(), value=b"2", prev_kv=True)


# ---------------------------------------------------------------------------------------------
# Requests a browser may have been tricked into sending


def test_a_cross_site_write_is_refused(server: Server, node: FakeNode) -> None:
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    body = b'{"expected": null, "value": "pwned"}'
    status, answer = exchange(server, request("POST", "/v1/kv/csrf/cas", body, headers=evil))
    assert status == 403 and isinstance(answer, dict)
    assert answer["error"] == "cross_origin" and "evil.example" in answer["message"]
    for null_origin in ("null", "file://"):
        refused = request("PUT", "/v1/kv/x", b'{"value": 1}', headers={"Origin": null_origin})
        assert exchange(server, refused)[0] == 403
    assert not node.calls
    # The same site (a page this node serves) may write; anyone may read.
    own = {"Origin": f"http://127.0.0.1:{server.port}"}
    host = f"127.0.0.1:{server.port}"
    assert exchange(server, request("POST", "/v1/kv/x/cas", body, host=host, headers=own))[0] == 200
    assert exchange(server, request("GET", "/v1/kv/x", headers=evil))[0] == 200


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:7001", True),
        ("10.1.2.3", True),  # any IP literal: rebinding needs a name
        ("[::1]:7001", True),
        ("localhost:7001", True),
        ("dash.localhost", True),
        ("node2.test:7002", True),  # a member's advertised name
        ("paxosd.internal", True),  # the operator's allowed_hosts
        ("evil.example:7001", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_host_names_the_cluster_does_not_use_are_refused(
    node: FakeNode, host: str, allowed: bool
) -> None:
    node.member_list = [
        {"id": 1, "http": "127.0.0.1:7001", "resp": None, "peer": None},
        {"id": 2, "http": "node2.test:7002", "resp": None, "peer": None},
    ]
    server = serve(node, allowed_hosts=("paxosd.internal",))
    try:
        status, answer = exchange(server, request("GET", "/v1/kv/k", host=host))
        if allowed:
            assert status == 404  # served: the key does not exist
        else:
            assert status == 403 and isinstance(answer, dict)
            assert answer["error"] == "forbidden_host"
        # HTTP/1.0 clients may send no Host at all.
        assert exchange(server, request("GET", "/healthz", host=None))[0] == 200
    finally:
        server.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on PATH")
def test_curl_as_documented_still_works(server: Server) -> None:
    base = f"127.0.0.1:{server.port}"
    for args in (
        ["-X", "PUT", f"{base}/v1/kv/z", "-d", '{"value": [1, 2]}'],
        [f"{base}/v1/kv/z/cas", "-d", '{"expected": [1, 2], "value": 3}'],
        [f"http://localhost:{server.port}/v1/kv/z"],
    ):
        done = subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", *args],
            capture_output=True,
            text=True,
            timeout=wait_s,
            check=True,
        )
        assert done.stdout.rsplit("\n", 1)[1] == "200", done.stdout


# ---------------------------------------------------------------------------------------------
# Exactly-once ids reused for another request


def test_request_mismatch_is_a_409_that_says_what_to_do(server: Server, node: FakeNode) -> None:
    node.fail_result = ResultError(code="request_mismatch", message="seq 7 was a Put of 'a'")
    status, answer = exchange(
        server,
        request(
            "POST",
            "/v1/names/n",
            b'{"owner": "me"}',
            headers={"Paxosd-Client-Id": "c", "Paxosd-Seq": "7"},
        ),
    )
    assert status == 409 and isinstance(answer, dict), answer
    assert answer["error"] == "request_mismatch" and answer["outcome"] == "failed"
    message = answer["message"]
    assert "was not applied" in message and "new Paxosd-Seq" in message
    assert message.count("applied") == 1, "said once"


# ---------------------------------------------------------------------------------------------
# Configuration


def test_limits_from_a_config_table() -> None:
    limits = ClientLimits.from_toml(
        {
            "http": {"connections_max": 10, "allowed_hosts": ["paxosd.internal"]},
            "resp": {"idle_timeout_ms": 1000},
        }
    )
    assert limits.http == HttpLimits(connections_max=10, allowed_hosts=("paxosd.internal",))
    assert limits.resp == RespLimits(idle_timeout_ms=1000)
    assert ClientLimits.from_toml({}) == ClientLimits()
    for table, message in (
        ({"http": {"conections_max": 1}}, "limits.http.conections_max is not a known limit"),
        ({"resp": {"idle_timeout_ms": "5s"}}, "limits.resp.idle_timeout_ms must be an integer"),
        ({"resp": {"idle_timeout_ms": True}}, "must be an integer"),
        ({"http": {"connections_max": 0}}, "http.connections_max must be a positive integer"),
        ({"tcp": {}}, "unknown table 'tcp'"),
        ({"http": {"allowed_hosts": "x"}}, "must be a list of host names"),
    ):
        with pytest.raises(ValueError, match=message):
            ClientLimits.from_toml(table)
