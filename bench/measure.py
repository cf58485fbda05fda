"""Measure paxosd's peers (etcd, ZooKeeper, PySyncObj): throughput, latency, CPU, failover.

Not a test. The helpers drive bench/bin/loadgen (Go; see bench/loadgen/main.go) against a
cluster from bench/peers.py; `suite` runs the whole comparison (docs/benchmark-peers.md):

    bash bench/setup.sh                                  # packages, pysyncobj, the loadgen
    .venv/bin/python bench/measure.py suite --out bench/results/peers.jsonl
    .venv/bin/python bench/measure.py report bench/results/peers.jsonl     # markdown tables

Helpers (import with `sys.path.insert(0, "bench")` or run from the repository root):

    run_load(cluster_or_endpoints, system, clients, duration_s, op, value_size) -> dict
        one loadgen run; the loadgen's JSON line plus server CPU over the measured window
    cpu_seconds(pids) -> float          utime + stime (+ reaped children) from /proc/PID/stat
    failover(cluster) -> dict           kill -9 the leader under ~1 write/ms; time to first ack
    failover_ms(cluster, system) -> float
    print_table(results)                a rich table of run_load results
    from_redis_benchmark_csv(text, clients, duration_s) -> list[dict]
        redis-benchmark --csv output in the same result format (for paxosd's RESP figures)

Every result is one flat JSON object (see the loadgen's docstring and docs/benchmark-peers.md).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # bench/ is not a package: imported from its folder

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
    linearizable: bool = True,
    warmup_s: float = 1.0,
    keys: int = 1000,
    rate: float = 0.0,
    timeout_s: float = 5.0,
    extra: Sequence[str] = (),
    pids: Sequence[int] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """Run the loadgen once and return its JSON result, plus, when server PIDs are known (a
    Cluster, or `pids`), the servers' CPU over exactly the measured window:

    server_cpu_s, server_cpu_s_per_1k_ops (seconds per 1000 successful operations),
    machine_busy_cpu_s (all processes on the machine), other_cpu_s (machine minus servers minus
    loadgen: other work sharing the 2 cores), loadavg_1m, command (the exact loadgen command)."""
    endpoints, server_pids = _endpoints_and_pids(cluster_or_endpoints, pids)
    argv = loadgen_argv(
        endpoints,
        system,
        clients,
        duration_s,
        op,
        value_size,
        linearizable=linearizable,
        warmup_s=warmup_s,
        keys=keys,
        rate=rate,
        timeout_s=timeout_s,
        extra=extra,
    )
    return _run_loadgen(argv, server_pids, warmup_s + duration_s, label)


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
    from the last one before the kill to the end of the run (ANCHORS.md's "write gap");
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
    for row in csv.DictReader(io.StringIO(text)):
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


COLUMNS = [
    ("system", "system"),
    ("label", "run"),
    ("op", "op"),
    ("clients", "clients"),
    ("ops_per_s", "ops/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("p999_ms", "p99.9 ms"),
    ("max_ms", "max ms"),
    ("errors", "errors"),
    ("server_cpu_s_per_1k_ops", "server CPU s/1k ops"),
    ("client_cpu_s", "loadgen CPU s"),
    ("other_cpu_s", "other CPU s"),
]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(results: Sequence[dict[str, Any]], title: str = "paxosd's peers") -> None:
    """Print load results as a rich table (failover rows are summarised separately)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for _, heading in COLUMNS:
        table.add_column(
            heading, justify="right" if heading not in ("system", "run", "op") else "left"
        )
    for row in results:
        if row.get("op") not in ("write", "read", "mixed"):
            continue
        table.add_row(*(_cell(row.get(key)) for key, _ in COLUMNS))
    console = Console(width=None if sys.stdout.isatty() else 180)
    console.print(table)
    failovers = [row for row in results if row.get("op") == "failover"]
    if failovers:
        fail = Table(title="failover: kill -9 of the leader under ~1 write/ms")
        for heading in ("system", "trials", "failover ms (median)", "all trials", "write gap ms"):
            fail.add_column(heading)
        for system, rows in _group(failovers).items():
            values = [r["failover_ms"] for r in rows if r["failover_ms"] is not None]
            gaps = [r["write_gap_ms"] for r in rows if r["write_gap_ms"] is not None]
            fail.add_row(
                system,
                str(len(rows)),
                _cell(statistics.median(values)) if values else "-",
                ", ".join(_cell(v) for v in values),
                ", ".join(_cell(v) for v in gaps),
            )
        console.print(fail)


def _group(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["system"], []).append(row)
    return groups


