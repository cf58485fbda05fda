"""The replicated SQL database's throughput, beside paxosd's own key-value writes and beside one
local SQLite file (synchronous=FULL: the floor of one disk), in one run.

Not a test. Run: python bench/sql_bench.py [--seconds 5] [--clients 1,64,256] [--dir DIR]

1. Three `paxosd node` processes (fsync on) on 127.0.0.1.
2. For each client count: single-row INSERTs through /v1/sql/execute (each its own request,
   so its own log entry and its own SQLite transaction), spread over the three nodes; then
   paxosd's key-value writes (PUT /v1/kv) at the same count; then, at the largest count, a
   point query (SELECT by primary key, linearizable) through /v1/sql/query.
3. One local SQLite file, one connection, one INSERT per transaction, synchronous=FULL, in
   the rollback-journal and the WAL modes: what one disk's fsync allows without replication.

Each figure is requests answered per second over the window, with p50/p99 latency. The load
generator is one Python process (aiohttp), on the same machine: at high client counts it
competes with the nodes for the CPU, so the figures are a floor, and ratios within the run
are what to compare. rqlite itself is not installable here (no release of it can be fetched
in this environment), so it is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from paxosd.benchmark.peers import start_paxosd


async def _load(
    urls: list[str], clients: int, seconds: float, body: Any, method: str = "POST"
) -> dict[str, float]:
    """`clients` loops sending `body(client, n)` to `urls` (client i to url i % len) for
    `seconds`; answers per second and latency."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop(client: int) -> None:
            nonlocal errors
            n = 0
            url = urls[client % len(urls)]
            while time.perf_counter() < deadline:
                path, payload = body(client, n)
                n += 1
                started = time.perf_counter()
                async with session.request(method, url + path, json=payload) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(clients)))
        took = time.perf_counter() - started
    latencies.sort()
    return {
        "per_s": round(len(latencies) / took, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else 0.0,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else 0.0,
        "errors": errors,
    }


def _insert(client: int, n: int) -> tuple[str, Any]:
    return "/v1/sql/execute", {
        "statements": [["INSERT INTO bench (v) VALUES (?)", [f"c{client}-{n}"]]]
    }


def _put(client: int, n: int) -> tuple[str, Any]:
    return f"/v1/kv/bench/{client}/{n}", {"value": n}


def _point_query(client: int, n: int) -> tuple[str, Any]:
    return "/v1/sql/query", {"statements": [["SELECT v FROM bench WHERE id = ?", [n % 100 + 1]]]}


def local_sqlite(folder: Path, mode: str, seconds: float) -> dict[str, float]:
    path = folder / f"local-{mode}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode = {mode}")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE bench (id INTEGER PRIMARY KEY, v TEXT)")
    latencies = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    n = 0
    while time.perf_counter() < deadline:
        begun = time.perf_counter()
        db.execute("INSERT INTO bench (v) VALUES (?)", (f"local-{n}",))  # one transaction
        latencies.append(time.perf_counter() - begun)
        n += 1
    took = time.perf_counter() - started
    db.close()
    latencies.sort()
    return {
        "per_s": round(n / took, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "errors": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each measurement's window")
    parser.add_argument("--clients", default="1,64,256", help="client counts, comma-separated")
    parser.add_argument("--dir", help="where the nodes' data goes (default: a temporary one)")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    folder = Path(args.dir or tempfile.mkdtemp(prefix="paxosd-sql-bench-"))
    rows: list[tuple[str, int, dict[str, float]]] = []
    cluster = start_paxosd(folder)
    try:
        urls = [f"http://127.0.0.1:{node.http_port}" for node in cluster.nodes]
        setup = asyncio.run(
            _load(urls[:1], 1, 0.0001, lambda c, n: ("/v1/sql/execute", {"statements": [
                "CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, v TEXT)"]}))
        )  # fmt: skip
        del setup
        for clients in counts:
            rows.append(("paxosd SQL insert", clients,
                         asyncio.run(_load(urls, clients, args.seconds, _insert))))  # fmt: skip
            rows.append(("paxosd KV put", clients,
                         asyncio.run(_load(urls, clients, args.seconds, _put, "PUT"))))  # fmt: skip
        top = max(counts)
        rows.append(("paxosd SQL point query", top,
                     asyncio.run(_load(urls, top, args.seconds, _point_query))))  # fmt: skip
    finally:
        cluster.stop()
    for mode in ("delete", "wal"):
        rows.append((f"local SQLite ({mode}, FULL)", 1, local_sqlite(folder, mode, args.seconds)))
    print(f"{'what':32} {'clients':>7} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for what, clients, figures in rows:
        print(
            f"{what:32} {clients:>7} {figures['per_s']:>9} {figures['p50_ms']:>8} "
            f"{figures['p99_ms']:>8} {figures['errors']:>6}"
        )
    print(json.dumps([{"what": w, "clients": c, **f} for w, c, f in rows]))


if __name__ == "__main__":
    main()
