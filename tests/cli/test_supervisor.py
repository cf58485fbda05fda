"""The supervisor's restart policy, with real (tiny) processes in place of nodes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from paxosd.cli.supervisor import Backoff, NodeProcess, Supervisor, exit_description


@pytest.fixture(autouse=True)
def info_level(caplog: pytest.LogCaptureFixture) -> None:
    """What `paxosd up` logs by default (--log-level info)."""
    caplog.set_level(logging.INFO)


def node(tmp_path: Path, number: int, code: str) -> NodeProcess:
    argv = [sys.executable, "-c", code]
    return NodeProcess(number, argv, tmp_path / f"node{number}" / "node.log", ("127.0.0.1", 1))


def test_the_pause_doubles_per_quick_failure_up_to_its_maximum() -> None:
    backoff = Backoff(delay_s=5, delay_s_max=60)
    assert [backoff.pause_s(n) for n in range(7)] == [5, 5, 10, 20, 40, 60, 60]


def test_return_codes_read_as_words() -> None:
    assert exit_description(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_description(0) == "exited 0 (clean shutdown)"
    assert exit_description(70) == "exited 70 (fsync failed)"
    assert exit_description(5) == "exited 5"


def test_a_node_that_keeps_failing_at_start_is_given_up_and_then_nothing_can_go_on(
    tmp_path: Path,
) -> None:
    failing = node(tmp_path, 1, "import sys; sys.exit(3)")
    supervisor = Supervisor(
        [failing], backoff=Backoff(delay_s=0.05, stable_s=10, quick_failures_max=3)
    )
    supervisor.start_all()
    outcome = supervisor.run(threading.Event(), poll_s=0.02)
    supervisor.stop_all()
    supervisor.close()
    assert outcome == "no node" and failing.given_up and failing.starts == 3
    log = failing.log_path.read_text()
    assert log.count("event=node_exited") == 3 and log.count("event=node_restarting") == 2
    assert "event=node_given_up" in log and "exited 3 times in a row" in log


def test_the_others_keep_running_while_one_is_restarted_and_stop_ends_them_all(
    tmp_path: Path,
) -> None:
    steady = [node(tmp_path, n, "import time; time.sleep(60)") for n in (1, 2)]
    flaky = node(tmp_path, 3, "import sys; sys.exit(1)")
    supervisor = Supervisor(
        [*steady, flaky], backoff=Backoff(delay_s=0.05, stable_s=10, quick_failures_max=2),
        pids_path=tmp_path / "cluster.pids",
    )  # fmt: skip
    supervisor.start_all()
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    try:
        assert supervisor.run(stop, poll_s=0.02) == "asked"
        assert flaky.given_up and all(n.running for n in steady)
        pids = (tmp_path / "cluster.pids").read_text().split()
        assert sorted(pids) == sorted(str(n.process.pid) for n in steady if n.process)
    finally:
        timer.cancel()
        supervisor.stop_all()
        supervisor.close()
    assert not any(n.running for n in steady)
    assert "running=2/3 quorum=holds" in flaky.log_path.read_text()


def test_with_restarts_off_a_dead_node_stays_down(tmp_path: Path) -> None:
    done = node(tmp_path, 1, "pass")
    supervisor = Supervisor([done], restart=False)
    supervisor.start_all()
    assert supervisor.run(threading.Event(), poll_s=0.02) == "no node"
    supervisor.close()
    assert done.starts == 1 and "restarts are off" in done.log_path.read_text()


def test_a_node_whose_store_is_lost_is_held_until_a_rebuild_is_asked_for(
    tmp_path: Path,
) -> None:
    """No start in vain: the supervisor says once what to do, and `paxosd rebuild` (through
    the control files) starts the node with --reinitialize."""
    from paxosd.cli.control import ask_rebuild

    lost = node(tmp_path, 1, "import sys, time; time.sleep(60 * ('--reinitialize' in sys.argv))")
    lost.data_dir = tmp_path / "node1"
    lost.data_dir.mkdir(parents=True)
    supervisor = Supervisor(
        [lost], backoff=Backoff(delay_s=0.05), control_dir=tmp_path,
        pids_path=tmp_path / "cluster.pids",
    )  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop, 0.02))
    try:
        supervisor.start_all()
        assert lost.process is None and lost.held == "store lost"
        runner.start()
        assert (tmp_path / "supervisor.pid").read_text().strip() == str(os.getpid())
        answer = ask_rebuild(tmp_path, 1)
        assert answer is not None and answer.accepted, answer
        assert "--reinitialize" in answer.detail
        refused = ask_rebuild(tmp_path, 9)
        assert refused is not None and not refused.accepted and "no node 9" in refused.detail
    finally:
        stop.set()
        runner.join(10)
        supervisor.stop_all()
        supervisor.close()
    log = lost.log_path.read_text()
    assert log.count("event=node_store_lost") == 1 and "paxosd rebuild 1" in log
    assert "event=node_rebuilding" in log
    assert not (tmp_path / "supervisor.pid").exists()


def test_a_node_that_joined_and_lost_its_store_is_not_rebuilt_but_told_to_join_again(
    tmp_path: Path,
) -> None:
    """Its peers know it by the store it joined with: a rebuild under its id would only be
    refused by every one of them. The supervisor says to remove it and join it again."""
    lost = node(tmp_path, 4, "import time; time.sleep(60)")
    lost.data_dir = tmp_path / "node4"
    lost.data_dir.mkdir(parents=True)
    lost.joined = True
    supervisor = Supervisor([lost], backoff=Backoff(delay_s=0.05), control_dir=tmp_path)
    try:
        supervisor.start_all()
        assert lost.process is None and lost.held == "store lost"
        refused = supervisor.rebuild(4)
        assert not refused.accepted and "paxosd up --add --id 4" in refused.detail
        assert lost.process is None
    finally:
        supervisor.stop_all()
        supervisor.close()
    log = lost.log_path.read_text()
    assert "event=node_store_lost" in log and "paxosd member remove 4" in log
    assert "paxosd rebuild" not in log


def test_a_node_started_by_hand_is_left_alone(tmp_path: Path) -> None:
    from paxosd.storage.fsutil import lock_dir

    taken = node(tmp_path, 1, "import time; time.sleep(60)")
    taken.data_dir = tmp_path / "node1"
    taken.data_dir.mkdir(parents=True)
    (taken.data_dir / "paxos.log").write_bytes(b"a store")
    lock = lock_dir(taken.data_dir)  # held by "another process": this test
    supervisor = Supervisor([taken], backoff=Backoff(delay_s=0.05))
    try:
        supervisor.start_all()
        for _ in range(5):
            supervisor.step()
        assert taken.process is None and taken.elsewhere_since is not None
        assert supervisor.can_go_on()
    finally:
        os.close(lock)
        supervisor.stop_all()
        supervisor.close()
    assert taken.log_path.read_text().count("event=node_running_elsewhere") == 1
