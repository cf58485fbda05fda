"""The lab's lesson "why a member list changes only through the log", on the service's own
engine: an operator asks the leader of three nodes for voters 1,2 while a client sends red.
With either planted bug of a change (`past-stop`: the leader goes on proposing above the stop
of its change; `accepted-config`: a follower uses the change once accepted) the explorer finds
the shortest run that decides two values for one slot; the engine as designed passes the
same search, bounded at the longer run's length (it fails under mutants R1 and R2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from paxosd.cli.lab import _draw_counterexample
from paxosd.cli.main import main
from paxosd.lab import tracefile
from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, explore_budget, run_check
from paxosd.lab.membership import story
from paxosd.lab.play.replay import session_from_trace
from paxosd.lab.play.session import PlayConfig, Session
from paxosd.sim.engine_swarm import spec_for, swarm
from paxosd.sim.explorer import Explorer, LogEntry

STORY = {"nodes": 3, "values": 1, "crashes": 0, "faults": frozenset(), "change": (1, 2)}


def _request(variant: str, **options: Any) -> CheckRequest:
    return CheckRequest(
        get("multipaxos"),
        variant=variant,
        explore=True,
        timeouts=1,
        keep_going=False,
        **STORY,
        **options,
    )


def _decisions(trace: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [
        (note["node"], note["text"].removeprefix("decides "))
        for step in trace
        for note in step.get("notes", [])
        if note["text"].startswith("decides ")
    ]


def test_a_leader_that_proposes_past_its_stop_lets_two_epochs_fill_one_slot(
    tmp_path: Path,
) -> None:
    checked = run_check(_request("past-stop"))
    report = checked.to_json()
    assert report["properties"]["agreement"] == "violated"
    assert report["stopped"] == "violation"
    counterexample = report["counterexamples"]["agreement"]
    # The shortest run: nothing shorter breaks Agreement (breadth first), found at 12 steps
    # after the change and red were sent to the leader.
    assert counterexample["steps"] == 12
    decided = _decisions(counterexample["trace"])
    assert (1, "slot 2: voters 1,2") in decided, "the change is chosen at slot 2: the stop"
    assert (1, "slot 3: red") in decided, "the old voters chose red above the stop"
    assert (2, "slot 3: no-op") in decided, "the new epoch filled the same slot with a no-op"
    assert not report["details"]["agreement"].count("node 3"), "node 3 was removed: no vote"
    text = [step["text"] for step in counterexample["trace"]]
    assert sum("times out" in line for line in text) == 1, "within the one timer firing"
    asked = [line for line in report["start"] if " proposes " in line]
    assert report["start"][-2:] == asked, "the story starts once the change and red are sent"
    # The diagram draws the whole run, the election that starts the story included.
    picture = tmp_path / "past-stop.svg"
    _draw_counterexample(checked, str(picture))
    drawn = picture.read_text()
    for text in ("propose voters 1,2", "decides slot 3: red", "decides slot 3: no-op"):
        assert text in drawn, text
    # lab play opens the trace file and replays the run with the real cores, step by step.
    session = session_from_trace(tracefile.load(checked.trace_document()))
    assert len(session.branch.points) - 1 == 17 + 12, "the story's start, then the run"
    session.goto(len(session.branch.points) - 1)
    assert {(1, LogEntry(3, "red")), (2, LogEntry(3, "no-op"))} <= session.state.decided


def test_a_follower_that_uses_a_change_it_only_accepted_lets_a_new_leader_undo_it() -> None:
    """The other planted bug (mutant R1's): node 2 enters epoch 1 on accepting the change,
    campaigns there from slot 2 (it never learned slot 2 chosen), and its phase 1 reads the
    change as overtaken by node 1's later ballots above it: it fills slot 2 with a no-op."""
    report = run_check(_request("accepted-config")).to_json()
    assert report["properties"]["agreement"] == "violated"
    counterexample = report["counterexamples"]["agreement"]
    assert counterexample["steps"] == 13
    decided = _decisions(counterexample["trace"])
    assert (1, "slot 2: voters 1,2") in decided
    assert (2, "slot 2: no-op") in decided
    first = counterexample["trace"][0]["text"]
    assert first.startswith("2 receives Accept(1.1, slot 2: voters 1,2)") and (
        "epoch_adopted epoch=1" in first
    ), "node 2 enters the new epoch on accepting the change"


def test_the_engine_as_designed_passes_the_same_search_to_the_same_depth() -> None:
    request = _request("correct", depth_max=13)
    budget, config = explore_budget(request)
    values = request.explored_values()
    explorer = Explorer(get("multipaxos").factory, budget, config, values, proposers=[1, 1])
    start, _ = story(explorer)
    exploration = explorer.explore(start=start, livelock=False)
    assert exploration.stopped == "depth limit"
    assert exploration.depth_checked == 13
    assert not exploration.counterexamples
    for prop in ("agreement", "validity"):
        assert "every run of up to 13 steps checked" in exploration.verdicts[prop].detail
    # Not a vacuous pass: within the bound the change is chosen at slot 2, and red waits
    # for the new epoch's leader, whose no-op opens the epoch at slot 3: red comes after.
    decided = set().union(*exploration.graph.decided_values)
    assert decided == {
        LogEntry(1, "no-op"),
        LogEntry(2, "voters 1,2"),
        LogEntry(3, "no-op"),
        LogEntry(4, "red"),
    }


def test_the_simulator_catches_the_same_planted_bug_within_a_few_seeds() -> None:
    """`past-stop` is an engine variant, so the simulator's membership checker (an epoch
    chooses nothing above its stop) judges the very bug the explorer shows."""
    spec = spec_for(3, frozenset({"membership"}), "past-stop")
    _, failing = swarm(spec, range(1, 6), jobs=1, stop_at_violation=True)
    assert failing, "no seed of 1-5 caught it"
    violations = failing[0].violations
    assert any("stopped at slot" in v for v in violations), violations


def test_the_lesson_runs_from_the_command_line() -> None:
    result = CliRunner().invoke(
        main,
        ["lab", "check", "multipaxos", "--explore", "--change", "1,2", "--values", "1",
         "--crashes", "0", "--faults", "", "--timeouts", "0"],
    )  # fmt: skip
    # No timer may fire: the new epoch never elects a leader, and nothing breaks. Exit 3:
    # Termination is not judged in this story (every node decided slot 1 before it starts).
    assert result.exit_code == 3, result.output
    assert "explored every state" in result.output
    assert "not judged in this story" in result.output
    assert "operator at 1 proposes voters 1,2" in result.output


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"change": (2, 3)}, "node 1 leads when the change is asked"),
        ({"change": (1, 4)}, "names voters among the nodes 1..3"),
        ({"change": (1, 2, 3)}, "other voters than the cluster's own"),
        ({"timeouts": -1}, "--timeouts and --max-depth must be at least 0"),
    ],
)
def test_a_change_the_story_cannot_tell_is_refused_with_the_reason(
    options: dict[str, Any], error: str
) -> None:
    request = _request("correct")
    fields = {**STORY, "timeouts": 1, **options}
    with pytest.raises(ValueError, match=error):
        CheckRequest(get("multipaxos"), variant="correct", explore=True, **fields).validate()
    assert request.change == (1, 2)


