"""`paxosd bench`: the command runs end to end on small bounded settings and writes its table,
JSON and plots; figures and ratios are computed from the records. Speed is measured by the
benchmark itself (docs/benchmarks.md), never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from paxosd.benchmark import suite
from paxosd.cli.main import main


def record(system: str, op: str, clients: int, ops: float, p50: float, **extra: object) -> dict:
    return dict(system=system, op=op, clients=clients, ops_per_s=ops, p50_ms=p50,
                p99_ms=p50 * 3, mean_ms=p50 * 1.1, server_cpu_s_per_1k_ops=0.1,
                client_cpu_s=0.5, label=f"{op}s", value_size=16, **extra)  # fmt: skip


def synthetic() -> dict:
    options = suite.Options(systems=["paxosd", "etcd"], clients=[1, 256], read_clients=64)
    records = [
        record("paxosd", "write", 1, 500.0, 2.0),
        record("etcd", "write", 1, 1000.0, 1.0),
        record("paxosd", "write", 256, 20000.0, 12.0),
        record("etcd", "write", 256, 10000.0, 25.0),
        record("paxosd", "read", 64, 30000.0, 2.0),
        record("etcd", "read", 64, 15000.0, 4.0),
        {"system": "paxosd", "op": "failover", "trial": 1, "failover_ms": 400.0},
        {"system": "paxosd", "op": "failover", "trial": 2, "failover_ms": 600.0},
        {"system": "etcd", "op": "failover", "trial": 1, "failover_ms": 1500.0},
        record("paxosd", "write", 256, 9000.0, 30.0, sweep="batching", setting="off"),
        record("paxosd", "write", 256, 21000.0, 12.0, sweep="batching", setting="on"),
        record("paxosd", "write", 256, 15000.0, 17.0, sweep="nodes", setting=5),
    ]
    return {
        "command": "paxosd bench --systems paxosd,etcd",
        "options": suite.asdict(options),
        "machine": {"nproc": 2, "cpu_model": "test"},
        "skipped": {},
        "elapsed_s": 1.0,
        "records": records,
        "figures": suite.figures(records, options),
        "sweeps": suite.sweep_rows(records),
    }


def test_figures_give_each_value_and_the_ratio_to_each_peer() -> None:
    figures = {f["figure"]: f for f in synthetic()["figures"]}
    writes = figures["write throughput, 256 clients"]
    assert writes["values"] == {"paxosd": 20000.0, "etcd": 10000.0}
    assert writes["ratios"] == {"etcd": 2.0} and writes["better"] == "higher"
    assert figures["write p50 latency, 1 clients"]["ratios"] == {"etcd": 2.0}
    assert figures["linearizable read throughput, 64 clients"]["ratios"] == {"etcd": 2.0}
    failover = figures["failover: kill -9 of the leader to the first write (median)"]
    assert failover["values"] == {"paxosd": 500.0, "etcd": 1500.0}
    assert failover["ratios"]["etcd"] == pytest.approx(0.333, abs=1e-3)
    assert "sequential write latency, 1 client (mean)" in figures
    assert "server CPU per 1000 writes, 256 clients" in figures


def test_outputs_are_a_table_json_and_plots(tmp_path: Path) -> None:
    result = synthetic()
    written = suite.write_outputs(result, tmp_path)
    names = {p.name for p in written}
    assert {"results.json", "results.md"} <= names
    assert {"bench-writes.png", "bench-summary.png", "bench-paxosd.png"} <= names
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "results.md").read_text()
    assert "| write throughput, 256 clients (ops/s, higher is better) | 20,000 | 10,000 | 2 |" in (
        table
    )
    assert "NO fsync" not in table  # only the systems measured are described
    assert json.loads((tmp_path / "results.json").read_text())["figures"] == result["figures"]


@pytest.mark.timeout(120)
def test_bench_command_runs_paxosd_and_a_peer(tmp_path: Path) -> None:
    """The real command, tiny and bounded: paxosd and PySyncObj (the quickest peer to start;
    skipped with the reason when it or the load generators are missing), sweeps included."""
    reasons = suite.missing("paxosd") + suite.missing("pysyncobj")
    if reasons:
        pytest.skip("; ".join(reasons) + " (run bash bench/setup.sh)")
    out = tmp_path / "out"
    argv = ["bench", "--systems", "paxosd,pysyncobj", "--duration", "0.5", "--clients", "1,8",
            "--read-clients", "4", "--failover-trials", "1", "--failover-window", "0.5", "5",
            "--warmup-run", "0.3", "--sweep-nodes", "3", "--sweep-sizes", "1024",
            "--quiet-wait", "0", "--out", str(out), "--data-root", str(tmp_path),
            "--kv-txn-clients", "2", "--kv-txn-seconds", "0.5", "--kv-range-keys", "200",
            "--kv-memory-keys", "200", "--kv-versions", "1",
            "--watch-watchers", "1,10", "--watch-writes", "5", "--watch-idle", "100",
            "--watch-seconds", "0.5",
            "--json"]  # fmt: skip
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    loads = [r for r in data["records"] if r["op"] in ("write", "read") and "sweep" not in r]
    assert {(r["system"], r["op"], r["clients"]) for r in loads} == {
        (system, op, clients)
        for system in ("paxosd", "pysyncobj")
        for op, clients in (("write", 1), ("write", 8), ("read", 4))
    }
    for r in loads:
        assert r["ops_per_s"] > 0 and r["p50_ms"] > 0, r
        assert r["client_cpu_s"] >= 0 and r["server_cpu_s"] > 0, r
    # alternation: the second point runs the systems in the reverse order
    order = [(r["system"], r["clients"]) for r in loads if r["op"] == "write"]
    assert order == [("paxosd", 1), ("pysyncobj", 1), ("pysyncobj", 8), ("paxosd", 8)]
    # (PySyncObj's failover takes about 2 s on a quiet machine: 5 s after the kill leave it
    # room on a busy one, where 2.5 s once ran out.)
    fails = [r for r in data["records"] if r["op"] == "failover"]
    assert {r["system"] for r in fails} == {"paxosd", "pysyncobj"}
    assert all(r["failover_ms"] and r["acks_after_kill"] > 0 for r in fails), fails
    writes = next(f for f in data["figures"] if f["figure"] == "write throughput, 8 clients")
    assert writes["ratios"]["pysyncobj"] == pytest.approx(
        writes["values"]["paxosd"] / writes["values"]["pysyncobj"], rel=1e-2
    )
    assert {s["sweep"] for s in data["sweeps"]} == {
        "nodes",
        "value_size",
        "batching",
        "early_accepts",
        "generator",
    }
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "bench-writes.png"}


def test_a_failed_run_is_recorded_and_the_others_kept(tmp_path: Path) -> None:
    def broken() -> dict:
        raise RuntimeError("redis-benchmark failed (1): redis-benchmark ...\nError from server")

    logged: list[str] = []
    what = {"system": "paxosd", "op": "write", "clients": 64, "value_size": 65536}
    failed = suite._attempt(what, logged.append, broken)
    assert failed["error"].startswith("redis-benchmark failed (1)") and failed["clients"] == 64
    assert logged and "failed" in logged[0]
    result = synthetic()
    result["records"].append({**failed, "label": "65536 B values", "sweep": "value_size"})
    result["sweeps"] = suite.sweep_rows(result["records"])
    table = suite.markdown(result)
    assert "65536 B values: FAILED (redis-benchmark failed (1)" in table
    suite.write_outputs(result, tmp_path)  # the plots cope with a row that has no figures
