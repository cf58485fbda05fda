"""A holder of `Client.lock()` learns at once that it lost the lock - a callback, a flag,
and an exception at the end of its block - against a real cluster: when a refresh is
refused, and when the holder was paused past its lease and another owner took the lock."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest

from paxosd import AsyncClient, Client, LockLost

from .cluster import Cluster


def test_a_refused_refresh_ends_the_lease_at_once(shared_cluster: Cluster) -> None:
    endpoints = shared_cluster.endpoints()
    told: list[LockLost] = []
    with Client(endpoints) as holder, Client(endpoints) as other:
        with (
            pytest.raises(LockLost, match="refused a refresh"),
            holder.lock("lost/a", ttl=1.5, owner="holder-a", on_lost=told.append) as token,
        ):
            assert not token.lost and token.valid_for_s > 0
            # Another process frees the lock under the holder and takes it.
            assert other.release("lost/a", "holder-a")
            taken = other.acquire("lost/a", "holder-b", 30)
            assert taken.acquired and taken.fencing_token is not None
            assert taken.fencing_token > token
            assert token.wait_lost(5), "the refresher did not notice within 5 s"
            assert token.lost and token.valid_for_s == 0
            with pytest.raises(LockLost):
                token.check()
        assert len(told) == 1 and isinstance(told[0], LockLost)
        # Leaving the block did not release the new owner's lock.
        assert other.lock_status("lost/a").owner == "holder-b"


def test_the_async_client_tells_the_holder_too(shared_cluster: Cluster) -> None:
    endpoints = shared_cluster.endpoints()
    told: list[str] = []

    async def on_lost(error: LockLost) -> None:
        told.append(str(error))

    async def scenario() -> None:
        async with AsyncClient(endpoints) as holder, AsyncClient(endpoints) as other:
            with pytest.raises(LockLost):
                async with holder.lock(
                    "lost/b", ttl=1.5, owner="async-a", on_lost=on_lost
                ) as token:
                    await other.release("lost/b", "async-a")
                    assert (await other.acquire("lost/b", "async-b", 30)).acquired
                    deadline = time.monotonic() + 5
                    while not token.lost and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert token.lost
                    await asyncio.sleep(0.1)  # the refresher awaits the callback
            assert len(told) == 1 and "lost/b" in told[0]

    asyncio.run(scenario())


HOLDER = """
import sys, time
from paxosd import Client, LockLost

def told(error):
    print("on_lost:", error, flush=True)

try:
    with Client(sys.argv[1]) as client:
        with client.lock("lost/paused", ttl=1.0, owner="holder-p", on_lost=told) as token:
            print("holding", int(token), flush=True)
            while not token.lost:
                time.sleep(0.05)
            print("lost:", token.reason, flush=True)
except LockLost as error:
    print("the block raised LockLost:", error, flush=True)
    sys.exit(0)
print("the block ended without an error", flush=True)
sys.exit(1)
"""


def test_a_holder_paused_past_its_lease_learns_another_owner_may_have_it(
    shared_cluster: Cluster,
) -> None:
    endpoints = shared_cluster.endpoints()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ",".join(endpoints)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        first = holder.stdout.readline()
        assert first.startswith("holding"), first
        token = int(first.split()[1])
        holder.send_signal(signal.SIGSTOP)  # a GC pause, a swapped-out process
        with Client(endpoints) as other:
            deadline = time.monotonic() + 10
            while not (taken := other.acquire("lost/paused", "holder-q", 30)).acquired:
                assert time.monotonic() < deadline, "the paused holder's lease never ended"
                time.sleep(0.1)
            assert taken.fencing_token is not None and taken.fencing_token > token
            holder.send_signal(signal.SIGCONT)
            output, _ = holder.communicate(timeout=20)
            assert holder.returncode == 0, first + output
            assert "on_lost:" in output and "the block raised LockLost" in output
            assert other.lock_status("lost/paused").owner == "holder-q"
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
            holder.wait()


def test_the_cli_stops_a_command_whose_lock_is_lost(shared_cluster: Cluster) -> None:
    endpoints = shared_cluster.endpoints()
    command = subprocess.Popen(
        [
            sys.executable, "-m", "paxosd", "lock", "lost/cli", "--owner", "cli-holder",
            "--ttl", "1", "--endpoints", ",".join(endpoints), "--", "sleep", "60",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with Client(endpoints) as other:
            deadline = time.monotonic() + 20
            while other.lock_status("lost/cli").owner != "cli-holder":
                assert time.monotonic() < deadline and command.poll() is None
                time.sleep(0.1)
            assert other.release("lost/cli", "cli-holder")
            assert other.acquire("lost/cli", "someone-else", 30).acquired
            _, stderr = command.communicate(timeout=15)
        assert command.returncode == 2, stderr
        assert "lost lock 'lost/cli'" in stderr and "stopping the command" in stderr
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
