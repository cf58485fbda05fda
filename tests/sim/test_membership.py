"""The membership fault family (sim/membership.py): changes of members through the log under
the simulator's faults break nothing, and the observer that judges them can fail."""

from __future__ import annotations

import pytest

from paxosd.check.epochs import Adopted
from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.reconfigure import Reconfigure
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot
from paxosd.sim.cluster import FAULTS, run
from paxosd.sim.engine_swarm import replay_command, spec_for, swarm
from paxosd.sim.membership import Observer

MEMBERSHIP = frozenset({"membership"})


def test_membership_changes_break_nothing_and_reach_every_kind_of_change() -> None:
    """Removals (the leader's too, after a handover), demotions, additions and promotions,
    two operators at once, the leader crashed while a change is in flight and as it adopts
    the new epoch, the node removed or added cut off meanwhile: every checker holds, the
    membership ones included. (The mutants of
    tests/mutants/mutants.toml that break the rules of a change fail here.)"""
    spec = spec_for(5, MEMBERSHIP, "correct")
    report, failing = swarm(spec, range(1, 13), jobs=1)
    assert not failing, [replay_command(spec, r.seed) for r in failing]
    faults = report.faults
    for fault in (
        "membership_change",
        "membership_second_refused",
        "membership_crash_proposing",
        "membership_crash_adopting",
        "membership_leader_handover",
        "membership_cut_off",
    ):
        assert faults.get(fault, 0) > 0, (fault, faults)
    # Nodes that missed a change (cut off, crashed) were told of it by Stale, and the
    # removed ones learned that they were.
    for mechanism in ("epochs_adopted", "stale_epochs_told", "removals_learned"):
        assert report.reached(mechanism) > 0, mechanism
    assert "membership_second_taken" not in faults, "a second change was taken meanwhile"


def test_membership_changes_at_three_nodes_break_nothing() -> None:
    """The same at three nodes, where every change leaves a cluster of two or three voters.
    (The mutants R1-R3 that break the rules of a change fail here or above.)"""
    spec = spec_for(3, MEMBERSHIP, "correct")
    report, failing = swarm(spec, range(1, 9), jobs=1)
    assert not failing, [replay_command(spec, r.seed) for r in failing]
    assert report.faults.get("membership_change", 0) > 0


def test_a_run_of_three_nodes_changes_members_and_ends_in_a_later_epoch() -> None:
    spec = spec_for(3, MEMBERSHIP, "correct")
    result = run(spec, 3)
    assert result.ok, replay_command(spec, 3)
    # (A replacement is two changes: the removal, and the addition of the new store.)
    changes = result.faults.get("membership_change", 0) + result.faults.get("membership_replace", 0)
    assert changes >= 2, result.faults
    assert max(status["epoch"] for status in result.node_status.values()) >= 2


def test_members_are_replaced_and_a_wiped_member_under_its_old_id_is_refused() -> None:
    """An operator replaces members (removes one, wipes it, starts it on a new store and adds
    it back with its new identity), and sometimes wipes a voter that joined through the log
    and starts it again under its id, at the worst moment (the voters it chose with down,
    the laggers up). Its peers refuse that store's identity: nothing breaks, and every such
    node is refused. (Mutant R4, which admits anyone, fails here.)"""
    spec = spec_for(3, MEMBERSHIP, "correct")
    report, failing = swarm(spec, range(1, 13), jobs=1)
    assert not failing, [replay_command(spec, r.seed) for r in failing]
    faults = report.faults
    assert faults.get("membership_replace", 0) > 0, faults
    careless = faults.get("membership_careless_replace", 0)
    assert careless > 0, faults
    assert faults.get("membership_careless_refused", 0) == careless, faults


