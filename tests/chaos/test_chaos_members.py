"""`paxosd chaos --nemesis membership`: members removed through the leader (the leader
itself, sometimes, which hands over first) and added back under the clients' load, on real
processes. Every checker must stay ok, the report must name the changes made, and the heal
must leave every node a voter again. A failure prints the command that replays the run."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from paxosd.chaos import FaultEvent, NemesisRunner, leader_of
from tests.chaos import test_chaos_command as command
from tests.chaos import test_nemesis as nemesis_test

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


def test_a_refused_change_is_recorded_and_the_heal_makes_every_node_vote(tmp_path: Path) -> None:
    """With one follower stopped, removing the other would leave a quorum that does not
    answer: the leader refuses, and the fault records it as a refusal, not an error. Then a
    change that is taken on, and the heal: every node votes again."""

    async def body() -> None:
        async with nemesis_test.cluster(tmp_path) as (mesh, nodes):
            runner = NemesisRunner(mesh, nodes, random.Random(5))
            everyone = {1, 2, 3}
            leader = await nemesis_test.wait_for_leader(runner, everyone, nemesis_test.startup_s)
            stopped, asked = sorted(everyone - {leader})
            nodes[stopped].pause()
            # The leader counts as answering the nodes it heard within an election timeout.
            await asyncio.sleep(1.0)
            # Removing the other follower would leave voters {leader, stopped}: one answers of
            # the two a quorum needs. The leader refuses it.
            refused = await runner.begin(FaultEvent(0, 1, "membership", ((asked,),)))
            nodes[stopped].resume()
            await runner.end()
            detail = refused["detail"]
            assert "error" not in detail and "end_error" not in detail, detail
            assert detail["refused"].startswith("409") and "answering" in detail["refused"]
            assert not _taken_on(detail, "remove"), detail
            await nemesis_test.wait_for_leader(runner, everyone)

            # The leader removed: it hands over first, then its successor removes it (retried
            # while the stopped node catches up: the leader may refuse meanwhile).
            deadline = time.monotonic() + 20
            while True:
                leader = await nemesis_test.wait_for_leader(runner, everyone)
                made = await runner.begin(FaultEvent(0, 1, "membership", ((leader,),)))
                if _taken_on(made["detail"], "remove") or time.monotonic() > deadline:
                    break
                await runner.end()
                await asyncio.sleep(0.5)
            victim = made["targets"][0][0]
            assert victim == leader and made["detail"]["victim_led"], made
            assert _taken_on(made["detail"], f"transfer {victim} -> "), made
            assert _taken_on(made["detail"], f"remove {victim}"), made
            deadline = time.monotonic() + 10
            while True:  # the new epoch, as its leader says
                statuses = await runner.statuses()
                now = leader_of(statuses)
                voters = (statuses.get(now or 0) or {}).get("configuration", {}).get("voters")
                if now is not None and voters is not None and victim not in voters:
                    break
                assert time.monotonic() < deadline, statuses
                await asyncio.sleep(0.1)
            await runner.heal_all()
            assert sorted(made["detail"]["healed_voters"]) == [1, 2, 3], made
            for record in runner.events:
                assert "error" not in record["detail"] and "end_error" not in record["detail"]
            assert runner.unexpected_exits == []

    asyncio.run(asyncio.wait_for(body(), 90))


def _taken_on(detail: dict[str, Any], ask: str) -> bool:
    """Whether the fault asked for a change starting with `ask` and the leader took it on."""
    return any(
        c["ask"].startswith(ask) and c["answer"].startswith("202") for c in detail["changes"]
    )
