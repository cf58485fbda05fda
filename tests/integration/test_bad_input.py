"""Bad input never crashes a node or harms its data."""

from __future__ import annotations

import base64
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgpack  # type: ignore[import-untyped]
import pytest

from paxosd import Client, RevisionCompacted
from paxosd.client import kv
from paxosd.runtime import codec
from paxosd.runtime.config import load, to_toml
from tests.mvcc_store import needs_store

from .cluster import Cluster


def _peer_port(cluster: Cluster, node: int) -> int:
    return cluster.configs[node - 1].me.peer[1]


def test_garbage_on_the_peer_port_is_refused_and_the_node_keeps_serving(cluster: Cluster) -> None:
    rng = random.Random(7)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", _peer_port(cluster, 1)), timeout=2) as sock:
            sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
    huge = (200 << 20).to_bytes(4, "big")  # a frame header over the size limit
    with socket.create_connection(("127.0.0.1", _peer_port(cluster, 1)), timeout=2) as sock:
        sock.sendall(huge + b"x" * 100)
    client = Client(cluster.endpoints())
    client.put("still", "alive")
    assert client.get("still").value == "alive"
    assert cluster.processes[1].poll() is None


def test_a_peer_from_another_cluster_is_refused(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    with socket.create_connection(("127.0.0.1", _peer_port(cluster, leader)), timeout=2) as sock:
        sock.sendall(codec.encode_handshake("some-other-cluster", 2))
        reason = _refusal(sock)
    assert "belongs to cluster 'some-other-cluster'" in reason
    client = Client(cluster.endpoints())
    client.put("k", 1)
    assert cluster.wait_for_leader() == leader


def _refusal(sock: socket.socket) -> str:
    """The one frame a refused dialer gets (the reason), then the connection is closed."""
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    frames = codec.FrameReader().feed(data)
    assert len(frames) == 1, f"expected one refusal frame, got {data!r}"
    refusal = codec.decode_refusal(frames[0])
    assert refusal is not None, f"not a refusal: {frames[0]!r}"
    return refusal[0]


def test_a_peer_speaking_a_newer_protocol_is_refused_and_told_why(cluster: Cluster) -> None:
    """A rolling upgrade gone too far: the node says which side to upgrade, and serves on."""
    leader = cluster.wait_for_leader()
    newer = codec.protocol_version + 1
    payload = msgpack.packb((codec.HANDSHAKE, "paxosd", newer, cluster.configs[0].cluster_id, 2))
    with socket.create_connection(("127.0.0.1", _peer_port(cluster, leader)), timeout=2) as sock:
        sock.sendall(len(payload).to_bytes(4, "big") + payload)
        reason = _refusal(sock)
    assert f"speaks peer protocol {newer}, newer than this node's" in reason
    assert "upgrade this node" in reason
    Client(cluster.endpoints()).put("still-serving", 1)


def test_a_node_started_with_another_nodes_data_directory_refuses_to_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    Client(cluster.endpoints()).put("precious", 1)
    cluster.kill9(3)
    config = load(cluster.root / "node3.toml")
    wrong = tmp_path / "node3-wrong.toml"
    wrong.write_text(to_toml(config).replace(str(config.data_dir), str(cluster.root / "node1")))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "node", "--config", str(wrong)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0 and time.monotonic() - started < 30
    assert "data directory" in done.stderr
    # Node 1's data is untouched and the cluster still works.
    assert Client(cluster.endpoints([1, 2])).get("precious").value == 1


def test_a_config_error_says_what_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('cluster_id = "c"\nnode_id = 4\ndata_dir = "d"\n[[members]]\nid = 1\n')
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "node", "--config", str(path)],
        capture_output=True, text=True, timeout=30, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 2
    assert "members[0] is missing 'peer'" in done.stderr


# ---------------------------------------------------------------------------------------------
# The key-value store's bad input, on every interface: a clear 4xx (etcd's error on the etcd
# API, an -ERR on RESP, exit 2 on the CLI), and nothing changed.


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _revision(http: str) -> int:
    reply = httpx.post(f"http://{http}/v3/kv/range", json={"key": _b64(b"\0")}, timeout=30)
    return int(reply.json()["header"]["revision"])


_TOO_MANY = [{"request_put": {"key": _b64(b"k%d" % i), "value": "MQ=="}} for i in range(129)]
_DUPLICATE = [{"request_put": {"key": "aw==", "value": "MQ=="}}] * 2
ETCD_BAD_INPUT = [
    # (path, body, HTTP status, gRPC code, etcd's message or None for paxosd's own)
    ("kv/txn", {"success": _TOO_MANY}, 400, 3, "etcdserver: too many operations in txn request"),
    ("kv/txn", {"success": _DUPLICATE}, 400, 3, "etcdserver: duplicate key given in txn request"),
    ("kv/txn", {"compare": [{"key": "aw==", "target": "SIZE"}]}, 400, 3, None),
    ("kv/range", {"key": "not base64!"}, 400, 3, None),
    ("kv/range", {"key": "aw==", "limit": "ten"}, 400, 3, None),
    ("kv/put", {"key": ["k"], "value": "MQ=="}, 400, 3, None),
    ("kv/put", {"key": "", "value": "MQ=="}, 400, 3, "etcdserver: key is not provided"),
    ("kv/range", {"key": _b64(b"k" * 1025)}, 400, 3, "etcdserver: request is too large"),
    ("kv/range", {"key": "aw==", "revision": "1000000"}, 400, 11,
     "etcdserver: mvcc: required revision is a future revision"),
    ("kv/compaction", {"revision": "1000000"}, 400, 11,
     "etcdserver: mvcc: required revision is a future revision"),
]  # fmt: skip


