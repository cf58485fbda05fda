"""The micro-benchmarks in bench/ still run against this tree, at a size that takes seconds.

They are not tests of speed (their figures go to docs/benchmarks.md); this only keeps a
documented command from breaking silently when the code under it changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("engine_core.py", ["--commands", "400", "--gc"], "of which GC"),
        ("service_apply.py", ["--n", "300"], "apply put"),
        ("resp_micro.py", ["--rounds", "300"], "µs per command"),
        ("snapshot_bench.py", ["--keys", "3000"], "restore s"),
        ("backup_bench.py", ["--keys", "2000"], "restore s"),
        ("sql_bench.py", ["--seconds", "0.3", "--clients", "1,2"], "local SQLite (wal, FULL)"),
        ("lab_coach.py", ["--tours", "leader-crash", "--random", "2", "--seconds", "0.3"], "p50"),
        (
            "leases_bench.py",
            [
                "--seconds",
                "0.5",
                "--sessions",
                "20",
                "--rounds",
                "1",
                "--instances",
                "3",
                "--skip-etcd",
            ],
            '"observers_agree": true',
        ),
    ],
)
def test_bench_script_runs(script: str, args: list[str], expected: str) -> None:
    command = [sys.executable, str(BENCH / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    replay = " ".join(["python", f"bench/{script}", *args])
    assert done.returncode == 0, f"{replay} failed:\n{done.stdout}\n{done.stderr}"
    assert expected in done.stdout, f"{replay} printed:\n{done.stdout}"
