"""Nemeses: seeded fault schedules and the runner that inflicts them on a live cluster.

Theory of operation. A run alternates faults with quiet periods: quiet, fault, quiet, fault,
..., quiet. Faults never overlap, and every fault is followed by at least `quiet_s[0]` seconds
of a healthy cluster, so the harness can measure what each fault cost (unavailability) and
how long the cluster took to recover after it ended. `make_schedule` draws everything from
one `random.Random(seed)` - kinds, times, victims, groups, fault strengths - so a seed names a
schedule exactly. Only what cannot be known in advance is decided while running: which node
leads (for `kill-leader` and `isolate-leader`), asked of the nodes' GET /v1/status.

`NemesisRunner` executes a schedule against a `ProxyMesh` (network faults) and
`NodeProcess`es (process and disk faults) on the asyncio loop that also runs the proxies.
Every fault becomes one record `{"kind", "start", "end", "targets", "detail"}` with wall-clock
times (`time.time()`): `start` just before the fault takes effect, `end` just after it was
undone (links healed, SIGCONT sent, the killed node's process started again - not when it
is ready: readiness is part of the recovery the harness measures). The record is appended
when the fault starts, with `end` None until it ends. Whatever happens, the runner ends by
healing everything: links restored, paused nodes continued, dead nodes started, file-size
limits restored.

Kinds (`KINDS`):

- `kill`, `kill-leader`: SIGKILL a node, start it again at the end (same data dir).
- `pause`: SIGSTOP a node for longer than the election timeout (and, with the defaults, a
  lock lease of a second or two), then SIGCONT: it wakes up believing stale things.
- `stall-leader`: the leader is paused AND cut off from everyone; it is continued while still
  cut off, for `stall_wake_s`, then the links heal. A leader that wakes up alone still
  believes it leads (its timers did not run while stopped) and has the requests that queued
  up meanwhile to answer: the moment a leader must not answer a read unconfirmed.
- `partition`: a random minority cut off from the majority, both directions.
- `isolate-leader`: the current leader alone on one side.
- `bridge`: Jepsen's bridge - one node sees both sides, the two sides cannot see each other.
- `one-way`: a random minority either cannot send to the rest (mute) or cannot hear it (deaf).
- `delay`, `loss`, `duplicate`: latency + jitter, frame loss, frame duplication on every link.
- `reset`: abort every peer connection, repeatedly during the window.
- `failing-write`: the node's next append to its data log fails (RLIMIT_FSIZE lowered to the
  log's size: EFBIG). paxosd must stop rather than acknowledge: it exits with code 70
  (`Node._end_turn`), recorded as `detail.exit_code`. The node is started again at the end,
  with normal limits, and recovers from its log.
- `clock-skew`: one node's wall clock runs `offset_ms` ahead or behind (seconds to ten
  minutes) through its clock file, then is set right (a jump back). paxosd measures leases
  with the leader's monotonic clock, so nothing may change but log lines.
- `clock-jump-leader`: the leader's wall clock jumps forward by `offset_ms`, and again by as
  much every `every_s` while the fault lasts (a clock stepped again and again), then back at
  the end: what makes a lease measured in wall time expire early (the `wall-clock-leases`
  variant) while its holder still relies on it. One jump expires only the leases held at that
  instant; repeated jumps make it likely that some lock was just granted and is wanted.
- `transfer-leader`: an operator hands leadership to another node that is up (`POST
  /v1/leader/transfer` to the leader, as `paxosd member transfer-leader` does); the new
  leader is recorded in `detail.to`, the leader's answer in `detail.answer`. Nothing is
  undone at the end: the handover is the whole fault, and what it cost the clients (a pause
  of writes, never a failed one) is what the run measures.
- `membership`: a member is removed through the leader (`POST /v1/members` with the voters
  less one, as `paxosd member remove` asks); one time in three the victim is the leader, which
  first hands leadership to another voter, as the command does. At the end the node is added
  back as a learner, and the leader promotes it once it has caught up (`auto_promote`, on by
  default). A change the cluster refuses (another one under way, too few voters answering) is
  recorded in `detail.refused`, not an error: refusing is its right. Every change asked for is
  in `detail.changes`. Healing ends by making every node a voter again (an error if it could
  not, within `members_heal_s`).
- `replace`: a member's machine is replaced after losing its disk, as the runbook does it
  (docs/operations.md, "Replace a failed node"): the member is removed through the leader
  (the leader hands over first, one time in three it is the victim), SIGKILLed, and its data
  directory wiped. At the end it joins again under the same id with `paxosd node --join`
  (a new incarnation), announcing its front door as its peer address (chaos/proxy.py,
  `FrontDoor`: every member dials a joined node at that one address, and the door hands each
  connection to the proxy of its link). Once it runs, it is stopped and started again from
  the node.toml its join wrote, with its peers rewritten to the proxies of its own links and
  its real peer port behind the front door: the join run dials the members at the addresses
  its endpoint knows them by, which would bypass or misattribute later network faults. Every
  later start uses that file. `detail` has the old and the new incarnation; the heal waits
  until every node votes.
- `grow`: a fresh node, with an id no config file names (the runner's spare, n + 1), joins
  with `paxosd node --join` as `replace` has a node join (front door, restart from its
  node.toml), and the fault waits until it votes: the cluster runs with n + 1 voters. At the
  end it is removed through the leader (the leader hands over first if it is the new node),
  stopped and its data directory deleted: the cluster is back to its n nodes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from paxosd.chaos.processes import NodeProcess, storage_failure_exit_code, write_joined_config
from paxosd.chaos.proxy import ProxyMesh
from paxosd.client import admin
from paxosd.runtime.config import NodeConfig
from paxosd.runtime.config import load as load_config
from paxosd.runtime.datadir import has_store_in

log = logging.getLogger("paxosd.chaos.nemesis")

KINDS = (
    "kill",
    "kill-leader",
    "pause",
    "stall-leader",
    "partition",
    "isolate-leader",
    "bridge",
    "one-way",
    "delay",
    "loss",
    "duplicate",
    "reset",
    "failing-write",
    "clock-skew",
    "clock-jump-leader",
    "transfer-leader",
    "membership",
    "replace",
    "grow",
)
NETWORK_KINDS = frozenset(
    {"partition", "isolate-leader", "bridge", "one-way", "delay", "loss", "duplicate", "reset"}
)

fault_s_default = (2.0, 5.0)  # how long a fault lasts
quiet_s_default = (3.0, 6.0)  # healthy time before the first fault and after every fault
# Longer than election_ms_max (400 ms by default) many times over, and than a 1 s lock lease.
pause_s_default = (2.0, 4.0)
delay_ms_range = (20.0, 150.0)
jitter_ms_range = (0.0, 100.0)
loss_range = (0.05, 0.3)
duplicate_range = (0.05, 0.3)
reset_every_s = 0.5
skew_ms_range = (5_000.0, 600_000.0)  # a node's wall clock this far off, either way
jump_ms_range = (5_000.0, 120_000.0)  # the leader's wall clock jumps this far forward
jump_every_s = 1.0  # ... and as far again this often (a node re-reads its clock file each second)
stall_wake_s = 1.0  # a stalled leader runs this long, still cut off, before the heal
exit_poll_s = 0.02
status_timeout_s = 1.0
leader_wait_s = 10.0  # a handover or a change is given this long to show in the nodes' status
handover_watch_s = 3.0  # a handover not seen within this long is asked for again
# (a few hundred ms when the machine is idle; seconds on a loaded 2-core one, where 3 s made
# the replace fault give up after its handover)
readd_wait_s = 5.0  # adding a removed node back is retried this long at the fault's end
members_heal_s = 30.0  # the heal waits this long for every node to vote again
join_wait_s = 40.0  # a replaced node's `paxosd node --join` runs this long at most before it serves
remove_leader_chance = 1 / 3

Groups = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class FaultEvent:
    """One planned fault: from `start` to `end` seconds after the run begins."""

    start: float
    end: float
    kind: str
    # Node groups, by kind: (victim,) for kill, pause, failing-write; the sides of a partition
    # or (a, b, c) of a bridge; (senders, receivers) for one-way; () for all links or for the
    # leader, which is found at run time.
    targets: Groups = ()
    params: dict[str, float] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "targets": [list(g) for g in self.targets],
            "params": dict(self.params),
        }


def _check_kinds(kinds: Sequence[str], nodes: Sequence[int]) -> None:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown nemesis kinds {unknown}; known: {', '.join(KINDS)}")
    if not kinds:
        raise ValueError("no nemesis kinds given")
    if len(nodes) < 2 and any(k in NETWORK_KINDS for k in kinds):
        raise ValueError("network faults need at least 2 nodes")
    if len(nodes) < 2 and ("membership" in kinds or "replace" in kinds or "grow" in kinds):
        raise ValueError("a membership change needs at least 2 nodes (one stays a voter)")
    if len(nodes) < 3 and "bridge" in kinds:
        raise ValueError("a bridge needs at least 3 nodes")


def _targets(kind: str, nodes: list[int], rng: random.Random) -> Groups:
    if kind in ("kill", "pause", "failing-write", "clock-skew"):
        return ((rng.choice(nodes),),)
    if kind == "partition":
        shuffled = rng.sample(nodes, len(nodes))
        minority = rng.randint(1, max(1, (len(nodes) - 1) // 2))
        return (tuple(sorted(shuffled[minority:])), tuple(sorted(shuffled[:minority])))
    if kind == "bridge":
        shuffled = rng.sample(nodes, len(nodes))
        middle, rest = shuffled[0], shuffled[1:]
        half = len(rest) // 2
        return (tuple(sorted(rest[:half])), (middle,), tuple(sorted(rest[half:])))
    if kind == "one-way":
        shuffled = rng.sample(nodes, len(nodes))
        minority = rng.randint(1, max(1, (len(nodes) - 1) // 2))
        few, many = tuple(sorted(shuffled[:minority])), tuple(sorted(shuffled[minority:]))
        return (few, many) if rng.random() < 0.5 else (many, few)  # mute or deaf
    return ()  # all links, or the leader (found at run time)


def _params(kind: str, rng: random.Random) -> dict[str, float]:
    if kind == "delay":
        return {
            "delay_ms": round(rng.uniform(*delay_ms_range), 1),
            "jitter_ms": round(rng.uniform(*jitter_ms_range), 1),
        }
    if kind == "loss":
        return {"loss": round(rng.uniform(*loss_range), 3)}
    if kind == "duplicate":
        return {"duplicate": round(rng.uniform(*duplicate_range), 3)}
    if kind == "reset":
        return {"every_s": reset_every_s}
    if kind == "clock-skew":
        return {"offset_ms": round(rng.choice((-1, 1)) * rng.uniform(*skew_ms_range))}
    if kind == "clock-jump-leader":
        return {"offset_ms": round(rng.uniform(*jump_ms_range)), "every_s": jump_every_s}
    return {}


def make_schedule(
    kinds: Sequence[str],
    duration_s: float,
    seed: int,
    nodes: Iterable[int],
    *,
    fault_s: tuple[float, float] = fault_s_default,
    quiet_s: tuple[float, float] = quiet_s_default,
    pause_s: tuple[float, float] = pause_s_default,
) -> list[FaultEvent]:
    """Faults drawn from `kinds` (uniformly, with repetition) within [0, duration_s].

    Guarantees: sorted; no overlap; at least quiet_s[0] seconds before the first fault,
    between two faults and after the last one (before duration_s). Same arguments, same
    schedule. A duration too short for even one fault gives an empty schedule.
    """
    members = sorted(nodes)
    _check_kinds(kinds, members)
    if not 0 < fault_s[0] <= fault_s[1] or not 0 < quiet_s[0] <= quiet_s[1]:
        raise ValueError("fault_s and quiet_s must be (min, max) with 0 < min <= max")
    if not 0 < pause_s[0] <= pause_s[1]:
        raise ValueError("pause_s must be (min, max) with 0 < min <= max")
    rng = random.Random(seed)
    events: list[FaultEvent] = []
    t = rng.uniform(*quiet_s)
    while True:
        kind = rng.choice(list(kinds))
        length = rng.uniform(*(pause_s if kind == "pause" else fault_s))
        if t + length + quiet_s[0] > duration_s:
            break
        targets = _targets(kind, members, rng)
        params = _params(kind, rng)
        events.append(FaultEvent(round(t, 3), round(t + length, 3), kind, targets, params))
        t += length + rng.uniform(*quiet_s)
    return events


@dataclass
class _Active:
    event: FaultEvent
    record: dict[str, Any]
    undo: Callable[[], Awaitable[None]] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class NemesisRunner:
    """Inflicts a schedule on a live cluster and records what it did, when."""

    def __init__(
        self,
        mesh: ProxyMesh,
        nodes: Mapping[int, NodeProcess] | Sequence[NodeProcess],
        rng: random.Random,
        *,
        status_timeout_s: float = status_timeout_s,
        spare: tuple[NodeProcess, NodeConfig] | None = None,
    ) -> None:
        self.mesh = mesh
        # The node `grow` adds (an id of the mesh that no config file names), and the config
        # the harness would run it with; a member of `nodes` only while it is grown.
        self.spare = spare
        self.nodes: dict[int, NodeProcess] = (
            dict(nodes) if isinstance(nodes, Mapping) else {p.node_id: p for p in nodes}
        )
        self.rng = rng
        self.status_timeout_s = status_timeout_s
        self.events: list[dict[str, Any]] = []
        self.unexpected_exits: list[dict[str, Any]] = []
        self.healed_at: float | None = None
        self._downed: set[int] = set()  # nodes this runner killed or made fail
        self._limits: dict[int, tuple[int, int]] = {}
        self._machines: dict[int, NodeConfig] = {}  # replaced nodes' configs before the wipe
        self._active: _Active | None = None
        self._handlers: dict[str, Callable[[_Active], Awaitable[None]]] = {
            "kill": self._kill,
            "kill-leader": self._kill,
            "pause": self._pause,
            "stall-leader": self._stall_leader,
            "partition": self._partition,
            "isolate-leader": self._partition,
            "bridge": self._bridge,
            "one-way": self._one_way,
            "delay": self._frames,
            "loss": self._frames,
            "duplicate": self._frames,
            "reset": self._reset,
            "failing-write": self._failing_write,
            "clock-skew": self._clock,
            "clock-jump-leader": self._clock,
            "transfer-leader": self._transfer_leader,
            "membership": self._membership,
            "replace": self._replace,
            "grow": self._grow,
        }

    # -- running a schedule -----------------------------------------------------------------

    async def run(self, schedule: Sequence[FaultEvent]) -> list[dict[str, Any]]:
        """Play `schedule` from now on; heal everything at the end (also on error or
        cancellation). A fault whose undo overruns its planned end shifts every later fault
        by the overrun. Returns the records (also in `self.events`)."""
        loop = asyncio.get_running_loop()
        base = loop.time()
        try:
            for event in sorted(schedule, key=lambda e: e.start):
                await asyncio.sleep(max(0.0, base + event.start - loop.time()))
                await self.begin(event)
                await asyncio.sleep(max(0.0, base + event.end - loop.time()))
                await self.end()
                # An undo that ran past the planned end (a node joining and being promoted)
                # pushes the rest back by as much: every fault keeps its quiet time after it.
                base += max(0.0, loop.time() - (base + event.end))
        finally:
            await self.heal_all()
        return self.events

    async def begin(self, event: FaultEvent) -> dict[str, Any]:
        """Start one fault now (ending the current one first). Returns its record."""
        if event.kind not in self._handlers:
            raise ValueError(f"unknown nemesis kind {event.kind!r}")
        if self._active is not None:
            await self.end()
        self._check_processes()
        record: dict[str, Any] = {
            "kind": event.kind,
            "start": time.time(),
            "end": None,
            "targets": [list(g) for g in event.targets],
            "detail": {"planned": [event.start, event.end], **event.params},
        }
        active = _Active(event, record)
        self._active = active
        self.events.append(record)
        try:
            await self._handlers[event.kind](active)
        except Exception as error:  # a fault that could not be inflicted is data, not a crash
            log.exception("nemesis %s failed to start", event.kind)
            record["detail"]["error"] = f"{type(error).__name__}: {error}"
        return record

    async def end(self) -> None:
        """Undo the current fault, if any."""
        active, self._active = self._active, None
        if active is None:
            return
        for task in active.tasks:
            task.cancel()
        await asyncio.gather(*active.tasks, return_exceptions=True)
        try:
            if active.undo is not None:
                await active.undo()
        except Exception as error:
            log.exception("nemesis %s failed to end", active.event.kind)
            active.record["detail"]["end_error"] = f"{type(error).__name__}: {error}"
        active.record["end"] = time.time()
        self._check_processes()

    async def heal_all(self) -> None:
        """End the current fault, then restore everything: links, paused and dead nodes."""
        with contextlib.suppress(Exception):
            await self.end()
        await self.mesh.heal()
        for node_id, process in sorted(self.nodes.items()):
            if process.clock_file is not None and process.clock_file.exists():
                process.set_wall_offset(0)
            if node_id in self._limits:
                process.restore_file_size(self._limits.pop(node_id))
            if process.paused:
                process.resume()
        self._check_processes()
        for _node_id, process in sorted(self.nodes.items()):
            if not process.alive:
                await asyncio.to_thread(process.start)
        self._downed.clear()
        replaced = [r for r in self.events if r["kind"] == "replace"]
        for node_id, process in sorted(self.nodes.items()):
            if process.join_args is not None:  # a join that did not finish: take it up again
                detail = replaced[-1]["detail"] if replaced else {}
                try:
                    await self._rejoin(node_id, detail)
                except Exception as error:
                    log.exception("node %d did not join again", node_id)
                    detail["end_error"] = f"{type(error).__name__}: {error}"
        self._check_processes()
        for _node_id, process in sorted(self.nodes.items()):
            if not process.alive:
                await asyncio.to_thread(process.start)
        self._downed.clear()
        membership = [r for r in self.events if r["kind"] in ("membership", "replace", "grow")]
        if membership:
            await self._every_node_votes(membership[-1]["detail"])
        self.healed_at = time.time()

    def _check_processes(self) -> None:
        """Note every node that died without this runner's doing: that is a finding."""
        for node_id, process in sorted(self.nodes.items()):
            if process.process is None or process.alive or node_id in self._downed:
                continue
            self._downed.add(node_id)  # note it once
            self.unexpected_exits.append(
                {"node": node_id, "at": time.time(), "exit_code": process.returncode}
            )

    # -- leaders ----------------------------------------------------------------------------

    async def statuses(self) -> dict[int, dict[str, Any]]:
        """/v1/status of every running, unpaused node that answers."""
        ids = [i for i, p in sorted(self.nodes.items()) if p.alive and not p.paused]
        answers = await asyncio.gather(
            *(asyncio.to_thread(self.nodes[i].status, self.status_timeout_s) for i in ids)
        )
        return {i: s for i, s in zip(ids, answers, strict=True) if s is not None}

    async def find_leader(self) -> int | None:
        return leader_of(await self.statuses())

    async def _leader_or_random(self, active: _Active) -> int:
        leader = await self.find_leader()
        detail = active.record["detail"]
        detail["leader_found"] = leader is not None
        if leader is None:  # no leader right now: the fault still hits someone
            leader = self.rng.choice([i for i, p in sorted(self.nodes.items()) if p.alive])
        active.record["targets"] = [[leader]]
        return leader

    # -- the faults -------------------------------------------------------------------------

    def _victim(self, active: _Active) -> int:
        return active.event.targets[0][0]

    async def _kill(self, active: _Active) -> None:
        if active.event.kind == "kill-leader":
            victim = await self._leader_or_random(active)
        else:
            victim = self._victim(active)
        process = self.nodes[victim]
        detail = active.record["detail"]
        detail["pid"] = process.pid
        self._downed.add(victim)
        active.record["start"] = time.time()
        detail["exit_code"] = await asyncio.to_thread(process.kill9)

        async def restart() -> None:
            detail["restart_pid"] = await asyncio.to_thread(process.start)
            self._downed.discard(victim)

        active.undo = restart

    async def _pause(self, active: _Active) -> None:
        process = self.nodes[self._victim(active)]
        active.record["detail"]["pid"] = process.pid
        active.record["start"] = time.time()
        process.pause()

        async def resume() -> None:
            process.resume()

        active.undo = resume

    async def _stall_leader(self, active: _Active) -> None:
        leader = await self._leader_or_random(active)
        process = self.nodes[leader]
        others = tuple(n for n in self.mesh.nodes if n != leader)
        detail = active.record["detail"]
        detail["pid"] = process.pid
        active.record["start"] = time.time()
        process.pause()
        cut = await self.mesh.partition(((leader,), others))
        detail["cut_links"] = [list(link) for link in cut]

        async def wake_then_heal() -> None:
            process.resume()
            detail["resumed"] = time.time()
            await asyncio.sleep(stall_wake_s)
            await self.mesh.heal()

        active.undo = wake_then_heal

    async def _partition(self, active: _Active) -> None:
        if active.event.kind == "isolate-leader":
            leader = await self._leader_or_random(active)
            others = tuple(n for n in self.mesh.nodes if n != leader)
            groups: Groups = ((leader,), others)
            active.record["targets"] = [list(g) for g in groups]
        else:
            groups = active.event.targets
        active.record["start"] = time.time()
        cut = await self.mesh.partition(groups)
        active.record["detail"]["cut_links"] = [list(link) for link in cut]
        active.undo = self.mesh.heal

    async def _bridge(self, active: _Active) -> None:
        a, b, c = active.event.targets
        active.record["start"] = time.time()
        cut = await self.mesh.bridge(a, b, c)
        active.record["detail"]["cut_links"] = [list(link) for link in cut]
        active.undo = self.mesh.heal

    async def _one_way(self, active: _Active) -> None:
        senders, receivers = active.event.targets
        active.record["start"] = time.time()
        cut = await self.mesh.one_way(senders, receivers)
        active.record["detail"]["cut_links"] = [list(link) for link in cut]
        active.undo = self.mesh.heal

    async def _frames(self, active: _Active) -> None:
        params = active.event.params
        before = self.mesh.totals()
        active.record["start"] = time.time()
        self.mesh.set_all(
            delay_ms=params.get("delay_ms"),
            jitter_ms=params.get("jitter_ms"),
            loss=params.get("loss"),
            duplicate=params.get("duplicate"),
        )

        async def clear() -> None:
            await self.mesh.heal()
            after = self.mesh.totals()
            keys = ("frames_in", "frames_lost", "frames_duplicated", "frames_delayed")
            active.record["detail"]["frames"] = {k: after[k] - before[k] for k in keys}

        active.undo = clear

    async def _reset(self, active: _Active) -> None:
        every_s = active.event.params.get("every_s", reset_every_s)
        detail = active.record["detail"]
        detail["resets"] = 0
        detail["connections_closed"] = 0
        active.record["start"] = time.time()

        async def again() -> None:
            while True:
                detail["connections_closed"] += self.mesh.reset()
                detail["resets"] += 1
                await asyncio.sleep(every_s)

        active.tasks.append(asyncio.create_task(again()))

    async def _clock(self, active: _Active) -> None:
        if active.event.kind == "clock-jump-leader":
            victim = await self._leader_or_random(active)
        else:
            victim = self._victim(active)
        process = self.nodes[victim]
        offset_ms = active.event.params["offset_ms"]
        active.record["start"] = time.time()
        process.set_wall_offset(offset_ms)
        every_s = active.event.params.get("every_s")
        if active.event.kind == "clock-jump-leader" and every_s:
            detail = active.record["detail"]
            detail["jumps"] = 1

            async def again() -> None:
                while True:
                    await asyncio.sleep(every_s)
                    detail["jumps"] += 1
                    process.set_wall_offset(offset_ms * detail["jumps"])

            active.tasks.append(asyncio.create_task(again()))

        async def set_right() -> None:
            process.set_wall_offset(0)

        active.undo = set_right

    async def _transfer_leader(self, active: _Active) -> None:
        leader = await self._leader_or_random(active)
        others = [i for i, p in sorted(self.nodes.items()) if i != leader and p.alive]
        detail = active.record["detail"]
        process = self.nodes[leader]
        if not others or process.http is None:
            detail["answer"] = "no other node is up"
            return
        target = self.rng.choice(others)
        detail["to"] = target
        active.record["start"] = time.time()
        detail["answer"] = await asyncio.to_thread(
            ask_transfer, process.http, target, self.status_timeout_s
        )

    async def _membership(self, active: _Active) -> None:
        detail = active.record["detail"]
        victim = await self._remove_member(active)
        if victim is None:
            return

        async def add_back() -> None:
            deadline = time.monotonic() + readd_wait_s
            while time.monotonic() < deadline:
                now = await self.find_leader()
                if now is not None and await self._change(detail, now, "add", victim):
                    return
                await asyncio.sleep(0.2)
            # Not an error: the heal at the end makes it a voter again (and says if it cannot).
            detail["not_added_back"] = f"node {victim}: refused for {readd_wait_s} s"

        active.undo = add_back

    async def _remove_member(self, active: _Active, victim: int | None = None) -> int | None:
        """Remove a voter through the leader (one time in three the leader itself, which
        hands over first); the victim if the leader took the change on, else None (why is in
        the record's detail)."""
        detail = active.record["detail"]
        detail.setdefault("changes", [])
        forced = victim is not None  # `grow` removing the node it added: not a new fault
        statuses = await self.statuses()
        leader = leader_of(statuses)
        if leader is None:
            detail["refused"] = "no leader to ask"
            return None
        voters = _configuration(statuses[leader])[0]
        if len(voters) < 2:
            detail["refused"] = f"voters {voters}: none can be removed"
            return None
        if victim is not None or active.event.targets:  # named in advance
            victim = self._victim(active) if victim is None else victim
            if victim not in voters:
                detail["refused"] = f"node {victim} is no voter (voters {voters})"
                return None
        elif self.rng.random() < remove_leader_chance:
            victim = leader
        else:
            victim = self.rng.choice([v for v in voters if v != leader] or [leader])
        detail["victim_led"] = victim == leader
        if not forced:
            active.record["targets"] = [[victim]]
            detail["old_incarnation"] = (statuses.get(victim) or {}).get("incarnation")
            active.record["start"] = time.time()
        if victim == leader:  # as `paxosd member remove` does: the leader hands over first
            others = [v for v in voters if v != leader and self.nodes[v].alive]
            if not others:
                detail["refused"] = "no other voter is up to take over"
                return None
            to = self.rng.choice(others)
            new_leader = await self._hand_over(detail, leader, to)
            if new_leader is None:
                detail["refused"] = f"node {victim} did not hand over within {leader_wait_s} s"
                return None
            leader = new_leader
        if not await self._change(detail, leader, "remove", victim):
            return None
        return victim

    async def _replace(self, active: _Active) -> None:
        detail = active.record["detail"]
        victim = await self._remove_member(active)
        if victim is None:
            return
        process = self.nodes[victim]
        if process.data_dir is None:
            detail["refused"] = f"node {victim} has no data directory to lose"
            return
        # What the operator knows of the lost machine: its addresses, and how the harness
        # runs its nodes (variant, clock file); read before the wipe takes its node.toml.
        self._machines[victim] = load_config(process.config_path)
        self._downed.add(victim)
        detail["pid"] = process.pid
        detail["exit_code"] = await asyncio.to_thread(process.kill9)
        await asyncio.to_thread(shutil.rmtree, process.data_dir, True)
        detail["wiped"] = str(process.data_dir)

        async def rejoin() -> None:
            await self._rejoin(victim, detail)

        active.undo = rejoin

    async def _rejoin(self, victim: int, detail: dict[str, Any]) -> None:
        """`victim` (removed, its data directory wiped) joins again through the leader, then
        runs from the config its join wrote, rewritten for the mesh (see `replace` in the
        module docstring)."""
        process = self.nodes[victim]
        machine = self._machines[victim]
        assert process.data_dir is not None
        endpoint: tuple[str, int] | None = None
        leader = await self.find_leader()
        for node in [leader, *sorted(self.nodes)]:
            if node is not None and node != victim and self.nodes[node].alive:
                endpoint = self.nodes[node].http
                break
        if endpoint is None:
            raise RuntimeError(f"no member is up for node {victim} to join through")
        self._downed.add(victim)
        if process.alive:  # a join run that did not finish (the heal takes it up again)
            await asyncio.to_thread(process.kill9)
        path = process.data_dir / "node.toml"
        if not (path.exists() and has_store_in(process.data_dir)):  # else: joined, then cut off
            await self.mesh.close_front(victim)  # it listens there itself while it joins
            front = self.mesh.front_address(victim)
            me = machine.me
            process.join_with(endpoint, front, me.http, me.resp)
            detail["join_command"] = " ".join(process.command[2:])
            detail["join_pid"] = await asyncio.to_thread(process.start)
            status = await asyncio.to_thread(process.wait_ready, join_wait_s)
            detail["joined_at"] = time.time()  # it serves: its join was taken, its store made
            detail["new_incarnation"] = status.get("incarnation")
            # The join's own change, for the report's list (it answered, so it was taken on).
            joined = {
                "at": detail["joined_at"],
                "ask": f"join {victim} at {endpoint[0]}:{endpoint[1]} (paxosd node --join)",
                "answer": f"202 a learner under incarnation {detail['new_incarnation']}",
            }
            detail.setdefault("changes", []).append(joined)
            await asyncio.to_thread(process.terminate)
        detail.setdefault("joined_at", time.time())
        await asyncio.to_thread(
            write_joined_config, path, machine, self.mesh, self.mesh.peers[victim]
        )
        await self.mesh.open_front(victim)
        process.use_config(path)
        detail["restart_pid"] = await asyncio.to_thread(process.start)
        self._downed.discard(victim)
        # One machine at a time, as an operator would: the fault ends once the node votes
        # again (the leader promotes it when it has caught up), or after members_heal_s.
        started = time.monotonic()
        while time.monotonic() - started < members_heal_s:
            statuses = await self.statuses()
            leader = leader_of(statuses)
            if leader is not None and victim in _configuration(statuses[leader])[0]:
                detail["voter_after_s"] = round(time.time() - detail["joined_at"], 3)
                return
            await asyncio.sleep(0.1)
        detail["not_voter"] = f"node {victim} was no voter {members_heal_s:g} s after its join"

    async def _grow(self, active: _Active) -> None:
        detail = active.record["detail"]
        detail["changes"] = []
        if self.spare is None:
            detail["refused"] = "no spare node: the mesh has no id beyond the cluster's"
            return
        process, machine = self.spare
        node = process.node_id
        active.record["targets"] = [[node]]
        if process.data_dir is not None:  # a fresh machine: nothing of an earlier run of it
            await asyncio.to_thread(shutil.rmtree, process.data_dir, True)
        self.nodes[node] = process
        self._machines[node] = machine
        active.record["start"] = time.time()

        async def shrink() -> None:
            try:
                deadline = time.monotonic() + readd_wait_s
                while await self._remove_member(active, node) is None:
                    if "is no voter" in detail.get("refused", ""):
                        break  # it never became one: its join failed (the error says why)
                    if time.monotonic() > deadline:
                        detail["end_error"] = f"node {node} not removed: {detail.get('refused')}"
                        break
                    await asyncio.sleep(0.2)
                detail["exit_code"] = await asyncio.to_thread(process.terminate)
            finally:
                self._downed.discard(node)
                del self.nodes[node]
                await self.mesh.close_front(node)
                if process.data_dir is not None:
                    await asyncio.to_thread(shutil.rmtree, process.data_dir, True)

        active.undo = shrink  # also when the join fails: the fresh node goes again
        await self._rejoin(node, detail)

    async def _change(self, detail: dict[str, Any], leader: int, verb: str, node: int) -> bool:
        """Ask `leader` to remove `node` or add it as a learner; True if it took the change
        on (202). A refusal is noted in `detail` and is no error."""
        deadline = time.monotonic() + leader_wait_s
        while True:
            status = await asyncio.to_thread(self.nodes[leader].status, self.status_timeout_s)
            voters, learners = _configuration(status or {})
            epoch = _epoch(status or {})
            if verb == "remove":
                body = {"voters": [v for v in voters if v != node],
                        "learners": [n for n in learners if n != node]}  # fmt: skip
            else:
                if node in voters or node in learners:
                    return True  # a member already (a refused change may have been chosen)
                body = {"voters": voters, "learners": [*learners, node]}
            answer = await self._post(leader, "/v1/members", body)
            detail["changes"].append({"at": time.time(), "ask": f"{verb} {node} at {leader}",
                                      "answer": answer})  # fmt: skip
            if answer.startswith("202"):
                break
            if not busy(answer) or time.monotonic() >= deadline:
                detail["refused"] = answer
                return False
            # The leader moved, or a change or handover is finishing: ask the leader again.
            await asyncio.sleep(0.2)
            leader = await self.find_leader() or leader
        # As the command does, wait for the new epoch: the next change asked before it
        # would be refused as "in progress" (a refusal is harmless, but it is noise).
        deadline = time.monotonic() + leader_wait_s
        while time.monotonic() < deadline:
            statuses = await self.statuses()
            if any(_epoch(s) > epoch for s in statuses.values()):
                break
            await asyncio.sleep(0.05)
        return True

    async def _post(self, node: int, path: str, body: dict[str, Any]) -> str:
        http = self.nodes[node].http
        if http is None:
            return "no answer: no HTTP address"
        return await asyncio.to_thread(post_json, http, path, body, self.status_timeout_s)

    async def _hand_over(self, detail: dict[str, Any], old: int, to: int) -> int | None:
        """Ask `old` to hand leadership to `to`, as `paxosd member remove` does, until another
        node leads (that node) or `leader_wait_s` passes (None). A handover the leader
        abandoned (`to` was slow: the machine is loaded) is asked for again."""
        deadline = time.monotonic() + leader_wait_s
        while time.monotonic() < deadline:
            answer = await self._post(old, "/v1/leader/transfer", {"to": to})
            detail["changes"].append({"at": time.time(), "ask": f"transfer {old} -> {to}",
                                      "answer": answer})  # fmt: skip
            watch_until = min(deadline, time.monotonic() + handover_watch_s)
            while time.monotonic() < watch_until:
                leader = await self.find_leader()
                if leader is not None and leader != old:
                    return leader
                await asyncio.sleep(0.05)
        return None

    async def _every_node_votes(self, detail: dict[str, Any]) -> None:
        """Add back every node that is no member, wait until the leader has promoted them all;
        `end_error` (a liveness problem in the report) if that does not happen in time."""
        everyone = sorted(self.nodes)
        started = time.monotonic()
        voters: list[int] = []
        while time.monotonic() - started < members_heal_s:
            statuses = await self.statuses()
            leader = leader_of(statuses)
            if leader is not None:
                voters, learners = _configuration(statuses[leader])
                if sorted(voters) == everyone:
                    detail["healed_voters"] = voters
                    detail["heal_s"] = round(time.monotonic() - started, 3)
                    return
                # A replaced node that has not joined again is added by its join, not here.
                missing = [
                    n for n in everyone
                    if n not in voters and n not in learners and self.nodes[n].join_args is None
                ]  # fmt: skip
                if missing:  # one change at a time; learners are promoted by the leader
                    await self._change(detail, leader, "add", missing[0])
            await asyncio.sleep(0.2)
        detail["end_error"] = f"voters {voters} after {members_heal_s} s: not every node votes"

    async def _failing_write(self, active: _Active) -> None:
        victim = self._victim(active)
        process = self.nodes[victim]
        detail = active.record["detail"]
        if not process.alive:
            detail["skipped"] = "node not running"
            return
        size = process.data_log_bytes()
        # At the data log's size, the next append fails whole (no torn frame); without a file
        # backend log to measure, 0 makes every write to any regular file fail.
        limit = size if size is not None else 0
        detail.update(pid=process.pid, limit_bytes=limit)
        self._downed.add(victim)
        active.record["start"] = time.time()
        self._limits[victim] = process.limit_file_size(limit)
        started = time.monotonic()

        def note_exit() -> None:
            if "exit_code" not in detail:
                detail["exit_code"] = process.returncode
                detail["exited_after_s"] = round(time.monotonic() - started, 3)  # +- a poll
                detail["stopped_as_required"] = process.returncode == storage_failure_exit_code

        async def watch() -> None:
            while process.alive:
                await asyncio.sleep(exit_poll_s)
            note_exit()

        active.tasks.append(asyncio.create_task(watch()))

        async def restore() -> None:
            limits = self._limits.pop(victim, None)
            if process.alive:
                if limits is not None:
                    process.restore_file_size(limits)
                detail["exit_code"] = None
                detail["note"] = "the node wrote nothing to its data log during the fault"
            else:
                note_exit()
                detail["restart_pid"] = await asyncio.to_thread(process.start)
            self._downed.discard(victim)

        active.undo = restore


