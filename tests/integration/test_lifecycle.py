"""A cluster's whole life on real processes, under a RESP write load (docs/operations.md,
"Members and upgrades"): 3 founding nodes grow to 5 (two new nodes join with `paxosd node
--join`, in no config file, and are promoted), two members are removed (a new one and a
founding one), and the leader's machine is replaced (killed, its data directory wiped,
removed, and joined again under its id with a new store). Every SET the RESP clients saw
acknowledged is on every member at the end."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import redis

from tests.ports import free_block

from .cluster import Cluster
from .test_join import _join, _leader, _member, _status, _wait_voter

writes_max = 20_000


def _keys(http: str) -> set[str]:
    answer = httpx.get(
        f"http://{http}/v1/kv", params={"prefix": "life/", "serializable": "true"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return {kv["key"] for kv in answer.json()["kvs"]}


class RespWriter:
    """SETs one key after another, over RESP, at whichever member answers; a SET counts as
    acknowledged only once the server said OK (an error or a lost connection is an unknown
    outcome: the key may or may not be there, and is not asked for at the end)."""

    def __init__(self, resp: dict[int, tuple[str, int]]) -> None:
        self.resp = resp  # node -> (host, port): the members the writer may use
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        i, turn = 0, 0
        client: redis.Redis | None = None
        while not self.stop.is_set() and i < writes_max:
            if client is None:
                nodes = sorted(self.resp)
                host, port = self.resp[nodes[turn % len(nodes)]]
                client = redis.Redis(host=host, port=port, socket_timeout=5)
            key = f"life/{i:05d}"
            try:
                if client.set(key, str(i)):
                    self.acknowledged.append(key)
            except redis.RedisError:
                client.close()
                client, turn = None, turn + 1  # the next member
                time.sleep(0.05)
            i += 1
        if client is not None:
            client.close()

    def wait_for(self, more: int, timeout_s: float = 30.0) -> None:
        target = len(self.acknowledged) + more
        deadline = time.monotonic() + timeout_s
        while len(self.acknowledged) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acknowledged) >= target, f"writes stalled at {len(self.acknowledged)}"


def test_grow_to_five_remove_two_and_replace_the_leader_under_resp_writes(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path, nodes=3)
    first = free_block(6, offset=2900)
    joiners = {  # node -> (peer, http, resp): in no config file
        node: tuple(f"127.0.0.1:{first + 3 * (node - 4) + i}" for i in range(3)) for node in (4, 5)
    }
    http = {n: cluster.http(n) for n in (1, 2, 3)} | {n: a[1] for n, a in joiners.items()}
    resp: dict[int, tuple[str, int]] = {n: ("127.0.0.1", cluster.resp_port(n)) for n in (1, 2, 3)}
    writer = RespWriter(resp)
    try:
        cluster.wait_for_leader()
        writer.thread.start()
        writer.wait_for(30)

        # Grow: 3 -> 5, each new node a learner first, promoted by the leader.
        for node, (peer, own_http, own_resp) in joiners.items():
            log = _join(cluster, cluster.http(1), node, tmp_path / f"node{node}",
                        "--peer", peer, "--http", own_http, "--resp", own_resp)  # fmt: skip
            _wait_voter(list(http.values()), node, log, cluster.processes[node])
            host, port = own_resp.rsplit(":", 1)
            writer.resp[node] = (host, int(port))
            writer.wait_for(20)
        found = _leader(list(http.values()))
        assert found is not None and found[1]["configuration"]["voters"] == [1, 2, 3, 4, 5]

        # Shrink: remove a new member and a founding one that does not lead.
        leader = found[0]
        founding = next(n for n in (1, 2, 3) if n != leader)
        for node in (5, founding):
            writer.resp.pop(node)
            _member([h for n, h in http.items() if n != node], "remove", str(node))
            assert cluster.terminate(node) == 0
            http.pop(node)
            writer.wait_for(20)

        # Replace the leader's machine: it dies with its disk, is removed, joins again.
        found = _leader(list(http.values()))
        assert found is not None
        leader = found[0]
        writer.resp.pop(leader)
        cluster.kill9(leader)
        shutil.rmtree(tmp_path / f"node{leader}")
        others = [h for n, h in http.items() if n != leader]
        _member(others, "remove", str(leader))
        addresses = joiners.get(leader)
        extra = () if addresses is None else ("--peer", addresses[0], "--http", addresses[1],
                                              "--resp", addresses[2])  # fmt: skip
        log = _join(cluster, others[0], leader, tmp_path / f"replaced{leader}", *extra)
        _wait_voter(others, leader, log, cluster.processes[leader])
        writer.wait_for(30)
        status = _status(http[leader]) or {}
        assert sorted(status["configuration"]["voters"]) == sorted(http), status
    finally:
        writer.stop.set()
        if writer.thread.is_alive():
            writer.thread.join(timeout=60)
    try:
        wanted = set(writer.acknowledged)
        assert len(wanted) >= 150
        for node, address in http.items():
            deadline = time.monotonic() + 20
            while not wanted <= (held := _keys(address)) and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = sorted(wanted - held)
            assert not missing, f"node {node} lacks {len(missing)} acknowledged SETs: {missing[:5]}"
    finally:
        cluster.stop()
