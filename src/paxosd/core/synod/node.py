"""A single-decree Paxos node: proposer, acceptor and learner in one process.

This is the book's propose(value) / query() over Paxos. Every node plays all three roles; the
roles live in their own modules and this class only routes messages and timers between them
and collects the effects. Durable state (acceptor facts, the proposer's last round, the decided
value) is persisted as one `SynodDurable` record BEFORE any reply that depends on it is sent.

Planted bugs (`CoreConfig.variant`), each caught by the checkers:
- `forget-promise`: after a restart the acceptor has forgotten the ballots it promised;
- `ignore-promised-values`: the proposer offers its own value even when promises report one.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from paxosd.core.effects import Effects
from paxosd.core.lessons.base import LessonCore
from paxosd.core.protocol import CoreConfig
from paxosd.core.synod import proposer as P
from paxosd.core.synod.acceptor import AcceptorState
from paxosd.core.synod.learner import LearnerState
from paxosd.core.synod.messages import (
    Accept,
    Accepted,
    Decided,
    Nack,
    Prepare,
    Promise,
    Query,
)
from paxosd.core.types import Ballot, Envelope, NodeId

VARIANTS = {
    "correct": "Paxos as published",
    "forget-promise": "an acceptor forgets the ballots it promised when it restarts",
    "ignore-promised-values": "a proposer ignores the values reported in promises",
    "swapped-members": "an operator swaps the member list by hand (5 nodes): nodes 2, 4 and 5 "
    "get the new list 2,4,5 while nodes 1 and 3 still run with the old 1,2,3",
}
# The lesson "why you cannot just swap the member list": with members 1..5, the old list and
# the new one share node 2 only, so a majority of each ({1,3} and {4,5}) can decide alone.
SWAPPED_OLD: tuple[NodeId, ...] = (1, 2, 3)
SWAPPED_NEW: tuple[NodeId, ...] = (2, 4, 5)


def swapped_members(node_id: NodeId, members: Sequence[NodeId]) -> tuple[NodeId, ...]:
    """The member list `node_id` believes in after the swap (the `swapped-members` variant)."""
    if tuple(sorted(members)) != (1, 2, 3, 4, 5):
        raise ValueError("the swapped-members story is told on 5 nodes (--nodes 5)")
    return SWAPPED_NEW if node_id in SWAPPED_NEW else SWAPPED_OLD


@dataclass(frozen=True, slots=True)
class SynodDurable:
    """Everything a Paxos node must not forget in a crash."""

    acceptor: AcceptorState
    last_ballot: Ballot | None
    decided: Any


class SynodNode(LessonCore):
    """Proposer + acceptor + learner for one Paxos instance."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None = None,
    ) -> None:
        assert config.variant in VARIANTS, f"unknown paxos variant {config.variant!r}"
        if config.variant == "swapped-members":
            # The planted bug: each node's quorums come from the list its config file names.
            members = swapped_members(node_id, members)
        super().__init__(node_id, members, rng, config)
        self.acceptor = AcceptorState()
        self.proposer = P.ProposerState()
        self.learner = LearnerState()
        self.recovering = False
        self.query_timer = 0
        if durable:
            self._restore(durable[-1])

    def _restore(self, record: SynodDurable) -> None:
        acceptor = record.acceptor
        if self.config.variant == "forget-promise":
            # The planted bug: the promise was never made durable, only what was accepted.
            acceptor = AcceptorState(
                acceptor.accepted_ballot, acceptor.accepted_ballot, acceptor.accepted_value
            )
        self.acceptor = acceptor
        self.proposer = P.ProposerState(ballot=record.last_ballot)
        self.decided = record.decided
        self.recovering = record.decided is None

    # -- the book's API -------------------------------------------------------------------

    def propose(self, value: Any) -> Effects:
        effects = Effects()
        if self.decided is not None or self.proposer.active:
            return effects
        self.proposer = replace(self.proposer, value=value)
        effects.notes.append(f"proposes {value}")
        self._start_round(effects)
        return effects

    # -- inputs -----------------------------------------------------------------------------

    def step(self, envelope: Envelope) -> Effects:
        effects = Effects()
        src, msg = envelope.src, envelope.msg
        match msg:
            case Prepare():
                self._on_prepare(effects, src, msg)
            case Accept():
                self._on_accept(effects, src, msg)
            case Promise():
                self._on_promise(effects, src, msg)
            case Accepted():
                self._on_accepted(effects, src, msg)
            case Nack():
                self._on_nack(effects, msg)
            case Query():
                if self.decided is not None:
                    self.send(effects, src, Decided(value=self.decided))
            case Decided():
                self._learn(effects, msg.value)
            case _:
                raise AssertionError(f"unexpected message {msg!r}")
        return effects

    def tick(self) -> Effects:
        effects = Effects()
        proposer = self.proposer
        if self.decided is None and proposer.active:
            if proposer.timer > 1:
                self.proposer = replace(proposer, timer=proposer.timer - 1)
            else:
                if proposer.phase != P.BACKOFF:
                    effects.notes.append(f"times out in ballot {proposer.ballot}")
                self._start_round(effects)
        if self.decided is None and not self.proposer.active:
            self._maybe_ask(effects)
        return effects

    def _maybe_ask(self, effects: Effects) -> None:
        """An undecided node that is not proposing asks the others now and then whether a
        value was chosen: it may have missed the news while it was down or cut off. A node
        just back from a crash asks at once (and the explorer, which models the network's
        eventual delivery itself, only asks after a restart)."""
        period = self.config.learner_query_ticks
        if period is None:
            if not self.recovering:
                return
            period = self.config.retry_after_ticks
        if self.query_timer > 1:
            self.query_timer -= 1
            return
        self.query_timer = period
        self.broadcast(effects, Query(), include_self=False)

    # -- acceptor ---------------------------------------------------------------------------

    def _on_prepare(self, effects: Effects, src: NodeId, msg: Prepare) -> None:
        self.acceptor, reply = self.acceptor.on_prepare(msg)
        if reply is None:
            return
        if isinstance(reply, Promise):
            effects.notes.append(f"promises {msg.ballot}")
            self._persist(effects)  # MUST be durable BEFORE the promise leaves
        self.send(effects, src, reply)

    def _on_accept(self, effects: Effects, src: NodeId, msg: Accept) -> None:
        self.acceptor, reply = self.acceptor.on_accept(msg)
        if isinstance(reply, Nack):
            self.send(effects, src, reply)
            return
        effects.notes.append(f"accepts {msg.ballot}:{msg.value}")
        self._persist(effects)  # MUST be durable BEFORE anyone hears it was accepted
        self.send(effects, src, reply)

    # -- proposer ---------------------------------------------------------------------------

    def _start_round(self, effects: Effects) -> None:
        proposer = self.proposer
        limit = self.config.rounds_max
        if limit is not None and proposer.next_round() > limit:
            self.proposer = replace(proposer, phase=P.EXHAUSTED)
            effects.notes.append("round bound reached")
            return
        self.proposer = proposer.begin(self.node_id, self.config.retry_after_ticks)
        effects.notes.append(f"starts ballot {self.proposer.ballot}")
        self._persist(effects)  # the round MUST be durable so it is never reused
        ballot = self.proposer.ballot
        assert ballot is not None
        self.broadcast(effects, Prepare(ballot=ballot))

    def _on_promise(self, effects: Effects, src: NodeId, msg: Promise) -> None:
        proposer = self.proposer
        if proposer.phase != P.PREPARING or msg.ballot != proposer.ballot:
            return
        promises = proposer.promises | {(src, msg.accepted_ballot, msg.accepted_value)}
        self.proposer = replace(proposer, promises=promises)
        if not self.quorum.is_phase1_quorum([a for a, _, _ in promises]):
            return
        value = own = proposer.value
        assert own is not None, "only a node that was asked to propose runs phase 1"
        if self.config.variant != "ignore-promised-values":
            forced = P.pick_value((b, v) for _, b, v in promises)
            if forced is not None:
                value = forced
        if value != own:
            effects.notes.append(f"must carry on {value}, reported in promises")
        self.proposer = replace(
            self.proposer,
            phase=P.ACCEPTING,
            promises=frozenset(),  # done with them: keeping them would only split states
            timer=self.config.retry_after_ticks,
        )
        self.broadcast(effects, Accept(ballot=msg.ballot, value=value))

    def _on_nack(self, effects: Effects, msg: Nack) -> None:
        proposer = self.proposer.see(msg.promised)
        self.proposer = proposer
        if not proposer.active or proposer.phase == P.BACKOFF or msg.ballot != proposer.ballot:
            return
        if self.config.fixed_backoff:
            wait = self.config.backoff_ticks_max
        else:
            wait = self.rng.randint(1, self.config.backoff_ticks_max)
        effects.notes.append(f"pre-empted by {msg.promised}, backs off {wait} ticks")
        self.proposer = replace(proposer, phase=P.BACKOFF, timer=wait)

    # -- learner ----------------------------------------------------------------------------

    def _on_accepted(self, effects: Effects, src: NodeId, msg: Accepted) -> None:
        proposer = self.proposer
        if self.decided is not None or proposer.phase != P.ACCEPTING:
            return
        if msg.ballot != proposer.ballot:
            return
        self.learner, chosen = self.learner.on_accepted(self.quorum, src, msg.ballot, msg.value)
        if chosen is not None:
            self._learn(effects, chosen)
            # The proposer is the distinguished learner: it tells everyone else.
            self.broadcast(effects, Decided(value=chosen), include_self=False)

    def _learn(self, effects: Effects, value: Any) -> None:
        if self.decided is not None:
            assert self.decided == value or self.config.variant != "correct", (
                "a learner was told two different chosen values"
            )
            return
        self.decide(effects, value)
        self.learner = LearnerState()
        self.recovering = False
        self.proposer = replace(self.proposer, phase=P.IDLE, promises=frozenset())
        self._persist(effects)

    # -- helpers ----------------------------------------------------------------------------

    def _persist(self, effects: Effects) -> None:
        effects.persist.append(SynodDurable(self.acceptor, self.proposer.ballot, self.decided))

    def bound_reached(self) -> bool:
        return self.proposer.phase == P.EXHAUSTED

    def view(self) -> list[tuple[str, str]]:
        acceptor, proposer = self.acceptor, self.proposer

        def shown(value: Any) -> str:
            return "-" if value is None else str(value)

        accepted = "-"
        if acceptor.accepted_ballot is not None:
            accepted = f"{acceptor.accepted_ballot}: {acceptor.accepted_value}"
        rows = [("promised", shown(acceptor.promised)), ("accepted", accepted)]
        ballot = "" if proposer.ballot is None else f" {proposer.ballot}"
        rows.append(("proposer", f"{proposer.phase}{ballot}"))
        if proposer.value is not None and proposer.active:
            rows.append(("proposing", self._proposing()))
        if proposer.phase == P.PREPARING:
            heard = sorted(node for node, _, _ in proposer.promises)
            rows.append(("promises from", ", ".join(map(str, heard)) or "none yet"))
        if proposer.highest_seen is not None:
            rows.append(("highest ballot seen", str(proposer.highest_seen)))
        rows.append(("decided", shown(self.decided)))
        return rows

    def _proposing(self) -> str:
        """The value this proposer's ballot carries. In phase 2 it is the one its Accept sent,
        which its own acceptor accepted at once: the client's value, or one a promise
        reported, which the proposer had to adopt."""
        proposer, acceptor = self.proposer, self.acceptor
        own = str(proposer.value)
        if proposer.phase == P.ACCEPTING and acceptor.accepted_ballot == proposer.ballot:
            carried = acceptor.accepted_value
            if carried != proposer.value:
                return f"{carried} (adopted; its client asked for {own})"
            return str(carried)
        return own

    def state_key(self) -> Hashable:
        proposer = self.proposer
        return (
            self.acceptor,
            proposer,
            self.learner,
            self.decided,
            self.recovering,
            self.query_timer,
        )

    @staticmethod
    def rename_nodes(value: Any, nodes: Mapping[NodeId, NodeId]) -> Any:
        """`value` (a state key, a message or a durable record) with node ids renamed, for
        the explorer's symmetry reduction. Only nodes that never propose are ever renamed, and
        they own no ballot, so node ids occur only where an acceptor is named: the promises a
        proposer collected and the votes a learner counted. Messages and records name none."""
        if not isinstance(value, tuple) or len(value) != 6:
            return value
        acceptor, proposer, learner, decided, recovering, query_timer = value
        promises = frozenset((nodes.get(a, a), b, v) for a, b, v in proposer.promises)
        votes = frozenset((b, v, nodes.get(a, a)) for b, v, a in learner.votes)
        return (
            acceptor, replace(proposer, promises=promises), LearnerState(votes), decided,
            recovering, query_timer,
        )  # fmt: skip

    def invariants(self) -> None:
        super().invariants()
        self.acceptor.invariants()
        if self.proposer.ballot is not None:
            assert self.proposer.ballot.node == self.node_id, "a proposer only uses its own ballots"
