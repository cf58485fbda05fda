"""The CLI's exit codes against a real cluster, per the table in docs/client.md: 0 done, 1 a
definite no, 2 usage or error, 3 outcome unknown; and a stopped cluster fails fast with a
hint. Every command here is a real `paxosd` process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paxosd import Client
from tests.ports import free_block

from .cluster import Cluster


def paxosd(
    endpoints: list[str], *args: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    at = args.index("--") if "--" in args else len(args)
    argv = [*args[:at], "--endpoints", ",".join(endpoints), *args[at:]]
    return subprocess.run(
        [sys.executable, "-m", "paxosd", *argv], capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture
def shared(shared_cluster: Cluster) -> Cluster:
    return shared_cluster


def _setup(step: str, client: Client) -> None:
    match step:
        case "cas-key=1":
            client.put("cas-key", 1)
        case "taken-by-a":
            client.register("taken", "a")
        case held if held.startswith("held-"):
            assert client.acquire(held, "a", 30).acquired


@pytest.mark.parametrize(
    ("setup", "args", "says"),
    [
        ("", ["get", "never-written"], "never-written: not found"),
        ("cas-key=1", ["cas", "cas-key", "5", "6"], "not swapped: cas-key holds 1"),
        ("taken-by-a", ["register", "taken", "--owner", "b"], "taken by a"),
        ("", ["lookup", "nobody-has-this"], "not registered"),
        ("", ["query", "open-decision"], "undecided"),
        ("", ["unlock", "never-held", "--owner", "x"], "not released"),
        ("held-1", ["lock", "held-1", "--wait", "0"], "held by 'a'"),
        ("held-2", ["lock", "held-2", "--wait", "0", "--", "true"], "held by 'a'"),
    ],
)
def test_a_definite_no_exits_1(shared: Cluster, setup: str, args: list[str], says: str) -> None:
    with Client(shared.endpoints()) as client:
        _setup(setup, client)
    done = paxosd(shared.endpoints(), *args)
    assert done.returncode == 1, done
    assert says in done.stdout + done.stderr


def test_lock_honours_wait_without_a_command(shared: Cluster) -> None:
    assert (
        paxosd(shared.endpoints(), "lock", "held-3", "--owner", "a", "--ttl", "30").returncode == 0
    )
    started = time.monotonic()
    done = paxosd(shared.endpoints(), "lock", "held-3", "--wait", "1.5", "--json")
    assert done.returncode == 1 and time.monotonic() - started >= 1.5
    assert json.loads(done.stdout)["error"] == "lock_held"


def test_done_exits_0_and_lock_status_shows_a_remaining_ttl(shared: Cluster) -> None:
    e = shared.endpoints()
    assert paxosd(e, "put", "ok-key", "[1, 2]").returncode == 0
    got = paxosd(e, "get", "ok-key", "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["value"] == [1, 2]
    with Client(e) as client:
        client.register("mine", "me")
    looked = paxosd(e, "lookup", "mine")
    assert looked.returncode == 0 and looked.stdout.strip() == "me"
    assert paxosd(e, "lock", "shown", "--owner", "me", "--ttl", "20").returncode == 0
    shown = paxosd(e, "lock-status", "shown", "--json")
    data = json.loads(shown.stdout)
    assert shown.returncode == 0 and data["held"] and data["owner"] == "me"
    assert 0 < data["remaining_s"] <= 20
    free = paxosd(e, "lock-status", "never-taken")
    assert free.returncode == 0 and "free" in free.stdout
    status = paxosd(e, "status")
    assert status.returncode == 0 and "quorum OK" in status.stdout and "None" not in status.stdout
    assert all(len(line) <= 80 for line in status.stdout.splitlines())
    health = paxosd(e, "endpoint", "health")
    assert health.returncode == 0 and health.stdout.count("healthy") == 3


def test_a_command_runs_under_the_lock_with_its_token_and_its_exit_code(shared: Cluster) -> None:
    done = paxosd(
        shared.endpoints(), "lock", "job", "--", sys.executable, "-c",
        "import os, sys; print(os.environ['PAXOSD_FENCING_TOKEN']); sys.exit(7)",
    )  # fmt: skip
    assert done.returncode == 7 and done.stdout.strip().isdigit()
    again = paxosd(shared.endpoints(), "lock", "job", "--wait", "0", "--", "true")
    assert again.returncode == 0, "the lock is released when the command ends"


def test_without_a_quorum_a_write_is_unknown_and_status_says_no_quorum(tmp_path: Path) -> None:
    cluster = Cluster.start(tmp_path)
    try:
        leader = cluster.wait_for_leader()
        survivor = next(n for n in (1, 2, 3) if n != leader)
        for node in (1, 2, 3):
            if node != survivor:
                cluster.kill9(node)
        e = cluster.endpoints()
        put = paxosd(e, "put", "q", "1", "--timeout", "2")
        assert put.returncode == 3, put
        assert "outcome unknown" in put.stderr and "read it to find out" in put.stderr
        status = paxosd(e, "status")
        assert status.returncode == 1 and "no leader with a quorum" in status.stdout
        assert "None" not in status.stdout
        health = paxosd(e, "endpoint", "health")
        assert health.returncode == 1 and "unreachable" in health.stdout
        cluster.kill9(survivor)
        down = paxosd(e, "status", "--json")
        assert down.returncode == 2 and json.loads(down.stdout)["summary"]["answering"] == 0
    finally:
        cluster.stop()


def test_a_stopped_cluster_fails_at_once_with_a_hint() -> None:
    base = free_block(3)
    nowhere = [f"127.0.0.1:{base + i}" for i in range(3)]
    # What any `paxosd` process costs to start on this machine, right now: the baseline.
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "paxosd", "--version"], capture_output=True, check=True)
    baseline_s = time.monotonic() - started
    started = time.monotonic()
    done = paxosd(nowhere, "get", "x")  # the default --timeout is 10 s
    elapsed_s = time.monotonic() - started
    assert done.returncode == 2
    assert done.stderr.startswith("error: every endpoint refused the connection")
    assert "hint: is the cluster running? `make up` starts one" in done.stderr
    # In the process the failure takes milliseconds (tests/client); here start-up noise on a
    # busy machine is allowed for, but not the 10 s a call that waited its timeout would take.
    assert elapsed_s - baseline_s < 2.0, f"{elapsed_s:.2f} s, of which start-up {baseline_s:.2f}"
    as_json = paxosd(nowhere, "get", "x", "--json")
    error = json.loads(as_json.stdout)
    assert (
        as_json.returncode == 2 and error["error"] == "unavailable" and "make up" in error["hint"]
    )
    status = paxosd(nowhere, "status")
    assert status.returncode == 2 and "no node answered" in status.stderr
