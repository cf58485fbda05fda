"""The book's third design: every node votes for the first proposal it hears; a majority decides.

Theory of operation. propose(value) sends the value to every node. A node that has not voted
yet votes for the first value it hears of (in a Propose or in someone else's Vote) and tells
every node its vote. Each node tallies the votes it has received; a value with votes from a
majority of all nodes is decided. Votes never change, so two values can never both win.

The flaw: a split vote plus one crash. With 7 nodes voting 3 to 3 and the seventh crashed,
no value can ever reach 4 votes, so Termination fails with one crash. The `tiebreak` variant
tries the book's fix ("red wins ties" once the last voter has been silent for a while) and
shows why it is no fix: when the silent node was only slow, its late vote can produce a true
majority for the other value, and the nodes change their minds, breaking Agreement.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from paxosd.core.effects import Effects
from paxosd.core.lessons.base import LessonCore
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope, NodeId

VARIANTS = {
    "correct": "majority voting as the book first sketches it",
    "tiebreak": "on a tie with one voter silent, the greatest value wins (red over blue)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Propose:
    family: ClassVar[str] = "vote"
    value: Any

    def describe(self) -> str:
        return f"Propose({self.value})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    family: ClassVar[str] = "vote"
    value: Any

    def describe(self) -> str:
        return f"Vote({self.value})"


class MajorityNode(LessonCore):
    """A voter and vote counter."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(node_id, members, rng, config)
        assert config.variant in VARIANTS, f"unknown majority variant {config.variant!r}"
        self.vote: Any = durable[-1] if durable else None
        self.votes: frozenset[tuple[NodeId, Any]] = frozenset()
        if self.vote is not None:
            self.votes = frozenset({(self.node_id, self.vote)})
        self.quiet_ticks = 0

    def propose(self, value: Any) -> Effects:
        effects = Effects()
        effects.notes.append(f"proposes {value}")
        self.broadcast(effects, Propose(value=value), include_self=False)
        self._hear(effects, value)
        return effects

    def step(self, envelope: Envelope) -> Effects:
        effects = Effects()
        match envelope.msg:
            case Propose(value=value):
                self._hear(effects, value)
            case Vote(value=value):
                if (envelope.src, value) not in self.votes:
                    self.votes = self.votes | {(envelope.src, value)}
                    self.quiet_ticks = 0
                self._hear(effects, value)
            case other:
                raise AssertionError(f"unexpected message {other!r}")
        self._tally(effects)
        return effects

    def tick(self) -> Effects:
        effects = Effects()
        if self.config.variant == "tiebreak" and self.decided is None and self.votes:
            self.quiet_ticks = min(self.quiet_ticks + 1, self.config.suspect_after_ticks)
            self._tally(effects)
        return effects

    def view(self) -> list[tuple[str, str]]:
        tally = ", ".join(f"{value} {count}" for value, count in self.counts().items())
        rows = [("own vote", "-" if self.vote is None else str(self.vote))]
        rows.append(("votes heard", tally or "-"))
        if self.config.variant == "tiebreak":
            rows.append(("quiet ticks", str(self.quiet_ticks)))
        return [*rows, *super().view()]

    def _hear(self, effects: Effects, value: Any) -> None:
        """Vote for the first value heard of; votes are durable and never change."""
        if self.vote is not None:
            return
        self.vote = value
        self.votes = self.votes | {(self.node_id, value)}
        effects.notes.append(f"votes {value}")
        effects.persist.append(value)  # MUST be durable BEFORE the vote is announced
        self.broadcast(effects, Vote(value=value), include_self=False)
        self._tally(effects)

    def counts(self) -> dict[Any, int]:
        """Votes per value, in a fixed order (set order varies between processes)."""
        counts: dict[Any, int] = {}
        for _, value in sorted(self.votes, key=repr):
            counts[value] = counts.get(value, 0) + 1
        return counts

    def _tally(self, effects: Effects) -> None:
        counts = self.counts()
        for value in sorted(counts, key=repr):
            voters = [node for node, v in self.votes if v == value]
            if self.quorum.is_majority(voters):
                self.decide(effects, value)
                return
        if self.config.variant == "tiebreak":
            self._tiebreak(effects, counts)

    def _tiebreak(self, effects: Effects, counts: dict[Any, int]) -> None:
        heard = {node for node, _ in self.votes}
        silent = len(self.members) - len(heard)
        if self.decided is not None or silent != 1 or len(counts) < 2:
            return
        if self.quiet_ticks < self.config.suspect_after_ticks:
            return
        top = max(counts.values())
        tied = [value for value, count in counts.items() if count == top]
        if len(tied) > 1:
            winner = max(tied, key=repr)
            effects.notes.append(f"tie {counts}; the silent voter looks dead: {winner} wins")
            self.decide(effects, winner)

    def state_key(self) -> Hashable:
        return (self.vote, self.votes, self.decided, self.quiet_ticks)

    @staticmethod
    def rename_nodes(value: Any, nodes: Mapping[NodeId, NodeId]) -> Any:
        """`value` (a state key, a message or a durable record) with node ids renamed, for
        the explorer's symmetry reduction: only the tally names nodes (who voted what)."""
        if not isinstance(value, tuple) or len(value) != 4:
            return value
        vote, votes, decided, quiet_ticks = value
        return (vote, frozenset((nodes.get(n, n), v) for n, v in votes), decided, quiet_ticks)
