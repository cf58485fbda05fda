"""A node in no config file joins a running cluster, and a wiped leader is replaced, on real
processes under a write load (cli/join.py, runtime/transport.py, runtime/incarnation.py):

3 nodes; node 4 joins with `paxosd node --join` (its addresses reach the members through the
log) and is promoted; the leader is killed and its data directory wiped, it is removed and
joins again under the same id with a new store; every acknowledged write is on every node at
the end. Then the wiped node's old config file is started on a fresh store under its
recorded id: every member it dials refuses it, and its log says why."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from paxosd import Client, PaxosdError
from tests.ports import free_block

from .cluster import Cluster, _launched

join_timeout_s = 30.0


def _status(http: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"http://{http}/v1/status", timeout=1)
        return answer.json() if answer.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _leader(https: list[str]) -> tuple[int, dict[str, Any]] | None:
    for http in https:
        status = _status(http)
        if status and status.get("role") == "leader":
            return int(status["node_id"]), status
    return None


def _wait_voter(https: list[str], node: int, log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + join_timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        found = _leader(https)
        if found is not None and node in found[1]["configuration"]["voters"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"node {node} did not become a voter:\n{log.read_text()[-3000:]}")


def _join(cluster: Cluster, endpoint: str, node: int, data_dir: Path, *extra: str) -> Path:
    """`paxosd node --join`, as a process the cluster stops at the end; its log."""
    data_dir.mkdir(parents=True)
    log_path = data_dir.parent / f"join{node}-{data_dir.name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "paxosd", "node", "--join", endpoint, "--id", str(node),
         "--data-dir", str(data_dir), *extra],
        stdout=log, stderr=log,
    )  # fmt: skip
    _launched.append(process)
    cluster.processes[node] = process
    return log_path


def _keys_at(http: str) -> set[str]:
    answer = httpx.get(
        f"http://{http}/v1/kv", params={"prefix": "j/", "serializable": "true"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return {kv["key"] for kv in answer.json()["kvs"]}


def _member(endpoints: list[str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "member", *args, "--endpoints", ",".join(endpoints),
         "--timeout", "20", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"member {args}: {done.stdout}{done.stderr}"


def test_a_new_node_joins_and_a_wiped_leader_is_replaced_under_writes(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path, nodes=3)
    first = free_block(3, offset=2800)
    fourth = [f"127.0.0.1:{first + i}" for i in range(3)]  # peer, http, resp: no layout
    https = [*cluster.endpoints(), fourth[1]]
    stop = threading.Event()
    acknowledged: list[str] = []

    def writer() -> None:
        client = Client(https, timeout_s=10)
        i = 0
        while not stop.is_set() and i < 20_000:
            key = f"j/{i:05d}"
            try:
                client.put(key, i)
                acknowledged.append(key)
            except PaxosdError:
                pass  # an outcome the client could not learn: not counted as acknowledged
            i += 1
        client.close()

    thread = threading.Thread(target=writer)
    try:
        leader = cluster.wait_for_leader()
        thread.start()
        while len(acknowledged) < 30:
            time.sleep(0.02)
        # Node 4 is in no config file: it joins with its own addresses.
        log4 = _join(cluster, cluster.http(1), 4, tmp_path / "node4",
                     "--peer", fourth[0], "--http", fourth[1], "--resp", fourth[2])  # fmt: skip
        _wait_voter(https, 4, log4, cluster.processes[4])
        deadline = time.monotonic() + 10  # its progress lines, once a second
        while "event=join_done" not in log4.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "event=join_progress" in log4.read_text()
        assert 'event=join_done epoch=2 detail="a voter now"' in log4.read_text()
        assert all((_status(h) or {}).get("members") for h in https)
        for http in cluster.endpoints():  # every founding member knows its addresses now
            listed = {m["id"]: m for m in (_status(http) or {})["members"]}
            assert listed[4]["http"] == fourth[1] and listed[4]["connected"], listed

        # The leader's machine dies with its disk: removed, and joined again, same id.
        cluster.kill9(leader)
        shutil.rmtree(tmp_path / f"node{leader}")
        others = [h for n, h in enumerate(https, 1) if n != leader]
        _member(others, "remove", str(leader))
        rejoin = tmp_path / f"rejoined{leader}"
        log = _join(cluster, others[0], leader, rejoin)  # the local layout gives its ports
        _wait_voter(others, leader, log, cluster.processes[leader])
        before = len(acknowledged)
        deadline = time.monotonic() + 20
        while len(acknowledged) < before + 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(acknowledged) >= before + 30, "writes went on after the replacement"
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=60)
    try:
        wanted = set(acknowledged)
        for http in https:
            deadline = time.monotonic() + 20
            while not wanted <= (held := _keys_at(http)) and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = sorted(wanted - held)
            assert not missing, f"{http} lacks {len(missing)} acknowledged writes: {missing[:5]}"

        # The old identity: node `leader`'s founding config file on a fresh store. Its id is
        # recorded with the rejoined store's incarnation, so every member refuses it.
        assert cluster.terminate(leader) == 0
        cluster.launch(leader, "--reinitialize")
        dialed = {str(n) for n in (1, 2, 3) if n != leader}  # its config file's peers
        deadline = time.monotonic() + 20
        refusals: set[str] = set()
        while refusals != dialed and time.monotonic() < deadline:
            refusals = {
                line.split("peer=")[1].split()[0]
                for line in cluster.log(leader).splitlines()
                if "event=refused_by_peer" in line and "joined with store incarnation" in line
            }
            time.sleep(0.1)
        assert refusals == dialed, cluster.log(leader)[-3000:]
        assert "paxosd member remove" in cluster.log(leader)
        peer = next(n for n in (1, 2, 3) if n != leader)
        assert "joined with store incarnation" in cluster.log(peer)
        status = _status(cluster.http(leader)) or {}
        assert any("joined with store incarnation" in m.get("refused", "")
                   for m in status.get("members", [])), status  # fmt: skip
        assert status.get("rebuilding"), "it never gets a vote: its rebuild cannot finish"
    finally:
        cluster.stop()
