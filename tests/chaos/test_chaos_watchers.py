"""Watchers under `paxosd chaos`: real processes killed, paused and cut off under watchers
homed on followers; the watch checker judges their streams against the history read back
after the run, and catches a planted watch bug on real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_chaos_command import chaos

pytestmark = pytest.mark.timeout(240)


def test_watchers_see_every_change_once_through_kills_pauses_and_partitions(
    tmp_path: Path,
) -> None:
    status, results, replay = chaos(
        tmp_path / "run", "--nodes", "3", "--duration", "20", "--seed", "1",
        "--workload", "kv", "--nemesis", "kill,pause,partition",
    )  # fmt: skip
    watches = results["verdicts"]["watches"]
    assert status == 0 and watches["ok"], f"{watches['problems']}\n{replay}"
    stats = results["watches"]
    assert stats["streams_failed"] > 0, stats  # some watcher lost its node and resumed
    assert stats["changes_seen"] >= stats["history_changes"] > 100, stats


def test_a_planted_watch_bug_is_caught_on_real_processes(tmp_path: Path) -> None:
    status, results, replay = chaos(
        tmp_path / "run", "--nodes", "3", "--duration", "20", "--seed", "3",
        "--workload", "kv", "--nemesis", "kill,pause", "--variant", "watch-skip-revision",
    )  # fmt: skip
    assert status == 1, replay
    assert not results["verdicts"]["watches"]["ok"], replay
