"""A real cluster on loopback: what a user relies on, end to end."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from paxosd import AsyncClient, Client, NotHolder
from tests.pace import Deadline, within

from .cluster import Cluster


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    endpoints = ",".join(cluster.endpoints())
    return subprocess.run(
        [sys.executable, "-m", "paxosd", *args, "--endpoints", endpoints],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_put_then_get_from_the_command_line(cluster: Cluster) -> None:
    assert cli(cluster, "put", "x", "1").returncode == 0
    got = cli(cluster, "get", "x")
    assert got.returncode == 0 and got.stdout.strip() == "1"


def test_leader_kill9_writes_resume_quickly_and_nothing_acknowledged_is_lost(
    cluster: Cluster,
) -> None:
    client = Client(cluster.endpoints())
    for i in range(100):
        client.put(f"k{i}", i)
    leader = cluster.wait_for_leader()
    cluster.kill9(leader)
    # Budgets for an idle machine, scaled by how loaded it is when they run out (tests/pace.py).
    no_write = Deadline(10)
    others = Client(cluster.endpoints([n for n in (1, 2, 3) if n != leader]), timeout_s=0.5)
    while True:
        try:
            others.put("after-kill", 1)
            break
        except Exception:
            assert not no_write.passed(), f"no write succeeded for {no_write.elapsed_s():.1f} s"
    recovered_s = no_write.elapsed_s()
    assert within(recovered_s, 2.5), f"writes resumed only after {recovered_s:.2f} s"
    for i in range(100, 150):
        others.put(f"k{i}", i)
    cluster.launch(leader)  # the old leader restarts and catches up
    catch_up = Deadline(10)
    while True:
        status = cluster.status(leader)
        mine = cluster.status(cluster.wait_for_leader())
        if status and mine and status.get("applied", -1) >= mine["commit"] - 1:
            break
        assert not catch_up.passed(), f"node {leader} did not catch up: {status}"
        time.sleep(0.1)
    check = Client(cluster.endpoints([leader]))
    for i in range(150):
        found = check.get(f"k{i}")
        assert found is not None and found.value == i, f"acknowledged write k{i} lost"


def test_sigterm_shuts_down_cleanly_and_data_survives_a_full_restart(cluster: Cluster) -> None:
    client = Client(cluster.endpoints())
    client.put("durable", {"n": 7})
    for node in (1, 2, 3):
        assert cluster.terminate(node) == 0
    for node in (1, 2, 3):
        cluster.launch(node)
    cluster.wait_for_leader()
    assert Client(cluster.endpoints()).get("durable").value == {"n": 7}


def test_of_two_contending_lock_clients_exactly_one_holds(cluster: Cluster) -> None:
    client = Client(cluster.endpoints())
    with ThreadPoolExecutor(2) as pool:
        grants = list(pool.map(lambda o: client.acquire("mutex", o, 5), ["alice", "bob"]))
    assert sorted(g.acquired for g in grants) == [False, True]
    winner = next(g for g in grants if g.acquired)
    loser = next(g for g in grants if not g.acquired)
    assert loser.owner == winner.owner


def test_every_new_grant_has_a_larger_fencing_token(cluster: Cluster) -> None:
    client = Client(cluster.endpoints())
    tokens = []
    for owner in ("a", "b", "c", "d"):
        grant = client.acquire("fenced", owner, 5)
        assert grant.acquired
        tokens.append(grant.fencing_token)
        assert client.release("fenced", owner)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_a_holder_that_stops_refreshing_loses_the_lock_after_its_ttl(cluster: Cluster) -> None:
    client = Client(cluster.endpoints())
    first = client.acquire("lease", "sleepy", 0.5)
    assert first.acquired
    assert not client.acquire("lease", "eager", 0.5).acquired
    time.sleep(0.8)
    second = client.acquire("lease", "eager", 5)
    assert second.acquired and second.fencing_token > first.fencing_token
    with pytest.raises(NotHolder):
        client.refresh("lease", "sleepy", 5)


def test_the_lock_context_manager_refreshes_and_releases(cluster: Cluster) -> None:
    client = Client(cluster.endpoints())
    with client.lock("job", ttl=0.6) as token:
        time.sleep(1.5)  # longer than the lease: the background refresh keeps it
        assert client.lock_status("job").fencing_token == token
    assert not client.lock_status("job").acquired


def test_of_many_concurrent_registrations_one_wins_and_all_see_it(cluster: Cluster) -> None:
    clients = [Client(cluster.endpoints()) for _ in range(4)]
    owners = [f"user{i}" for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        results = list(
            pool.map(lambda i: clients[i % 4].register("paxos_expert", owners[i]), range(24))
        )
    winners = {r.owner for r in results}
    assert len(winners) == 1
    assert sum(r.registered for r in results) == 1
    assert clients[0].lookup("paxos_expert") in winners


def test_propose_then_query_agree(cluster: Cluster) -> None:
    client = Client(cluster.endpoints())
    assert client.propose("color", "red") == "red"
    assert client.propose("color", "blue") == "red"
    assert client.query("color") == "red"


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-tools not installed")
def test_redis_cli_set_and_get(cluster: Cluster) -> None:
    port = str(cluster.resp_port(1))
    assert subprocess.run(["redis-cli", "-p", port, "SET", "x", "1"], capture_output=True,
                          text=True, timeout=10).stdout.strip() == "OK"  # fmt: skip
    got = subprocess.run(["redis-cli", "-p", str(cluster.resp_port(2)), "GET", "x"],
                         capture_output=True, text=True, timeout=10)  # fmt: skip
    assert got.stdout.strip() == "1"


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="redis-tools not installed")
def test_redis_benchmark_completes(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    done = subprocess.run(
        ["redis-benchmark", "-p", str(cluster.resp_port(leader)), "-t", "set,get", "-n", "5000",
         "-c", "20", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SET:" in done.stdout and "GET:" in done.stdout


def test_concurrent_writers_through_every_node(cluster: Cluster) -> None:
    errors: list[Exception] = []

    def writer(node: int) -> None:
        client = Client(cluster.endpoints([node]))
        try:
            for i in range(50):
                client.put(f"w{node}-{i}", i)
        except Exception as error:  # collected, asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    check = Client(cluster.endpoints())
    assert all(check.get(f"w{n}-49").value == 49 for n in (1, 2, 3))


def test_the_async_client_does_what_the_blocking_one_does(cluster: Cluster) -> None:
    async def scenario() -> None:
        async with AsyncClient(cluster.endpoints()) as client:
            revisions = await asyncio.gather(*(client.put(f"a{i}", i) for i in range(20)))
            assert sorted(revisions) == list(range(min(revisions), min(revisions) + 20))
            found = await client.get("a7")
            assert found is not None and found.value == 7
            assert (await client.cas("a7", 7, 8)).succeeded
            assert not (await client.cas("a7", 7, 9)).succeeded
            async with client.lock("job", ttl=1.0) as token:
                assert token >= 1
                with pytest.raises(NotHolder):
                    await client.release("job", "someone-else")
            assert await client.propose("d", "first") == "first"
            assert await client.query("d") == "first"

    asyncio.run(scenario())
