"""`paxosd bench`: paxosd against etcd, ZooKeeper and PySyncObj in one run (docs/benchmarks.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

SYSTEMS = "paxosd,etcd,zookeeper,pysyncobj"


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, not {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter(f"expected positive integers, not {text!r}")
    return values


@click.command()
@click.option("--systems", default=SYSTEMS, show_default=True, help="Comma-separated.")
@click.option("--duration", type=float, default=10.0, show_default=True,
              help="Seconds per measured run.")  # fmt: skip
@click.option("--clients", default="1,8,64,256", show_default=True,
              help="Concurrent clients for the write runs.")  # fmt: skip
@click.option("--read-clients", type=int, default=64, show_default=True)
@click.option("--failover-trials", type=int, default=2, show_default=True)
@click.option("--failover-window", type=(float, float), default=(2.0, 6.0), show_default=True,
              help="Seconds of writes before and after the kill.")  # fmt: skip
@click.option("--warmup-run", type=float, default=5.0, show_default=True,
              help="Discarded warm-up run per system, seconds.")  # fmt: skip
@click.option("--sweeps/--no-sweeps", default=True, show_default=True,
              help="paxosd alone: 3/5/7 nodes, value sizes, batching off/on.")  # fmt: skip
@click.option("--sweep-nodes", default="3,5,7", show_default=True)
@click.option("--sweep-sizes", default="16,1024,16384,65536", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench-out"), show_default=True,
              help="Where results.json, results.md and bench-*.png go.")  # fmt: skip
@click.option("--data-root", default=None, help="Parent of the data directories (not tmpfs).")
@click.option("--quiet-wait", type=float, default=5.0, show_default=True,
              help="Before each run, wait up to this long for an idle machine.")  # fmt: skip
@click.option(
    "--kv/--no-kv",
    default=True,
    show_default=True,
    help="The data model's measures: txn throughput, a range, memory per key.",
)
@click.option("--kv-only", is_flag=True, help="Only the data model's measures, on paxosd and etcd.")
@click.option("--kv-txn-clients", type=int, default=16, show_default=True)
@click.option("--kv-txn-seconds", type=float, default=10.0, show_default=True)
@click.option("--kv-range-keys", type=int, default=10_000, show_default=True)
@click.option("--kv-memory-keys", type=int, default=10_000, show_default=True)
@click.option(
    "--kv-versions",
    type=int,
    default=5,
    show_default=True,
    help="Overwrites of every key for the memory per historic version.",
)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="The watch measures: write-to-watcher latency, memory per watcher, idle watchers' cost.",
)
@click.option("--watch-only", is_flag=True, help="Only the watch measures, on paxosd and etcd.")
@click.option("--watch-watchers", default="1,100,1000,10000", show_default=True,
              help="Watchers of one key, per latency measure.")  # fmt: skip
@click.option("--watch-writes", type=int, default=50, show_default=True)
@click.option("--watch-idle", type=int, default=10_000, show_default=True,
              help="Idle watchers for the memory and throughput measures.")  # fmt: skip
@click.option("--watch-seconds", type=float, default=10.0, show_default=True,
              help="Seconds of writes, with and without the idle watchers.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result on stdout.")
def command(
    systems: str,
    duration: float,
    clients: str,
    read_clients: int,
    failover_trials: int,
    failover_window: tuple[float, float],
    warmup_run: float,
    sweeps: bool,
    sweep_nodes: str,
    sweep_sizes: str,
    out_dir: Path,
    data_root: str | None,
    quiet_wait: float,
    kv: bool,
    kv_only: bool,
    kv_txn_clients: int,
    kv_txn_seconds: float,
    kv_range_keys: int,
    kv_memory_keys: int,
    kv_versions: int,
    watch: bool,
    watch_only: bool,
    watch_watchers: str,
    watch_writes: int,
    watch_idle: int,
    watch_seconds: float,
    as_json: bool,
) -> None:
    """Benchmark paxosd against etcd, ZooKeeper and PySyncObj, side by side in one run.

    Each system runs as a 3-node cluster on 127.0.0.1 with fsync before acknowledging (where
    the system can: see the table), driven alternately by redis-benchmark (paxosd) and
    bench/bin/loadgen (the peers; bash bench/setup.sh installs them)."""
    from paxosd.benchmark import kv as kv_bench
    from paxosd.benchmark import suite
    from paxosd.benchmark import watch as watch_bench

    chosen = [s.strip() for s in systems.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in suite.SYSTEMS]
    if unknown:
        raise click.BadParameter(f"unknown systems {unknown}; known: {', '.join(suite.SYSTEMS)}")
    options = suite.Options(
        systems=chosen,
        duration_s=duration,
        clients=_ints(clients),
        read_clients=read_clients,
        failover_trials=failover_trials,
        failover_settle_s=failover_window[0],
        failover_after_s=failover_window[1],
        warmup_run_s=warmup_run,
        sweeps=sweeps,
        sweep_nodes=_ints(sweep_nodes),
        sweep_sizes=_ints(sweep_sizes),
        data_root=data_root,
        quiet_wait_s=quiet_wait,
        command=suite.command_line(sys.argv[2:]),
        kv=kv,
        kv_only=kv_only,
        kv_options=kv_bench.KvOptions(
            txn_clients=kv_txn_clients,
            txn_seconds=kv_txn_seconds,
            range_keys=kv_range_keys,
            memory_keys=kv_memory_keys,
            memory_versions=kv_versions,
        ),
        watch=watch,
        watch_only=watch_only,
        watch_options=watch_bench.WatchBenchOptions(
            latency_watchers=_ints(watch_watchers),
            latency_writes=watch_writes,
            memory_watchers=watch_idle,
            throughput_watchers=watch_idle,
            throughput_seconds=watch_seconds,
        ),
    )
    result = suite.run(options)
    written = suite.write_outputs(result, out_dir)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(suite.markdown(result))
    click.echo("wrote " + ", ".join(str(p) for p in written), err=True)
