"""The data model's benchmark, paxosd beside etcd in one run: transaction throughput, a range
of 10,000 keys, and the memory a key and a historic version cost.

Both systems are driven through the same door, etcd's v3 JSON API (paxosd serves it on its
HTTP port, etcd on its client port), by the same client code in this process, with the same
requests, so the comparison is of the servers and their data models - not of two load
generators. The price: etcd's gateway costs it about twice its gRPC's CPU per request
(docs/benchmarks.md), and a Python load generator saturates at a few thousand requests a
second on a small machine, so the transaction figures are a comparison at equal load, not
either system's ceiling.

* txn: `txn_clients` clients, each repeating a compare-and-set transaction on a key of its
  own (compare the key's mod revision with the last one it wrote; on success put the key and
  a log key; on failure read the key), for `txn_seconds`. Throughput, p50 and p99 latency,
  and the share that succeeded.
* range: `range_keys` keys of `value_size` bytes, written in transactions of 100 puts; then
  `range_repeats` reads of the whole range, one at a time. p50 and p99 latency, answer bytes.
* memory: the leader's resident memory (VmRSS) before and after writing `memory_keys` new
  keys, then after overwriting each `memory_versions` times without compaction: bytes per
  key, and per historic version. For etcd this counts the pages of its bbolt file the process
  has mapped in, as well as its index; for paxosd the Python objects of the store.

`run(clusters, options, log)` returns one record per system and measure, in the format of
`paxosd bench`'s other records (`op`: "txn", "range", "memory").
"""

from __future__ import annotations

import asyncio
import base64
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from paxosd.benchmark.peers import Cluster

__all__ = ["KvOptions", "gateway_url", "rss_bytes", "run"]

Log = Callable[[str], None]
batch_keys = 100  # puts per transaction when loading keys (etcd's default limit is 128)
request_timeout_s = 30.0


@dataclass
class KvOptions:
    txn_clients: int = 16
    txn_seconds: float = 10.0
    range_keys: int = 10_000
    range_repeats: int = 20
    memory_keys: int = 10_000
    memory_versions: int = 5
    value_size: int = 100


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def gateway_url(cluster: Cluster) -> str:
    """The etcd JSON API of the cluster's leader (writes there are not forwarded)."""
    index = cluster.leader_index()
    node = cluster.nodes[index if index is not None else 0]
    port = node.http_port if cluster.name == "paxosd" else node.client_port
    return f"http://127.0.0.1:{port}"


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _post(http: httpx.AsyncClient, url: str, path: str, body: dict[str, Any]) -> Any:
    reply = await http.post(f"{url}/v3/{path}", json=body)
    if reply.status_code != 200:
        raise RuntimeError(f"POST /v3/{path}: {reply.status_code} {reply.text[:300]}")
    return reply.json()


