"""`paxosd chaos` end to end: the real command, real node processes, real faults.

Short runs (20-40 s each; pytest -n 2 runs two side by side): a correct cluster under
process, network and clock faults must come out with no anomaly and every output file; the
planted bugs `unconfirmed-reads` (a leader answers reads without confirming it still leads)
and `wall-clock-leases` (leases measured by the leader's wall clock) must be caught.
A failure prints the command that replays the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from paxosd.check.history import load_history
from tests.mvcc_store import needs_store
from tests.ports import FIRST

pytestmark = pytest.mark.timeout(240)

run_timeout_s = 180


def chaos(out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run `paxosd chaos ... --json` to completion; (exit status, results, stderr)."""
    command = [
        sys.executable, "-m", "paxosd", "chaos", "--json", "--out", str(out),
        "--first-port", str(FIRST + 1000), *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=run_timeout_s)
    replay = "replay: paxosd chaos " + " ".join(args) + f" --out {out}"
    assert done.returncode in (0, 1), f"{replay}\n{done.stderr[-4000:]}"
    return done.returncode, json.loads(done.stdout), replay


def no_nodes_left(out: Path) -> bool:
    """No `paxosd node` process of this run (its configs live under `out`) is running."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return str(out / "cluster") not in listing


def test_correct_cluster_survives_faults_with_no_anomaly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    seed = 7
    status, results, replay = chaos(
        out, "--nodes", "3", "--duration", "24", "--seed", str(seed),
        "--nemesis", "kill-leader,partition,pause,loss,clock-jump-leader",
    )  # fmt: skip
    problems = {k: v["problems"] for k, v in results["verdicts"].items() if not v["ok"]}
    assert status == 0 and results["valid"], f"seed {seed}: {problems}\n{replay}"
    assert set(results["verdicts"]) == {
        "kv", "locks", "names", "decisions", "durability", "liveness", "watches",
    }  # fmt: skip
    assert all(v["checked"] > 0 for v in results["verdicts"].values()), results["verdicts"]

    ops = results["operations"]
    assert ops["ok"] > 200 and ops["total"] == ops["ok"] + ops["fail"] + ops["info"]
    assert {"kv", "locks", "names", "decisions", "probes", "final reads"} <= set(ops["by_workload"])
    faults = results["faults"]
    assert faults["total"] >= 2 and faults["unexpected_exits"] == []
    assert sum(faults["by_kind"].values()) == faults["total"]
    assert set(faults["by_kind"]) <= {
        "kill-leader", "partition", "pause", "loss", "clock-jump-leader",
    }  # fmt: skip
    for row in results["recovery"]["faults"]:
        assert row["end"] > row["start"] and row["recovery_s"] >= 0, row
    assert 0 < results["availability"] <= 1
    assert results["full_restart"]["recovery_s"] > 0

    # The history on disk is what was judged, in the format `paxosd check` reads.
    history = load_history(out / "history.jsonl")
    assert len(history.operations) > 200
    assert any(op.node is not None for op in history.operations)
    assert json.loads((out / "results.json").read_text())["seed"] == seed
    page = (out / "timeline.html").read_text()
    assert "<svg" in page and "no anomalies" in page
    assert "src=" not in page and "href=" not in page  # self-contained
    assert no_nodes_left(out)


def test_planted_bug_unconfirmed_reads_is_caught(tmp_path: Path) -> None:
    """Real processes on a shared machine are not deterministic: a seed is a schedule of
    faults, not of every interleaving. The bug must be caught within two seeds."""
    missed = []
    for seed in (1, 3):
        out = tmp_path / f"bug-{seed}"
        status, results, replay = chaos(
            out, "--nodes", "3", "--duration", "30", "--seed", str(seed),
            "--nemesis", "stall-leader", "--workload", "kv", "--variant", "unconfirmed-reads",
        )  # fmt: skip
        assert no_nodes_left(out)
        if status == 1 and not results["valid"]:
            kv = results["verdicts"]["kv"]
            assert not kv["ok"] and "not linearizable" in kv["problems"][0], kv
            return
        missed.append(replay)
    raise AssertionError("the planted bug went unnoticed:\n" + "\n".join(missed))


@needs_store
def test_planted_bug_unconfirmed_reads_is_caught_by_the_bank(tmp_path: Path) -> None:
    """Transactions and ranges over many keys: a deposed leader's audit answers an old
    revision after a newer write was acknowledged (within two seeds)."""
    missed = []
    for seed in (1, 3):
        out = tmp_path / f"bank-{seed}"
        status, results, replay = chaos(
            out, "--nodes", "3", "--duration", "30", "--seed", str(seed), "--epoch", "10",
            "--nemesis", "stall-leader", "--workload", "bank", "--variant", "unconfirmed-reads",
        )  # fmt: skip
        assert no_nodes_left(out)
        if status == 1 and not results["valid"]:
            bank = results["verdicts"]["bank"]
            assert not bank["ok"] and "a stale read" in bank["problems"][0], bank
            return
        missed.append(replay)
    raise AssertionError("the planted bug went unnoticed:\n" + "\n".join(missed))


def test_planted_bug_wall_clock_leases_is_caught(tmp_path: Path) -> None:
    """Leases measured by the leader's wall clock end early when that clock jumps forward:
    another client is granted a lock its holder still relies on."""
    out = tmp_path / "bug"
    status, results, replay = chaos(
        out, "--nodes", "3", "--duration", "20", "--seed", "1", "--nemesis",
        "clock-jump-leader", "--workload", "locks", "--variant", "wall-clock-leases",
    )  # fmt: skip
    assert no_nodes_left(out)
    locks = results["verdicts"]["locks"]
    assert status == 1 and not locks["ok"], f"the planted bug went unnoticed\n{replay}"
    assert any("certainly held it" in problem for problem in locks["problems"]), locks


def test_a_second_run_into_the_same_out_goes_beside_the_first(tmp_path: Path) -> None:
    """Running the printed replay command (same --out) starts a fresh cluster in `OUT.2`: it
    neither starts on the first run's stores (its nodes came back with that run's data and
    members, and no leader was agreed) nor overwrites what the first run left to look at."""
    out = tmp_path / "run"
    args = ("--nodes", "3", "--duration", "5", "--seed", "4", "--nemesis", "kill")
    status, first, replay = chaos(out, *args)
    assert status == 0 and first["valid"], replay
    before = (out / "results.json").read_bytes()
    status, second, replay = chaos(out, *args)
    assert status == 0 and second["valid"], replay
    assert (out / "results.json").read_bytes() == before, "the first run's results are kept"
    assert json.loads((tmp_path / "run.2" / "results.json").read_text()) == second
    assert second["command"].endswith(f"--out {tmp_path / 'run.2'}")


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_usage_errors_are_reported() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "chaos", "--nemesis", "flood"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown nemesis kinds ['flood']" in done.stderr


def test_all_may_stand_beside_names() -> None:
    """`--workload all,bank` is every default workload and the bank, as the help's
    "Comma-separated, or all" reads; an unknown name is still refused."""
    from paxosd.chaos.workloads import OPTIONAL_WORKLOADS, WORKLOADS
    from paxosd.cli.chaos import _choices

    chosen = _choices("all,bank", WORKLOADS, "workloads", OPTIONAL_WORKLOADS)
    assert chosen == (*WORKLOADS, "bank")
    assert _choices("kv,all", WORKLOADS, "workloads") == WORKLOADS
    with pytest.raises(click.BadParameter, match=r"unknown workloads \['flood'\]"):
        _choices("all,flood", WORKLOADS, "workloads")
