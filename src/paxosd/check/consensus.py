"""The book's three properties of consensus, as checks over what a run decided.

- Agreement: every decision any node ever makes is the same value, and no node changes its mind.
- Validity: every decided value was proposed by someone.
- Termination: once faults stop, every live node decides - provided a value was proposed by a
  node that stayed up (a value whose only proposer crashed before telling anyone cannot be
  decided by any algorithm).

Each check returns a `Verdict` with the evidence a reader needs. The checkers know nothing about
any algorithm; they read decisions and proposals only. Tests feed them deliberately broken
algorithms to show that they do fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from paxosd.core.types import NodeId

Status = Literal["holds", "violated", "unknown"]
PROPERTIES = ("agreement", "validity", "termination")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A property's status. For termination, `kind` says how it failed: "stuck" (no decision
    can ever be reached) or "livelock" (a decision stays possible, but a run can avoid it
    forever: termination is not guaranteed, which FLP says every fault-tolerant algorithm
    must accept)."""

    property: str
    status: Status
    detail: str = ""
    kind: str = ""


Decision = tuple[float, NodeId, Any]


def check_agreement(decisions: Iterable[Decision]) -> Verdict:
    """All decisions, at all nodes and at all times, name one value."""
    first: dict[NodeId, Any] = {}
    for _, node, value in decisions:
        if node in first and first[node] != value:
            return Verdict(
                "agreement",
                "violated",
                f"node {node} decided {first[node]} and later changed its mind to {value}",
            )
        first.setdefault(node, value)
        for other, seen in first.items():
            if seen != value:
                return Verdict(
                    "agreement",
                    "violated",
                    f"node {other} decided {seen} but node {node} decided {value}",
                )
    return Verdict("agreement", "holds")


def check_validity(decisions: Iterable[Decision], proposed: Iterable[Any]) -> Verdict:
    """Only proposed values are ever decided."""
    allowed = set(proposed)
    for _, node, value in decisions:
        if value not in allowed:
            return Verdict(
                "validity", "violated", f"node {node} decided {value}, which nobody proposed"
            )
    return Verdict("validity", "holds")


def check_termination(
    decisions: Iterable[Decision],
    live: Iterable[NodeId],
    proposers: Iterable[NodeId],
) -> Verdict:
    """Every live node decided, if some proposer is among the live nodes."""
    live_nodes = set(live)
    if not live_nodes & set(proposers):
        return Verdict("termination", "holds", "no proposer stayed up; nothing to decide")
    decided = {node for _, node, _ in decisions}
    missing = sorted(live_nodes - decided)
    if missing:
        names = ", ".join(str(n) for n in missing)
        return Verdict("termination", "violated", f"live node(s) {names} never decided")
    return Verdict("termination", "holds")
