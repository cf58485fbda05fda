"""Watches when things go wrong on a real cluster: the node a watch reads from is killed, a
client never reads its stream, a node shuts down under its watchers."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paxosd import Client
from paxosd.runtime.config import NodeConfig
from paxosd.watch import WatchOptions

from .cluster import Cluster


def _small_queues(config: NodeConfig) -> NodeConfig:
    options = WatchOptions(queue_bytes_max=64 * 1024, stall_ms=2000)
    return dataclasses.replace(config, watch=options)


@pytest.fixture
def small_queues(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster.start(tmp_path, configure=_small_queues)
    try:
        yield running
    finally:
        running.stop()


def test_a_watch_whose_node_is_killed_resumes_on_another_with_nothing_lost_or_repeated(
    cluster: Cluster,
) -> None:
    writer = Client(cluster.endpoints(), timeout_s=30)
    watcher = Client(cluster.endpoints(), timeout_s=30)
    first = writer.put("kill/0", 0)
    seen: list[tuple[int, str]] = []
    watch = watcher.watch(prefix="kill/", start_revision=first)

    def read() -> None:
        for event in watch:
            seen.append((event.revision, event.key))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    written = [(first, "kill/0")]
    for i in range(1, 40):
        written.append((writer.put(f"kill/{i}", i), f"kill/{i}"))
        if i == 15:
            while watch.state.node is None or len(seen) < 5:
                time.sleep(0.01)
            victim = (
                int(watch.state.node.rsplit(":", 1)[1]) - int(cluster.http(1).rsplit(":", 1)[1]) + 1
            )
            cluster.kill9(victim)
    deadline = time.monotonic() + 60
    while len(seen) < len(written) and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.close()
    assert seen == written  # every change once, in order, across the kill
    writer.close()
    watcher.close()


def test_a_client_that_never_reads_is_cut_off_and_slows_no_one(small_queues: Cluster) -> None:
    node = small_queues.http(2)
    host, port = node.rsplit(":", 1)
    sleeper = socket.socket()
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
    sleeper.connect((host, int(port)))
    sleeper.sendall(
        f"GET /v1/watch?prefix=flood/ HTTP/1.1\r\nHost: {node}\r\n\r\n".encode()
    )  # ... and never reads
    writer = Client(small_queues.endpoints(), timeout_s=30)
    reader = Client([node], timeout_s=30)
    received: list[int] = []
    watch = reader.watch(prefix="flood/")
    thread = threading.Thread(
        target=lambda: received.extend(e.revision for e in watch), daemon=True
    )
    thread.start()
    time.sleep(0.5)
    # Far more than the socket buffers between the node and the sleeper hold.
    value = "x" * 60_000
    revisions = [writer.put(f"flood/{i % 10}", value) for i in range(200)]
    deadline = time.monotonic() + 60
    while len(received) < len(revisions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == revisions  # the reading watcher got everything, in order
    status = httpx.get(f"http://{node}/v1/status", timeout=10).json()["watches"]
    assert status["cancelled_slow"] >= 1
    # The sleeper's connection is closed by the node: its queue was cancelled, its write
    # stalled past stall_ms.
    sleeper.settimeout(30)
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    closed = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if not sleeper.recv(1 << 20):
                closed = True
                break
        except (ConnectionResetError, TimeoutError):
            closed = True
            break
    assert closed
    watch.close()
    writer.close()
    reader.close()
    sleeper.close()


def test_a_node_that_shuts_down_tells_its_watchers_where_to_resume(cluster: Cluster) -> None:
    client = Client(cluster.endpoints(), timeout_s=30)
    first = client.put("bye/a", 1)
    with httpx.stream(
        "GET", f"http://{cluster.http(3)}/v1/watch?prefix=bye/&start_revision={first}", timeout=30
    ) as response:
        text = ""
        chunks = response.iter_text()
        while "id: " not in text:
            text += next(chunks)
        cluster.terminate(3)
        for chunk in chunks:
            text += chunk
    assert "event: cancelled" in text and '"reason":"closing"' in text
    assert f'"resume_revision":{first + 1}' in text
    client.close()


def test_a_websocket_that_never_reads_is_cut_off_and_slows_no_one(small_queues: Cluster) -> None:
    node = small_queues.http(2)
    host, port = node.rsplit(":", 1)
    sleeper = socket.socket()
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
    sleeper.connect((host, int(port)))
    sleeper.sendall(
        f"GET /v3/watch HTTP/1.1\r\nHost: {node}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sleeper.settimeout(30)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sleeper.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    # Ten watches of the flooded prefix on the one socket, then it never reads again.
    key = base64.b64encode(b"wsflood/").decode()
    end = base64.b64encode(b"wsflood0").decode()
    create = json.dumps({"create_request": {"key": key, "range_end": end}}).encode()
    for _ in range(10):
        sleeper.sendall(_client_text_frame(create))
    writer = Client(small_queues.endpoints(), timeout_s=30)
    reader = Client([node], timeout_s=30)
    received: list[int] = []
    watch = reader.watch(prefix="wsflood/")
    thread = threading.Thread(
        target=lambda: received.extend(e.revision for e in watch), daemon=True
    )
    thread.start()
    time.sleep(0.5)
    # Far more than the socket buffers between the node and the sleeper hold, ten times over.
    value = "x" * 60_000
    revisions = [writer.put(f"wsflood/{i % 10}", value) for i in range(200)]
    deadline = time.monotonic() + 60
    while len(received) < len(revisions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == revisions  # the reading watcher got everything, in order
    status = httpx.get(f"http://{node}/v1/status", timeout=10).json()["watches"]
    assert status["cancelled_slow"] >= 1
    # The node closes the sleeper's connection: its write stalled past stall_ms.
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    closed = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if not sleeper.recv(1 << 20):
                closed = True
                break
        except (ConnectionResetError, TimeoutError):
            closed = True
            break
    assert closed
    status = httpx.get(f"http://{node}/v1/status", timeout=10).json()["watches"]
    assert status["watchers"] == 1  # the sleeper's ten are gone; the reader's is left
    watch.close()
    writer.close()
    reader.close()
    sleeper.close()


def _client_text_frame(payload: bytes) -> bytes:
    """A WebSocket text frame as a client sends it (RFC 6455 5.3: masked)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + masked
