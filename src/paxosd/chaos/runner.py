"""One chaos run, end to end: cluster up, clients and faults, heal, recover, restart, check.

Theory of operation. A run has five phases, all on one asyncio loop (the proxies, the
clients, the nemesis and the status sampler share it; blocking process calls go through
`asyncio.to_thread`):

1. **Up.** Ports are found free (`paxosd.runtime.ports`), the proxy mesh starts, every node
   gets a config that dials its peers through the mesh (`write_configs`), and the nodes start
   as separate `paxosd node` processes. The run waits for a leader that every node names.
2. **Chaos.** The clients (`workloads`) run for `duration_s` while the nemesis plays a seeded
   schedule (`make_schedule`); a sampler polls every node's /v1/status meanwhile (for the
   timeline and for recovery times). The nemesis heals everything at the end.
3. **Recovery.** The clients keep going until every node names the same leader and a write
   has succeeded (bounded by `recovery_timeout_s`), then a short tail, then they stop.
4. **Full restart.** Every node is killed with SIGKILL at once and started again: anything
   acknowledged must have been durable on a majority. The clients' keys, names and decisions
   are read back and the reads join the history.
5. **Check.** The history is written as JSON Lines, read back and judged (`report`).

Every process is stopped by its PID in a `finally`, also on Ctrl-C and on errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paxosd.chaos.nemesis import KINDS, NemesisRunner, agreed_leader, make_schedule
from paxosd.chaos.processes import NodeProcess, peer_addresses, spare_node, write_configs
from paxosd.chaos.proxy import ProxyMesh
from paxosd.chaos.watchers import check as check_watchers
from paxosd.chaos.watchers import make_watchers
from paxosd.chaos.watchers import reference as watch_reference
from paxosd.chaos.workloads import (
    WORKLOADS,
    Caller,
    Recorder,
    Shared,
    final_reads,
    keys_used,
    make_workers,
)
from paxosd.check.history import Event, dump_jsonl
from paxosd.runtime.config import NodeConfig

log = logging.getLogger("paxosd.chaos.runner")

startup_timeout_s = 30.0
recovery_timeout_s = 30.0
tail_s = 2.0  # healthy traffic after recovery, before the clients stop
worker_stop_timeout_s = 10.0
final_reads_deadline_s = 30.0
sample_interval_s = 0.25
sample_timeout_s = 0.5
stuck_after_s = 5.0  # no agreed leader this long: keep the nodes' full statuses
first_port_default = 21000
proxy_port_offset = 1200  # the proxies' ports start this far above the nodes' layout search


@dataclass(frozen=True)
class ChaosSpec:
    nodes: int = 3
    duration_s: float = 60.0
    nemesis: tuple[str, ...] = KINDS
    workloads: tuple[str, ...] = WORKLOADS
    seed: int = 1
    variant: str = "correct"
    first_port: int = first_port_default
    fault_s: tuple[float, float] = (2.0, 5.0)
    quiet_s: tuple[float, float] = (3.0, 6.0)
    pause_s: tuple[float, float] = (2.0, 4.0)
    epoch_s: float = 15.0
    check_time_limit_s: float = 120.0

    def replay_command(self, out: str) -> str:
        parts = [
            "paxosd chaos",
            f"--nodes {self.nodes}",
            f"--duration {self.duration_s:g}",
            f"--nemesis {','.join(self.nemesis)}",
            f"--workload {','.join(self.workloads)}",
            f"--seed {self.seed}",
        ]
        if self.variant != "correct":
            parts.append(f"--variant {self.variant}")
        parts.append(f"--out {out}")
        return " ".join(parts)


@dataclass
class Progress:
    """What the command shows while a run goes on."""

    phase: str = "starting"
    elapsed_s: float = 0.0
    duration_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    faults: int = 0
    current_fault: str = ""


@dataclass
class RunData:
    """Everything a run observed, for the report."""

    spec: ChaosSpec
    t0: float
    events: list[Event]
    faults: list[dict[str, Any]]
    unexpected_exits: list[dict[str, Any]]
    samples: list[dict[str, Any]]  # {"t", "node", "role", "leader"} ("down" if no answer)
    stuck: list[dict[str, Any]]  # full statuses taken while no leader was agreed for long
    probe_ok: list[float]
    chaos_end: float  # relative: when the nemesis had healed everything
    recovered_at: float | None  # relative: all nodes agree on a leader and a write succeeded
    restart: dict[str, Any]
    stale_uses_refused: int
    mesh_totals: dict[str, int]
    # The watchers' verdict (chaos/watchers.py): problems, and what they went through.
    watch_problems: list[str] = field(default_factory=list)
    watch_stats: dict[str, int] = field(default_factory=dict)


class StatusSampler:
    """Polls every node's /v1/status; keeps (time, node, role, leader) for each answer."""

    def __init__(
        self,
        endpoints: dict[int, str],
        recorder: Recorder,
        links: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.links = links  # the proxy links' state, kept with the stuck statuses
        self.recorder = recorder
        self.samples: list[dict[str, Any]] = []
        self.latest: dict[int, dict[str, Any] | None] = {}
        # Full statuses (recent events included) while no leader is agreed for long: the
        # evidence for whoever debugs a stuck cluster.
        self.stuck: list[dict[str, Any]] = []
        self.leaderless_since: float | None = None
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(sample_timeout_s, connect=0.3))

    async def poll_once(self) -> dict[int, dict[str, Any] | None]:
        async def one(node: int) -> tuple[int, dict[str, Any] | None]:
            try:
                response = await self.http.get(self.endpoints[node] + "/v1/status")
                return node, response.json()
            except (httpx.HTTPError, ValueError):
                return node, None

        answers = dict(await asyncio.gather(*(one(n) for n in sorted(self.endpoints))))
        t = self.recorder.now()
        for node, status in answers.items():
            role = "down" if status is None else str(status.get("role"))
            leader = None if status is None else status.get("leader")
            self.samples.append({"t": t, "node": node, "role": role, "leader": leader})
        self.latest = answers
        self._note_leaderless(t)
        return answers

    def _note_leaderless(self, t: float) -> None:
        if self.agreed() is not None:
            self.leaderless_since = None
            return
        if self.leaderless_since is None:
            self.leaderless_since = t
        last = self.stuck[-1]["t"] if self.stuck else -math.inf
        if t - self.leaderless_since >= stuck_after_s and t - last >= stuck_after_s:
            links = self.links() if self.links is not None else None
            self.stuck.append(
                {"t": t, "since": self.leaderless_since, "statuses": self.latest, "links": links}
            )

    def agreed(self) -> int | None:
        """The leader every node answers with, if they all answer and agree."""
        if not self.latest or any(s is None for s in self.latest.values()):
            return None
        statuses = {n: s for n, s in self.latest.items() if s is not None}
        return agreed_leader(statuses, len(self.endpoints))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), sample_interval_s)

    async def aclose(self) -> None:
        await self.http.aclose()


