"""`paxosd bench`: paxosd against etcd, ZooKeeper and PySyncObj, side by side in one run.

Every system runs as a 3-node cluster on 127.0.0.1 with its data on the same disk, all of
them started at once, and each workload point is driven against every system in turn, the
order reversed at every point (paxosd, etcd, ... then ..., etcd, paxosd) so that drift of the
machine (another process, the disk's flush latency) falls on all of them alike. paxosd is
driven through its RESP port with `redis-benchmark`, the peers with bench/bin/loadgen (Go);
both report their own CPU. Then the failover trials, alternating the same way, and the
paxosd-only sweeps (cluster size, value size, batching off and on).

`run(options)` returns the whole result (machine, records, figures); `write_outputs` writes
results.json, results.md and the bench-*.png plots.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paxosd.benchmark import kv as kv_bench
from paxosd.benchmark import measure, peers
from paxosd.benchmark import watch as watch_bench

SYSTEMS = ("paxosd", "etcd", "zookeeper", "pysyncobj")
PEERS = SYSTEMS[1:]
KV_SYSTEMS = ("paxosd", "etcd")  # the systems that serve etcd's data model
# The names peers.py and the loadgen use.
INTERNAL = {"paxosd": "paxosd", "etcd": "etcd", "zookeeper": "zk", "pysyncobj": "pysyncobj"}
LOADGEN_SYSTEM = {"paxosd": "resp", "etcd": "etcd", "zookeeper": "zk", "pysyncobj": "pysyncobj"}

DURABILITY = {
    "paxosd": "fdatasync of each turn's records before any message or reply leaves (group commit)",
    "etcd": "WAL fsync before acknowledging (always on in etcd 3.4)",
    "zookeeper": "forceSync=yes: transaction log fsync before acknowledging",
    "pysyncobj": "NO fsync: PySyncObj has no durable mode; its journal file is mmap'd and "
    "never synced while running, so its figures are an upper bound on a durable version",
}
READS = {
    "paxosd": "GET: linearizable (read-index confirmed by a quorum)",
    "etcd": "Get: linearizable (read-index, etcd's default)",
    "zookeeper": "sync + getData: ZooKeeper has no linearizable read; this is the closest",
    "pysyncobj": "LGET: a read through the Raft log (PySyncObj has no read-index)",
}
GENERATOR = {
    "paxosd": "redis-benchmark (one connection per client, to the leader's RESP port)",
    "etcd": "bench/bin/loadgen -system=etcd (clientv3, one gRPC connection per client)",
    "zookeeper": "bench/bin/loadgen -system=zk (one session per client)",
    "pysyncobj": "bench/bin/loadgen -system=pysyncobj (one TCP connection per client)",
}


@dataclass
class Options:
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    duration_s: float = 10.0
    clients: list[int] = field(default_factory=lambda: [1, 8, 64, 256])
    read_clients: int = 64
    warmup_s: float = 1.0
    warmup_run_s: float = 5.0
    value_size: int = 16
    failover_trials: int = 2
    failover_settle_s: float = 2.0  # steady writes before the kill
    failover_after_s: float = 6.0  # writes after it
    # A client gives up on a request after this long and tries the next node: short, so the
    # figure shows when the cluster serves again, not the client's patience (same for all).
    failover_timeout_s: float = 0.25
    sweeps: bool = True
    sweep_nodes: list[int] = field(default_factory=lambda: [3, 5, 7])
    sweep_sizes: list[int] = field(default_factory=lambda: [16, 1024, 16384, 65536])
    sweep_clients: int = 256
    size_clients: int = 64
    quiet_wait_s: float = 5.0
    data_root: str | None = None
    # The data model's measures (paxosd and etcd through etcd's JSON API: benchmark/kv.py);
    # `kv_only`: those alone (no load generators needed).
    kv: bool = True
    kv_only: bool = False
    kv_options: kv_bench.KvOptions = field(default_factory=kv_bench.KvOptions)
    # The watch measures (paxosd and etcd through /v3/watch: benchmark/watch.py);
    # `watch_only`: those alone.
    watch: bool = True
    watch_only: bool = False
    watch_options: watch_bench.WatchBenchOptions = field(
        default_factory=watch_bench.WatchBenchOptions
    )
    command: str = ""


Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def missing(system: str, kv_only: bool = False) -> list[str]:
    """Why `system` cannot be benchmarked here (empty when it can)."""
    if kv_only:
        if system not in KV_SYSTEMS:
            return ["the data model's measures run on paxosd and etcd only"]
        return [] if system == "paxosd" else peers.missing(INTERNAL[system])
    if system == "paxosd":
        return peers.missing("redis-benchmark") + peers.missing("loadgen")
    return peers.missing(INTERNAL[system]) + peers.missing("loadgen")


def run(options: Options, log: Log = _stderr) -> dict[str, Any]:
    """The whole benchmark; bounded (every load run has a time bound, every cluster a start
    timeout). Systems that are not installed are skipped with the reason."""
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="paxosd-bench-", dir=options.data_root))
    if peers.filesystem_of(root) in ("tmpfs", "ramfs"):
        raise SystemExit(f"{root} is on {peers.filesystem_of(root)}: fsync is free there")
    records: list[dict[str, Any]] = []
    skipped: dict[str, list[str]] = {}
    systems = []
    for system in options.systems:
        reasons = missing(system, options.kv_only or options.watch_only)
        if reasons:
            skipped[system] = reasons
            log(f"skipping {system}: {'; '.join(reasons)}")
        else:
            systems.append(system)
    machine = measure.machine_facts(root)
    machine["redis_benchmark"] = _version(["redis-benchmark", "--version"])

    def emit(record: dict[str, Any]) -> None:
        records.append(record)
        brief = {
            k: record.get(k)
            for k in ("system", "label", "op", "clients", "ops_per_s", "p50_ms", "p99_ms")
            + ("failover_ms", "server_cpu_s_per_1k_ops", "client_cpu_s", "busy_cores_before")
            + ("bytes_per_key", "bytes_per_version", "error")
            + ("watchers", "watch_p50_ms", "watch_p99_ms", "write_p99_ms", "bytes_per_watcher")
            + ("writes_per_s", "writes_per_s_with_watchers", "ratio")
        }
        log(json.dumps({k: v for k, v in brief.items() if v is not None}))

    try:
        with contextlib.ExitStack() as stack:
            clusters: dict[str, peers.Cluster] = {}
            for system in systems:
                log(f"starting a 3-node {system} cluster")
                clusters[system] = stack.enter_context(_cluster(system, root))
            if options.kv_only or options.watch_only:
                systems_kv = {s: clusters[s] for s in systems if s in KV_SYSTEMS}
                if options.kv_only:
                    for record in kv_bench.run(systems_kv, options.kv_options, log):
                        emit(record)
                if options.watch_only:
                    for record in watch_bench.run(systems_kv, options.watch_options, log):
                        emit(record)
                systems = []  # nothing else to run
            for system in systems:  # discarded: the JVM's JIT, allocators, the files
                what: dict[str, Any] = {"system": system, "op": "warm-up"}
                warm: tuple[Any, ...] = (clusters[system], system, 64, options.warmup_run_s)
                _attempt(what, log, _load, *warm, "write", options, 0.0)
            points = [("write", c) for c in options.clients] + [("read", options.read_clients)]
            for index, (op, clients) in enumerate(points):
                for system in _alternate(systems, index):
                    busy = measure.wait_quiet(options.quiet_wait_s)
                    what = {"system": system, "op": op, "clients": clients}
                    args = (clusters[system], system, clients, options.duration_s, op, options)
                    record = _attempt(what, log, _load, *args)
                    record.update(busy_cores_before=busy, label=f"{op}s", system=system)
                    emit(record)
            for trial in range(options.failover_trials):
                for system in _alternate(systems, trial):
                    busy = measure.wait_quiet(options.quiet_wait_s)
                    record = _attempt(
                        {"system": system, "op": "failover"},
                        log,
                        measure.failover,
                        clusters[system],
                        LOADGEN_SYSTEM[system],
                        settle_s=options.failover_settle_s,
                        after_s=options.failover_after_s,
                        timeout_s=options.failover_timeout_s,
                    )
                    record.update(system=system, trial=trial + 1, busy_cores_before=busy)
                    emit(record)
            if options.kv and systems:
                systems_kv = {s: clusters[s] for s in systems if s in KV_SYSTEMS}
                for record in kv_bench.run(systems_kv, options.kv_options, log):
                    emit(record)
            if options.watch and systems:
                systems_kv = {s: clusters[s] for s in systems if s in KV_SYSTEMS}
                for record in watch_bench.run(systems_kv, options.watch_options, log):
                    emit(record)
        if options.sweeps and "paxosd" in systems:
            _sweeps(root, options, emit, log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "command": options.command,
        "options": asdict(options),
        "machine": machine,
        "skipped": skipped,
        "elapsed_s": round(time.monotonic() - started, 1),
        "records": records,
        "figures": figures(records, options),
        "sweeps": sweep_rows(records),
    }


def _attempt(
    what: dict[str, Any], log: Log, run: Callable[..., dict[str, Any]], *args: Any, **kw: Any
) -> dict[str, Any]:
    """`run(*args, **kw)`, one measurement; if it fails (a load generator's error, a cluster
    that does not come back), a record of the failure instead, so that one bad run does not
    lose the others."""
    try:
        return run(*args, **kw)
    except (RuntimeError, TimeoutError, OSError) as error:
        text = " / ".join(line.strip() for line in str(error).splitlines() if line.strip())
        log(f"{what}: failed: {text[:400]}")
        return {**what, "error": text[:400]}


def _alternate(systems: Sequence[str], index: int) -> list[str]:
    return list(systems) if index % 2 == 0 else list(reversed(systems))


@contextlib.contextmanager
def _cluster(system: str, root: Path, **options: Any) -> Iterator[peers.Cluster]:
    internal = INTERNAL[system]
    base = None if system == "paxosd" else peers.free_base_port()
    with peers.cluster_of(internal, root / f"{system}-{time.monotonic_ns()}", base, **options) as c:
        yield c


def _load(
    cluster: peers.Cluster,
    system: str,
    clients: int,
    duration_s: float,
    op: str,
    options: Options,
    warmup_s: float | None = None,
    value_size: int | None = None,
) -> dict[str, Any]:
    warmup = options.warmup_s if warmup_s is None else warmup_s
    size = options.value_size if value_size is None else value_size
    if system == "paxosd":
        return measure.run_redis_benchmark(cluster, clients, duration_s, op, size, warmup_s=warmup)
    return measure.run_load(
        cluster, LOADGEN_SYSTEM[system], clients, duration_s, op, size, warmup_s=warmup
    )


def _sweeps(root: Path, options: Options, emit: Callable[[dict[str, Any]], None], log: Log) -> None:
    """paxosd alone: cluster sizes, value sizes, batching off and on (writes)."""
    clients = options.sweep_clients

    def one(label: str, sweep: str, setting: Any, cluster: peers.Cluster, **kw: Any) -> None:
        busy = measure.wait_quiet(options.quiet_wait_s)
        n = kw.get("clients", clients)
        size = kw.get("value_size")
        what = {"system": "paxosd", "op": "write", "clients": n, "value_size": size}
        args = (cluster, "paxosd", n, options.duration_s, "write", options)
        record = _attempt(what, log, _load, *args, value_size=size)
        record.update(system="paxosd", label=label, sweep=sweep, setting=setting)
        record["busy_cores_before"] = busy
        emit(record)

    for nodes in options.sweep_nodes:
        log(f"sweep: {nodes} nodes")
        with _cluster("paxosd", root, nodes=nodes) as cluster:
            _load(cluster, "paxosd", 64, options.warmup_run_s / 2, "write", options, 0.0)
            one(f"{nodes} nodes", "nodes", nodes, cluster)
            if nodes == 3:
                for size in options.sweep_sizes:
                    one(f"{size} B values", "value_size", size, cluster,
                        clients=options.size_clients, value_size=size)  # fmt: skip
                one("batching on", "batching", "on", cluster)
                _generator_check(cluster, options, emit)
                one("Accepts during the leader's fsync", "early_accepts", "on", cluster)
    log("sweep: batching off")
    with _cluster("paxosd", root, batch_commands_max=1) as cluster:
        _load(cluster, "paxosd", 64, options.warmup_run_s / 2, "write", options, 0.0)
        one("batching off", "batching", "off", cluster)
    log("sweep: the leader's Accepts after its own fsync")
    with _cluster("paxosd", root, early_accepts=False) as cluster:
        _load(cluster, "paxosd", 64, options.warmup_run_s / 2, "write", options, 0.0)
        one("Accepts after the leader's fsync", "early_accepts", "off", cluster)


def _generator_check(
    cluster: peers.Cluster, options: Options, emit: Callable[[dict[str, Any]], None]
) -> None:
    """paxosd's writes once more, driven by the Go loadgen (the peers' generator) instead of
    redis-benchmark, every client on the leader as redis-benchmark's are: the two generators
    should agree, or the comparison measures them rather than the servers."""
    leader = cluster.leader_index()
    if leader is None:
        return
    busy = measure.wait_quiet(options.quiet_wait_s)
    endpoint = f"127.0.0.1:{cluster.nodes[leader].client_port}"
    what = {"system": "paxosd", "op": "write", "clients": options.sweep_clients}
    args = (endpoint, "resp", options.sweep_clients, options.duration_s, "write")
    record = _attempt(what, _stderr, measure.run_load, *args, options.value_size,
                      warmup_s=options.warmup_s, pids=cluster.pids)  # fmt: skip
    record.update(system="paxosd", label="Go loadgen instead of redis-benchmark")
    record.update(sweep="generator", setting="loadgen", busy_cores_before=busy)
    emit(record)


# ---------------------------------------------------------------------------------------
# Figures: paxosd's value, each peer's, and the ratio


def _find(records: Sequence[dict[str, Any]], system: str, op: str, clients: int) -> dict | None:
    for record in records:
        if (
            record.get("system") == system
            and record.get("op") == op
            and record.get("clients") == clients
            and "sweep" not in record
        ):
            return record
    return None


def figures(records: Sequence[dict[str, Any]], options: Options) -> list[dict[str, Any]]:
    """Each figure: name, unit, which way is better, the value per system, and
    paxosd / peer for every peer measured."""
    systems = sorted({r["system"] for r in records if "system" in r}, key=SYSTEMS.index)
    rows: list[dict[str, Any]] = []

    def add(name: str, unit: str, better: str, pick: Callable[[str], float | None]) -> None:
        values = {system: pick(system) for system in systems}
        ours = values.get("paxosd")
        ratios = {
            peer: round(ours / value, 3) if ours is not None and value else None
            for peer, value in values.items()
            if peer != "paxosd"
        }
        rows.append(dict(figure=name, unit=unit, better=better, values=values, ratios=ratios))

    def field_of(op: str, clients: int, key: str) -> Callable[[str], float | None]:
        def pick(system: str) -> float | None:
            record = _find(records, system, op, clients)
            return None if record is None or record.get(key) is None else float(record[key])

        return pick

    for clients in options.clients:
        add(f"write throughput, {clients} clients", "ops/s", "higher",
            field_of("write", clients, "ops_per_s"))  # fmt: skip
    for clients in options.clients:
        add(f"write p50 latency, {clients} clients", "ms", "lower",
            field_of("write", clients, "p50_ms"))  # fmt: skip
        add(f"write p99 latency, {clients} clients", "ms", "lower",
            field_of("write", clients, "p99_ms"))  # fmt: skip
    add(f"linearizable read throughput, {options.read_clients} clients", "ops/s", "higher",
        field_of("read", options.read_clients, "ops_per_s"))  # fmt: skip
    if 1 in options.clients:
        add("sequential write latency, 1 client (mean)", "ms", "lower",
            field_of("write", 1, "mean_ms"))  # fmt: skip

    def failover(system: str) -> float | None:
        values = [
            r["failover_ms"]
            for r in records
            if r.get("system") == system and r.get("op") == "failover" and r.get("failover_ms")
        ]
        return float(statistics.median(values)) if values else None

    add("failover: kill -9 of the leader to the first write (median)", "ms", "lower", failover)

    def kv_field(op: str, key: str) -> Callable[[str], float | None]:
        def pick(system: str) -> float | None:
            for record in records:
                if record.get("system") == system and record.get("op") == op:
                    value = record.get(key)
                    return None if value is None else float(value)
            return None

        return pick

    kv = options.kv_options
    add(f"txn throughput (etcd's JSON API), {kv.txn_clients} clients", "ops/s", "higher",
        kv_field("txn", "ops_per_s"))  # fmt: skip
    add(f"txn p50 latency, {kv.txn_clients} clients", "ms", "lower", kv_field("txn", "p50_ms"))
    add(f"range of {kv.range_keys:,} keys, p50", "ms", "lower", kv_field("range", "p50_ms"))
    add(f"memory per key ({kv.value_size} B values)", "bytes", "lower",
        kv_field("memory", "bytes_per_key"))  # fmt: skip
    add("memory per historic version", "bytes", "lower", kv_field("memory", "bytes_per_version"))

    def watch_field(watchers: int, key: str) -> Callable[[str], float | None]:
        def pick(system: str) -> float | None:
            for record in records:
                found = record.get("system") == system and record.get("op") == "watch-latency"
                if found and record.get("watchers") == watchers:
                    value = record.get(key)
                    return None if value is None else float(value)
            return None

        return pick

    for count in options.watch_options.latency_watchers:
        add(f"write to watcher p99, {count:,} watchers", "ms", "lower",
            watch_field(count, "watch_p99_ms"))  # fmt: skip
        add(f"write p99 beside {count:,} watchers", "ms", "lower",
            watch_field(count, "write_p99_ms"))  # fmt: skip
        add(f"leader CPU per watcher event, {count:,} watchers", "µs", "lower",
            watch_field(count, "server_cpu_us_per_event"))  # fmt: skip
    add("memory per idle watcher", "bytes", "lower",
        kv_field("watch-memory", "bytes_per_watcher"))  # fmt: skip
    idle = options.watch_options.throughput_watchers
    add(f"writes/s with {idle:,} idle watchers, as a share of without", "ratio", "higher",
        kv_field("watch-throughput", "ratio"))  # fmt: skip
    most = max(options.clients)
    add(f"server CPU per 1000 writes, {most} clients", "CPU s", "lower",
        field_of("write", most, "server_cpu_s_per_1k_ops"))  # fmt: skip
    add(f"load generator CPU, writes at {most} clients", "CPU s", "lower",
        field_of("write", most, "client_cpu_s"))  # fmt: skip
    return rows


def sweep_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys: tuple[str, ...] = ("sweep", "setting", "clients", "value_size", "ops_per_s")
    keys += ("p50_ms", "p99_ms", "server_cpu_s_per_1k_ops", "client_cpu_s", "busy_cores_before")
    return [{k: r.get(k) for k in keys} for r in records if "sweep" in r]


# ---------------------------------------------------------------------------------------
# Output: JSON, Markdown, plots


def _cell(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if unit == "ops/s" or value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    figures_ = result["figures"]
    systems = [s for s in SYSTEMS if any(s in f["values"] for f in figures_)]
    peers_ = [s for s in systems if s != "paxosd"]
    machine = result["machine"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Machine: {machine.get('nproc')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, Linux {machine.get('kernel')}; data on "
        f"{machine.get('data_dir_fs')}, fdatasync p50 {machine.get('fdatasync_p50_ms')} ms "
        f"(p90 {machine.get('fdatasync_p90_ms')} ms); load average at start "
        f"{machine.get('loadavg_at_start')}; {machine.get('date_utc')}; "
        f"{result['elapsed_s']} s in all.",
        "",
    ]
    header = "| figure | paxosd |" + "".join(f" {p} | paxosd / {p} |" for p in peers_)
    lines += [header, "|---|---:|" + "---:|---:|" * len(peers_)]
    for f in figures_:
        unit = f["unit"]
        row = f"| {f['figure']} ({unit}, {f['better']} is better) | "
        row += _cell(f["values"].get("paxosd"), unit) + " |"
        for peer in peers_:
            ratio = f["ratios"].get(peer)
            row += f" {_cell(f['values'].get(peer), unit)} | {_cell(ratio)} |"
        lines.append(row)
    lines += [
        "",
        "| system | durability | linearizable read | load generator |",
        "|---|---|---|---|",
    ]
    for system in systems:
        lines.append(f"| {system} | {DURABILITY[system]} | {READS[system]} | {GENERATOR[system]} |")
    if result["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{s}: {', '.join(r)}" for s, r in
                                               result["skipped"].items())]  # fmt: skip
    loads = [r for r in result["records"] if r.get("op") in ("write", "read")]
    lines += ["", "Every run (busy cores = the whole machine's load just before the run):", ""]
    lines += [
        "| system | run | clients | value B | ops/s | p50 ms | p99 ms | server CPU s / 1k ops "
        "| generator CPU s | other CPU s | busy cores before |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in loads:
        run = r.get("label") if not r.get("error") else f"{r.get('label')}: FAILED ({r['error']})"
        cells = [r.get("system"), run, r.get("clients"), r.get("value_size")]
        cells += [r.get("ops_per_s"), r.get("p50_ms"), r.get("p99_ms")]
        cells += [r.get("server_cpu_s_per_1k_ops"), r.get("client_cpu_s"), r.get("other_cpu_s")]
        cells += [r.get("busy_cores_before")]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    kvs = [r for r in result["records"] if r.get("op") in ("txn", "range", "memory")]
    if kvs:
        lines += ["", "The data model (both through etcd's JSON API; benchmark/kv.py):", ""]
        lines += ["| system | measure | result |", "|---|---|---|"]
        for r in kvs:
            shown = {k: v for k, v in r.items() if k not in ("system", "label", "op")}
            text = ", ".join(f"{k} {_cell(v)}" for k, v in shown.items())
            lines.append(f"| {r.get('system')} | {r.get('op')} | {text} |")
    watches = [r for r in result["records"] if str(r.get("op", "")).startswith("watch-")]
    if watches:
        lines += ["", "Watches (both through etcd's /v3/watch; benchmark/watch.py):", ""]
        lines += ["| system | measure | result |", "|---|---|---|"]
        for r in watches:
            shown = {k: v for k, v in r.items() if k not in ("system", "label", "op")}
            text = ", ".join(f"{k} {_cell(v)}" for k, v in shown.items())
            lines.append(f"| {r.get('system')} | {r.get('op')} | {text} |")
        lines += ["", "The watch goals:", ""]
        lines += [f"- {line}" for line in watch_bench.goals(watches)]
    fails = [r for r in result["records"] if r.get("op") == "failover"]
    if fails:
        lines += ["", "| system | trial | failover ms | longest write gap ms | errors after kill |"]
        lines.append("|---|---:|---:|---:|---:|")
        for r in fails:
            cells = [r["system"], r.get("trial"), r.get("failover_ms"), r.get("write_gap_ms")]
            cells.append(r.get("errors_after_kill"))
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """results.json, results.md and the plots (when matplotlib is installed) in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.json", out_dir / "results.md"]
    written[0].write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    written[1].write_text(markdown(result))
    try:
        written += plot(result, out_dir)
    except ImportError:
        _stderr("matplotlib is not installed: no plots (pip install -e '.[dev]')")
    return written