def markdown_tables(records: Sequence[dict[str, Any]]) -> str:
    """The tables of docs/benchmark-peers.md from a suite's JSON Lines."""
    loads = [r for r in records if r.get("op") in ("write", "read", "mixed")]
    lines = [
        "| system | run | op | clients | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors "
        "| server CPU s / 1k ops | loadgen CPU s | other CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in loads:
        lines.append("| " + " | ".join(_cell(r.get(key)) for key, _ in COLUMNS) + " |")
    failovers = [r for r in records if r.get("op") == "failover"]
    if failovers:
        lines += [
            "",
            "| system | trials | failover ms, median | failover ms, each trial "
            "| write gap ms, each trial | errors after the kill |",
            "|---|---:|---:|---|---|---|",
        ]
        for system, rows in _group(failovers).items():
            values = [r["failover_ms"] for r in rows if r["failover_ms"] is not None]
            lines.append(
                f"| {system} | {len(rows)} | "
                + (_cell(statistics.median(values)) if values else "-")
                + " | "
                + ", ".join(_cell(r["failover_ms"]) for r in rows)
                + " | "
                + ", ".join(_cell(r["write_gap_ms"]) for r in rows)
                + " | "
                + ", ".join(_cell(r["errors_after_kill"]) for r in rows)
                + " |"
            )
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------------------
# The suite

BASE_PORTS = {"etcd": 23790, "zk": 21810, "pysyncobj": 24800}


def suite(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The comparison matrix of docs/benchmark-peers.md, bounded in time."""
    started = time.monotonic()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    root = Path(tempfile.mkdtemp(prefix="paxosd-peers-", dir=args.data_root))
    if peers.filesystem_of(root) in ("tmpfs", "ramfs"):
        raise SystemExit(f"{root} is on {peers.filesystem_of(root)}: fsync is free there")

    waited = [0.0]

    def quiet() -> float:
        # The runs themselves take about 10 minutes; waiting may use the rest of the budget.
        allowance = max(0.0, args.budget_s - 600.0 - waited[0])
        begin = time.monotonic()
        busy = wait_quiet(min(args.quiet_wait_s, allowance))
        waited[0] += time.monotonic() - begin
        return busy

    def emit(record: dict[str, Any], busy_before: float | None = None) -> None:
        if busy_before is not None:
            record["busy_cores_before"] = busy_before
        records.append(record)
        with open(out, "a") as sink:
            sink.write(json.dumps(record, sort_keys=True) + "\n")
        brief = {
            k: record.get(k)
            for k in (
                "system",
                "label",
                "op",
                "clients",
                "ops_per_s",
                "p50_ms",
                "p99_ms",
                "errors",
                "failover_ms",
                "write_gap_ms",
                "server_cpu_s_per_1k_ops",
            )
        }
        print(json.dumps({k: v for k, v in brief.items() if v is not None}), flush=True)

    emit(machine_facts(root))

    def load(cluster: peers.Cluster, clients: int, op: str, label: str, **options: Any) -> None:
        busy = quiet()
        result = run_load(
            cluster,
            cluster.name,
            clients,
            args.duration,
            op,
            args.value_size,
            label=label,
            **options,
        )
        emit(result, busy)

    read_labels = {
        "etcd": ("linearizable reads", "serializable reads"),
        "zk": ("sync+read", "local reads (stale)"),
        "pysyncobj": ("log reads (LGET)", "local reads (stale)"),
    }
    for system in args.systems.split(","):
        reasons = peers.missing(system) + peers.missing("loadgen")
        if reasons:
            emit({"system": system, "op": "skipped", "reasons": reasons})
            continue
        with peers.cluster_of(system, root / system, BASE_PORTS[system]) as cluster:
            # Discarded warm-up: the JVM's JIT, Go's and Python's allocators, disk files.
            run_load(cluster, system, 64, args.warmup_run, "write", warmup_s=0.0)
            for clients in args.clients:
                load(cluster, clients, "write", "writes")
            linearizable, stale = read_labels[system]
            load(cluster, args.read_clients, "read", linearizable)
            load(cluster, args.read_clients, "read", stale, linearizable=False)
            if system == "etcd":
                for clients, conns in ((64, 1), (256, 16)):
                    load(
                        cluster,
                        clients,
                        "write",
                        f"writes, {conns} shared conns",
                        extra=[f"-conns={conns}"],
                    )
            for _ in range(args.failover_trials):
                busy = quiet()
                emit(failover(cluster, system), busy)
        if system == "pysyncobj" and args.variants:
            for name, options in (("batch", {"batch": True}), ("msync", {"sync_journal": True})):
                with peers.cluster_of(
                    system, root / f"{system}-{name}", BASE_PORTS[system], **options
                ) as cluster:
                    run_load(cluster, system, 64, args.warmup_run, "write", warmup_s=0.0)
                    for clients in (1, 64):
                        load(cluster, clients, "write", f"writes, {name} variant")
    emit({"op": "suite-end", "elapsed_s": round(time.monotonic() - started, 1)})
    if not args.keep_data:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return records


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark paxosd's peers.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("suite", help="run the whole comparison (about 10 minutes)")
    run.add_argument("--systems", default="etcd,zk,pysyncobj")
    run.add_argument("--out", default="bench/results/peers.jsonl")
    run.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    run.add_argument("--warmup-run", type=float, default=5.0, help="discarded run, seconds")
    run.add_argument(
        "--clients", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 64, 256]
    )
    run.add_argument("--read-clients", type=int, default=64)
    run.add_argument("--value-size", type=int, default=16)
    run.add_argument("--failover-trials", type=int, default=3)
    run.add_argument(
        "--variants",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also PySyncObj with batching on, and with a patched msync journal",
    )
    run.add_argument("--data-root", default=None, help="parent of the data dir (not tmpfs)")
    run.add_argument("--keep-data", action="store_true")
    run.add_argument(
        "--quiet-wait-s",
        type=float,
        default=15.0,
        help="before each run, wait up to this long for the machine to be idle (<0.3 cores)",
    )
    run.add_argument(
        "--budget-s",
        type=float,
        default=1200.0,
        help="stop waiting for quiet once the suite nears this total time",
    )
    report = commands.add_parser("report", help="markdown tables from a suite's JSON Lines")
    report.add_argument("path")
    report.add_argument("--rich", action="store_true", help="a rich table instead")
    args = parser.parse_args(argv)
    if args.command == "suite":
        records = suite(args)
        print_table(records)
    else:
        with open(args.path) as source:
            records = [json.loads(line) for line in source if line.strip()]
        if args.rich:
            print_table(records)
        else:
            print(markdown_tables(records))


if __name__ == "__main__":
    main()