def test_change_is_for_the_explored_engine_only() -> None:
    with pytest.raises(ValueError, match="--change is a membership change of multipaxos"):
        CheckRequest(get("paxos"), explore=True, change=(1, 2)).validate()
    with pytest.raises(ValueError, match="bound the explorer: add --explore"):
        CheckRequest(get("paxos"), timeouts=1).validate()
    result = CliRunner().invoke(
        main, ["lab", "check", "multipaxos", "--explore", "--change", "one,two"]
    )
    assert result.exit_code == 2
    assert "--change takes node ids separated by commas" in result.output


def test_a_diagram_path_of_no_known_format_is_refused_before_the_search() -> None:
    result = CliRunner().invoke(
        main, ["lab", "check", "multipaxos", "--explore", "--html", "run.png"]
    )
    assert result.exit_code == 2
    assert "--html takes a path ending in .html (a page) or .svg (a picture)" in result.output


def test_the_story_can_be_played_from_the_cold_start() -> None:
    session = Session(PlayConfig("multipaxos", values=1, crashes=0, faults=frozenset(),
                                 change=(1, 2)))  # fmt: skip
    proposals = {a.id for a in session.actions() if a.step.kind == "propose"}
    assert proposals == {"propose:1:voters 1,2", "propose:1:red"}
    assert "--change 1,2" in session.config.command()
    assert PlayConfig.from_json(session.config.to_json()) == session.config
    refused = CliRunner().invoke(main, ["lab", "play", "multipaxos", "--change", "2,3"])
    assert refused.exit_code == 2
    assert "node 1 leads when the change is asked" in refused.output
