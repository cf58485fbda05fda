"""Nemesis schedules, and the runner against three real `paxosd node` processes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from paxosd.chaos import (
    KINDS,
    FaultEvent,
    NemesisRunner,
    NodeProcess,
    ProxyMesh,
    agreed_leader,
    leader_of,
    make_schedule,
    peer_addresses,
    write_configs,
)
from paxosd.runtime.config import load
from tests.ports import free_block, free_layout

# -- schedules (pure) ---------------------------------------------------------------------------


def test_schedules_are_deterministic_separated_and_within_duration() -> None:
    nodes = [1, 2, 3, 4, 5]
    quiet, fault, pause = (2.0, 4.0), (1.0, 3.0), (2.5, 3.5)
    seen = set()
    for seed in range(30):
        args: dict[str, Any] = {"fault_s": fault, "quiet_s": quiet, "pause_s": pause}
        schedule = make_schedule(KINDS, 120, seed, nodes, **args)
        assert schedule == make_schedule(KINDS, 120, seed, reversed(nodes), **args)
        seen.add(tuple(e.to_json()["start"] for e in schedule))
        assert len(schedule) >= 10
        assert schedule[0].start >= quiet[0]
        assert schedule[-1].end + quiet[0] <= 120
        for before, after in itertools.pairwise(schedule):
            assert after.start - before.end >= quiet[0]
        for event in schedule:
            low, high = pause if event.kind == "pause" else fault
            assert low <= round(event.end - event.start, 3) + 0.001 and (
                event.end - event.start <= high + 0.001
            )
            members = [n for group in event.targets for n in group]
            assert len(members) == len(set(members)) and set(members) <= set(nodes)
            if event.kind in ("partition", "bridge"):
                assert sorted(members) == nodes
            if event.kind == "partition":
                majority, minority = event.targets
                assert len(majority) > len(minority) >= 1
            if event.kind == "bridge":
                assert [len(g) for g in event.targets] == [2, 1, 2]
            if event.kind in ("kill", "pause", "failing-write", "clock-skew"):
                assert len(event.targets) == 1 and len(event.targets[0]) == 1
            if event.kind == "clock-skew":
                assert 5_000 <= abs(event.params["offset_ms"]) <= 600_000
            if event.kind == "clock-jump-leader":
                assert 5_000 <= event.params["offset_ms"] <= 120_000
                assert event.params["every_s"] == 1.0  # jumps again each second
            if event.kind == "loss":
                assert 0 < event.params["loss"] < 1
            if event.kind == "delay":
                assert event.params["delay_ms"] > 0
    assert len(seen) == 30  # different seeds, different schedules


def test_schedule_edge_cases() -> None:
    assert make_schedule(["kill"], 5, 1, [1, 2, 3]) == []  # too short for one fault
    with pytest.raises(ValueError, match="unknown"):
        make_schedule(["flood"], 60, 1, [1, 2, 3])
    with pytest.raises(ValueError, match="bridge"):
        make_schedule(["bridge"], 60, 1, [1, 2])
    with pytest.raises(ValueError, match="membership change needs at least 2 nodes"):
        make_schedule(["membership"], 60, 1, [1])  # removing the only voter leaves no cluster
    schedule = make_schedule(["bridge"], 60, 1, [1, 2, 3])
    assert all(sorted(len(g) for g in e.targets) == [1, 1, 1] for e in schedule)


def test_leader_from_statuses() -> None:
    statuses = {
        1: {"role": "leader", "leader": 1},  # deposed, still believes it leads
        2: {"role": "leader", "leader": 2},
        3: {"role": "follower", "leader": 2},
    }
    assert leader_of(statuses) == 2
    assert agreed_leader(statuses, 2) == 2
    assert agreed_leader(statuses, 3) is None
    assert leader_of({1: {"role": "candidate", "leader": None}}) is None


# -- against real nodes -------------------------------------------------------------------------

startup_s = 20.0  # first start imports aiohttp and friends
election_wait_s = 10.0


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[ProxyMesh, dict[int, NodeProcess]]]:
    """Three paxosd nodes behind a proxy mesh; every process is killed by PID at the end."""
    base_port = free_layout(3)
    first = free_block(ProxyMesh.ports_needed(3), 1500)
    mesh = ProxyMesh(peer_addresses(3, base_port), range(first, first + 6), random.Random(9))
    await mesh.start()
    nodes: dict[int, NodeProcess] = {}
    try:
        for path in write_configs(tmp_path, 3, base_port, mesh):
            process = NodeProcess.from_config(path, tmp_path / "logs")
            nodes[process.node_id] = process
            process.start()
        for process in nodes.values():
            # A node that never answers is a failure of the test, not a reason to skip it.
            await asyncio.to_thread(process.wait_ready, startup_s)
        yield mesh, nodes
    finally:
        for process in nodes.values():
            await asyncio.to_thread(process.close)
        await mesh.close()


def put(node: NodeProcess, key: str) -> None:
    """A write through `node` (forwarded to the leader); its answer does not matter."""
    assert node.http is not None
    host, port = node.http
    request = urllib.request.Request(
        f"http://{host}:{port}/v1/kv/{key}", data=b'{"value": 1}', method="PUT"
    )
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=1).close()


async def wait_for_leader(
    runner: NemesisRunner, among: set[int], timeout_s: float = election_wait_s
) -> int:
    """Poll until every node of `among` answers and names the same leader, which leads."""
    deadline = time.monotonic() + timeout_s
    last: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        statuses = await runner.statuses()
        last = {i: s for i, s in statuses.items() if i in among}
        if set(last) == among:
            leader = agreed_leader(last, len(among))
            if leader is not None and leader in among:
                return leader
        await asyncio.sleep(0.1)
    seen = {i: (s.get("role"), s.get("leader")) for i, s in last.items()}
    logs = "\n".join(f"--- node {i}:\n{p.log_tail(1500)}" for i, p in runner.nodes.items())
    raise AssertionError(
        f"no leader agreed by {sorted(among)} in {timeout_s} s: {seen}\nlog tails:\n{logs}"
    )


def test_runner_against_three_real_nodes(tmp_path: Path) -> None:
    async def body() -> None:
        async with cluster(tmp_path) as (mesh, nodes):
            runner = NemesisRunner(mesh, nodes, random.Random(4))
            everyone = {1, 2, 3}
            await wait_for_leader(runner, everyone, startup_s)

            # A minority cut off: the majority side keeps (or elects) a leader of its own.
            await runner.begin(FaultEvent(0, 1, "partition", ((1, 2), (3,))))
            assert await wait_for_leader(runner, {1, 2}) in (1, 2)
            await runner.end()
            await wait_for_leader(runner, everyone)

            # kill -9 the leader: the others elect another; the restarted node rejoins.
            record = await runner.begin(FaultEvent(0, 1, "kill-leader"))
            victim = record["targets"][0][0]
            assert record["detail"]["exit_code"] == -9 and not nodes[victim].alive
            assert await wait_for_leader(runner, everyone - {victim}) != victim
            await runner.end()
            assert nodes[victim].alive and record["detail"]["restart_pid"] == nodes[victim].pid
            await asyncio.to_thread(nodes[victim].wait_ready, startup_s)
            await wait_for_leader(runner, everyone)

            # SIGSTOP the leader for longer than the election timeout, then SIGCONT.
            leader = await runner.find_leader()
            assert leader is not None
            await runner.begin(FaultEvent(0, 1, "pause", ((leader,),)))
            assert nodes[leader].paused and nodes[leader].alive
            assert await wait_for_leader(runner, everyone - {leader}) != leader
            await runner.end()
            await wait_for_leader(runner, everyone)

            # A failing disk: the node must stop (exit 70), never acknowledge.
            follower = min(everyone - {await runner.find_leader() or 0})
            record = await runner.begin(FaultEvent(0, 1, "failing-write", ((follower,),)))
            deadline = time.monotonic() + 5
            writes = 0
            while nodes[follower].alive and time.monotonic() < deadline:
                # An idle cluster may write nothing at all: make the follower append.
                writes += 1
                await asyncio.to_thread(put, nodes[follower], f"disk-{writes}")
                await asyncio.sleep(0.05)
            await runner.end()
            assert record["detail"]["exit_code"] == 70, nodes[follower].log_tail()
            assert record["detail"]["stopped_as_required"] is True
            assert "event=storage_failed" in nodes[follower].log_tail(20_000)
            await wait_for_leader(runner, everyone)

            # The leader's wall clock jumps ahead ten minutes: the node notices (its log says
            # so within its one-second clock check) and, leases being monotonic, goes on.
            record = await runner.begin(
                FaultEvent(0, 1, "clock-jump-leader", (), {"offset_ms": 600_000})
            )
            jumped = nodes[record["targets"][0][0]]
            assert jumped.clock_file is not None
            assert json.loads(jumped.clock_file.read_text()) == {"wall_offset_ms": 600_000}
            deadline = time.monotonic() + 5
            while "event=clock_jumped" not in jumped.log_tail(20_000):
                assert time.monotonic() < deadline, jumped.log_tail()
                await asyncio.sleep(0.1)
            await runner.end()
            assert json.loads(jumped.clock_file.read_text()) == {"wall_offset_ms": 0}
            await wait_for_leader(runner, everyone)

            # A short generated schedule of the other kinds, healed at the end.
            schedule = make_schedule(
                ["isolate-leader", "bridge", "one-way", "delay", "loss", "duplicate", "reset"],
                7.0,
                seed=3,
                nodes=everyone,
                fault_s=(1.0, 1.2),
                quiet_s=(0.8, 1.0),
            )
            assert len(schedule) >= 3
            await runner.run(schedule)
            assert mesh.cut_links() == [] and runner.healed_at is not None
            await wait_for_leader(runner, everyone)

            assert runner.unexpected_exits == []
            kinds = [r["kind"] for r in runner.events]
            assert kinds[:5] == [
                "partition",
                "kill-leader",
                "pause",
                "failing-write",
                "clock-jump-leader",
            ]
            assert kinds[5:] == [e.kind for e in schedule]
            for record in runner.events:
                assert set(record) == {"kind", "start", "end", "targets", "detail"}
                assert record["start"] < record["end"] <= time.time()
                assert "error" not in record["detail"], record
            for before, after in itertools.pairwise(runner.events):
                assert before["end"] <= after["start"]
            # Peers really went through the proxies: every node's config dials them.
            config = load(tmp_path / "node1.toml")
            peers = {m.id: m.peer for m in config.members}
            assert peers == {1: mesh.peers[1], 2: mesh.address_for(1, 2), 3: mesh.address_for(1, 3)}
            assert mesh.totals()["frames_forwarded"] > 0

    asyncio.run(asyncio.wait_for(body(), 90))