ProgressCallback = Callable[[Progress], None]


class ClusterDidNotStart(Exception):
    """The cluster never agreed on a leader before the clients and faults began: nothing was
    run or checked (the nodes' logs say why)."""


async def run_chaos(
    spec: ChaosSpec, out: Path, progress: ProgressCallback | None = None
) -> RunData:
    """One run; writes node logs and configs under `out`, returns what it observed."""
    from paxosd.runtime import ports

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)
    # `grow` adds node n + 1: the mesh (and the free layout) then has room for it.
    meshed = spec.nodes + 1 if "grow" in spec.nemesis else spec.nodes
    base_port = ports.free_layout(meshed, spec.first_port)
    links = ProxyMesh.ports_needed(meshed)
    # One port per link, then one per node for the front door it gets if it joins.
    proxy_first = ports.free_block(links + meshed, base_port + proxy_port_offset)
    proxy_ports = range(proxy_first, proxy_first + links)
    fronts = {i: proxy_first + links + i - 1 for i in range(1, meshed + 1)}
    mesh = ProxyMesh(
        peer_addresses(meshed, base_port), proxy_ports, random.Random(spec.seed),
        front_ports=fronts,
    )  # fmt: skip
    state = Progress(duration_s=spec.duration_s)

    def show(phase: str | None = None) -> None:
        if phase is not None:
            state.phase = phase
        if progress is not None:
            progress(state)

    async with mesh:
        # A cluster id of its own, so that a stray node of another run is refused.
        paths = write_configs(
            out / "cluster", spec.nodes, base_port, mesh, variant=spec.variant,
            cluster_id=f"paxosd-chaos-{base_port}",
        )  # fmt: skip
        nodes = {p.node_id: p for p in (NodeProcess.from_config(c, out / "logs") for c in paths)}
        spare = None
        if meshed > spec.nodes:
            spare = spare_node(
                out / "cluster", spec.nodes, base_port, out / "logs", variant=spec.variant,
                cluster_id=f"paxosd-chaos-{base_port}",
            )  # fmt: skip
        try:
            show("starting the cluster")
            for node in nodes.values():
                node.start()
            return await _run_started(spec, mesh, nodes, rng, state, show, spare)
        finally:
            for node in [*nodes.values(), *([spare[0]] if spare else [])]:
                await asyncio.to_thread(node.close)


