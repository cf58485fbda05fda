"""The configuration command and the brick wall: the rule a new leader's phase 1 follows so
that an epoch never chooses a slot above its stop, shown on a small model of leaders and
acceptors with lost messages, where the rule holds over many seeds and each of two broken
rules is caught."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.check.epochs import Adopted, Chosen, check_members, check_stops
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.reconfigure import (
    MARK,
    NOOP,
    BadReconfigure,
    Reconfigure,
    brick_wall,
    decode,
    in_batch,
)
from paxosd.core.multi.records import Batch
from paxosd.core.quorum import Majority
from paxosd.core.types import Ballot

NEXT = Reconfigure(Configuration((1, 2, 4), (5,), epoch=1))


def test_a_change_round_trips_and_nothing_else_reads_as_one() -> None:
    assert decode(NEXT.encode()) == NEXT
    assert in_batch(NEXT.batch()) == NEXT
    assert in_batch((b"", NEXT.encode())) is None, "a change travels alone in its slot"
    assert decode(b"") is None and decode(msgpack.packb([1, "put"])) is None
    for broken in (MARK, MARK + b"\x93", MARK + msgpack.packb([1, [2, 1], []])):
        with pytest.raises(BadReconfigure):
            decode(broken)
    with pytest.raises(BadReconfigure):
        Reconfigure(Configuration((1,), epoch=0))


@given(
    st.recursive(
        st.none() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
        st.lists,
        max_leaves=8,
    )
)
def test_no_state_machine_command_starts_with_the_mark(value: object) -> None:
    """The service's commands are msgpack (or empty), which never writes byte 0xC1."""
    assert not msgpack.packb(value).startswith(MARK[:1])


def _b(round_: int, node: int = 1) -> Ballot:
    return Ballot(round_, node)


def test_a_stop_with_nothing_of_a_higher_ballot_above_it_stands() -> None:
    stop = NEXT.batch()
    merged = {3: (_b(1), (b"a",)), 5: (_b(4), stop), 6: (_b(2), (b"late",))}
    plan = brick_wall(merged, start=3)
    assert plan.stop == 5
    assert plan.batches == {3: (b"a",), 4: NOOP, 5: stop}, "gaps get no-ops; nothing above 5"


def test_a_stop_overtaken_by_a_higher_ballot_above_it_becomes_a_noop() -> None:
    merged = {5: (_b(2), NEXT.batch()), 6: (_b(3), (b"x",)), 7: (_b(1), (b"y",))}
    plan = brick_wall(merged, start=5)
    assert plan.stop is None
    assert plan.batches == {5: NOOP, 6: (b"x",), 7: (b"y",)}


def test_the_lowest_standing_stop_wins() -> None:
    merged = {4: (_b(2), (b"x",)), 5: (_b(5), NEXT.batch()), 8: (_b(3), NEXT.batch())}
    assert brick_wall(merged, start=4).stop == 5
    assert brick_wall({}, start=9).batches == {}


# -- a model: one epoch's leaders and three acceptors, messages lost at random ----------------

ACCEPTORS = (1, 2, 3)
QUORUM = Majority(ACCEPTORS)


@dataclass
class Acceptor:
    promised: Ballot | None = None
    accepted: dict[int, tuple[Ballot, Batch]] = field(default_factory=dict)


