"""The configuration command, and the brick wall a new leader's phase 1 must respect.

Theory of operation (docs/engine.md, "Membership change: epochs"). Membership changes through
the log: a `Reconfigure` command chosen in epoch e at slot i ends epoch e there (its "stop")
and starts epoch e+1 at slot i+1, with the configuration the command names. Inside an epoch
the engine is unchanged; what this module adds is the one rule that keeps an epoch from
choosing anything above its stop, whatever leaders come and go:

A leader's phase 1 merges, per slot, the value of the highest ballot any promise reports. If
a merged slot i holds a `Reconfigure` of ballot b and no merged slot above i holds a value of
a ballot above b, the stop STANDS: the leader proposes it again at i and proposes nothing
above i. Otherwise (a value above i of a higher ballot) that stop was never chosen, because
a leader of that higher ballot would have found it and honoured it, so slot i gets a no-op.
Values above a standing stop are all of lower ballots and were never chosen either: the
leader that proposed the stop first re-proposed everything a quorum might have chosen below
its ballot, all of it below i (it proposes a change only with its pipeline drained).

`brick_wall` is that rule as a pure function of the merged promises. The command is encoded
as bytes no state machine command can be: it starts with 0xC1, the one byte msgpack never
writes (the service's commands are msgpack, or empty for a no-op), then b"PXRC".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type information

from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot

MARK = b"\xc1PXRC"
NOOP: Batch = ()


class BadReconfigure(ValueError):
    """Bytes that start like a configuration command but are not a valid one."""


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """End the epoch `configuration.epoch - 1` and start `configuration` after it."""

    configuration: Configuration

    def __post_init__(self) -> None:
        if self.configuration.epoch < 1:
            raise BadReconfigure("a change starts an epoch after the first (epoch >= 1)")

    @property
    def stops_epoch(self) -> int:
        return self.configuration.epoch - 1

    def encode(self) -> bytes:
        c = self.configuration
        fields: list[object] = [c.epoch, list(c.voters), list(c.learners)]
        if c.joined:  # (a change with no joined member is encoded as before they existed)
            fields.append([[j.node, j.incarnation, j.contact] for j in c.joined])
        return MARK + msgpack.packb(fields)

    def batch(self) -> Batch:
        """The batch that carries it: the command alone in its slot."""
        return (self.encode(),)


def decode(command: bytes) -> Reconfigure | None:
    """The configuration change `command` encodes; None for any other command;
    `BadReconfigure` for a command that carries the mark but is not one."""
    if not command.startswith(MARK):
        return None
    try:
        fields = msgpack.unpackb(command[len(MARK) :], use_list=True)
        if type(fields) is not list or len(fields) not in (3, 4):
            raise ValueError("expected [epoch, voters, learners, (joined)]")
        epoch, voters, learners = fields[:3]
        joined = tuple(Joined(*entry) for entry in (fields[3] if len(fields) == 4 else ()))
        configuration = Configuration(tuple(voters), tuple(learners), epoch, 1, joined)
    except (ValueError, TypeError, msgpack.ExtraData) as error:
        raise BadReconfigure(f"a malformed configuration command: {error}") from None
    return Reconfigure(configuration)


def in_batch(batch: Batch) -> Reconfigure | None:
    """The change a batch carries: a change travels alone in its slot, so a batch holds one
    only as its single command."""
    if len(batch) != 1:
        return None
    return decode(batch[0])


@dataclass(frozen=True, slots=True)
class Plan:
    """What a new leader proposes after phase 1: a batch per slot from its start, and the
    slot of the standing stop, if any (it then proposes nothing above it in this epoch)."""

    batches: dict[int, Batch]
    stop: int | None


def brick_wall(merged: Mapping[int, tuple[Ballot, Batch]], start: int) -> Plan:
    """The plan for slots `start`.. from `merged` (per slot, the highest-ballot value the
    promises report; see the module docstring for the rule and why it is safe)."""
    top = max((slot for slot in merged if slot >= start), default=start - 1)
    # Per slot, the highest ballot of any value above it (None: nothing above).
    highest_above: dict[int, Ballot | None] = {}
    best: Ballot | None = None
    for slot in range(top, start - 1, -1):
        highest_above[slot] = best
        entry = merged.get(slot)
        if entry is not None and (best is None or entry[0] > best):
            best = entry[0]
    batches: dict[int, Batch] = {}
    for slot in range(start, top + 1):
        entry = merged.get(slot)
        if entry is None:
            batches[slot] = NOOP
            continue
        ballot, batch = entry
        if in_batch(batch) is not None:
            above = highest_above[slot]
            if above is None or above <= ballot:
                batches[slot] = batch
                return Plan(batches, slot)
            batches[slot] = NOOP  # overtaken by a higher ballot above it: never chosen
            continue
        batches[slot] = batch
    return Plan(batches, None)
