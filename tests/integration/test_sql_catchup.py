"""A node killed while its peers take a SQL table catches up from a snapshot: the small run of
bench/sql_catchup_bench.py (the 1 GB run and its figures: docs/sql.md), on real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_layout

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sql_catchup_bench.py"


@pytest.mark.parametrize("wipe", [False, True], ids=["restarted", "wiped"])
def test_a_node_behind_a_truncated_log_catches_up_the_database_from_a_snapshot(
    tmp_path: Path, wipe: bool
) -> None:
    """Restarted on its own store, or wiped (`--reinitialize`: a new node, rebuilding)."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--mb", "12", "--every", "5",
         "--base-port", str(free_layout(3)), "--dir", str(tmp_path),
         *(["--wipe"] if wipe else [])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["wiped"] is wipe
    # Its peers had dropped the log of the load: it could only take a snapshot.
    assert report["installed_snapshots"] >= 1
    # The script compared its table with the leader's; 192 rows of 64 KiB, then the writes
    # that made the peers snapshot.
    [[rows, chars]] = report["rows"]
    assert rows > 192 and chars > 192 * 64 * 1024
