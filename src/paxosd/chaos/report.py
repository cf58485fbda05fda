"""The results of a chaos run: counts, availability, recovery times and verdicts.

Theory of operation. The history is judged as written to disk: `report` reads back the
JSON Lines file the run saved (`history.jsonl`) with the same parser `paxosd check` uses, so
what was judged is exactly what anyone can re-check later. The verdicts come from
`paxosd.check.workloads` (the simulator's own checks); this module adds what only a real run
has:

- **availability**: the share of the chaos phase during which writes succeeded, from the
  probes' writes (one client per node, a write every 100 ms each): the phase is cut into
  `window_s` windows and a window counts as available when a probe write completed ok in it;
- **recovery after each fault**: from the fault's end until every node answered /v1/status
  naming the same leader (`converged_s`) and a probe write invoked after the end succeeded
  (`write_s`); the recovery is the later of the two. For faults that can take the leader away
  (kill, kill-leader, isolate-leader, pause) also the **failover**: from the fault's start to
  the first write invoked after it that succeeded. `unavailable_s` is the longest stretch
  without a successful write from the start to the recovery. The summaries per kind count
  only faults that struck a healthy cluster (a leader agreed by all within the second
  before): a fault during another outage would measure both;
- **durability**: the kv keys read back after the full restart are linearizable with
  everything before (a lost acknowledged write would make the read-back impossible).
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paxosd.chaos.runner import RunData
from paxosd.chaos.workloads import PROBE_PREFIX
from paxosd.check.history import History, load_history
from paxosd.check.linearizability import CheckResult, key_label
from paxosd.check.linearizability import check as check_linearizable
from paxosd.check.locks import SafetyResult
from paxosd.check.models import get_model
from paxosd.check.workloads import judge_workloads, kv_result

window_s = 0.5
healthy_window_s = 1.0  # a fault starts on a healthy cluster if a leader was agreed this recently
FAILOVER_KINDS = frozenset({"kill", "kill-leader", "isolate-leader", "pause", "stall-leader"})
WORKLOAD_OF = {
    "put": "kv", "get": "kv", "cas": "kv", "delete": "kv",
    "acquire": "locks", "use": "locks", "release": "locks",
    "register": "names", "lookup": "names", "propose": "decisions",
    "open": "bank", "transfer": "bank", "audit": "bank",
}  # fmt: skip


@dataclass(frozen=True)
class ProbeWrite:
    call: float
    ret: float | None  # None: no ok answer


def probe_writes(events: Sequence[Any]) -> list[ProbeWrite]:
    """The probes' writes in order of invocation, from the raw events (failed ones too: the
    history parser drops those)."""
    pending: dict[str, float] = {}
    writes = []
    for e in events:
        if not str(e.key).startswith(PROBE_PREFIX):
            continue
        if str(e.type) == "invoke":
            pending[e.process] = e.time
        elif e.process in pending:
            call = pending.pop(e.process)
            writes.append(ProbeWrite(call, e.time if str(e.type) == "ok" else None))
    return sorted(writes, key=lambda w: w.call)


def availability(writes: Sequence[ProbeWrite], start: float, end: float) -> float | None:
    windows = int((end - start) // window_s)
    if windows <= 0:
        return None
    good = {int((w.ret - start) // window_s) for w in writes if w.ret is not None}
    return round(sum(1 for i in range(windows) if i in good) / windows, 4)


def longest_gap(writes: Sequence[ProbeWrite], end: float) -> float:
    """The longest stretch of [0, end] in which no probe write completed ok."""
    oks = sorted(w.ret for w in writes if w.ret is not None and w.ret <= end)
    edges = [0.0, *oks, end]
    return round(max(b - a for a, b in itertools.pairwise(edges)), 3)


def _agreed_times(samples: Sequence[dict[str, Any]], nodes: int) -> list[float]:
    """Sample rounds in which every node answered and all named the same leader."""
    rounds: dict[float, list[dict[str, Any]]] = {}
    for s in samples:
        rounds.setdefault(s["t"], []).append(s)
    agreed = []
    for t, group in sorted(rounds.items()):
        leaders = {s["leader"] for s in group}
        roles = [s["role"] for s in group]
        one_leader = len(leaders) == 1 and None not in leaders and roles.count("leader") == 1
        if len(group) == nodes and one_leader and "down" not in roles:
            agreed.append(t)
    return agreed


def recovery(
    fault: dict[str, Any], writes: Sequence[ProbeWrite], agreed: Sequence[float]
) -> dict[str, Any]:
    start, end = fault["start"], fault["end"]
    row: dict[str, Any] = {"kind": fault["kind"], "start": start, "end": end}
    # A fault that struck a cluster still recovering from something else measures both.
    row["healthy_at_start"] = any(start - healthy_window_s <= t <= start for t in agreed)
    if end is None:
        return row
    first_write = next((w.ret for w in writes if w.call >= end and w.ret is not None), None)
    converged = next((t for t in agreed if t >= end), None)
    if first_write is not None:
        row["write_s"] = round(first_write - end, 3)
    if converged is not None:
        row["converged_s"] = round(converged - end, 3)
    if first_write is not None and converged is not None:
        row["recovery_s"] = round(max(first_write, converged) - end, 3)
        done = max(first_write, converged)
        oks = [start] + sorted(
            w.ret for w in writes if w.ret is not None and start <= w.ret <= done
        )
        row["unavailable_s"] = round(
            max(b - a for a, b in zip(oks, [*oks[1:], done], strict=True)), 3
        )
    if fault["kind"] in FAILOVER_KINDS:
        failover = next((w.ret for w in writes if w.call >= start and w.ret is not None), None)
        if failover is not None:
            row["failover_s"] = round(failover - start, 3)
    return row


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "count": len(values),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def _operations(events: Sequence[Any]) -> dict[str, Any]:
    by_outcome: Counter[str] = Counter()
    by_workload: dict[str, Counter[str]] = {}
    for e in events:
        kind = str(e.type)
        if kind == "invoke":
            continue
        by_outcome[kind] += 1
        key = str(e.key)
        workload = (
            "probes" if str(e.key).startswith(PROBE_PREFIX) else
            "final reads" if e.process == "final" else
            "decisions" if key.startswith("decision:") else
            WORKLOAD_OF.get(e.f, e.f)
        )  # fmt: skip
        by_workload.setdefault(workload, Counter())[kind] += 1
    return {
        "total": sum(by_outcome.values()),
        **{k: by_outcome.get(k, 0) for k in ("ok", "fail", "info")},
        "by_workload": {w: dict(c) for w, c in sorted(by_workload.items())},
    }


def _verdict(result: SafetyResult) -> dict[str, Any]:
    return {"ok": result.ok, "checked": result.checked, "problems": result.problems[:10]}


def _durability(history: History, kv: CheckResult | None, time_limit_s: float) -> SafetyResult:
    """The kv keys read back after the full restart: a key whose history is linearizable
    without the read-back but not with it lost an acknowledged write (or resurrected one).
    A key that is not linearizable even before the restart is the kv verdict's business."""
    final_keys = {op.key for op in history.operations if op.process == "final"}
    bad = []
    for k in kv.keys if kv is not None else ():
        if k.key not in final_keys or str(k.verdict) == "linearizable":
            continue
        before = [op for op in history.operations if op.key == k.key and op.process != "final"]
        if check_linearizable(before, get_model("kv"), time_limit_s=time_limit_s).ok:
            bad.append(f"key {key_label(k.key)}: the read-back after the full restart is "
                       f"{k.verdict}, the history before it is linearizable")  # fmt: skip
    return SafetyResult("durability", not bad, bad, len(final_keys))


