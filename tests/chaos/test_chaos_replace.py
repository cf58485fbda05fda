"""`paxosd chaos --nemesis replace,grow`: a member's machine replaced after losing its disk
(removed through the leader, killed, its data directory wiped, joined again with `paxosd node
--join` under a new incarnation), and a fresh node joining and leaving again, under the
clients' load, on real processes. Every checker must stay
ok; the replaced node must vote again, under its new incarnation, reached through its front
door like any other link. A failure prints the command that replays the run."""

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


def test_replacing_nodes_under_load_leaves_no_anomaly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    seed = 8  # its schedule: a node grown (node 4 joins, then leaves), then one replaced
    status, results, replay = command.chaos(
        out, "--nodes", "3", "--duration", "20", "--seed", str(seed), "--nemesis", "replace,grow"
    )
    problems = {k: v["problems"] for k, v in results["verdicts"].items() if not v["ok"]}
    assert status == 0 and results["valid"], f"seed {seed}: {problems}\n{replay}"
    assert all(v["checked"] > 0 for v in results["verdicts"].values()), results["verdicts"]
    assert results["faults"]["unexpected_exits"] == []
    replaced = [f for f in results["fault_log"] if f["kind"] == "replace"]
    assert replaced, f"{results['faults']}\n{replay}"
    for fault in replaced:
        detail = fault["detail"]
        assert "error" not in detail and "end_error" not in detail, f"{detail}\n{replay}"
        assert detail["wiped"] and detail["join_command"].startswith("paxosd node --join")
        assert detail["new_incarnation"] not in (None, detail["old_incarnation"]), detail
        assert detail["voter_after_s"] >= 0, f"{detail}\n{replay}"
    grown = [f for f in results["fault_log"] if f["kind"] == "grow"]
    assert grown, f"{results['faults']}\n{replay}"
    for fault in grown:  # a fresh node 4 joined, voted, and was removed again
        detail = fault["detail"]
        assert fault["targets"] == [[4]] and detail["voter_after_s"] >= 0, f"{detail}\n{replay}"
        assert "error" not in detail and "end_error" not in detail, f"{detail}\n{replay}"
        asks = [c["ask"] for c in detail["changes"] if c["answer"].startswith("202")]
        assert asks[0].startswith("join 4 ") and asks[-1].startswith("remove 4 "), asks
    last = [f for f in results["fault_log"] if f["kind"] in ("replace", "grow")][-1]
    assert sorted(last["detail"]["healed_voters"]) == [1, 2, 3], last
    # The members dialed the joined nodes at their front doors, through the links' proxies.
    assert results["proxy"]["front_door_connections"] > 0, results["proxy"]
    assert command.no_nodes_left(out)


def test_the_replaced_leader_votes_again_under_a_new_incarnation(tmp_path: Path) -> None:
    """The leader's machine replaced: at the end it is a voter (as every node's /v1/status
    says) recorded with the new incarnation its own status shows; a crash afterwards restarts
    it from the node.toml its join wrote, and a partition cuts it off through its front door."""

    async def body() -> None:
        async with nemesis_test.cluster(tmp_path) as (mesh, nodes):
            runner = NemesisRunner(mesh, nodes, random.Random(4))
            everyone = {1, 2, 3}
            leader = await nemesis_test.wait_for_leader(runner, everyone, nemesis_test.startup_s)
            old = (await runner.statuses())[leader]["incarnation"]
            record = await runner.begin(FaultEvent(0, 1, "replace", ((leader,),)))
            detail = record["detail"]
            why = detail.get("refused")  # (pytest cuts a long record short: this first)
            assert detail["victim_led"] and _taken_on(detail, f"remove {leader}"), (why, detail)
            assert not nodes[leader].alive and not list(Path(detail["wiped"]).glob("*"))
            await runner.end()
            assert "end_error" not in detail and "not_voter" not in detail, detail
            assert nodes[leader].config_path == Path(detail["wiped"]) / "node.toml"

            statuses = await _settled(runner, leader)
            new = statuses[leader]["incarnation"]
            assert new not in (None, old) and new == detail["new_incarnation"]
            for node, status in statuses.items():  # every member records its new identity
                joined = {j["id"]: j for j in status["configuration"]["joined"]}
                assert joined[leader]["incarnation"] == new, (node, status["configuration"])
                front = mesh.front_address(leader)
                assert f"peer={front[0]}:{front[1]}" in joined[leader]["contact"]

            # Cut off through its front door: the others lead without it.
            await runner.begin(
                FaultEvent(0, 1, "partition", ((leader,), tuple(everyone - {leader})))
            )
            assert await nemesis_test.wait_for_leader(runner, everyone - {leader}) != leader
            await runner.end()
            # A crash: it comes back from its own node.toml, same identity, still a voter.
            await runner.begin(FaultEvent(0, 1, "kill", ((leader,),)))
            await runner.end()
            statuses = await _settled(runner, leader)
            assert statuses[leader]["incarnation"] == new
            assert mesh.totals()["front_door_connections"] > 0
            await runner.heal_all()
            assert runner.unexpected_exits == []

    asyncio.run(asyncio.wait_for(body(), 90))


async def _settled(runner: NemesisRunner, node: int) -> dict[int, dict[str, Any]]:
    """Every node's status once all three answer, agree on a leader and name `node` a voter."""
    deadline = time.monotonic() + 20
    while True:
        statuses = await runner.statuses()
        leader = leader_of(statuses)
        voting = all(node in s["configuration"]["voters"] for s in statuses.values())
        if len(statuses) == 3 and leader is not None and voting:
            return statuses
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.1)


def _taken_on(detail: dict[str, Any], ask: str) -> bool:
    return any(
        c["ask"].startswith(ask) and c["answer"].startswith("202") for c in detail["changes"]
    )
