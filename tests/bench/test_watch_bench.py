"""The watch benchmark (benchmark/watch.py) runs end to end at a tiny size, paxosd beside a
real etcd, both through etcd's /v3/watch over a WebSocket; speed itself is never asserted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from paxosd.benchmark.watch import goals
from paxosd.cli.main import main


@pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd (bench/setup.sh installs it)")
def test_watch_only_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["bench", "--watch-only", "--systems", "paxosd,etcd", "--watch-watchers", "1,20",
         "--watch-writes", "5", "--watch-idle", "100", "--watch-seconds", "1",
         "--quiet-wait", "0", "--data-root", str(tmp_path), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "results.md").read_text()
    assert "write to watcher p99, 20 watchers" in text and "memory per idle watcher" in text
    # 1,000 watchers were not asked for: the goal says so instead of reading another count.
    assert "with 1,000 watchers: not measured (--watch-watchers must include 1000)" in text
    records = json.loads((out / "results.json").read_text())["records"]
    measured = {(r["system"], r["op"]) for r in records if "error" not in r}
    assert measured == {
        (system, op)
        for system in ("paxosd", "etcd")
        for op in ("watch-latency", "watch-memory", "watch-throughput")
    }
    for record in records:
        if record["op"] == "watch-latency":
            # Every watcher heard of every write, through either system's /v3/watch.
            assert record["events_received"] == record["events_expected"] > 0, record
            assert record["watch_p50_ms"] > 0 and record["write_p99_ms"] > 0, record
            # Where the time went: CPU per event, the leader's and the client's (whole clock
            # ticks of 10 ms, so a tiny run may well show 0).
            assert record["server_cpu_us_per_event"] >= 0, record
            assert record["client_cpu_us_per_event"] >= 0, record


def _latency(system: str, watchers: int, watch_p99: float, write_p99: float) -> dict:
    return {"system": system, "op": "watch-latency", "watchers": watchers,
            "watch_p99_ms": watch_p99, "write_p99_ms": write_p99}  # fmt: skip


def _throughput(system: str, ratio: float) -> dict:
    return {"system": system, "op": "watch-throughput", "idle_watchers": 10_000, "ratio": ratio}


def test_the_goals_are_read_at_1000_watchers_and_10000_idle_ones() -> None:
    records = [
        _latency("paxosd", 100, 50.0, 10.0),  # 5x, but not the count the goal names
        _latency("paxosd", 1_000, 19.0, 10.0),
        _throughput("paxosd", 0.95),
        _latency("etcd", 1_000, 21.0, 10.0),
        _throughput("etcd", 0.89),
    ]
    assert goals(records) == [
        "paxosd: watcher p99 1.90x the write p99 with 1,000 watchers (goal: at most 2x): met",
        "paxosd: writes/s with 10,000 idle watchers 95% of without (goal: at least 90%): met",
        "etcd: watcher p99 2.10x the write p99 with 1,000 watchers (goal: at most 2x): MISSED",
        "etcd: writes/s with 10,000 idle watchers 89% of without (goal: at least 90%): MISSED",
    ]


def test_a_failed_measure_is_not_read_as_meeting_a_goal() -> None:
    records = [
        {"system": "paxosd", "op": "watch-latency", "error": "no leader to measure"},
        {"system": "paxosd", "op": "watch-throughput", "error": "connection refused"},
    ]
    assert goals(records) == [
        "paxosd: watcher p99 against the write p99 with 1,000 watchers: not measured"
        " (--watch-watchers must include 1000)",
        "paxosd: writes/s with idle watchers: not measured",
    ]
