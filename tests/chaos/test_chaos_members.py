"""`paxosd chaos --nemesis membership`: members removed through the leader (the leader
itself, sometimes, which hands over first) and added back under the clients' load, on real
processes. Every checker must stay ok, the report must name the changes made, and the heal
must leave every node a voter again. A failure prints the command that replays the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import test_chaos_command as command

pytestmark = pytest.mark.timeout(240)


def test_membership_changes_under_load_leave_no_anomaly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    seed = 3
    status, results, replay = command.chaos(
        out, "--nodes", "3", "--duration", "15", "--seed", str(seed), "--nemesis", "membership"
    )
    problems = {k: v["problems"] for k, v in results["verdicts"].items() if not v["ok"]}
    assert status == 0 and results["valid"], f"seed {seed}: {problems}\n{replay}"
    assert {"kv", "durability", "liveness", "watches"} <= set(results["verdicts"])
    assert all(v["checked"] > 0 for v in results["verdicts"].values()), results["verdicts"]
    assert results["faults"]["by_kind"].get("membership", 0) >= 1, results["faults"]
    assert results["faults"]["unexpected_exits"] == []

    # The report names each change the cluster took on: a removal, then the node added back.
    made = results["membership"]["made"]
    removed = [line for line in made if ": remove " in line]
    assert removed and any(": add " in line for line in made), f"{made}\n{replay}"
    # Healing made every node a voter again (checked before the full restart).
    last = [f for f in results["fault_log"] if f["kind"] == "membership"][-1]
    assert sorted(last["detail"]["healed_voters"]) == [1, 2, 3], f"{last}\n{replay}"
    assert results["recovered_after_heal_s"] is not None
    assert command.no_nodes_left(out)