COLORS = {"paxosd": "#1f77b4", "etcd": "#2ca02c", "zookeeper": "#d62728", "pysyncobj": "#9467bd"}


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = result["records"]
    if not any(r.get("op") == "write" and r.get("ops_per_s") for r in records):
        return []  # nothing to plot (a --kv-only run)
    systems = [s for s in SYSTEMS if any(r.get("system") == s for r in records)]
    clients = result["options"]["clients"]
    written = []

    def series(system: str, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for c in clients:
            r = _find(records, system, "write", c)
            if r is not None and r.get(key) is not None:
                xs.append(c)
                ys.append(float(r[key]))
        return xs, ys

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system in systems:
        left.plot(*series(system, "ops_per_s"), "o-", label=system, color=COLORS[system])
        right.plot(*series(system, "p50_ms"), "o-", label=f"{system} p50", color=COLORS[system])
        right.plot(*series(system, "p99_ms"), "x--", label=f"{system} p99",
                   color=COLORS[system], alpha=0.6)  # fmt: skip
    left.set(xscale="log", xlabel="concurrent clients", ylabel="writes/s",
             title="Write throughput (3 nodes, fsync on, 16 B)")  # fmt: skip
    right.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms",
              title="Write latency")  # fmt: skip
    for axis in (left, right):
        axis.set_xticks(clients, [str(c) for c in clients])
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    written.append(_save(plt, fig, out_dir / "bench-writes.png"))

    wanted = [
        ("linearizable read", "ops/s"),
        ("failover", "ms"),
        ("server CPU per 1000 writes", "CPU s"),
    ]
    fig, axes = plt.subplots(1, len(wanted), figsize=(12, 3.8))
    for axis, (prefix, unit) in zip(axes, wanted, strict=True):
        figure = next((f for f in result["figures"] if f["figure"].startswith(prefix)), None)
        if figure is None:
            continue
        names = [s for s in systems if figure["values"].get(s) is not None]
        values = [figure["values"][s] for s in names]
        axis.bar(names, values, color=[COLORS[s] for s in names])
        axis.set_title(figure["figure"], fontsize=8)
        axis.set_ylabel(unit)
        axis.tick_params(axis="x", labelsize=8)
        axis.grid(True, axis="y", alpha=0.3)
    written.append(_save(plt, fig, out_dir / "bench-summary.png"))

    sweeps = [s for s in result["sweeps"] if s.get("ops_per_s") is not None]
    if sweeps:
        kinds = [
            k
            for k in ("nodes", "value_size", "batching", "early_accepts")
            if any(s["sweep"] == k for s in sweeps)
        ]
        fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.8), squeeze=False)
        titles = {
            "nodes": "cluster size",
            "value_size": "value bytes",
            "batching": "batching",
            "early_accepts": "Accepts during fsync",
        }
        for axis, kind in zip(axes[0], kinds, strict=True):
            rows = [s for s in sweeps if s["sweep"] == kind]
            axis.bar([str(s["setting"]) for s in rows], [s["ops_per_s"] for s in rows],
                     color=COLORS["paxosd"])  # fmt: skip
            c = rows[0]["clients"]
            axis.set_title(f"paxosd writes/s by {titles[kind]} ({c} clients)", fontsize=9)
            axis.grid(True, axis="y", alpha=0.3)
        written.append(_save(plt, fig, out_dir / "bench-paxosd.png"))
    return written


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _version(argv: list[str]) -> str:
    import subprocess

    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not found"
    return (out.stdout + out.stderr).strip()


def command_line(argv: Sequence[str]) -> str:
    return "paxosd bench " + shlex.join(argv)