def ask_transfer(http: tuple[str, int], target: int, timeout_s: float) -> str:
    """POST /v1/leader/transfer to a node; its answer in a few words."""
    return post_json(http, "/v1/leader/transfer", {"to": target}, timeout_s)


def post_json(http: tuple[str, int], path: str, body: dict[str, Any], timeout_s: float) -> str:
    """POST `body` to a node's `path`; its answer in a few words ("202 ..." when accepted,
    "409 busy: ..." for a refusal that passes by itself, "no answer: ...")."""
    answer = admin.post(f"{http[0]}:{http[1]}", path, body, timeout_s)
    if answer.status == 0:
        return f"no answer: {answer.message}"
    if answer.code is not None:
        return f"{answer.status} {answer.code}: {answer.message}"
    return f"{answer.status} {answer.message}"


def busy(answer: str) -> bool:
    """A refusal that passes by itself (core/multi/busy.py), as post_json words it."""
    return answer.startswith("409 busy:")


def _configuration(status: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """(voters, learners) of a node's /v1/status."""
    configuration = status.get("configuration") or {}
    return list(configuration.get("voters", [])), list(configuration.get("learners", []))


def _epoch(status: Mapping[str, Any]) -> int:
    return int((status.get("configuration") or {}).get("epoch", 0))


def leader_of(statuses: Mapping[int, Mapping[str, Any]]) -> int | None:
    """The node that claims to lead and that most others name as leader; None if nobody
    claims it. (During a partition a deposed leader may still claim it: the votes decide.)"""
    claims = [i for i, s in statuses.items() if s.get("role") == "leader"]
    if not claims:
        return None
    votes = collections.Counter(s.get("leader") for s in statuses.values())
    return max(sorted(claims), key=lambda i: votes[i])


def agreed_leader(statuses: Mapping[int, Mapping[str, Any]], quorum: int) -> int | None:
    """A leader that claims it and that at least `quorum` nodes (itself included) name."""
    leader = leader_of(statuses)
    if leader is None:
        return None
    named = sum(1 for s in statuses.values() if s.get("leader") == leader)
    return leader if named >= quorum else None