def membership_changes(faults: Sequence[dict[str, Any]], t0: float) -> dict[str, Any]:
    """What the `membership` faults asked of the cluster: every change it took on (202) and
    every one it refused, in order, with the run's time."""
    made: list[str] = []
    refused: list[str] = []
    for fault in faults:
        for change in fault["detail"].get("changes", []):
            line = f"{change['at'] - t0:.3f} s: {change['ask']}: {change['answer'][:120]}"
            (made if change["answer"].startswith("202") else refused).append(line)
    return {"made": made, "refused": refused}


def build_results(data: RunData, history_path: Path, out: Path) -> dict[str, Any]:
    spec = data.spec
    history = load_history(history_path, "jsonl")
    kv = kv_result(history, spec.check_time_limit_s)
    verdicts = {
        name: _verdict(r)
        for name, r in judge_workloads(history, time_limit_s=spec.check_time_limit_s, kv=kv).items()
    }
    if kv is not None:
        verdicts["durability"] = _verdict(_durability(history, kv, spec.check_time_limit_s))
    liveness: list[str] = []
    if data.recovered_at is None:
        liveness.append("the cluster did not recover (leader + a write) after the last heal")
    liveness += [
        f"node {e['node']} exited with {e['exit_code']} at {e['at']} s without a fault"
        for e in data.unexpected_exits
    ]
    liveness += [
        f"{f['kind']} at {f['start']} s: {f['detail'][key]}"
        for f in data.faults
        for key in ("error", "end_error")
        if key in f["detail"]
    ]
    verdicts["liveness"] = {"ok": not liveness, "checked": len(data.faults), "problems": liveness}
    if data.watch_stats:
        verdicts["watches"] = {
            "ok": not data.watch_problems,
            "checked": data.watch_stats.get("streams", 0),
            "problems": data.watch_problems[:10],
        }

    writes = probe_writes(data.events)
    agreed = _agreed_times(data.samples, spec.nodes)
    rows = [recovery(f, writes, agreed) for f in data.faults]
    by_kind: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in rows}):
        mine = [r for r in rows if r["kind"] == kind and r["healthy_at_start"]]
        by_kind[kind] = {
            "recovery_s": _summary([r["recovery_s"] for r in mine if "recovery_s" in r]),
            "failover_s": _summary([r["failover_s"] for r in mine if "failover_s" in r]),
            "unavailable_s": _summary([r["unavailable_s"] for r in mine if "unavailable_s" in r]),
        }
    return {
        "command": spec.replay_command(str(out)),
        "seed": spec.seed,
        "nodes": spec.nodes,
        "variant": spec.variant,
        "duration_s": spec.duration_s,
        "nemesis": list(spec.nemesis),
        "workloads": list(spec.workloads),
        "valid": all(v["ok"] for v in verdicts.values()),
        "verdicts": verdicts,
        "operations": _operations(data.events),
        "stale_lock_uses_refused": data.stale_uses_refused,
        "faults": {
            "total": len(data.faults),
            "by_kind": dict(sorted(Counter(f["kind"] for f in data.faults).items())),
            "unexpected_exits": data.unexpected_exits,
        },
        "availability": availability(writes, 0.0, data.chaos_end),
        "recovery": {"by_kind": by_kind, "faults": rows},
        "longest_unavailable_s": longest_gap(writes, data.chaos_end),
        "chaos_end_s": data.chaos_end,
        "recovered_after_heal_s": (
            None if data.recovered_at is None else round(data.recovered_at - data.chaos_end, 3)
        ),
        "full_restart": data.restart,
        "membership": membership_changes(data.faults, data.t0),
        "watches": data.watch_stats,
        "kv_check_s": None if kv is None else round(kv.elapsed_s, 3),
        # The checker's full story of each violated key (the verdict above is clipped).
        "kv_violations": [] if kv is None else [v.explain() for v in kv.violations[:3]],
        "proxy": data.mesh_totals,
        "fault_log": data.faults,
    }
