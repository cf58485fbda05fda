"""The watch benchmark (benchmark/watch.py) runs end to end at a tiny size, paxosd beside a
real etcd, both through etcd's /v3/watch over a WebSocket; speed itself is never asserted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

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
