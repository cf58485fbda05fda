"""Smoke test of the benchmark harness (paxosd.benchmark.peers and .measure, bench/loadgen).

Starts each peer system as a real 3-node cluster on loopback, drives it with the Go load
generator for about a second, and checks the common result format; one short failover on
PySyncObj. A system that is not installed is skipped with the reason (bench/setup.sh installs
them). The whole module takes well under 60 s.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paxosd.benchmark import measure, peers

RESULT_KEYS = {
    "system",
    "op",
    "clients",
    "duration_s",
    "ops",
    "errors",
    "ops_per_s",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "client_cpu_s",
}


def require(system: str) -> None:
    reasons = peers.missing(system) + peers.missing("loadgen")
    if reasons:
        pytest.skip(f"{system} not installed: {'; '.join(reasons)} (run bash bench/setup.sh)")


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("system", ["etcd", "zk", "pysyncobj"])
def test_cluster_serves_the_loadgen_and_stops(system: str, tmp_path: Path) -> None:
    """Three servers start and elect one leader; the loadgen's writes and reads succeed and its
    JSON line has the common fields; server CPU is sampled; stop() ends every server."""
    require(system)
    base = peers.free_base_port()
    with peers.cluster_of(system, tmp_path, base) as cluster:
        pids = cluster.pids
        assert len(pids) == 3
        assert cluster.leader_pid() in pids
        assert cluster.endpoints.split(",") == [f"127.0.0.1:{base + i}" for i in range(3)]
        write = measure.run_load(cluster, system, 4, 1.0, "write", 16, warmup_s=0.2)
        assert write.keys() >= RESULT_KEYS
        assert write["system"] == system and write["op"] == "write" and write["clients"] == 4
        # A leader election under a starved CPU may fail a request or two: allow a few.
        assert write["ops"] > 0 and write["errors"] <= write["ops"] // 10, write
        assert 0 < write["p50_ms"] <= write["p99_ms"] <= write["p999_ms"] <= write["max_ms"]
        assert write["server_cpu_s"] > 0 and write["server_cpu_s_per_1k_ops"] > 0
        read = measure.run_load(cluster, system, 4, 0.5, "read", 16, warmup_s=0.1)
        assert read["ops"] > 0 and read["errors"] <= read["ops"] // 10, read
    assert all(gone(pid) for pid in pids)


def test_cpu_seconds_reads_proc() -> None:
    assert measure.cpu_seconds([os.getpid()]) > 0
    assert measure.cpu_seconds([2**22 + 12345]) == 0  # a PID that does not exist counts 0


def test_redis_benchmark_csv_converts_to_the_common_format() -> None:
    text = (
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
        '"p99_latency_ms","max_latency_ms"\n'
        '"SET","12345.67","2.000","0.100","1.900","3.000","4.500","9.000"\n'
    )
    [row] = measure.from_redis_benchmark_csv(text, clients=64, duration_s=10)
    assert row["op"] == "write" and row["clients"] == 64 and row["ops"] == 123456
    assert (row["ops_per_s"], row["p50_ms"], row["p99_ms"], row["max_ms"]) == (
        12345.67,
        1.9,
        4.5,
        9.0,
    )
