"""The verdicts on a coordination-service history: kv, locks, names, decisions.

One function judges a history of the four workloads the simulator (`paxosd.sim.cluster`) and
the chaos harness (`paxosd.chaos`) both record, so the two can never judge differently.
Operations are told apart by name and key, the convention both recorders follow:

- kv: ``put``/``get``/``cas``/``delete`` on keys starting with ``k``: linearizability
  (`paxosd.check.linearizability`, the register model per key);
- locks: ``acquire``/``release``/``use``: fencing tokens and mutual exclusion
  (`check_locks`, per lock: a re-entrant acquire by a holder that lost the first answer
  returns its existing, older token, so tokens need not rise across locks);
- names: ``register``/``lookup``: one owner forever (`check_names`);
- decisions: keys starting with ``decision:``: one chosen value (`check_decisions`).
"""

from __future__ import annotations

from paxosd.check.history import History
from paxosd.check.linearizability import CheckResult
from paxosd.check.linearizability import check as check_linearizable
from paxosd.check.locks import SafetyResult, check_decisions, check_locks, check_names
from paxosd.check.models import get_model

KV_FUNCTIONS = frozenset({"put", "get", "cas", "delete"})
LOCK_FUNCTIONS = frozenset({"acquire", "release", "use"})
NAME_FUNCTIONS = frozenset({"register", "lookup"})
DECISION_PREFIX = "decision:"
PROBLEMS_SHOWN = 3
EXPLANATION_CHARS = 400


def is_kv(f: str, key: object) -> bool:
    """Whether an operation (its function and key) belongs to the kv workload."""
    return f in KV_FUNCTIONS and str(key).startswith("k")


def kv_result(history: History, time_limit_s: float) -> CheckResult | None:
    """Linearizability of the kv operations (None if there are none)."""
    ops = [op for op in history.operations if is_kv(op.f, op.key)]
    if not ops:
        return None
    return check_linearizable(ops, get_model("kv"), time_limit_s=time_limit_s)


def judge_workloads(
    history: History, *, time_limit_s: float = 20.0, kv: CheckResult | None = None
) -> dict[str, SafetyResult]:
    """A verdict per workload that appears in the history (kv, locks, names, decisions).

    Pass `kv` when the caller already ran the linearizability check (to keep its per-key
    details); it is run here otherwise.
    """
    results: dict[str, SafetyResult] = {}
    kv = kv if kv is not None else kv_result(history, time_limit_s)
    if kv is not None:
        verdict = str(kv.verdict)
        problems = []
        if verdict == "not linearizable":
            problems.append("kv history is not linearizable: " + kv.explain()[:EXPLANATION_CHARS])
        elif verdict == "unknown":
            problems.append("kv linearizability check ran out of time (unknown)")
        results["kv"] = SafetyResult("kv", not problems, problems, kv.operations)
    ops = history.operations
    locks = [op for op in ops if op.f in LOCK_FUNCTIONS]
    if locks:
        results["locks"] = check_locks(locks)
    names = [op for op in ops if op.f in NAME_FUNCTIONS]
    if names:
        results["names"] = check_names(names)
    decisions = [op for op in ops if str(op.key).startswith(DECISION_PREFIX)]
    if decisions:
        results["decisions"] = check_decisions(decisions)
    return results


def problem_lines(results: dict[str, SafetyResult]) -> list[str]:
    """The first few problems of each verdict, prefixed with the workload (kv's own
    message already names it)."""
    lines: list[str] = []
    for name, result in results.items():
        shown = result.problems[:PROBLEMS_SHOWN]
        lines.extend(shown if name == "kv" else (f"{name}: {p}" for p in shown))
    return lines
