"""The service's own Multi-Paxos engine (core/multi) as a lab core, to be driven click by click.

Theory of operation. `MultiPaxosNode` wraps one `Replica` - the very class every paxosd node
runs - behind the small interface the lab's explorer drives (`propose`, `step`, `tick`, an
`Effects` value back). Each input is one turn of the engine's driver contract (ready.py): the
input, then `ready()`, whose records become the node's durable state, whose messages (the
early Accepts and those that wait for the sync alike: the lab syncs before anything leaves)
go on the network, and whose applied slots are this node's decisions; then `synced()`. The
lab's explorer, play sessions and coach therefore run the engine itself, not a model of it.

A few things are set for a learner rather than a data center:
- each value a client proposes is one command and a batch holds one command, so one slot is
  one value ("slot 2: red"); a slot a new leader had to fill is "slot 1: no-op";
- timers are short and not random (a follower gives up on its leader after
  `election_ticks` ticks, a leader sends heartbeats every tick), and "the timer fires" runs
  the node's clock until something happens, so one click is one timeout;
- the state machine is the log itself (`LabLog`), and snapshots are never taken.

The durable state the explorer keeps for a crashed node is the acceptor's, compacted into the
records a restarted replica replays (its promise and every accepted slot): exactly what the
engine persists, in one value.

The lesson: a new leader runs phase 1 for every slot not known chosen, re-proposes in its own
ballot whatever a quorum of promises reports accepted there (a value a quorum accepted may
already be chosen, though nobody knows it), and fills the slots nobody reported with no-ops so
that no gap stays open in the log.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, BinaryIO, Self

from paxosd.core.effects import Effects
from paxosd.core.multi import messages as m
from paxosd.core.multi import reconfigure
from paxosd.core.multi.ballots import ROUND_BITS, epoch_of, first_round
from paxosd.core.multi.config import CORE_VARIANTS, EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Promised, Record
from paxosd.core.multi.replica import Replica
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope, NodeId
from paxosd.sim.explorer import NOOP, LogEntry

__all__ = ["LabLog", "MemberChange", "MultiPaxosNode"]

# Timers, in ticks (one "fire the timer" click runs the clock until one of them goes off).
election_ticks = 2
heartbeat_ticks = 1
ticks_per_timeout_max = 2 * election_ticks + 2  # a click never loops forever
lab_engine = EngineConfig(
    heartbeat_ticks=heartbeat_ticks,
    election_ticks_min=election_ticks,
    election_ticks_max=election_ticks,
    batch_commands_max=1,
    retransmit_ticks=2,
    catchup_timeout_ticks=2,
    snapshot_every_slots=1 << 30,
)
# Statistics, and what is fixed for the node's whole life: not part of its state.
_NOT_STATE = frozenset(
    {"rng", "config", "configuration", "quorum", "peers", "voting_peers", "_handlers", "out",
     "elections", "refused_ballots", "node_id", "commands_max", "bytes_max"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Shown:
    """An engine message on the lab's network, described with the values it carries (the
    engine's own descriptions count commands, which a learner cannot follow). The node
    unwraps it before its replica sees it."""

    inner: Any

    @property
    def family(self) -> str:
        return str(getattr(self.inner, "family", "other"))

    def describe(self) -> str:
        return _epoch_ballots(self._describe())

    def _describe(self) -> str:
        msg = self.inner
        match msg:
            case m.Accept():
                return f"Accept({msg.ballot}, slot {msg.slot}: {_shown(msg.batch)})"
            case m.Accepted():
                return f"Accepted({msg.ballot}, slot {msg.slot})"
            case m.Promise():
                slots = "; ".join(f"{s}: {b} {_shown(batch)}" for s, b, batch in msg.accepted)
                return f"Promise({msg.ballot}, {slots or 'nothing accepted'})"
            case m.Forward():
                return f"Forward({_shown(msg.commands)})"
            case m.Entries():
                chosen = "; ".join(f"{slot}: {_shown(batch)}" for slot, batch in msg.entries)
                return f"Entries({chosen})"
            case _:
                return str(msg.describe())


class MemberChange(str):
    """An operator's membership change, as a value the explorer proposes at a node: "voters
    1,2" asks that node (it must lead) to change the voters to 1 and 2 through the log. Its
    text is how the lab shows the chosen change, so a decided slot "voters 1,2" is this value
    (Validity holds for it like for a client's value)."""

    __slots__ = ()

    asked_by = "operator"  # who proposes it, in the explorer's trace

    @classmethod
    def of(cls, voters: Sequence[NodeId]) -> MemberChange:
        return cls(Configuration.of(voters).describe())

    @property
    def voters(self) -> tuple[NodeId, ...]:
        return tuple(int(v) for v in self.removeprefix("voters ").split(","))


class LabLog:
    """The replicated state machine of the lab: the log of applied values, nothing else."""

    def __init__(self, applied: tuple[tuple[int, str], ...] = ()) -> None:
        self.applied = applied

    def apply(self, slot: int, payload: bytes) -> tuple[Any, Hashable | None]:
        value = payload.decode()
        self.applied = (*self.applied, (slot, value))
        return value, None

    def read(self, query: Any) -> Any:
        return self.applied

    def snapshot_view(self) -> _LogView:
        return _LogView(self.applied)

    @property
    def events(self) -> tuple[Any, ...]:
        return ()

    @property
    def log_time_ms(self) -> int:
        return 0

    @property
    def wants_log_time(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class _LogView:
    """A snapshot of the lab's log (the lab never asks for one: `snapshot_every_slots` is out
    of reach; this keeps `LabLog` a whole state machine)."""

    applied: tuple[tuple[int, str], ...]

    def write(self, out: BinaryIO) -> None:
        out.write(repr(self.applied).encode())


class MultiPaxosNode:
    """One node of the Multi-Paxos engine, as a lab core (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None = None,
    ) -> None:
        self.node_id = node_id
        self.config = config
        records: tuple[Record, ...] = tuple(durable[-1]) if durable else ()
        engine = lab_engine
        if config.variant in CORE_VARIANTS:  # a planted bug of the engine (config.py)
            engine = replace(lab_engine, variant=config.variant)
        self.replica = Replica(
            node_id, Configuration(tuple(sorted(members))), rng, engine, LabLog(), records,
        )  # fmt: skip

    # -- the explorer's inputs ------------------------------------------------------------

    def propose(self, value: Any) -> Effects:
        before = self.replica.learner.applied
        if isinstance(value, MemberChange):
            refused = self.replica.change_members(value.voters)
            effects = self._turn(before)
            effects.notes.insert(
                0, f"asks for {value}: {refused}" if refused else
                f"asks for {value}: proposed once the leader's pipeline has drained",
            )  # fmt: skip
            return effects
        outcome = self.replica.propose(str(value).encode())
        effects = self._turn(before)
        taken = {
            "queued": f"proposes {value}: queued for the next slot (this node leads)",
            "forwarded": f"proposes {value}: forwarded to the leader, node "
            f"{self.replica.leader_hint}",
            "no_leader": f"proposes {value}: no leader known, so it is dropped (elect one first)",
            "queue_full": f"proposes {value}: the queue is full, so it is dropped",
        }[outcome.value]
        effects.notes.insert(0, taken)
        return effects

    def step(self, envelope: Envelope) -> Effects:
        before = self.replica.learner.applied
        msg = envelope.msg.inner if isinstance(envelope.msg, Shown) else envelope.msg
        self.replica.step(Envelope(envelope.src, envelope.dst, msg))
        return self._turn(before)

    def tick(self) -> Effects:
        """The node's timer fires: its clock runs until something happens (a heartbeat, an
        election, a retransmission), or for a few ticks if nothing does."""
        effects = Effects()
        for _ in range(ticks_per_timeout_max):
            before = self.replica.learner.applied
            self.replica.tick()
            effects.extend(self._turn(before))
            if effects.send or effects.persist or effects.decided:
                break
        return effects

    def _turn(self, applied_before: int) -> Effects:
        """One turn of the driver contract: persist, send, then what was applied (the slots
        applied since `applied_before` are this node's new decisions)."""
        replica = self.replica
        ready = replica.ready()
        effects = Effects()
        if ready.records:
            effects.persist.append(self.durable())
        for envelope in (*ready.send_now, *ready.send_after_sync):
            effects.send.append(Envelope(envelope.src, envelope.dst, Shown(envelope.msg)))
        replica.synced(ready)
        for entry in self.log()[applied_before:]:
            effects.decided.append(entry)
            effects.notes.append(f"decides {entry}")
        effects.notes.extend(_note_text(n) for n in ready.notes)
        return effects

    def durable(self) -> tuple[Record, ...]:
        """What this node must not forget in a crash: its promise and every slot it accepted,
        as the records its replica replays on restart."""
        acceptor = self.replica.acceptor
        records: list[Record] = []
        if acceptor.promised is not None:
            records.append(Promised(acceptor.promised))
        for slot, (ballot, batch) in sorted(acceptor.entries.items()):
            records.append(AcceptedRecord(slot, ballot, batch))
        return tuple(records)

    # -- what the explorer and the page ask --------------------------------------------------

    def log(self) -> tuple[LogEntry, ...]:
        """The slots this node knows chosen and applied, in order (the empty batch a new
        leader chose for a slot nobody reported is a no-op)."""
        learner = self.replica.learner
        return tuple(
            LogEntry(slot, _shown(learner.chosen[slot])) for slot in range(1, learner.applied + 1)
        )

    def query(self) -> Any:
        """What this node knows was decided: the log it applied, once it holds a slot."""
        return self.log() or None

    def clone(self) -> Self:
        return copy.deepcopy(self)

    def state_key(self) -> Hashable:
        return _frozen(self.replica)

    def invariants(self) -> None:
        self.replica.invariants()

    def bound_reached(self) -> bool:
        """An election beyond the explorer's ballot bound: what follows is not explored."""
        limit = self.config.rounds_max
        seen = self.replica.highest_seen
        # Rounds are counted within the ballot's epoch (each epoch's rounds start afresh).
        return (
            limit is not None
            and seen is not None
            and seen.round - first_round(epoch_of(seen)) > limit
        )

    def view(self) -> list[tuple[str, str]]:
        replica = self.replica
        status = replica.status()
        rows = [("role", status.role.value)]
        if status.ballot is not None:
            rows.append(("ballot", str(status.ballot)))
        rows.append(("promised", "-" if status.promised is None else str(status.promised)))
        rows.append(("leader", "-" if status.leader is None else f"node {status.leader}"))
        accepted = ", ".join(
            f"{slot}: {ballot} {_shown(batch)}"
            for slot, (ballot, batch) in sorted(replica.acceptor.entries.items())
        )
        rows.append(("accepted", accepted or "-"))
        lead = replica.leading
        if lead is not None:
            waiting = ", ".join(
                f"{slot}: {_shown(inflight.batch)} ({len(inflight.acks)} acks)"
                for slot, inflight in sorted(lead.inflight.items())
            )
            rows.append(("proposed", waiting or "-"))
            queued = [c.decode() for c in lead.queue.commands]
            if queued:
                rows.append(("queued", ", ".join(queued)))
        log = ", ".join(f"{e.slot}: {e.value}" for e in self.log())
        rows.append(("log", log or "-"))
        return rows


def _shown(batch: Any) -> str:
    change = reconfigure.in_batch(batch)
    if change is not None:
        return change.configuration.describe()  # "voters 1,2": see `MemberChange`
    return ", ".join(c.decode() for c in batch) if batch else NOOP


def _note_text(note: Any) -> str:
    fields = " ".join(f"{k}={v}" for k, v in note.fields if k != "node")
    return _epoch_ballots(f"{note.event} {fields}".strip())


# A ballot of a later epoch as the engine prints it: its round holds the epoch in its high
# bits (ballots.py), 1099511627777.2 for round 1 of epoch 1 at node 2.
_RAW_BALLOT = re.compile(r"\b(\d{13,})\.(\d+)\b")


def _epoch_ballots(text: str) -> str:
    """`text` with each ballot of a later epoch shown as "e1:1.2" (epoch 1, its round 1,
    node 2) rather than by its raw round."""

    def shown(match: re.Match[str]) -> str:
        round_, node = int(match[1]), match[2]
        epoch = round_ >> ROUND_BITS
        if epoch == 0:
            return match[0]
        return f"e{epoch}:{round_ - first_round(epoch)}.{node}"

    return _RAW_BALLOT.sub(shown, text)


def _frozen(value: Any) -> Hashable:
    """A hashable image of everything in a replica that shapes what it does next (not its
    statistics, its configuration or its random generator, which the lab keeps fixed)."""
    if value is None or isinstance(value, int | str | bytes | float | bool):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list) or type(value).__name__ == "deque":
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((k, _frozen(v)) for k, v in value.items()), key=repr))
    if isinstance(value, set | frozenset):
        return frozenset(_frozen(v) for v in value)
    if isinstance(value, LabLog):
        return value.applied
    names: list[str] = []
    for klass in type(value).__mro__:
        names.extend(getattr(klass, "__slots__", ()))
    names.extend(getattr(value, "__dict__", {}))
    if not names:
        return value  # an immutable value (a Ballot, a message): hashable as it is
    fields = tuple(
        (name, _frozen(getattr(value, name)))
        for name in dict.fromkeys(names)
        if name not in _NOT_STATE and not name.startswith("__") and hasattr(value, name)
    )
    return (type(value).__name__, fields)