@dataclass
class Run:
    rule: str  # "brick-wall" (correct), "ignore-stop", "keep-overtaken-stop"
    rng: random.Random
    acceptors: dict[int, Acceptor] = field(
        default_factory=lambda: {a: Acceptor() for a in ACCEPTORS}
    )
    chosen: list[Chosen] = field(default_factory=list)
    values: int = 0

    def delivered(self) -> list[int]:
        return [a for a in ACCEPTORS if self.rng.random() < 0.7]

    def leader_turn(self, ballot: Ballot) -> None:
        promises = {}
        for a in self.delivered():
            acceptor = self.acceptors[a]
            if acceptor.promised is None or acceptor.promised < ballot:
                acceptor.promised = ballot
                promises[a] = dict(acceptor.accepted)
        if not QUORUM.is_phase1_quorum(promises.keys()):
            return
        merged: dict[int, tuple[Ballot, Batch]] = {}
        for accepted in promises.values():
            for slot, (b, batch) in accepted.items():
                if slot not in merged or b > merged[slot][0]:
                    merged[slot] = (b, batch)
        plan = self.plan(merged)
        for slot, batch in sorted(plan.batches.items()):
            self.accept(ballot, slot, batch)
        if plan.stop is not None:
            return  # nothing above a standing stop
        next_slot = max(plan.batches, default=0) + 1
        for _ in range(self.rng.randint(0, 3)):
            if self.rng.random() < 0.3:
                self.accept(ballot, next_slot, NEXT.batch())  # a change: then nothing above
                return
            self.values += 1
            self.accept(ballot, next_slot, (f"v{self.values}".encode(),))
            next_slot += 1

    def plan(self, merged: dict[int, tuple[Ballot, Batch]]) -> object:
        plan = brick_wall(merged, start=1)
        if self.rule == "ignore-stop":  # planted: a stop is a value like any other
            top = max(merged, default=0)
            batches = {s: merged[s][1] if s in merged else NOOP for s in range(1, top + 1)}
            return type(plan)(batches, None)
        if self.rule == "keep-overtaken-stop":  # planted: a stop stands whatever is above it
            for slot in sorted(merged):
                if in_batch(merged[slot][1]) is not None:
                    batches = {s: merged[s][1] if s in merged else NOOP for s in range(1, slot + 1)}
                    return type(plan)(batches, slot)
        return plan

    def accept(self, ballot: Ballot, slot: int, batch: Batch) -> None:
        for a in self.delivered():
            acceptor = self.acceptors[a]
            if acceptor.promised is None or acceptor.promised <= ballot:
                acceptor.promised = ballot
                acceptor.accepted[slot] = (ballot, batch)
        holders = [a for a in ACCEPTORS if self.acceptors[a].accepted.get(slot) == (ballot, batch)]
        if QUORUM.is_phase2_quorum(holders):
            self.chosen.append(Chosen(0, slot, 0, batch))


def _run(seed: int, rule: str) -> list[Chosen]:
    rng = random.Random(seed)
    run = Run(rule, rng)
    for round_ in range(1, 9):
        run.leader_turn(Ballot(round_, rng.choice(ACCEPTORS)))
    return run.chosen


def _agreement(chosen: list[Chosen]) -> bool:
    per_slot: dict[int, Batch] = {}
    return all(per_slot.setdefault(c.slot, c.batch) == c.batch for c in chosen)


def test_with_the_brick_wall_no_epoch_chooses_above_its_stop() -> None:
    """2,000 seeds of leaders (one change proposed now and then) and lost messages: every
    slot agrees and nothing is chosen above a chosen stop."""
    stops = 0
    for seed in range(2000):
        chosen = _run(seed, "brick-wall")
        verdict = check_stops(chosen)
        assert verdict.status == "holds", f"seed {seed}: {verdict.detail}"
        assert _agreement(chosen), f"seed {seed}: two values chosen for one slot"
        stops += any(in_batch(c.batch) is not None for c in chosen)
    assert stops > 200, "the model must choose changes often enough to test the rule"


@pytest.mark.parametrize("rule", ["ignore-stop", "keep-overtaken-stop"])
def test_each_broken_rule_is_caught_within_the_first_seeds(rule: str) -> None:
    for seed in range(2000):
        verdict = check_stops(_run(seed, rule))
        if verdict.status == "violated":
            assert "epoch 0 stopped at slot" in verdict.detail
            return
    pytest.fail(f"the planted rule {rule!r} was not caught in 2,000 seeds")


# -- the members checker ----------------------------------------------------------------------


def test_nodes_that_adopt_an_epoch_differently_are_caught() -> None:
    start = Configuration((1, 2, 3))
    change = Chosen(1, 7, 0, NEXT.batch())
    same = [Adopted(n, 1, NEXT.configuration, 8) for n in (1, 2)]
    assert check_members([Adopted(1, 0, start, 1), *same], [change]).status == "holds"
    other = Configuration((1, 2, 3, 4), epoch=1)
    verdict = check_members([*same, Adopted(3, 1, other, 8)], [change])
    assert verdict.status == "violated" and "node 3" in verdict.detail
    early = check_members([Adopted(2, 1, NEXT.configuration, 7)], [change])  # before the stop
    assert early.status == "violated" and "from slot 7" in early.detail


def test_a_change_chosen_in_the_wrong_epoch_is_caught() -> None:
    verdict = check_stops([Chosen(1, 4, 3, NEXT.batch())])
    assert verdict.status == "violated" and "right after" in verdict.detail
