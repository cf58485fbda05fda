"""The bank checker: transactions and ranges over many keys, judged by what must hold at every
revision of the store.

The workload (`paxosd.chaos.workloads.BankWorker`): a bank of `accounts` keys, all opened at
once by one transaction with the same balance; clients move money between two accounts with
a transaction that compares both accounts' mod revisions with what the client last read and
then writes both new balances (one revision); clients audit the bank with one range read of
every account. Operations, all on the key of one bank:

* ``open``: input ``(accounts, balance)``; output ``(revision,)`` - the revision the bank was
  opened at (a later open that finds it open answers FAIL: it did nothing);
* ``transfer``: input ``(from, to, amount)``; output ``(revision, ((account, balance), ...))``:
  the revision it wrote and what it wrote (a failed compare is a FAIL: nothing happened);
* ``audit``: output ``(revision, ((account, mod_revision, balance), ...))``: the store's
  revision and every account it read.

Why this is sound without a search for a linearization: every answer names the revision it
reflects, and the store's revisions are a total order that every replica agrees on. So:

1. **conservation**: an audit that sees every account sees the opening total (a transfer
   applied in part, or a range read mixing revisions, breaks it), and no balance is
   negative;
2. **agreement**: two audits at the same revision read the same accounts;
3. **acknowledged writes**: an audit at revision R shows, for each account, a version at
   least as new as every acknowledged write to it at or before R (else an acknowledged
   write was lost, or the read was stale), never newer than R, and the balance that write
   wrote when its revision is one an acknowledged write had;
4. **one value per version**: the same account at the same mod revision has one balance in
   every audit;
5. **real-time order**: an operation that began after another one ended (any client's)
   answers a revision at least as high: the store's revisions follow real time, so a read
   served from a deposed leader's old state shows here.

What it does not see: an acknowledged transfer's effect that no audit happened to read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Any

from paxosd.check.history import History, Operation
from paxosd.check.locks import SafetyResult

__all__ = ["BANK_FUNCTIONS", "check_bank"]

BANK_FUNCTIONS = frozenset({"open", "transfer", "audit"})
problems_max = 50  # per bank: past this many, the rest are only counted


def _pairs(value: Any) -> list[tuple[Any, ...]]:
    return [tuple(item) for item in value] if value else []


def check_bank(history: History | Iterable[Operation]) -> SafetyResult:
    ops = list(history.operations if isinstance(history, History) else history)
    banks: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.f in BANK_FUNCTIONS:
            banks[op.key].append(op)
    problems: list[str] = []
    for key, bank_ops in sorted(banks.items(), key=lambda item: str(item[0])):
        problems += _check_one(key, bank_ops)[:problems_max]
    checked = sum(len(bank_ops) for bank_ops in banks.values())
    return SafetyResult("bank", not problems, problems, checked)


def _check_one(key: Hashable, ops: list[Operation]) -> list[str]:
    problems: list[str] = []
    opened = [op for op in ops if op.f == "open" and op.known]
    if len(opened) > 1:
        revisions = sorted({op.output[0] for op in opened})
        if len(revisions) > 1:
            problems.append(f"{key}: opened twice, at revisions {revisions}")
    # Every acknowledged write: (account, revision) -> balance.
    written: dict[tuple[Any, int], int] = {}
    accounts: int | None = None
    total: int | None = None
    for op in opened:
        count, balance = op.input
        accounts, total = count, count * balance
        for account in range(count):
            written[(account, op.output[0])] = balance
    for op in ops:
        if op.f == "transfer" and op.known:
            revision, wrote = op.output[0], _pairs(op.output[1])
            for account, balance in wrote:
                written[(account, revision)] = balance
    acknowledged: dict[Any, list[int]] = defaultdict(list)  # account -> revisions written
    for account, revision in written:
        acknowledged[account].append(revision)
    for revisions in acknowledged.values():
        revisions.sort()

    seen_versions: dict[tuple[Any, int], tuple[int, Operation]] = {}
    by_revision: dict[int, tuple[tuple[Any, ...], Operation]] = {}
    for op in ops:
        if op.f != "audit" or not op.known:
            continue
        revision, rows = op.output[0], _pairs(op.output[1])
        where = f"{key}: {op.describe()}"
        state = tuple(sorted(rows))
        earlier = by_revision.setdefault(revision, (state, op))
        if earlier[0] != state:
            problems.append(f"{where}: at revision {revision} reads {list(state)}, but "
                            f"{earlier[1].describe()} read {list(earlier[0])}")  # fmt: skip
        balances = {account: balance for account, _, balance in rows}
        whole = accounts is not None and len(balances) == accounts
        if whole and sum(balances.values()) != total:
            problems.append(f"{where}: the balances sum to {sum(balances.values())}, not "
                            f"{total}: a transfer applied in part, or a read of several "
                            "revisions")  # fmt: skip
        for account, mod, balance in rows:
            if balance < 0:
                problems.append(f"{where}: account {account} holds {balance}")
            if mod > revision:
                problems.append(f"{where}: account {account} at mod revision {mod}, after "
                                f"the read's revision {revision}")  # fmt: skip
            expected = written.get((account, mod))
            if expected is not None and expected != balance:
                problems.append(f"{where}: account {account} at mod revision {mod} holds "
                                f"{balance}, but the write at {mod} wrote {expected}")  # fmt: skip
            first = seen_versions.setdefault((account, mod), (balance, op))
            if first[0] != balance:
                problems.append(f"{where}: account {account} at mod revision {mod} holds "
                                f"{balance}; {first[1].describe()} read {first[0]}")  # fmt: skip
            newer = [r for r in acknowledged.get(account, ()) if mod < r <= revision]
            if newer:
                problems.append(f"{where}: account {account} at mod revision {mod}, but an "
                                f"acknowledged write at revision {newer[-1]} <= {revision} is "
                                "missing (a lost write, or a stale read)")  # fmt: skip
    problems += _real_time(key, ops)
    return problems


def _revision_of(op: Operation) -> int | None:
    if not op.known or op.output is None:
        return None
    return int(op.output[0])


def _real_time(key: Hashable, ops: list[Operation]) -> list[str]:
    """Check 5, across clients: an operation that began after another ended is ordered after
    it, so its revision is at least the other's (a stale read answers an older one)."""
    problems = []
    answered = sorted(
        ((revision, op) for op in ops if (revision := _revision_of(op)) is not None),
        key=lambda item: item[1].ret,
    )
    highest: tuple[int, Operation] | None = None  # over the operations ended so far
    ended = 0
    for revision, op in sorted(answered, key=lambda item: item[1].call):
        while ended < len(answered) and answered[ended][1].ret < op.call:
            if highest is None or answered[ended][0] > highest[0]:
                highest = answered[ended]
            ended += 1
        if highest is not None and revision < highest[0]:
            problems.append(f"{key}: {op.describe()} answers revision {revision}, before the "
                            f"revision {highest[0]} of {highest[1].describe()}, which "
                            "ended before it began (a stale read)")  # fmt: skip
    return problems
