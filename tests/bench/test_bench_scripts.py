"""The micro-benchmarks in bench/ still run against this tree, at a size that takes seconds,
and stop every process they start.

They are not tests of speed (their figures go to docs/benchmarks.md); this only keeps a
documented command from breaking silently when the code under it changes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
RUN_MARK = "PAXOSD_BENCH_TEST_RUN"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("engine_core.py", ["--commands", "400", "--gc"], "of which GC"),
        ("service_apply.py", ["--n", "300"], "apply put"),
        ("resp_micro.py", ["--rounds", "300"], "µs per command"),
        ("snapshot_bench.py", ["--keys", "3000"], "restore s"),
        ("backup_bench.py", ["--keys", "2000"], "restore s"),
        (
            "learner_join_bench.py",
            ["--keys", "4000", "--snapshot-every", "3"],
            '"snapshot check and restore s"',
        ),
        (
            "learner_join_bench.py",
            ["--keys", "4000", "--snapshot-every", "3", "--join"],
            '"how": "paxosd node --join"',
        ),
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
    # Every process the script starts inherits this mark, whatever group or session it is
    # put in: what still carries it once the script has exited was left running.
    token = uuid.uuid4().hex
    mark = f"{RUN_MARK}={token}"
    env = {**os.environ, RUN_MARK: token}
    replay = " ".join(["python", f"bench/{script}", *args])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    finally:
        # A script that timed out was killed alone: its nodes are stopped here, not left
        # on the ports of the next test (or of a newcomer's `make up`).
        left = _running_with(mark)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.split(":")[0]), signal.SIGKILL)
    assert done.returncode == 0, f"{replay} failed:\n{done.stdout}\n{done.stderr}"
    assert expected in done.stdout, f"{replay} printed:\n{done.stdout}"
    assert not left, f"{replay} left processes running:\n" + "\n".join(left)


def _running_with(mark: str) -> list[str]:
    """`pid: command line` of every live process whose environment holds `mark`."""
    wanted = mark.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found.append(f"{entry.name}: {argv.decode(errors='replace').strip()}")
    return found