async def _load_keys(
    http: httpx.AsyncClient, url: str, prefix: bytes, count: int, value: bytes
) -> int:
    """Write `count` keys prefix00000.. in transactions of `batch_keys`; the last revision."""
    revision = 0
    for start in range(0, count, batch_keys):
        ops = [
            {"request_put": {"key": _b64(prefix + b"%08d" % i), "value": _b64(value)}}
            for i in range(start, min(count, start + batch_keys))
        ]
        answer = await _post(http, url, "kv/txn", {"success": ops})
        revision = int(answer["header"]["revision"])
    return revision


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _txn_load(url: str, options: KvOptions, run_id: str) -> dict[str, Any]:
    latencies: list[float] = []
    outcomes = {"succeeded": 0, "failed": 0, "errors": 0}
    limits = httpx.Limits(max_connections=options.txn_clients + 4)
    value = _b64(b"v" * options.value_size)
    async with httpx.AsyncClient(timeout=request_timeout_s, limits=limits) as http:

        async def client(number: int) -> None:
            key = _b64(f"bench/{run_id}/txn/{number}".encode())
            log_key = _b64(f"bench/{run_id}/log/{number}".encode())
            mod = 0
            while time.monotonic() < stop_at:
                body = {
                    "compare": [{"key": key, "target": "MOD", "mod_revision": str(mod)}],
                    "success": [
                        {"request_put": {"key": key, "value": value}},
                        {"request_put": {"key": log_key, "value": value}},
                    ],
                    "failure": [{"request_range": {"key": key}}],
                }
                started = time.perf_counter()
                try:
                    answer = await _post(http, url, "kv/txn", body)
                except (httpx.HTTPError, RuntimeError):
                    outcomes["errors"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if answer.get("succeeded"):
                    outcomes["succeeded"] += 1
                    mod = int(answer["header"]["revision"])
                else:
                    outcomes["failed"] += 1
                    kvs = answer["responses"][0]["response_range"].get("kvs", [])
                    mod = int(kvs[0]["mod_revision"]) if kvs else 0

        started_at = time.monotonic()
        stop_at = started_at + options.txn_seconds
        await asyncio.gather(*(client(i) for i in range(options.txn_clients)))
        elapsed = time.monotonic() - started_at
    done = outcomes["succeeded"] + outcomes["failed"]
    return {
        "op": "txn",
        "clients": options.txn_clients,
        "duration_s": round(elapsed, 2),
        "ops_per_s": round(done / elapsed, 1) if elapsed else None,
        "p50_ms": _ms(_percentile(latencies, 0.50)),
        "p99_ms": _ms(_percentile(latencies, 0.99)),
        "succeeded_share": round(outcomes["succeeded"] / done, 3) if done else None,
        "errors": outcomes["errors"],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


async def _range(url: str, options: KvOptions, run_id: str) -> dict[str, Any]:
    prefix = f"bench/{run_id}/range/".encode()
    async with httpx.AsyncClient(timeout=request_timeout_s) as http:
        await _load_keys(http, url, prefix, options.range_keys, b"r" * options.value_size)
        body = {"key": _b64(prefix), "range_end": _b64(prefix[:-1] + b"0")}
        latencies: list[float] = []
        size = 0
        count = 0
        for _ in range(options.range_repeats):
            started = time.perf_counter()
            reply = await http.post(f"{url}/v3/kv/range", json=body)
            latencies.append(time.perf_counter() - started)
            if reply.status_code != 200:
                raise RuntimeError(f"range: {reply.status_code} {reply.text[:300]}")
            size = len(reply.content)
            count = int(reply.json().get("count", 0))
    if count != options.range_keys:
        raise RuntimeError(f"range: expected {options.range_keys} keys, got {count}")
    return {
        "op": "range",
        "keys": count,
        "answer_bytes": size,
        "p50_ms": _ms(_percentile(latencies, 0.50)),
        "p99_ms": _ms(_percentile(latencies, 0.99)),
        "repeats": options.range_repeats,
    }


async def _memory(url: str, pid: int, options: KvOptions, run_id: str) -> dict[str, Any]:
    prefix = f"bench/{run_id}/mem/".encode()
    value = b"m" * options.value_size
    async with httpx.AsyncClient(timeout=request_timeout_s) as http:
        await asyncio.sleep(1.0)  # let the leader settle after the previous measures
        before = rss_bytes(pid)
        await _load_keys(http, url, prefix, options.memory_keys, value)
        with_keys = rss_bytes(pid)
        for _ in range(options.memory_versions):
            await _load_keys(http, url, prefix, options.memory_keys, value)
        with_history = rss_bytes(pid)
    versions = options.memory_keys * options.memory_versions
    return {
        "op": "memory",
        "keys": options.memory_keys,
        "versions": versions,
        "value_size": options.value_size,
        "rss_before_bytes": before,
        "rss_with_keys_bytes": with_keys,
        "rss_with_history_bytes": with_history,
        "bytes_per_key": round((with_keys - before) / options.memory_keys, 1),
        "bytes_per_version": round((with_history - with_keys) / versions, 1),
    }


def run(clusters: dict[str, Cluster], options: KvOptions, log: Log) -> list[dict[str, Any]]:
    """Every measure on every cluster (paxosd and etcd: both serve etcd's JSON API), the
    order of the systems reversed between measures."""
    records: list[dict[str, Any]] = []
    names = [name for name in ("paxosd", "etcd") if name in clusters]
    run_id = f"{time.time_ns():x}"
    measures: list[tuple[str, Callable[[str, Cluster], Any]]] = [
        ("txn", lambda url, cluster: _txn_load(url, options, run_id)),
        ("range", lambda url, cluster: _range(url, options, run_id)),
        ("memory", lambda url, cluster: _memory(url, _leader_pid(cluster), options, run_id)),
    ]
    for index, (name, measure) in enumerate(measures):
        order = names if index % 2 == 0 else list(reversed(names))
        for system in order:
            cluster = clusters[system]
            log(f"kv bench: {name} on {system}")
            gc.collect()
            try:
                record = asyncio.run(measure(gateway_url(cluster), cluster))
            except (RuntimeError, OSError, httpx.HTTPError) as error:
                record = {"op": name, "error": str(error)[:400]}
            record.update(system=system, label=f"kv {name}")
            records.append(record)
    return records


def _leader_pid(cluster: Cluster) -> int:
    pid = cluster.leader_pid()
    if pid is None:
        raise RuntimeError(f"{cluster.name}: no leader to measure")
    return pid
