"""The key-value store's history on real processes: the leader compacts it automatically
within the node's [kv] limits, every node reports the compacted revision, and it survives a
restart (snapshots and the log carry it)."""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from pathlib import Path
from typing import Any

from paxosd import Client
from paxosd.runtime.config import NodeConfig
from paxosd.service.kv import KvLimits
from paxosd.service.kv.compaction import slack_divisor
from tests.pace import Deadline

from .cluster import Cluster

LIMIT = 20
# The leader compacts once the history is an eighth over its limit (compaction.py).
BOUND = LIMIT + LIMIT // slack_divisor


def small_history(config: NodeConfig) -> NodeConfig:
    return dataclasses.replace(config, kv=KvLimits(history_revisions_max=LIMIT))


def kv_status(cluster: Cluster, node: int) -> dict[str, Any]:
    status = cluster.status(node)
    assert status is not None
    kv: dict[str, Any] = status["kv"]
    return kv


def test_the_leader_compacts_within_the_history_limit(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path, configure=small_history)
    try:
        cluster.wait_for_leader()
        client = Client(cluster.endpoints())
        for i in range(60):
            client.put(f"k{i % 5}", i)
        deadline = Deadline(30)
        while not all(kv_status(cluster, n)["compact_revision"] >= 61 - BOUND for n in (1, 2, 3)):
            assert not deadline.passed(), [kv_status(cluster, n) for n in (1, 2, 3)]
            time.sleep(0.1)
        first = kv_status(cluster, 1)
        assert first["revision"] == 61 and first["keys"] == 5
        assert first["revision"] - first["compact_revision"] <= BOUND
        with urllib.request.urlopen(f"http://{cluster.http(1)}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert "paxosd_kv_compact_revision" in metrics and "paxosd_kv_history_bytes" in metrics
        for node in (1, 2, 3):
            cluster.terminate(node)
        for node in (1, 2, 3):
            cluster.launch(node)
        cluster.wait_for_leader()
        # A restarted follower applies its log again once the leader tells it what is
        # chosen: until then it reports the state it has applied so far.
        deadline = Deadline(30)
        while kv_status(cluster, 2)["compact_revision"] < 61 - BOUND:
            assert not deadline.passed(), kv_status(cluster, 2)
            time.sleep(0.1)
        got = client.get("k4")
        assert got is not None and got.value == 59
    finally:
        cluster.stop()
