"""Membership change on real processes, under a write load: `paxosd member remove` shrinks a
5-node cluster to 3 (the leader too, which hands over first), `paxosd member add` grows it
back to 5 (each learner promoted by the leader once caught up), a node killed and
restarted comes back in the last epoch, and every acknowledged write is on every node at the
end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from paxosd import Client, PaxosdError
from paxosd.runtime import codec

from .cluster import Cluster


def _member(cluster: Cluster, *args: str, first: int | None = None) -> dict[str, Any]:
    """`paxosd member ARGS`, given every node's endpoint (node `first`'s first)."""
    nodes = sorted(range(1, len(cluster.configs) + 1), key=lambda n: n != first)
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "member", *args,
         "--endpoints", ",".join(cluster.endpoints(nodes)), "--timeout", "20", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"member {args}: {done.stdout}{done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _voters(cluster: Cluster, node: int) -> list[int]:
    configuration = (cluster.status(node) or {}).get("configuration") or {}
    return list(configuration.get("voters", []))


def _keys_at(cluster: Cluster, node: int) -> list[str]:
    """The keys node `node` holds, read from its own state (no quorum asked)."""
    url = f"http://{cluster.http(node)}/v1/kv"
    answer = httpx.get(url, params={"prefix": "m/", "serializable": "true"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return sorted(kv["key"] for kv in answer.json()["kvs"])


def test_shrink_to_three_and_grow_back_to_five_under_writes(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path, nodes=5)
    stop = threading.Event()
    acknowledged: list[str] = []
    try:
        leader = cluster.wait_for_leader()

        def writer() -> None:
            client = Client(cluster.endpoints(), timeout_s=10)
            i = 0
            while not stop.is_set() and i < 20_000:
                key = f"m/{i:05d}"
                try:
                    client.put(key, i)
                    acknowledged.append(key)
                except PaxosdError:
                    pass  # an outcome the client could not learn: not counted as acknowledged
                i += 1
            client.close()

        thread = threading.Thread(target=writer)
        thread.start()
        while len(acknowledged) < 30:
            time.sleep(0.02)
        follower = next(n for n in (1, 2, 3, 4, 5) if n != leader)
        first = _member(cluster, "remove", str(follower))
        assert first["epoch"] == 1 and follower not in first["voters"] + first["learners"]
        # The removed node sends its clients elsewhere at once.
        deadline = time.monotonic() + 10
        while True:
            url = f"http://{cluster.http(follower)}/v1/kv/m-removed"
            started = time.monotonic()
            answer = httpx.put(url, json={"value": 1}, timeout=10)
            if "no member" in answer.text or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # (it may not have learned the change yet)
        assert answer.status_code == 503 and "is no member of the cluster" in answer.text
        assert time.monotonic() - started < 1.0
        second = _member(cluster, "remove", str(leader))  # the leader: it hands over first
        assert second["epoch"] == 2 and len(second["voters"]) == 3
        assert second["leader"] != leader
        # The removed follower stays in the epoch it was removed in: asked first, it does not
        # make `member list` show that epoch's members.
        listed = _member(cluster, "list", first=follower)
        assert listed["epoch"] == 2, listed
        assert {m["id"]: m["voting"] for m in listed["members"]}[leader] == "removed"
        for node in (follower, leader):
            added = _member(cluster, "add", str(node))
            assert node in added["learners"] + added["voters"]  # (promoted already, maybe)
            # The leader promotes it by itself once it has caught up (auto_promote).
            deadline = time.monotonic() + 20
            while node not in _voters(cluster, added["leader"]):
                assert time.monotonic() < deadline, f"node {node} was not promoted"
                time.sleep(0.05)
        # A node restarted after the changes starts in its store's epoch (its config file
        # names the founding members), and catches up.
        cluster.kill9(follower)
        cluster.launch(follower)
        deadline = time.monotonic() + 20
        while ((cluster.status(follower) or {}).get("configuration") or {}).get("epoch") != 6:
            assert time.monotonic() < deadline, f"node {follower} did not come back in epoch 6"
            time.sleep(0.05)
        before = len(acknowledged)
        deadline = time.monotonic() + 20
        while len(acknowledged) < before + 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(acknowledged) >= before + 30, "writes went on after the changes"
    finally:
        stop.set()
    try:
        thread.join(timeout=60)
        final = cluster.status(cluster.wait_for_leader()) or {}
        assert final["configuration"]["voters"] == [1, 2, 3, 4, 5]
        commit = final["commit"]
        for node in (1, 2, 3, 4, 5):
            deadline = time.monotonic() + 20
            while ((cluster.status(node) or {}).get("applied") or 0) < commit:
                assert time.monotonic() < deadline, f"node {node} did not catch up"
                time.sleep(0.05)
            held = set(_keys_at(cluster, node))
            missing = [key for key in acknowledged if key not in held]
            assert missing == [], f"node {node} lacks {len(missing)} acknowledged writes"
    finally:
        cluster.stop()


def test_a_change_is_refused_with_a_reason(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path)
    try:
        leader = cluster.wait_for_leader()
        follower = next(n for n in (1, 2, 3) if n != leader)
        grow = {"voters": [1, 2, 3], "learners": [4]}
        contact = "peer=127.0.0.1:1 http=127.0.0.1:2 resp=127.0.0.1:3"
        joining = {"id": 4, "incarnation": "b0b", "contact": contact}
        taken = contact.replace("127.0.0.1:1", "{}:{}".format(*cluster.configs[0].me.peer))
        for node, body, status, reason in (
            (leader, {"voters": "1,2"}, 400, "list of node ids"),
            (leader, {"voters": [1, 2], "learners": ["3"]}, 400, "list of node ids"),
            (follower, {"voters": [1, 2]}, 409, "is not the leader"),
            (leader, {"voters": [1, 2, 3, 4]}, 409, "not in this node's config file"),
            (leader, {"voters": [1, 2, 3]}, 409, "already"),
            # A joining node's identity and addresses (paxosd node --join), malformed:
            (leader, {**grow, "join": {"id": 4}}, 400, "join must be"),
            (leader, {**grow, "join": [4, "b0b", contact]}, 400, "join must be"),
            (leader, {**grow, "join": {**joining, "incarnation": "zz"}}, 400, "hex digits"),
            (leader, {**grow, "join": {**joining, "incarnation": 11}}, 400, "hex text"),
            (leader, {**grow, "join": {**joining, "incarnation": "0"}}, 400, "[1, 2**63)"),
            (leader, {**grow, "join": {**joining, "id": "4"}}, 400, "node id"),
            (leader, {**grow, "join": {**joining, "contact": "peer=h:1"}}, 409, "lacks http"),
            (leader, {**grow, "join": {**joining, "contact": "x" * 600}}, 400, "at most 512"),
            (leader, {**grow, "join": {**joining, "contact": taken}}, 409, "is node 1's"),
            (leader, {"voters": [1, 2, 3], "join": {**joining, "id": 3}}, 409,
             "name it among the learners"),
            (leader, {"voters": [1, 2], "learners": [3], "join": {**joining, "id": 3}}, 409,
             "member already"),
        ):  # fmt: skip
            url = f"http://{cluster.http(node)}/v1/members"
            answer = httpx.post(url, json=body, timeout=10)
            assert answer.status_code == status, (body, answer.text)
            assert reason in answer.json()["message"], answer.text
            # Only a refusal that passes by itself tells the client to ask again.
            code = "busy" if node == follower else "refused" if status == 409 else "bad_request"
            assert answer.json()["error"] == code, answer.text
        done = subprocess.run(
            [sys.executable, "-m", "paxosd", "member", "promote", str(follower),
             "--endpoints", ",".join(cluster.endpoints())],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0 and f"node {follower} is not a learner" in done.stderr
        # A member that speaks peer protocol 5 can neither dial a joining node nor check its
        # identity: the leader refuses a join while it hears one (here: the follower's id,
        # dialing as a node at 5 would, once the follower itself is down).
        cluster.kill9(follower)
        peer = socket.create_connection(cluster.configs[leader - 1].me.peer, timeout=5)
        try:
            peer.sendall(codec.legacy_handshake(cluster.configs[0].cluster_id, follower))
            assert peer.recv(4096), "a listener at 6 takes a handshake of 5 (a welcome)"
            answer = httpx.post(f"http://{cluster.http(leader)}/v1/members",
                                json={**grow, "join": joining}, timeout=10)  # fmt: skip
            assert answer.status_code == 409, answer.text
            message = answer.json()["message"]
            assert f"node {follower} speaks peer protocol 5" in message, message
            assert "a node joining" in message and "upgrade every member first" in message
            # `paxosd node --join` says so too, and leaves its directory as it found it.
            joiner = tmp_path / "joiner"
            done = subprocess.run(
                [sys.executable, "-m", "paxosd", "node", "--join", cluster.http(leader),
                 "--id", "4", "--data-dir", str(joiner)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 1, done.stderr
            assert "upgrade every member first" in done.stderr
            assert not any(joiner.iterdir()), "a refused join leaves nothing behind"
        finally:
            peer.close()
    finally:
        cluster.stop()
