"""The book's Example 2 (multi-leader replication and its consensus-backed fix) and the
service's Multi-Paxos engine as lab cores: what the explorer finds, what a replica keeps."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from paxosd.cli.main import main
from paxosd.core.lessons.replication import ReplicaNode
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope
from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, run_check
from paxosd.lab.multipaxos import MultiPaxosNode
from paxosd.lab.play import tours
from paxosd.lab.play.session import PlayConfig, Session
from paxosd.sim.explorer import NOOP, LogEntry, disagrees


def check(algorithm: str, **options: object) -> dict[str, object]:
    report = run_check(CheckRequest(get(algorithm), explore=True, **options))  # type: ignore[arg-type]
    return report.to_json()


def test_multi_leader_replication_breaks_agreement_with_two_sign_ups_and_nothing_else() -> None:
    """The explorer's shortest run: Alice signs up at replica 1, Bob at replica 2. No crash
    and no lost message is needed; each replica answered its web server on its own."""
    report = check("replication", crashes=0, faults=frozenset())
    assert report["properties"]["agreement"] == "violated"
    assert report["fault_tolerance"] == "violated"
    steps = report["counterexamples"]["agreement"]["trace"]
    assert [(s["kind"], s["node"], s["value"]) for s in steps] == [
        ("propose", 1, "alice"),
        ("propose", 2, "bob"),
    ]


def test_a_consensus_backed_table_never_holds_two_owners() -> None:
    """The same sign-ups through Paxos: every reachable state agrees (two replicas, so the
    whole space is small enough for every run of the suite)."""
    report = check("replication", variant="consensus", nodes=2, crashes=0, faults=frozenset())
    assert report["properties"] == {
        "agreement": "holds",
        "validity": "holds",
        "termination": "holds",
    }
    assert report["fault_tolerance"] == "holds"


def test_a_replica_that_syncs_late_keeps_its_own_row_and_records_the_conflict() -> None:
    node = ReplicaNode(1, (1, 2, 3), random.Random(0), CoreConfig())
    effects = node.propose("alice")
    assert effects.decided == ["alice"] and effects.persist, "registered, durably, at once"
    assert {e.dst for e in effects.send} == {2, 3}, "the row is sent to the others (lazily)"
    conflict = node.step(Envelope(2, 1, effects.send[0].msg.__class__(owner="bob")))
    assert node.query() == "alice" and node.conflicts == frozenset({"bob"})
    assert not conflict.decided and conflict.persist
    restarted = ReplicaNode(1, (1, 2, 3), random.Random(0), CoreConfig(), [conflict.persist[-1]])
    assert restarted.query() == "alice" and restarted.conflicts == frozenset({"bob"})


def test_decisions_of_a_log_agree_slot_by_slot() -> None:
    """Different values in different slots are one log; two values in one slot are not."""
    one_log = frozenset({(1, LogEntry(1, NOOP)), (2, LogEntry(2, "red")), (3, LogEntry(1, NOOP))})
    assert not disagrees(one_log)
    split = frozenset({(1, LogEntry(2, "red")), (2, LogEntry(2, "blue"))})
    assert disagrees(split)
    assert disagrees(frozenset({(1, "red"), (2, "blue")})) and not disagrees(
        frozenset({(1, "red"), (2, "red")})
    )


def play_multi_paxos_tour() -> Session:
    tour = tours.TOURS["multi-paxos"]
    session = Session(tour.config)
    progress = tours.start(session, tour)
    for stage in tour.stages:
        if stage.show:
            session.apply_all(list(stage.show))
            tours.advance(session, progress)
    tours.advance(session, progress, next_pressed=True)  # the closing words wait for "next"
    assert progress.finished
    return session


def test_the_engine_in_the_lab_refills_the_log_after_its_leader_dies() -> None:
    """The engine itself: node 2 takes over, re-proposes blue in slot 3 (a quorum had
    accepted it there) and fills slot 2, which nobody reported, with a no-op."""
    session = play_multi_paxos_tour()
    node2 = session.state.cores[1]
    assert isinstance(node2, MultiPaxosNode)
    assert node2.log() == (LogEntry(1, NOOP), LogEntry(2, NOOP), LogEntry(3, "blue"))
    assert "red" not in {entry.value for _, entry in session.state.decided}
    assert not disagrees(session.state.decided)
    view = session.explorer.invalid_decision(session.state)
    assert view == "", "a no-op is a valid decision in a log"


def test_a_restarted_engine_node_replays_exactly_what_it_had_accepted() -> None:
    session = play_multi_paxos_tour()
    node2 = session.state.cores[1]
    assert isinstance(node2, MultiPaxosNode)
    record = session.state.disks[1]
    revived = MultiPaxosNode(2, (1, 2, 3), random.Random(0), CoreConfig(), [record])
    assert revived.replica.acceptor.promised == node2.replica.acceptor.promised
    assert revived.replica.acceptor.entries == node2.replica.acceptor.entries


def test_an_engine_nodes_state_key_ignores_its_statistics_but_not_its_state() -> None:
    node = MultiPaxosNode(1, (1, 2, 3), random.Random(0), CoreConfig())
    twin = node.clone()
    twin.replica.elections += 5  # a counter an operator reads; it changes nothing ahead
    assert twin.state_key() == node.state_key()
    twin.tick()
    assert twin.state_key() != node.state_key(), "a timer that fired is a new state"


def test_a_short_exploration_of_the_engine_says_how_far_it_got() -> None:
    report = check("multipaxos", crashes=0, faults=frozenset(), states_max=3_000)
    assert report["stopped"] == "state limit"
    assert report["properties"]["agreement"] == "unknown"
    assert "every run of up to" in report["details"]["agreement"]
    assert report["fault_tolerance"] == "unknown"


def test_the_cli_names_the_story_and_refuses_what_it_cannot_judge() -> None:
    runner = CliRunner()
    story = runner.invoke(main, ["lab", "scenario", "replication-conflict"], env={"COLUMNS": "200"})
    assert story.exit_code == 0, story.output
    assert "replica 2: paxos_expert -> bob" in story.output
    assert "violated" in story.output and "in this run" in story.output
    swarm = runner.invoke(main, ["lab", "check", "multipaxos", "--runs", "5"])
    assert swarm.exit_code == 2 and "paxosd sim" in swarm.output
    checked = runner.invoke(
        main, ["lab", "check", "replication", "--explore", "--crashes", "0", "--faults", "",
               "--json"],
    )  # fmt: skip
    assert checked.exit_code == 1
    assert json.loads(checked.output)["counterexamples"]["agreement"]["steps"] == 2


def test_both_new_stories_play_in_the_page_model() -> None:
    """A replication session offers the sign-ups by the users' names."""
    session = Session(PlayConfig("replication", crashes=0, faults=frozenset()))
    assert session.values == ["alice", "bob"]
    names = {a.id for a in session.actions()}
    assert {"propose:1:alice", "propose:2:bob"} <= names