@needs_store
def test_bad_input_on_the_etcd_api(shared_cluster: Cluster) -> None:
    http = shared_cluster.http(2)
    httpx.post(f"http://{http}/v3/kv/put", json={"key": "aw==", "value": "MQ=="}, timeout=30)
    before = _revision(http)
    for path, body, status, code, message in ETCD_BAD_INPUT:
        reply = httpx.post(f"http://{http}/v3/{path}", json=body, timeout=30)
        answer = reply.json()
        assert (reply.status_code, answer["code"]) == (status, code), (path, body, answer)
        assert answer["error"] == answer["message"]
        if message is not None:
            assert answer["message"] == message
        else:
            assert answer["message"].startswith("paxosd: ") and len(answer["message"]) > 20
    assert _revision(http) == before


@needs_store
def test_compacted_revisions_on_every_interface(shared_cluster: Cluster) -> None:
    http = shared_cluster.http(1)
    client = Client(shared_cluster.endpoints())
    for i in range(3):
        client.txn().success(kv.put("bad/compacted", i)).commit()
    now = _revision(http)
    client.compact(now - 1)
    reply = httpx.post(
        f"http://{http}/v3/kv/range", json={"key": _b64(b"bad/compacted"), "revision": now - 2}
    )
    assert reply.status_code == 400 and reply.json()["code"] == 11
    assert reply.json()["message"] == "etcdserver: mvcc: required revision has been compacted"
    reply = httpx.get(f"http://{http}/v1/kv", params={"key": "bad/compacted", "revision": now - 2})
    assert reply.status_code == 400 and reply.json()["error"] == "compacted"
    assert f"oldest revision held is {now - 1}" in reply.json()["message"]
    with pytest.raises(RevisionCompacted):
        client.get("bad/compacted", revision=now - 2)
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "get", "bad/compacted", "--rev", str(now - 2),
         "--endpoints", ",".join(shared_cluster.endpoints())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "compacted" in done.stderr
    assert _revision(http) == now


@needs_store
def test_bad_input_on_v1_resp_and_the_cli(shared_cluster: Cluster) -> None:
    http = shared_cluster.http(3)
    before = _revision(http)
    v1 = [
        ("GET", "/v1/kv", {"prefix": "a", "limit": "x"}, None, "bad_request"),
        ("GET", "/v1/kv", {"prefix": "a", "sort": "size"}, None, "bad_request"),
        ("DELETE", "/v1/kv", {}, None, "bad_request"),
        ("POST", "/v1/txn", {}, {"success": [{"put": {"key": "k", "value": 1}}] * 2},
         "bad_command"),
        ("POST", "/v1/txn", {}, {"compare": [{"key": "k", "target": "size", "result": "="}]},
         "bad_request"),
        ("POST", "/v1/txn", {}, {"success": [{"put": {"key": "k", "value_base64": "@@"}}]},
         "bad_request"),
        ("POST", "/v1/txn", {}, {"success": [{"put": {"key": f"k{i}", "value": i}}
                                             for i in range(129)]}, "bad_command"),
        ("POST", "/v1/compact", {}, {"revision": "1"}, "bad_request"),
        ("GET", "/v1/kv", {"key": "k", "revision": "99999999"}, None, "future_revision"),
    ]  # fmt: skip
    for method, path, params, body, code in v1:
        reply = httpx.request(method, f"http://{http}{path}", params=params, json=body, timeout=30)
        assert reply.status_code == 400, (path, params, body, reply.text)
        assert reply.json()["error"] == code and reply.json()["outcome"] == "failed"

    import redis

    r = redis.Redis(host="127.0.0.1", port=shared_cluster.resp_port(3), protocol=2)
    for command in (("SCAN", "x"), ("KEYS", "a*b"), ("SCAN", "0", "COUNT", "-1")):
        with pytest.raises(redis.ResponseError):
            r.execute_command(*command)
    r.execute_command("MULTI")
    r.execute_command("SET", "bad/m", "1")
    r.execute_command("SET", "bad/m", "2")
    with pytest.raises(redis.exceptions.ExecAbortError, match="duplicate_key"):
        r.execute_command("EXEC")
    # An unterminated MULTI: the connection ends inside the block.
    with socket.create_connection(("127.0.0.1", shared_cluster.resp_port(3)), timeout=30) as sock:
        sock.sendall(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$5\r\nbad/u\r\n$1\r\n1\r\n")
        received = b""
        while received.count(b"\r\n") < 2:
            received += sock.recv(100)
        assert received == b"+OK\r\n+QUEUED\r\n"
    assert r.get("bad/u") is None and r.get("bad/m") is None
    r.close()

    endpoints = ",".join(shared_cluster.endpoints())
    for argv, stdin in (
        (["txn"], 'size("k") = "1"\n'),
        (["get", "k", "--sort-by", "size"], None),
        (["compact", "0"], None),
        (["txn", "--file", "/nonexistent.json"], None),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "paxosd", *argv, "--endpoints", endpoints],
            input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert done.stderr.startswith(("error:", "Usage:")), done.stderr
    assert _revision(http) == before
