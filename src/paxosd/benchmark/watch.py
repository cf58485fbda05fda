"""The watch benchmark, paxosd beside etcd in one run: how soon watchers hear of a write, what
an idle watcher costs, and what idle watchers cost the writes.

Both systems are driven through the same door, etcd's v3 JSON API (`/v3/watch` over a
WebSocket, which paxosd serves on its HTTP port as etcd's gateway does on its client port),
by the same client code in this process. Watchers share streams as etcd's clients share
theirs: up to `stream_watchers` create requests on one WebSocket.

* latency: for each count in `latency_watchers` (1, 100, 1,000, 10,000), that many watchers of one
  key on the cluster's leader; a writer puts the key `latency_writes` times, one after the
  other. For each write, its latency (send to answer) and, for each watcher, the time from
  sending the write to the watcher receiving the event: p50 and p99 of both. (Received by
  this one Python process, which parses every event: at 10,000 watchers the client's own
  parsing is part of the figure, for both systems alike.) Beside them, the CPU time per
  delivered event of the leader (all its threads: etcd's gateway is in its process) and of
  this process, from the first write until every event arrived: where the time goes, the
  servers' part apart from the client's.
* memory: the leader's resident memory (VmRSS) before and after `memory_watchers` idle
  watchers (each on a key of its own, never written): bytes per watcher, the streams
  included.
* throughput: `throughput_clients` clients put keys of their own for `throughput_seconds`,
  without watchers, then with `throughput_watchers` idle watchers on other keys: writes per
  second, both, and the ratio.

`run(clusters, options, log)` returns one record per system and measure (`op`:
"watch-latency", "watch-memory", "watch-throughput"); `goals(records)` reads them against
the goals below, a line per system and goal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx

from paxosd.benchmark.kv import gateway_url, rss_bytes
from paxosd.benchmark.measure import cpu_seconds
from paxosd.benchmark.peers import Cluster

__all__ = ["WatchBenchOptions", "goals", "run"]

Log = Callable[[str], None]
request_timeout_s = 30.0
created_timeout_s = 120.0  # every watch of a measure created, at most this long
event_timeout_s = 30.0  # every watcher heard of the last write, at most this long
# The goals the measures are read against: a watcher's p99 at most this many times a write's
# p99 with `goal_watchers` watchers of the key, and with the idle watchers at least this share
# of the writes per second without them.
goal_watchers = 1_000
goal_watch_over_write_p99 = 2.0
goal_writes_share = 0.90


@dataclass
class WatchBenchOptions:
    latency_watchers: list[int] = field(default_factory=lambda: [1, 100, 1_000, 10_000])
    latency_writes: int = 50
    memory_watchers: int = 10_000
    throughput_watchers: int = 10_000
    throughput_clients: int = 16
    throughput_seconds: float = 10.0
    stream_watchers: int = 500  # watches per /v3/watch stream
    value_size: int = 100


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


class _Streams:
    """Watchers over a few WebSocket streams of /v3/watch (etcd's gateway reads no more of a
    plain HTTP request's body once it has started answering, so several watches share a
    stream only over a WebSocket, for both systems alike)."""

    def __init__(self, url: str, keys: list[bytes], per_stream: int) -> None:
        self.url = url.replace("http://", "ws://", 1) + "/v3/watch"
        self.keys = keys
        self.per_stream = per_stream
        self.created = 0
        self.received: dict[int, list[float]] = {}  # revision -> receive times
        self.tasks: list[asyncio.Task[None]] = []
        self.errors: list[str] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
        )
        for start in range(0, len(self.keys), self.per_stream):
            group = self.keys[start : start + self.per_stream]
            self.tasks.append(asyncio.create_task(self._read(self._session, group)))
        deadline = time.monotonic() + created_timeout_s
        while self.created < len(self.keys):
            if self.errors:
                raise RuntimeError(f"watch streams failed: {self.errors[0]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.created} of {len(self.keys)} watches created in time")
            await asyncio.sleep(0.01)

    async def _read(self, session: aiohttp.ClientSession, keys: list[bytes]) -> None:
        try:
            async with session.ws_connect(self.url, max_msg_size=0) as socket:
                for key in keys:
                    await socket.send_str(json.dumps({"create_request": {"key": _b64(key)}}))
                async for message in socket:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    now = time.perf_counter()
                    result = json.loads(message.data).get("result", {})
                    if result.get("created"):
                        self.created += 1
                    for event in result.get("events", ()):
                        revision = int(event["kv"]["mod_revision"])
                        self.received.setdefault(revision, []).append(now)
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, ValueError, KeyError) as error:
            self.errors.append(str(error)[:200])

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()


async def _put(http: httpx.AsyncClient, url: str, key: bytes, value: bytes) -> int:
    reply = await http.post(f"{url}/v3/kv/put", json={"key": _b64(key), "value": _b64(value)})
    if reply.status_code != 200:
        raise RuntimeError(f"put: {reply.status_code} {reply.text[:300]}")
    return int(reply.json()["header"]["revision"])


async def _latency(
    url: str, pid: int, watchers: int, options: WatchBenchOptions, run_id: str
) -> Any:
    key = f"bench/{run_id}/watched/{watchers}".encode()
    value = b"w" * options.value_size
    streams = _Streams(url, [key] * watchers, options.stream_watchers)
    try:
        await streams.start()
        server_cpu = cpu_seconds([pid], include_children=False)
        client_cpu = time.process_time()
        sent: dict[int, float] = {}
        write_latencies: list[float] = []
        async with httpx.AsyncClient(timeout=request_timeout_s) as writer:
            for _ in range(options.latency_writes):
                started = time.perf_counter()
                revision = await _put(writer, url, key, value)
                write_latencies.append(time.perf_counter() - started)
                sent[revision] = started
                await asyncio.sleep(0.005)
        deadline = time.monotonic() + event_timeout_s
        last = max(sent)
        while len(streams.received.get(last, ())) < watchers:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        server_cpu = cpu_seconds([pid], include_children=False) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        await streams.stop()
    delays = [
        at - sent[revision]
        for revision, times in streams.received.items()
        if revision in sent
        for at in times
    ]
    expected = watchers * len(sent)
    return {
        "op": "watch-latency",
        "watchers": watchers,
        "writes": len(sent),
        "events_received": len(delays),
        "events_expected": expected,
        "watch_p50_ms": _percentile(delays, 0.50),
        "watch_p99_ms": _percentile(delays, 0.99),
        "write_p50_ms": _percentile(write_latencies, 0.50),
        "write_p99_ms": _percentile(write_latencies, 0.99),
        # CPU per delivered event (the writes' own included: a small part at many watchers).
        "server_cpu_us_per_event": _per_event(server_cpu, len(delays)),
        "client_cpu_us_per_event": _per_event(client_cpu, len(delays)),
    }


def _per_event(seconds: float, events: int) -> float | None:
    return round(seconds / events * 1e6, 2) if events else None


async def _memory(url: str, pid: int, options: WatchBenchOptions, run_id: str) -> Any:
    count = options.memory_watchers
    keys = [f"bench/{run_id}/idle/{i}".encode() for i in range(count)]
    await asyncio.sleep(1.0)  # let the leader settle after the previous measures
    before = rss_bytes(pid)
    streams = _Streams(url, keys, options.stream_watchers)
    try:
        await streams.start()
        await asyncio.sleep(1.0)
        after = rss_bytes(pid)
    finally:
        await streams.stop()
    return {
        "op": "watch-memory",
        "watchers": count,
        "streams": len(streams.tasks),
        "rss_before_bytes": before,
        "rss_with_watchers_bytes": after,
        "bytes_per_watcher": round((after - before) / count, 1),
    }


async def _writes(url: str, options: WatchBenchOptions, run_id: str, tag: str) -> float:
    """Puts per second by `throughput_clients` clients for `throughput_seconds`."""
    value = b"t" * options.value_size
    done = 0
    limits = httpx.Limits(max_connections=options.throughput_clients + 4)
    async with httpx.AsyncClient(timeout=request_timeout_s, limits=limits) as http:

        async def client(number: int) -> None:
            nonlocal done
            key = f"bench/{run_id}/{tag}/{number}".encode()
            while time.monotonic() < stop_at:
                with contextlib.suppress(httpx.HTTPError, RuntimeError):
                    await _put(http, url, key, value)
                    done += 1

        started = time.monotonic()
        stop_at = started + options.throughput_seconds
        await asyncio.gather(*(client(i) for i in range(options.throughput_clients)))
        elapsed = time.monotonic() - started
    return done / elapsed if elapsed else 0.0


async def _throughput(url: str, options: WatchBenchOptions, run_id: str) -> Any:
    without = await _writes(url, options, run_id, "plain")
    count = options.throughput_watchers
    keys = [f"bench/{run_id}/quiet/{i}".encode() for i in range(count)]
    streams = _Streams(url, keys, options.stream_watchers)
    try:
        await streams.start()
        with_watchers = await _writes(url, options, run_id, "watched")
    finally:
        await streams.stop()
    return {
        "op": "watch-throughput",
        "clients": options.throughput_clients,
        "idle_watchers": count,
        "writes_per_s": round(without, 1),
        "writes_per_s_with_watchers": round(with_watchers, 1),
        "ratio": round(with_watchers / without, 3) if without else None,
    }


def run(clusters: dict[str, Cluster], options: WatchBenchOptions, log: Log) -> list[dict[str, Any]]:
    """Every measure on every cluster (paxosd and etcd), the order of the systems reversed
    between measures."""
    records: list[dict[str, Any]] = []
    names = [name for name in ("paxosd", "etcd") if name in clusters]
    run_id = f"{time.time_ns():x}"
    measures: list[tuple[str, Callable[[str, Cluster], Any]]] = [
        *(
            (f"latency, {n} watchers", _bind_latency(n, options, run_id))
            for n in options.latency_watchers
        ),
        ("memory", lambda url, cluster: _memory(url, _leader_pid(cluster), options, run_id)),
        ("throughput", lambda url, cluster: _throughput(url, options, run_id)),
    ]
    for index, (name, measure) in enumerate(measures):
        order = names if index % 2 == 0 else list(reversed(names))
        for system in order:
            cluster = clusters[system]
            log(f"watch bench: {name} on {system}")
            gc.collect()
            try:
                record = asyncio.run(measure(gateway_url(cluster), cluster))
            except (RuntimeError, OSError, httpx.HTTPError) as error:
                record = {"op": f"watch-{name.split(',')[0]}", "error": str(error)[:400]}
            record.update(system=system, label=f"watch {name}")
            records.append(record)
    return records


def _bind_latency(
    watchers: int, options: WatchBenchOptions, run_id: str
) -> Callable[[str, Cluster], Any]:
    return lambda url, cluster: _latency(url, _leader_pid(cluster), watchers, options, run_id)


def _leader_pid(cluster: Cluster) -> int:
    pid = cluster.leader_pid()
    if pid is None:
        raise RuntimeError(f"{cluster.name}: no leader to measure")
    return pid


def goals(records: list[dict[str, Any]]) -> list[str]:
    """Each system's records read against the goals: met, missed, or not measured (and how
    to measure it), one line per system and goal."""
    lines: list[str] = []
    systems = [name for name in ("paxosd", "etcd") if any(r.get("system") == name for r in records)]
    for system in systems:
        mine = [r for r in records if r.get("system") == system and "error" not in r]
        latency = next(
            (
                r
                for r in mine
                if r.get("op") == "watch-latency" and r.get("watchers") == goal_watchers
            ),
            None,
        )
        if latency and latency.get("watch_p99_ms") and latency.get("write_p99_ms"):
            times = latency["watch_p99_ms"] / latency["write_p99_ms"]
            met = "met" if times <= goal_watch_over_write_p99 else "MISSED"
            lines.append(
                f"{system}: watcher p99 {times:.2f}x the write p99 with {goal_watchers:,} "
                f"watchers (goal: at most {goal_watch_over_write_p99:g}x): {met}"
            )
        else:
            lines.append(
                f"{system}: watcher p99 against the write p99 with {goal_watchers:,} watchers: "
                f"not measured (--watch-watchers must include {goal_watchers})"
            )
        throughput = next((r for r in mine if r.get("op") == "watch-throughput"), None)
        if throughput and throughput.get("ratio") is not None:
            share = float(throughput["ratio"])
            met = "met" if share >= goal_writes_share else "MISSED"
            lines.append(
                f"{system}: writes/s with {throughput['idle_watchers']:,} idle watchers "
                f"{share:.0%} of without (goal: at least {goal_writes_share:.0%}): {met}"
            )
        else:
            lines.append(f"{system}: writes/s with idle watchers: not measured")
    return lines
