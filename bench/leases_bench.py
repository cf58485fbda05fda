"""Leases on a running cluster: grant throughput and keep-alive cost against etcd, and the
time an election takes to replace a dead or paused leader.

Not a test. Run: python bench/leases_bench.py [--seconds 5] [--sessions 1000] [--rounds 10]
                 [--ttl 1] [--base-port N] [--skip-etcd]

1. Lease grants: `--clients` concurrent HTTP clients grant leases through etcd's JSON API
   (`POST /v3/lease/grant`, TTL 60 s) for `--seconds`, on paxosd and on etcd, three
   members each, one after the other on this machine; grants per second.
2. Keep-alive cost: `--sessions` leases (TTL 30 s) kept alive every 10 s each (one
   `POST /v3/lease/keepalive` per lease per 10 s, spread evenly) for `--seconds`; the CPU
   seconds the three server processes used per second of that window, for each system, and
   the same window with the leases idle (nobody keeps them alive) as the baseline.
3. Elections (paxosd): three `paxosd elect` workers with a `--ttl` session and two
   `paxosd elect --observe` observers. Each round kills the leader's process group with
   SIGKILL and measures until both observers printed the new leader; p50 and p99 over
   `--rounds`. Then one round pauses the leader (SIGSTOP) past its TTL: another leads, and
   when the paused one resumes, its `paxosd elect` stops its command and exits 2
   (leadership lost). Then `--instances` registrations (`paxosd instances register`): two
   are killed, and must vanish within the TTL while the others stay.

Numbers are only comparable within one run on one machine (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from paxosd.benchmark.peers import Cluster, free_base_port, start_etcd, start_paxosd

LEADER = "import os, time\nprint('leading', os.environ['PAXOSD_FENCING_TOKEN'], flush=True)\n" \
    "time.sleep(3600)\n"  # fmt: skip


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def http_endpoints(cluster: Cluster) -> list[str]:
    if cluster.name == "paxosd":
        return [f"http://127.0.0.1:{node.http_port}" for node in cluster.nodes]
    return [f"http://127.0.0.1:{node.client_port}" for node in cluster.nodes]


async def grants(endpoints: list[str], clients: int, seconds: float) -> float:
    """Lease grants per second over `seconds` with `clients` concurrent clients."""
    done = 0
    stop = time.monotonic() + seconds

    async def client(index: int) -> None:
        nonlocal done
        url = endpoints[index % len(endpoints)] + "/v3/lease/grant"
        async with httpx.AsyncClient(timeout=10) as http:
            while time.monotonic() < stop:
                answer = await http.post(url, json={"TTL": 60})
                if answer.status_code == 200 and "ID" in answer.json():
                    done += 1

    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return done / (time.monotonic() - began)


async def keepalive_cost(
    cluster: Cluster, sessions: int, seconds: float, every_s: float = 10.0
) -> dict[str, float]:
    """CPU s per s of the servers while `sessions` leases are kept alive, and while idle."""
    endpoints = http_endpoints(cluster)
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as http:
        ids: list[str] = []
        for start in range(0, sessions, 50):
            answers = await asyncio.gather(
                *(
                    http.post(endpoints[i % 3] + "/v3/lease/grant", json={"TTL": 30})
                    for i in range(start, min(sessions, start + 50))
                )
            )
            ids += [answer.json()["ID"] for answer in answers]
        pids = cluster.pids
        before = cpu_s(pids)
        await asyncio.sleep(seconds)
        idle = (cpu_s(pids) - before) / seconds
        sent = 0
        gap = every_s / max(1, len(ids))
        began = time.monotonic()
        before = cpu_s(pids)
        while time.monotonic() - began < seconds:
            lease = ids[sent % len(ids)]
            await http.post(endpoints[sent % 3] + "/v3/lease/keepalive", json={"ID": lease})
            sent += 1
            lag = began + sent * gap - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        window = time.monotonic() - began
        busy = (cpu_s(pids) - before) / window
    return {
        "idle_cpu_s_per_s": idle,
        "keepalive_cpu_s_per_s": busy,
        "keepalives_per_s": sent / window,
    }


class Lines:
    """A process's stdout lines with the time each arrived."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[tuple[float, str]] = queue.Queue()
        assert process.stdout is not None
        stream = process.stdout

        def read() -> None:
            for line in stream:
                self.queue.put((time.monotonic(), line))

        threading.Thread(target=read, daemon=True).start()

    def next(self, timeout: float = 60) -> tuple[float, str]:
        return self.queue.get(timeout=timeout)