def test_a_wiped_member_admitted_under_its_old_id_is_caught_within_the_first_20_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The planted bug R4 (tests/mutants/mutants.toml), in this process: a handshake that
    admits any store under a member's id. A wiped voter then votes with the laggers before
    the voters it chose with are back, and they choose other values for slots its old store
    helped choose: the checkers see it within the first 20 seeds at three nodes."""
    monkeypatch.setattr(Configuration, "admits", lambda self, node, incarnation: None)
    spec = spec_for(3, MEMBERSHIP, "correct")
    _, failing = swarm(spec, range(1, 21), jobs=1, stop_at_violation=True)
    assert failing, "admitting a wiped member under its old id went unnoticed for 20 seeds"
    problems = failing[0].violations
    assert any("applied a different command" in p or "membership:" in p for p in problems), problems


def test_a_store_lost_once_the_membership_changed_is_replaced_and_nothing_breaks() -> None:
    """Lost disks and re-initialised members in runs whose membership changes: a founding
    member's rebuild is stranded once it learns of a later epoch, a joined member's new store
    is refused by its peers; the operator replaces the node that is stuck, and every checker
    holds. (Every fault in every run: no draws.)"""
    faults = frozenset({"membership", "disk-loss", "reinit"})
    spec = spec_for(3, faults, "correct", draws=False)
    report, failing = swarm(spec, range(1, 9), jobs=1)
    assert not failing, [replay_command(spec, r.seed) for r in failing]
    counted = report.faults
    assert counted.get("disk_loss", 0) + counted.get("reinit", 0) > 0, counted
    assert counted.get("membership_stuck_replaced", 0) > 0, counted


def _votes(
    observer: Observer,
    slot: int,
    ballot: Ballot,
    batch: Batch,
    nodes: tuple[int, ...],
    incarnation: int = 1,
) -> None:
    """`nodes` made their acceptance of `batch` at (`slot`, `ballot`) durable."""
    for node in nodes:
        observer.durable(node, incarnation, [AcceptedRecord(slot, ballot, batch)])


def test_the_observer_counts_a_vote_only_from_the_store_a_member_was_recorded_with() -> None:
    # Epoch 1: voters 1, 2, 3, node 3 joined with the store of incarnation 7.
    founding = Configuration((1, 2))
    joined = Configuration((1, 2, 3), (), 1, 10, (Joined(3, 7),))
    epoch1 = Ballot(1 << 40 | 1, 1)
    observer = Observer(founding)
    observer.adopted.append(Adopted(1, 1, joined, 10))
    _votes(observer, 10, epoch1, (b"a",), (1,))
    _votes(observer, 10, epoch1, (b"a",), (3,), incarnation=8)  # node 3's new store
    assert observer.chosen() == []
    _votes(observer, 10, epoch1, (b"a",), (3,), incarnation=7)  # the recorded one
    assert [c.slot for c in observer.chosen()] == [10]


def test_the_observer_finds_a_value_chosen_above_a_stop_and_two_values_in_one_slot() -> None:
    founding = Configuration((1, 2, 3))
    new = Configuration((1, 2), (), 1, first_slot=6)
    change = Reconfigure(Configuration((1, 2), (), 1)).batch()
    good = Observer(founding)
    _votes(good, 5, Ballot(3, 1), change, (1, 2))
    _votes(good, 6, Ballot(1 << 40 | 1, 1), (b"x",), (1, 2))
    _votes(good, 7, Ballot(3, 1), (b"y",), (1,))  # epoch 0's, above the stop: not chosen
    good.adopted.append(Adopted(1, 1, new, 6))
    assert good.problems() == []
    # Epoch 0 also chose slot 7 (its quorum 1 and 3): above its stop.
    bad = Observer(founding)
    _votes(bad, 5, Ballot(3, 1), change, (1, 2))
    _votes(bad, 7, Ballot(3, 1), (b"y",), (1, 3))
    bad.adopted.append(Adopted(1, 1, new, 6))
    assert any("stops" in line for line in bad.problems()), bad.problems()
    # Two values at slot 5, in two ballots: the stop, and a no-op of a later leader.
    two = Observer(founding)
    _votes(two, 5, Ballot(3, 1), change, (1, 2))
    _votes(two, 5, Ballot(4, 3), (), (2, 3))
    assert any("two values chosen at slot 5" in line for line in two.problems())
    # A node adopted epoch 1 from slot 6, but slot 5 chose no change.
    early = Observer(founding)
    _votes(early, 5, Ballot(3, 1), (b"z",), (1, 2))
    early.adopted.append(Adopted(2, 1, new, 6))
    assert any("no membership change" in line for line in early.problems()), early.problems()


def test_no_replacement_is_planned_on_a_configuration_about_to_end() -> None:
    """Seed 95 of `paxosd sim --nodes 3` (every fault): the careless operator chose its
    victim among voters 1,2,3 while the change to voters 1,2 was in flight, and wiped node 2
    once that change was done: one of two voters gone for good, and the cluster never chose
    again (the clients' liveness check failed). An operator plans a replacement only on a
    configuration that no change is about to end."""
    spec = spec_for(3, frozenset(FAULTS), "correct")
    result = run(spec, 95)
    assert result.ok, (result.violations, replay_command(spec, 95))
