"""What the linearizability checker answers: a verdict per key and for the whole history.

A verdict is one of three words, and the third is as important as the first two:
"unknown" means the search ran out of its time or memory budget (or was stopped because
another key had already failed the history) before it could decide. Unknown is never a
pass, and never a failure either: the checker did not find out.

For a key that is not linearizable the result carries a `Violation`: the longest
linearizable prefix the search found, the state after it, and the operation that could not
be placed. That is what the text report, ``--json`` and the HTML page show.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from paxosd.check.history import Operation, show_value
from paxosd.check.models import State

PREFIX_SHOWN_OPS = 8
"""How many operations of the longest prefix an explanation prints (the last ones)."""

PENDING_SHOWN_OPS = 12
"""How many unplaceable pending operations an explanation lists."""

STATE_SHOWN_CHARS = 200
"""Longer states (an append log, say) are cut in the middle when printed."""


class Verdict(StrEnum):
    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


class Reason(StrEnum):
    """Why a key's verdict is unknown."""

    NONE = ""
    TIME = "time budget spent"
    MEMORY = "memory budget spent"
    STOPPED = "not finished"  # another key already failed the history


@dataclass(frozen=True, slots=True)
class Violation:
    """Where the search got stuck, at its deepest point.

    ``prefix`` is the longest linearizable prefix found, in linearization order, and
    ``state`` the model state after it. ``stuck`` is the completed operation that had to
    take effect next (its return came) but could not; ``pending`` are all operations that
    could have gone next, each with whether the model accepts it in ``state`` (accepted
    ones failed later on every path). ``unreachable`` is True when ``stuck`` had not
    returned yet but nothing left could bring the state to one that accepts it.
    """

    key: Hashable
    prefix: tuple[Operation, ...]
    state: State
    stuck: Operation
    pending: tuple[tuple[Operation, bool], ...]
    total: int
    unreachable: bool = False

    def explain(self) -> str:
        lines = [
            f"key {key_label(self.key)}: not linearizable.",
            f"  The longest linearizable prefix found has {len(self.prefix)} of {self.total} "
            f"operations and leaves the state at {clip(show_value(self.state))}.",
        ]
        shown = self.prefix[-PREFIX_SHOWN_OPS:]
        if len(shown) < len(self.prefix):
            lines.append(f"    ... {len(self.prefix) - len(shown)} earlier operations")
        lines += [f"    {op.describe()}" for op in shown]
        count = len(self.pending)
        candidates = f"{count} candidate{'s' * (count != 1)}"
        if self.unreachable:
            lines.append(
                f"  Then {self.stuck.describe()} can never take effect: it completed, but no "
                f"operation left can bring the state to one it accepts. Operations that "
                f"could go next ({candidates}):"
            )
        else:
            lines.append(
                f"  Then {self.stuck.describe()} returned, so it must already have taken "
                f"effect, but no operation that could go next ({candidates}) leads to a "
                f"linearization:"
            )
        for op, accepted in self.pending[:PENDING_SHOWN_OPS]:
            why = "fits, but every continuation fails" if accepted else "impossible here"
            lines.append(f"    {op.describe()}: {why}")
        if len(self.pending) > PENDING_SHOWN_OPS:
            lines.append(f"    ... and {len(self.pending) - PENDING_SHOWN_OPS} more")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict on one partition (one key, or one group of keys for transactions).

    ``states_explored`` counts the distinct (linearized set, state) configurations the
    search visited; ``memory_bytes`` estimates what its cache held at the end;
    ``pruned`` counts unknown-outcome operations dropped before the search because they
    cannot change the verdict. ``order`` is a linearization (operation indices) when the
    key is linearizable.
    """

    key: Hashable
    verdict: Verdict
    operations: int
    elapsed_s: float
    states_explored: int = 0
    violation: Violation | None = None
    reason: Reason = Reason.NONE
    memory_bytes: int = 0
    pruned: int = 0
    order: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: Verdict
    keys: tuple[KeyResult, ...]
    operations: int
    elapsed_s: float
    model: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE

    @property
    def violations(self) -> list[Violation]:
        return [k.violation for k in self.keys if k.violation is not None]

    def explain(self) -> str:
        """Every violation's explanation, or a one-line summary if there is none."""
        if self.violations:
            return "\n\n".join(v.explain() for v in self.violations)
        return f"{self.verdict} ({self.operations} operations, {len(self.keys)} keys)"

    def to_json(self) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for k in self.keys:
            entry: dict[str, Any] = {
                "verdict": str(k.verdict),
                "operations": k.operations,
                "elapsed_s": round(k.elapsed_s, 6),
                "states_explored": k.states_explored,
                "memory_bytes": k.memory_bytes,
            }
            if k.pruned:
                entry["unknown_pruned"] = k.pruned
            if k.reason is not Reason.NONE:
                entry["reason"] = str(k.reason)
            if k.violation is not None:
                entry["explanation"] = k.violation.explain()
                entry["prefix_length"] = len(k.violation.prefix)
                entry["stuck"] = k.violation.stuck.describe()
            keys[key_label(k.key)] = entry
        return {
            "verdict": str(self.verdict),
            "keys": keys,
            "operations": self.operations,
            "elapsed_s": round(self.elapsed_s, 6),
            "model": self.model,
            "notes": list(self.notes),
        }


def combine(results: list[KeyResult]) -> Verdict:
    """The history's verdict: not linearizable if any key is, else unknown if any key is
    undecided, else linearizable."""
    verdicts = {r.verdict for r in results}
    if Verdict.NOT_LINEARIZABLE in verdicts:
        return Verdict.NOT_LINEARIZABLE
    if Verdict.UNKNOWN in verdicts:
        return Verdict.UNKNOWN
    return Verdict.LINEARIZABLE


def clip(text: str) -> str:
    if len(text) <= STATE_SHOWN_CHARS:
        return text
    half = STATE_SHOWN_CHARS // 2
    return f"{text[:half]} … {text[-half:]} ({len(text)} chars)"


def key_label(key: Hashable) -> str:
    """How reports name a key; the key of a single-register history is ``(register)``."""
    if key is None:
        return "(register)"
    if isinstance(key, tuple):
        return "{" + ", ".join(str(k) for k in key) + "}"  # a group of keys (transactions)
    return str(key)


__all__ = [
    "CheckResult",
    "KeyResult",
    "Reason",
    "Verdict",
    "Violation",
    "clip",
    "combine",
    "key_label",
]
