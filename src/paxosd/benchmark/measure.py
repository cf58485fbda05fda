"""Measure one cluster: throughput, latency, CPU, failover (the pieces of `paxosd bench`).

Load generators: bench/bin/loadgen (Go; bench/loadgen/main.go) for etcd, ZooKeeper and
PySyncObj, and for paxosd's failover runs; `redis-benchmark` for paxosd's throughput and
latency, through its RESP port. Clusters come from `paxosd.benchmark.peers`.

    run_load(cluster_or_endpoints, system, clients, duration_s, op, value_size) -> dict
        one loadgen run; the loadgen's JSON line plus server CPU over the measured window
    cpu_seconds(pids) -> float          utime + stime (+ reaped children) from /proc/PID/stat
    failover(cluster) -> dict           kill -9 the leader under ~1 write/ms; time to first ack
    failover_ms(cluster, system) -> float
    run_redis_benchmark(cluster, clients, duration_s, op, value_size) -> dict
        redis-benchmark against the leader's RESP port, in the same result format
    from_redis_benchmark_csv(text, clients, duration_s) -> list[dict]
        redis-benchmark --csv output in the common result format

Every result is one flat JSON object (see the loadgen's docstring and docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import platform
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from paxosd.benchmark import peers

LOADGEN = peers.LOADGEN
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
loadgen_slack_s = 60.0  # beyond warm-up + duration before a loadgen run is killed


# ---------------------------------------------------------------------------------------
# CPU accounting


def cpu_seconds(pids: Iterable[int], include_children: bool = True) -> float:
    """CPU seconds (user + system, all threads) used so far by `pids`, from /proc/PID/stat.

    With include_children, the time of reaped children (cutime + cstime) counts too:
    PySyncObj forks a child to write its full dump. A PID that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        # The command name, field 2, is in parentheses and may hold spaces: split after it.
        fields = text.rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        total += utime + stime + ((cutime + cstime) if include_children else 0)
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user / nice
    return (sum(fields) - idle - guest) / CLOCK_TICKS


# ---------------------------------------------------------------------------------------
# One load-generator run


def _endpoints_and_pids(
    cluster_or_endpoints: peers.Cluster | str, pids: Sequence[int] | None
) -> tuple[str, list[int]]:
    if isinstance(cluster_or_endpoints, peers.Cluster):
        return cluster_or_endpoints.endpoints, list(pids or cluster_or_endpoints.pids)
    return cluster_or_endpoints, list(pids or [])