async def _run_started(
    spec: ChaosSpec,
    mesh: ProxyMesh,
    nodes: dict[int, NodeProcess],
    rng: random.Random,
    state: Progress,
    show: Callable[[str | None], None],
    spare: tuple[NodeProcess, NodeConfig] | None = None,
) -> RunData:
    endpoints = {i: f"http://{p.http[0]}:{p.http[1]}" for i, p in nodes.items() if p.http}
    for node in nodes.values():
        await asyncio.to_thread(node.wait_ready, startup_timeout_s)
    recorder = Recorder()
    sampler = StatusSampler(endpoints, recorder, mesh.stats)
    caller = Caller(endpoints, random.Random(rng.getrandbits(64)))
    shared = Shared(caller, recorder, rng, run_id=f"chaos{spec.seed}-{int(time.time())}",
                    epoch_s=spec.epoch_s)  # fmt: skip
    watch_http = httpx.AsyncClient()
    try:
        leader = await _wait_for_agreed_leader(sampler, startup_timeout_s)
        watchers = make_watchers(endpoints, leader, random.Random(rng.getrandbits(64)))
        recorder.t0 = time.time()  # the run's clock starts with the clients
        schedule = make_schedule(
            spec.nemesis, spec.duration_s, spec.seed, sorted(nodes),
            fault_s=spec.fault_s, quiet_s=spec.quiet_s, pause_s=spec.pause_s,
        )  # fmt: skip
        nemesis = NemesisRunner(mesh, nodes, random.Random(rng.getrandbits(64)), spare=spare)
        workers = make_workers(shared, spec.workloads)
        sampling = asyncio.Event()
        background = [asyncio.create_task(sampler.run(sampling))]
        background += [asyncio.create_task(w.run()) for w in workers]
        background += [asyncio.create_task(w.run(watch_http, shared.stopping)) for w in watchers]
        ticker = asyncio.create_task(_tick(state, recorder, nemesis, show))
        try:
            show("chaos")
            await nemesis.run(schedule)
            # The schedule ends with a quiet tail: the clients run on to the full duration.
            await asyncio.sleep(max(0.0, spec.duration_s - recorder.now()))
            chaos_end = recorder.now()
            show("recovering")
            recovered_at = await _wait_for_recovery(sampler, shared, chaos_end)
            await asyncio.sleep(tail_s)
            show("stopping the clients")
            shared.stopping.set()
            await _join(background[1:])
        finally:
            shared.stopping.set()
            sampling.set()
            ticker.cancel()
            for task in background:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*background, ticker, return_exceptions=True)
        show("full restart (kill -9 every node)")
        restart = await _full_restart(nodes, sampler, shared)
        show("reading back after the restart")
        await final_reads(shared, keys_used(recorder.events), final_reads_deadline_s)
        show("reading the history back for the watchers")
        history = await watch_reference(endpoints, watch_http)
        watch_problems = check_watchers(watchers, history, recorder.events)
        watch_stats = {
            "watchers": len(watchers),
            "streams": sum(len(w.session.streams) for w in watchers),
            "streams_failed": sum(w.streams_failed for w in watchers),
            "changes_seen": sum(
                len(item[2])
                for w in watchers
                for stream in w.session.streams
                for item in stream.items
                if item[0] == "events"
            ),
            "history_changes": 0 if isinstance(history, str) else len(history.changes),
        }
        show("stopping the cluster")
        for node in nodes.values():
            await asyncio.to_thread(node.terminate)
        return RunData(
            spec=spec,
            t0=recorder.t0,
            events=recorder.events,
            faults=[_relative(r, recorder.t0) for r in nemesis.events],
            unexpected_exits=[
                {**e, "at": round(e["at"] - recorder.t0, 3)} for e in nemesis.unexpected_exits
            ],
            samples=sampler.samples,
            stuck=sampler.stuck,
            probe_ok=shared.writes_ok,
            chaos_end=chaos_end,
            recovered_at=recovered_at,
            restart=restart,
            stale_uses_refused=shared.resource.refused,
            mesh_totals=mesh.totals(),
            watch_problems=watch_problems,
            watch_stats=watch_stats,
        )
    finally:
        await watch_http.aclose()
        await caller.aclose()
        await sampler.aclose()


