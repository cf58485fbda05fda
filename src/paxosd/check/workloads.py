"""The verdicts on a coordination-service history: kv, locks, names, decisions.

One function judges a history of the four workloads the simulator (`paxosd.sim.cluster`),
the chaos harness (`paxosd.chaos`) and ``paxosd check`` all read, so the three can never
judge differently. Operations are told apart by name and key, the convention both
recorders follow:

- kv: ``put``/``get``/``cas``/``delete`` on keys starting with ``k``: linearizability
  (`paxosd.check.linearizability`, the ``kv`` model: a cas-register per key);
- locks: ``acquire``/``release``/``use``: fencing tokens and mutual exclusion
  (`check_locks`, per lock: a re-entrant acquire by a holder that lost the first answer
  returns its existing, older token, so tokens need not rise across locks);
- names: ``register``/``lookup``: one owner forever (`check_names`);
- decisions: keys starting with ``decision:``: one chosen value (`check_decisions`);
- bank: ``open``/``transfer``/``audit``: transactions and ranges over many keys, judged at
  every revision of the store (`paxosd.check.bank`);
- sql: ``sql-open``/``sql-transfer``/``sql-audit``: the SQL database's bank, transfers as
  interactive transactions; every audit must find the opening total (`check_sql_bank`).

Anything else (the chaos harness's ``probe-`` writes, which measure availability) belongs
to no workload and is not judged here.
"""

from __future__ import annotations

from collections.abc import Iterable

from paxosd.check.bank import BANK_FUNCTIONS, check_bank
from paxosd.check.history import History, Operation
from paxosd.check.linearizability import CheckResult, Reason, Verdict
from paxosd.check.linearizability import check as check_linearizable
from paxosd.check.locks import SafetyResult, check_decisions, check_locks, check_names
from paxosd.check.models import get_model

KV_FUNCTIONS = frozenset({"put", "get", "cas", "delete"})
LOCK_FUNCTIONS = frozenset({"acquire", "release", "use"})
NAME_FUNCTIONS = frozenset({"register", "lookup"})
DECISION_PREFIX = "decision:"
WORKLOADS = ("kv", "locks", "names", "decisions", "bank", "sql")
SQL_PREFIX = "sql-"
PROBLEMS_SHOWN = 3
EXPLANATION_CHARS = 400


def is_kv(f: str, key: object) -> bool:
    """Whether an operation (its function and key) belongs to the kv workload."""
    return f in KV_FUNCTIONS and str(key).startswith("k")


def workload_of(op: Operation) -> str | None:
    """The workload an operation belongs to, or None."""
    if op.f in BANK_FUNCTIONS:
        return "bank"
    if op.f.startswith(SQL_PREFIX):
        return "sql"
    if str(op.key).startswith(DECISION_PREFIX):
        return "decisions"
    if op.f in LOCK_FUNCTIONS:
        return "locks"
    if op.f in NAME_FUNCTIONS:
        return "names"
    if is_kv(op.f, op.key):
        return "kv"
    return None


def is_workload_history(ops: Iterable[Operation]) -> bool:
    """True for a history of paxosd's workloads (locks, names or decisions in it): one
    that no single sequential model describes, so each workload needs its own checker."""
    return any(workload_of(op) in ("locks", "names", "decisions", "bank") for op in ops)


def kv_operations(history: History | Iterable[Operation]) -> list[Operation]:
    ops = history.operations if isinstance(history, History) else history
    return [op for op in ops if is_kv(op.f, op.key)]


def kv_result(
    history: History,
    time_limit_s: float,
    *,
    memory_limit_bytes: int | None = None,
    jobs: int = 1,
    stop_at_violation: bool = False,
) -> CheckResult | None:
    """Linearizability of the kv operations (None if there are none)."""
    ops = kv_operations(history)
    if not ops:
        return None
    return check_linearizable(
        ops,
        get_model("kv"),
        time_limit_s=time_limit_s,
        memory_limit_bytes=memory_limit_bytes,
        jobs=jobs,
        stop_at_violation=stop_at_violation,
    )


def kv_safety(kv: CheckResult) -> SafetyResult:
    """The kv verdict in the same shape as the other workloads'. An unknown verdict is
    not a violation, but it is not ok either: the check could not finish."""
    problems = []
    if kv.verdict is Verdict.NOT_LINEARIZABLE:
        problems.append("kv history is not linearizable: " + kv.explain()[:EXPLANATION_CHARS])
    elif kv.verdict is Verdict.UNKNOWN:
        reasons = sorted({str(k.reason) for k in kv.keys if k.verdict is Verdict.UNKNOWN})
        why = ", ".join(r for r in reasons if r != str(Reason.NONE)) or "unknown"
        problems.append(f"kv linearizability check could not finish ({why}): unknown")
    return SafetyResult("kv", not problems, problems, kv.operations)


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
        results["kv"] = kv_safety(kv)
    ops = history.operations
    locks = [op for op in ops if workload_of(op) == "locks"]
    if locks:
        results["locks"] = check_locks(locks)
    names = [op for op in ops if workload_of(op) == "names"]
    if names:
        results["names"] = check_names(names)
    decisions = [op for op in ops if workload_of(op) == "decisions"]
    if decisions:
        results["decisions"] = check_decisions(decisions)
    bank = [op for op in ops if workload_of(op) == "bank"]
    if bank:
        results["bank"] = check_bank(bank)
    sql = [op for op in ops if workload_of(op) == "sql"]
    if sql:
        results["sql"] = check_sql_bank(sql)
    return results


def check_sql_bank(ops: Iterable[Operation]) -> SafetyResult:
    """Every audit of a SQL bank (its table, the key) finds the opening total: accounts times
    the opening balance, from its ``sql-open`` input. A transfer committed on a stale read
    writes absolute balances computed from it, so it would create or destroy money."""
    ops = list(ops)
    opened = {op.key: op.input for op in ops if op.f == "sql-open" and op.input is not None}
    problems = []
    for op in ops:
        if op.f != "sql-audit" or not op.known or op.output is None or op.key not in opened:
            continue
        accounts, balance = opened[op.key]
        total, count = op.output
        if count == accounts and total != accounts * balance:
            problems.append(
                f"{op.describe()}: the bank {op.key} holds {total}, not {accounts * balance}"
            )
    return SafetyResult("sql", not problems, problems, len(ops))


def problem_lines(results: dict[str, SafetyResult]) -> list[str]:
    """The first few problems of each verdict, prefixed with the workload (kv's own
    message already names it)."""
    lines: list[str] = []
    for name, result in results.items():
        shown = result.problems[:PROBLEMS_SHOWN]
        lines.extend(shown if name == "kv" else (f"{name}: {p}" for p in shown))
    return lines


__all__ = [
    "DECISION_PREFIX",
    "KV_FUNCTIONS",
    "LOCK_FUNCTIONS",
    "NAME_FUNCTIONS",
    "WORKLOADS",
    "is_kv",
    "is_workload_history",
    "judge_workloads",
    "kv_operations",
    "kv_result",
    "kv_safety",
    "problem_lines",
    "workload_of",
]