def loadgen_argv(
    endpoints: str,
    system: str,
    clients: int,
    duration_s: float,
    op: str = "write",
    value_size: int = 16,
    *,
    linearizable: bool = True,
    warmup_s: float = 1.0,
    keys: int = 1000,
    rate: float = 0.0,
    timeout_s: float = 5.0,
    ack_log: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [
        str(LOADGEN),
        f"-system={system}",
        f"-endpoints={endpoints}",
        f"-clients={clients}",
        f"-duration={duration_s}s",
        f"-warmup={warmup_s}s",
        f"-op={op}",
        f"-value-size={value_size}",
        f"-keys={keys}",
        f"-linearizable={'true' if linearizable else 'false'}",
        f"-timeout={timeout_s}s",
    ]
    if rate:
        argv.append(f"-rate={rate}")
    if ack_log:
        argv.append(f"-ack-log={ack_log}")
    argv.extend(extra)
    return argv


class _Window:
    """Samples server and machine CPU when the loadgen says its window starts and ends."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None
        self.stderr: list[str] = []
        self.started = threading.Event()

    def sample(self) -> tuple[float, float]:
        return cpu_seconds(self.pids), machine_busy_seconds()

    def follow(self, stream: io.TextIOBase) -> None:
        for line in stream:
            if line.startswith("WINDOW_START"):
                self.start = self.sample()
                self.started.set()
            elif line.startswith("WINDOW_END"):
                self.end = self.sample()
            else:
                self.stderr.append(line.rstrip("\n"))
        self.started.set()


def _spawn(argv: list[str], window: _Window, timeout_s: float) -> tuple[int, str]:
    """Run the loadgen; `window` follows its stderr AS IT COMES (its WINDOW_START and
    WINDOW_END lines time the CPU samples), another thread collects stdout. Killed (and an
    error raised) if it runs past timeout_s."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    assert proc.stderr is not None and proc.stdout is not None
    out: list[str] = []
    stdout_stream = proc.stdout
    threads = [
        threading.Thread(target=window.follow, args=(proc.stderr,), daemon=True),
        threading.Thread(target=lambda: out.append(stdout_stream.read()), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"loadgen ran past its time bound: {shlex.join(argv)}") from None
    finally:
        for thread in threads:
            thread.join(timeout=5)
    return proc.returncode, "".join(out)


def run_load(
    cluster_or_endpoints: peers.Cluster | str,
    system: str,
    clients: int,
    duration_s: float,
    op: str = "write",
    value_size: int = 16,
    *,
    pids: Sequence[int] | None = None,
    label: str = "",
    **loadgen_options: Any,
) -> dict[str, Any]:
    """Run the loadgen once (`loadgen_options` as `loadgen_argv` takes them) and return its
    JSON result, plus, when server PIDs are known (a Cluster, or `pids`), the servers' CPU over
    exactly the measured window:

    server_cpu_s, server_cpu_s_per_1k_ops (seconds per 1000 successful operations),
    machine_busy_cpu_s (all processes on the machine), other_cpu_s (machine minus servers minus
    loadgen: other work sharing the 2 cores), loadavg_1m, command (the exact loadgen command)."""
    endpoints, server_pids = _endpoints_and_pids(cluster_or_endpoints, pids)
    argv = loadgen_argv(endpoints, system, clients, duration_s, op, value_size, **loadgen_options)
    planned_s = loadgen_options.get("warmup_s", 1.0) + duration_s
    return _run_loadgen(argv, server_pids, planned_s, label)


def _run_loadgen(
    argv: list[str], server_pids: list[int], planned_s: float, label: str = ""
) -> dict[str, Any]:
    window = _Window(server_pids)
    returncode, stdout = _spawn(argv, window, planned_s + loadgen_slack_s)
    if returncode != 0 or not stdout.strip():
        raise RuntimeError(
            f"loadgen failed (exit {returncode}): {shlex.join(argv)}\n"
            + "\n".join(window.stderr[-20:])
        )
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["command"] = shlex.join(argv)
    if label:
        result["label"] = label
    with open("/proc/loadavg") as loadavg:
        result["loadavg_1m"] = float(loadavg.read().split()[0])
    if server_pids and window.start and window.end:
        server = window.end[0] - window.start[0]
        machine = window.end[1] - window.start[1]
        ops = max(1, int(result["ops"]))
        result["server_cpu_s"] = round(server, 3)
        result["server_cpu_s_per_1k_ops"] = round(server / ops * 1000, 4)
        result["machine_busy_cpu_s"] = round(machine, 3)
        result["other_cpu_s"] = round(max(0.0, machine - server - result["client_cpu_s"]), 3)
    return result


# ---------------------------------------------------------------------------------------
# Failover


def failover(
    cluster: peers.Cluster,
    system: str | None = None,
    *,
    rate: float = 1000.0,
    clients: int = 4,
    timeout_s: float = 1.0,
    settle_s: float = 2.0,
    after_s: float = 6.0,
    restart: bool = True,
) -> dict[str, Any]:
    """Kill -9 the leader under a steady write load and time the gap.

    `clients` writers together issue about `rate` writes/s (1 per ms by default), each with a
    `timeout_s` request timeout, moving to the next node after a failure. After `settle_s` the
    leader gets SIGKILL. Results:

    failover_ms: from the kill to the first acknowledged write that was SENT after the kill;
    write_gap_ms: the longest pause between two consecutive acknowledgements (of any client)
    from the last one before the kill to the end of the run;
    errors_after_kill: failed requests and connection attempts after the kill.

    Then the killed node is restarted on its data and the cluster waited on (restart=True)."""
    system = system or cluster.name
    cluster.wait_ready()
    leader = cluster.leader_index()
    deadline = time.monotonic() + peers.ready_timeout_s_default
    while leader is None and time.monotonic() < deadline:
        time.sleep(0.05)
        leader = cluster.leader_index()
    if leader is None:
        raise TimeoutError(f"{system}: no leader to kill")
    killed_pid = cluster.nodes[leader].pid
    with tempfile.NamedTemporaryFile(prefix="acks-", suffix=".txt", delete=False) as handle:
        ack_path = handle.name
    argv = loadgen_argv(
        cluster.endpoints,
        system,
        clients,
        settle_s + after_s,
        "write",
        16,
        warmup_s=0.0,
        rate=rate,
        timeout_s=timeout_s,
        ack_log=ack_path,
    )
    result: dict[str, Any] = {}
    kill_ns = 0

    def killer(window: _Window) -> None:
        nonlocal kill_ns
        window.started.wait(timeout=30)
        time.sleep(settle_s)
        kill_ns = time.time_ns()
        cluster.kill(leader)

    try:
        window = _Window([])
        kill_thread = threading.Thread(target=killer, args=(window,), daemon=True)
        kill_thread.start()
        returncode, stdout = _spawn(argv, window, settle_s + after_s + loadgen_slack_s)
        kill_thread.join(timeout=30)
        if returncode != 0 or not kill_ns:
            raise RuntimeError(
                f"failover run failed (exit {returncode}): {shlex.join(argv)}\n"
                + "\n".join(window.stderr[-20:])
            )
        acks = []
        with open(ack_path) as log:
            for line in log:
                start, end, ok, _worker = (int(f) for f in line.split())
                acks.append((start, end, ok == 1))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(ack_path)
    ok_ends = sorted(end for _, end, ok in acks if ok)
    after = [end for start, end, ok in acks if ok and start >= kill_ns]
    before = [end for end in ok_ends if end <= kill_ns]
    first_after = min(after) if after else None
    # The longest pause between consecutive acknowledgements (any client) from the last one
    # before the kill on: replies already on their way when the leader died do not hide it.
    tail = ok_ends[len(before) - 1 :] if before else ok_ends
    gap_ns = max((b - a for a, b in itertools.pairwise(tail)), default=None)
    result.update(
        {
            "system": system,
            "op": "failover",
            "rate": rate,
            "clients": clients,
            "killed_pid": killed_pid,
            "killed_node": leader,
            "failover_ms": round((first_after - kill_ns) / 1e6, 1) if first_after else None,
            "write_gap_ms": round(gap_ns / 1e6, 1) if gap_ns is not None and after else None,
            "acks_before_kill": len(before),
            "acks_after_kill": len(after),
            "errors_after_kill": sum(1 for _, end, ok in acks if not ok and end >= kill_ns),
            "command": shlex.join(argv),
            "loadgen": json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None,
        }
    )
    if restart:
        cluster.restart(leader)
        result["new_leader_pid"] = cluster.leader_pid()
    return result


def failover_ms(cluster: peers.Cluster, system: str | None = None, **options: Any) -> float:
    """Milliseconds from kill -9 of the leader to the first acknowledged write sent after it
    (math.inf if none was acknowledged); the killed node is restarted afterwards."""
    value = failover(cluster, system, **options)["failover_ms"]
    return math.inf if value is None else float(value)


# ---------------------------------------------------------------------------------------
# Other result sources and output


def from_redis_benchmark_csv(
    text: str, clients: int, duration_s: float | None = None, system: str = "resp"
) -> list[dict[str, Any]]:
    """Convert `redis-benchmark --csv` output (Redis 7) to the common result format.

    redis-benchmark reports no p99.9; it is None. ops is rps x duration when given."""
    rows = []
    lines = [line for line in text.splitlines() if line.startswith('"')]  # not `-e` errors
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        test = row.get("test", "")
        op = {"SET": "write", "GET": "read"}.get(test.split()[0].upper() if test else "", test)
        rps = float(row["rps"])
        rows.append(
            {
                "system": system,
                "op": op,
                "clients": clients,
                "duration_s": duration_s,
                "ops": int(rps * duration_s) if duration_s else None,
                "errors": None,
                "ops_per_s": rps,
                "p50_ms": float(row["p50_latency_ms"]),
                "p99_ms": float(row["p99_latency_ms"]),
                "p999_ms": None,
                "max_ms": float(row["max_latency_ms"]),
                "mean_ms": float(row["avg_latency_ms"]),
                "source": "redis-benchmark",
            }
        )
    return rows


def run_redis_benchmark(
    cluster: peers.Cluster,
    clients: int,
    duration_s: float,
    op: str = "write",
    value_size: int = 16,
    *,
    keys: int = 1000,
    warmup_s: float = 1.0,
    label: str = "",
) -> dict[str, Any]:
    """`redis-benchmark` (SET for writes, GET for reads) against the leader's RESP port for
    about `duration_s`, after an unmeasured warm-up of about `warmup_s` that also sizes the
    measured run (redis-benchmark counts requests, not seconds). The result has the common
    fields plus server CPU over the measured run and the generator's own CPU (client_cpu_s,
    from wait4's rusage)."""
    leader = cluster.leader_index()
    if leader is None:
        cluster.wait_leader()
        leader = cluster.leader_index()
    assert leader is not None
    port = cluster.nodes[leader].client_port
    test = {"write": "set", "read": "get"}[op]

    def argv(requests: int) -> list[str]:
        return [
            "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
            "-n", str(requests), "-t", test, "-r", str(keys), "-d", str(value_size), "--csv",
            "-e",  # an error reply is shown (at most one a second), not the end of the run
        ]  # fmt: skip

    rate = 1000.0 / max(1, clients) + 100.0  # a first guess; the warm-up corrects it
    warm = max(clients * 4, int(rate * max(0.2, warmup_s) / 2), 50)
    begin = time.monotonic()
    _redis_benchmark(argv(warm), warmup_s + 120)
    rate = warm / max(1e-3, time.monotonic() - begin)
    if warmup_s > 0.5:  # a second warm-up at the rate just seen, for the rest of the time
        warm = max(clients, int(rate * (warmup_s - (time.monotonic() - begin))))
        begin = time.monotonic()
        _redis_benchmark(argv(warm), warmup_s + 120)
        rate = warm / max(1e-3, time.monotonic() - begin)
    requests = max(clients * 4, int(rate * duration_s))
    command = argv(requests)
    pids = cluster.pids
    server_before, machine_before = cpu_seconds(pids), machine_busy_seconds()
    started = time.monotonic()
    text, client_cpu = _redis_benchmark(command, duration_s * 5 + 120)
    elapsed = time.monotonic() - started
    server = cpu_seconds(pids) - server_before
    machine = machine_busy_seconds() - machine_before
    rows = from_redis_benchmark_csv(text, clients, system="paxosd")
    errors_shown = sum(1 for line in text.splitlines() if line.startswith("Error"))
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {shlex.join(command)}\n{text}")
    result = rows[0]
    result.update(
        op=op,
        duration_s=round(elapsed, 3),
        ops=requests,
        errors=errors_shown,  # a lower bound: redis-benchmark shows one error a second
        value_size=value_size,
        keys=keys,
        client_cpu_s=round(client_cpu, 3),
        server_cpu_s=round(server, 3),
        server_cpu_s_per_1k_ops=round(server / requests * 1000, 4),
        machine_busy_cpu_s=round(machine, 3),
        other_cpu_s=round(max(0.0, machine - server - client_cpu), 3),
        command=shlex.join(command),
    )
    with open("/proc/loadavg") as loadavg:
        result["loadavg_1m"] = float(loadavg.read().split()[0])
    if label:
        result["label"] = label
    return result


def _redis_benchmark(argv: list[str], timeout_s: float) -> tuple[str, float]:
    """Run redis-benchmark; its stdout and its own CPU seconds (user + system, from wait4)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    out: list[bytes] = []
    stdout_stream = proc.stdout
    reader = threading.Thread(target=lambda: out.append(stdout_stream.read()), daemon=True)
    reader.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=5)
    text = b"".join(out).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(
            f"redis-benchmark failed ({proc.returncode}): {shlex.join(argv)}\n{text}"
        )
    return text, usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------
# Machine facts


def fdatasync_cost_ms(directory: str | Path, rounds: int = 200) -> dict[str, float]:
    """write(100 bytes) + fdatasync, `rounds` times, in a file under `directory`."""
    path = Path(directory) / "fdatasync-probe.bin"
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    samples.sort()
    return {
        "fdatasync_p50_ms": round(samples[len(samples) // 2], 3),
        "fdatasync_p90_ms": round(samples[int(len(samples) * 0.9)], 3),
        "fdatasync_max_ms": round(samples[-1], 3),
    }


def machine_facts(data_dir: str | Path) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            return "not found"
        return (
            (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else ""
        )

    return {
        "op": "machine",
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "data_dir": str(data_dir),
        "data_dir_fs": peers.filesystem_of(data_dir),
        **fdatasync_cost_ms(data_dir),
        "etcd": version(["etcd", "--version"]),
        "java": version(["java", "-version"]),
        "zookeeper_jar": str(peers.ZOOKEEPER_JAR.resolve())
        if peers.ZOOKEEPER_JAR.exists()
        else None,
        "pysyncobj_python": peers.pysyncobj_python(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().strip(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def wait_quiet(max_wait_s: float, threshold_cores: float = 0.3, sample_s: float = 1.0) -> float:
    """Wait (at most max_wait_s) for a `sample_s` interval in which the whole machine used
    under `threshold_cores` cores: other work on the 2 cores skews every figure. Returns the
    busy cores of the last interval sampled."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_seconds()
        time.sleep(sample_s)
        busy = (machine_busy_seconds() - before) / sample_s
        if busy < threshold_cores or time.monotonic() >= deadline:
            return round(busy, 2)