async def _tick(
    state: Progress,
    recorder: Recorder,
    nemesis: NemesisRunner,
    show: Callable[[str | None], None],
) -> None:
    while True:
        state.elapsed_s = recorder.now()
        state.counts = dict(recorder.counts)
        state.faults = len(nemesis.events)
        last = nemesis.events[-1] if nemesis.events else None
        state.current_fault = last["kind"] if last is not None and last["end"] is None else ""
        show(None)
        await asyncio.sleep(0.25)


async def _join(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Let every client finish its operation in flight (bounded)."""
    _done, pending = await asyncio.wait(tasks, timeout=worker_stop_timeout_s)
    for task in pending:
        task.cancel()
    if pending:
        log.warning("%d clients did not stop in time", len(pending))


async def _wait_for_agreed_leader(sampler: StatusSampler, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await sampler.poll_once()
        leader = sampler.agreed()
        if leader is not None:
            return leader
        await asyncio.sleep(0.1)
    raise ClusterDidNotStart(f"no leader agreed by every node within {timeout_s:g} s")


async def _wait_for_recovery(sampler: StatusSampler, shared: Shared, since: float) -> float | None:
    """When (relative time) every node named the same leader and a write succeeded after
    `since`; None if that did not happen within `recovery_timeout_s`."""
    deadline = time.monotonic() + recovery_timeout_s
    agreed_at: float | None = None
    while time.monotonic() < deadline:
        if agreed_at is None and sampler.agreed() is not None:
            agreed_at = sampler.samples[-1]["t"] if sampler.samples else since
        wrote = [t for t in shared.writes_ok if t >= since]
        if agreed_at is not None and wrote:
            return max(agreed_at, wrote[0])
        await asyncio.sleep(0.05)
    return None


async def _full_restart(
    nodes: dict[int, NodeProcess], sampler: StatusSampler, shared: Shared
) -> dict[str, Any]:
    """SIGKILL every node at once, start them all, wait for a leader and a write."""
    killed_at = shared.recorder.now()
    for node in nodes.values():
        await asyncio.to_thread(node.kill9)
    started_at = shared.recorder.now()
    for node in nodes.values():
        await asyncio.to_thread(node.start)
    for node in nodes.values():
        await asyncio.to_thread(node.wait_ready, startup_timeout_s)
    leader = await _wait_for_agreed_leader(sampler, startup_timeout_s)
    ready_at = shared.recorder.now()
    return {
        "killed_at": killed_at,
        "started_at": started_at,
        "leader_agreed_at": ready_at,
        "leader": leader,
        "recovery_s": round(ready_at - started_at, 3),
    }


def _relative(record: dict[str, Any], t0: float) -> dict[str, Any]:
    end = record.get("end")
    return {
        **record,
        "start": round(record["start"] - t0, 3),
        "end": None if end is None else round(end - t0, 3),
    }


def write_history(events: Sequence[Event], path: Path) -> None:
    path.write_text(dump_jsonl(events))