class Spawned:
    """The `paxosd` processes this benchmark starts, each in a process group of its own with
    whatever it runs (an elected worker's command): `stop_all` ends every group, whatever
    became of the process that led it, so nothing outlives the benchmark."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(self, args: list[str], quiet: bool = False) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "paxosd", *args],
            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            kill_group(process, signal.SIGCONT)  # a paused one would not die until resumed
            kill_group(process)
        for process in self.processes:
            process.wait()
        self.processes.clear()


def kill_group(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Signal the process's group: the process and its command, or the command alone once
    the process has exited without stopping it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def elections(cluster: Cluster, rounds: int, ttl: float, instances: int) -> dict[str, Any]:
    spawned = Spawned()
    try:
        return _elections(cluster, rounds, ttl, instances, spawned)
    finally:
        spawned.stop_all()


def _elections(
    cluster: Cluster, rounds: int, ttl: float, instances: int, spawned: Spawned
) -> dict[str, Any]:
    spawn = spawned.spawn
    endpoints = ",".join(f"127.0.0.1:{node.http_port}" for node in cluster.nodes)
    common = ["--endpoints", endpoints]
    observers = [spawn(["elect", "--observe", "bench", "--json", *common]) for _ in range(2)]
    streams = [Lines(observer) for observer in observers]
    for stream in streams:
        stream.next()  # nobody leads yet
    workers: dict[str, subprocess.Popen[str]] = {}
    made = 0

    def worker() -> None:
        nonlocal made
        made += 1
        name = f"w{made}"
        workers[name] = spawn(
            ["elect", "bench", name, "--ttl", str(ttl), "--grace", "1", *common, "--",
             sys.executable, "-c", LEADER], quiet=True,
        )  # fmt: skip

    def next_leader() -> list[tuple[float, dict[str, Any]]]:
        return [(at, json.loads(line)) for at, line in (stream.next() for stream in streams)]

    took: list[float] = []
    sequences: list[list[str]] = [[], []]
    result: dict[str, Any] = {}
    try:
        for _ in range(3):
            worker()
        seen = next_leader()
        for sequence, (_, leader) in zip(sequences, seen, strict=True):
            sequence.append(leader["leader"])
        for _ in range(rounds):
            leader = seen[0][1]["leader"]
            kill_group(workers.pop(leader))
            killed = time.monotonic()
            seen = next_leader()
            took.append(max(at for at, _ in seen) - killed)
            for sequence, (_, answer) in zip(sequences, seen, strict=True):
                sequence.append(answer["leader"])
            worker()
        result["failover_s"] = {
            "rounds": rounds,
            "p50": round(statistics.median(took), 3),
            "p99": round(percentile(took, 0.99), 3),
            "max": round(max(took), 3),
        }
        result["observers_agree"] = sequences[0] == sequences[1]
        # A paused leader: another leads; resumed, it learns it lost and stops its command.
        leader = seen[0][1]["leader"]
        paused = workers.pop(leader)
        kill_group(paused, signal.SIGSTOP)
        stopped = time.monotonic()
        seen = next_leader()
        result["pause_new_leader_s"] = round(max(at for at, _ in seen) - stopped, 3)
        time.sleep(ttl)
        kill_group(paused, signal.SIGCONT)
        try:
            code = paused.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        result["paused_leader_exit_code"] = code  # 2: leadership lost, command stopped
    finally:
        spawned.stop_all()  # the workers (the paused one too, and any command) and observers
    # Registrations: kill two, the others stay.
    registered = [
        spawn(
            [
                "instances",
                "register",
                "bench-svc",
                f"i{i}",
                f"10.0.0.{i}",
                "--ttl",
                str(ttl),
                *common,
            ],
            quiet=True,
        )
        for i in range(instances)
    ]
    try:
        with httpx.Client(timeout=10) as http:
            url = f"http://127.0.0.1:{cluster.nodes[0].http_port}/v1/kv"

            def live() -> int:
                return int(http.get(url, params={"prefix": "bench-svc/"}).json()["count"])

            deadline = time.monotonic() + 60
            while live() < instances and time.monotonic() < deadline:
                time.sleep(0.05)
            for process in registered[:2]:
                kill_group(process)
            killed = time.monotonic()
            while live() > instances - 2 and time.monotonic() < killed + 30:
                time.sleep(0.02)
            result["registrations"] = {
                "instances": instances,
                "killed": 2,
                "gone_after_s": round(time.monotonic() - killed, 3),
                "live_after": live(),
            }
    finally:
        spawned.stop_all()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=1.0)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--skip-etcd", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="paxosd-leases-") as root:
        base = args.base_port or free_base_port()
        systems = [("paxosd", start_paxosd)]
        if not args.skip_etcd:
            systems.append(("etcd", start_etcd))
        for offset, (name, start) in enumerate(systems):
            cluster = start(Path(root) / name, base + 100 * offset)
            try:
                endpoints = http_endpoints(cluster)
                rate = asyncio.run(grants(endpoints, args.clients, args.seconds))
                cost = asyncio.run(keepalive_cost(cluster, args.sessions, args.seconds))
                report[name] = {"grants_per_s": round(rate, 1), **{
                    k: round(v, 3) for k, v in cost.items()}}  # fmt: skip
                if name == "paxosd":
                    report[name]["elections"] = elections(
                        cluster, args.rounds, args.ttl, args.instances
                    )
            finally:
                cluster.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
