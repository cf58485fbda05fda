"""The play session model without a browser: apply, undo, fork, branches, versions, the coach,
replaying trace files, and every tour run to its end."""

from __future__ import annotations

import json

import pytest

from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, run_check
from paxosd.lab.play import tours
from paxosd.lab.play.coach import advise
from paxosd.lab.play.replay import session_from_trace, step_specs
from paxosd.lab.play.server import open_trace
from paxosd.lab.play.session import BadAction, PlayConfig, Session, Stale
from paxosd.lab.tracefile import load


def rows(session: Session, node: int) -> dict[str, str]:
    core = session.state.cores[node - 1]
    assert core is not None
    return dict(core.view())  # type: ignore[attr-defined]


def paxos() -> Session:
    return Session(PlayConfig("paxos"))


def test_delivering_a_prepare_changes_the_acceptors_promise() -> None:
    """The session drives the real Paxos core: a delivered Prepare is promised."""
    session = paxos()
    assert rows(session, 2)["promised"] == "-"
    session.apply("propose:1:red")
    prepare = session.find({"kind": "deliver", "dst": 2, "msg": "Prepare(1.1)"})
    session.apply(prepare)
    assert rows(session, 2)["promised"] == "1.1"
    assert session.cursor == 2 and session.version == 2
    assert [m for m in session.in_flight() if m.dst == 1 and m.src == 2], "the Promise is sent"


def test_stepping_back_restores_the_earlier_state_exactly() -> None:
    session = paxos()
    session.apply("propose:1:red")
    before = session.state.key()
    session.apply(session.find({"kind": "deliver", "dst": 2}))
    session.apply("crash:2")
    assert session.state.cores[1] is None
    session.goto(1)
    assert session.state.key() == before
    assert rows(session, 2)["promised"] == "-"
    session.goto(3)  # forward again along the same branch
    assert session.state.cores[1] is None


def test_acting_from_an_earlier_step_forks_and_keeps_the_old_branch() -> None:
    session = paxos()
    session.apply("propose:1:red")
    session.apply("propose:2:blue")
    old = list(session.branch.points)
    session.goto(1)
    session.apply("crash:3")
    assert len(session.branches) == 2 and session.current == 1
    assert session.branch.forked_at == 1 and session.cursor == 2
    assert session.branches[0].points == old, "the old branch is kept as it was"
    session.switch(0)
    assert session.cursor == 2 and session.steps()[-1].kind == "propose"
    session.fork()
    assert len(session.branches) == 3
    session.discard(2)
    assert len(session.branches) == 2 and session.current == 1


def test_bad_requests_are_refused_with_what_to_do() -> None:
    session = paxos()
    with pytest.raises(BadAction, match="no action 'deliver:99' at step 0"):
        session.apply("deliver:99")
    session.apply("propose:1:red")
    with pytest.raises(Stale, match="another tab"):
        session.apply("crash:1", version=0)
    with pytest.raises(BadAction, match="steps 0 to 1"):
        session.goto(5)
    with pytest.raises(BadAction, match="only branch"):
        session.discard(0)
    with pytest.raises(ValueError, match="choose one of"):
        PlayConfig.from_json({"algorithm": "paxos", "variant": "nope"})
    with pytest.raises(ValueError, match="algorithm"):
        PlayConfig.from_json({"nodes": 3})
    with pytest.raises(ValueError, match="between 1 and 7"):
        PlayConfig.from_json({"algorithm": "paxos", "nodes": 50})


def test_the_coach_at_step_0_finds_the_same_counterexample_as_lab_check() -> None:
    """One code path: the coach's shortest way to get stuck is lab check's."""
    session = Session(PlayConfig("majority"))
    advice = advise(session, seconds=600)
    cli = run_check(CheckRequest(get("majority"), explore=True, rounds=2))
    path = [step.render() for step in advice.paths["termination"]]
    assert path == [s["text"] for s in cli.counterexamples["termination"]["trace"]]
    assert advice.outlook == "bivalent" and advice.valence == ["red", "blue"]
    assert advice.command.startswith("paxosd lab check majority --explore")


def test_the_coach_marks_flps_critical_message_and_sees_the_crash_that_kills() -> None:
    session = Session(PlayConfig("majority"))
    session.apply_all([{"kind": "propose", "node": 1}, {"kind": "propose", "node": 2}])
    advice = advise(session, seconds=600)
    fatal = [c for c in advice.critical if c.fatal]
    assert fatal and fatal[0].receiver == 3 and "Propose(red)" in fatal[0].text
    session.apply("crash:3")
    assert advise(session, seconds=600).outlook == "stuck"


def test_an_explored_counterexample_file_replays_step_by_step_at_step_0(tmp_path: object) -> None:
    report = run_check(
        CheckRequest(get("failover"), explore=True, crashes=0, faults=frozenset({"partition"}),
                     keep_going=False)
    )  # fmt: skip
    document = json.loads(json.dumps(report.trace_document(), default=str))
    lab_trace = load(document)
    assert lab_trace.property == "agreement" and lab_trace.model == "explored"
    assert len(step_specs(lab_trace.trace)) == report.counterexamples["agreement"]["steps"]
    session = session_from_trace(lab_trace)
    assert session.cursor == 0 and len(session.branch.points) - 1 == 7
    session.goto(7)
    assert len({value for _, value in session.state.decided}) == 2, "split brain, replayed"
    assert [s.render() for s in session.steps()] == [
        s["text"] for s in report.counterexamples["agreement"]["trace"]
    ]


def test_a_scenario_run_opens_as_a_recorded_run_at_step_0() -> None:
    from paxosd.cli.lab import scenario_document
    from paxosd.lab import scenarios

    result = scenarios.SCENARIOS["split-vote"][0](1)
    run = open_trace(json.loads(json.dumps(scenario_document(result), default=str)))
    assert run.cursor == 0 and run.nodes == 7
    run.goto(len(run.trace))
    assert any(not n["up"] for n in run.node_views()), "node 7 crashed"


def test_a_malformed_trace_file_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a lab trace"):
        load({"trace": []})
    with pytest.raises(ValueError, match="cannot be taken"):
        session_from_trace(
            load({"format": "paxosd-lab-trace", "version": 1, "model": "explored",
                  "config": {"algorithm": "paxos"},
                  "trace": [{"t": 1, "seq": 0, "ev": "crash", "node": 9}]})
        )  # fmt: skip


@pytest.mark.parametrize("key", list(tours.TOURS))
def test_each_tour_runs_to_its_end_with_show_me_and_the_coach(key: str) -> None:
    """A learner who presses "show me" (or asks the coach, or "next") finishes every tour,
    and each check passes only once its task is done."""
    tour = tours.TOURS[key]
    session = Session(tour.config)
    progress = tours.start(session, tour)
    for _ in range(len(tour.stages) + 1):
        if progress.finished:
            break
        stage = progress.current
        if stage.done is not None:
            assert not stage.done(session, progress), f"{key}: stage {progress.stage} done early"
        if stage.done is None:
            tours.advance(session, progress, next_pressed=True)
            continue
        if stage.show:
            session.apply_all(list(stage.show))
        else:
            if stage.coach_at is not None:
                session.goto(stage.coach_at)
            advice = advise(session, seconds=600)
            tours.heard(progress, session.cursor, advice)
        assert tours.advance(session, progress), f"{key}: stage {progress.stage} not passed"
    assert progress.finished
