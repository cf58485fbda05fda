"""`paxosd up` shows fault tolerance: a node that dies is reported and restarted while the
others keep serving, and the supervisor exits non-zero only when asked to stop or when it
cannot go on. Real processes: the supervisor and its nodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paxosd import Client
from tests.ports import free_layout

from .cluster import _launched

start_timeout_s = 30.0


@dataclass
class Up:
    """A running `paxosd up` and what it started."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    base: int
    stderr_path: Path
    seen_pids: set[int] = field(default_factory=set)

    def endpoint(self, node: int) -> str:
        return f"127.0.0.1:{self.base + node}"

    def endpoints(self) -> list[str]:
        return [self.endpoint(n) for n in (1, 2, 3)]

    def status(self, node: int) -> dict[str, Any] | None:
        url = f"http://{self.endpoint(node)}/v1/status"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                view: dict[str, Any] = json.loads(answer.read())
        except OSError:
            return None
        self.seen_pids.add(int(view["pid"]))
        return view

    def wait_for(self, what: str, condition: Any, timeout_s: float = start_timeout_s) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            assert self.process.poll() is None, f"paxosd up exited:\n{self.stderr()}"
            time.sleep(0.1)
        raise AssertionError(f"{what} within {timeout_s} s; supervisor said:\n{self.stderr()}")

    def view(self, node: int) -> dict[str, Any]:
        """The node's status, once it answers (a busy machine can make one try time out)."""
        found: dict[str, Any] = self.wait_for(f"node {node} answering", lambda: self.status(node))
        return found

    def leader(self) -> int | None:
        for node in (1, 2, 3):
            view = self.status(node)
            if view and view.get("role") == "leader":
                return node
        return None

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@contextmanager
def paxosd_up(tmp_path: Path, *options: str) -> Iterator[Up]:
    base = free_layout(3)
    data_dir = tmp_path / "data"
    stderr_path = tmp_path / "up.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "paxosd", "up", "--base-port", str(base),
                "--data-dir", str(data_dir), *options,
            ],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    _launched.append(process)
    up = Up(process, data_dir, base, stderr_path)
    try:
        up.wait_for("the cluster up", lambda: "event=cluster_up" in up.stderr())
        yield up
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in up.seen_pids:  # nothing may outlive the test, whatever happened
            if _is_our_node(pid, data_dir):
                os.kill(pid, signal.SIGKILL)


def _is_our_node(pid: int, data_dir: Path) -> bool:
    """Still a node of this test's cluster (not a process that reused the pid since)."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(data_dir).encode() in command_line


def test_a_follower_that_dies_is_restarted_while_the_other_two_serve(tmp_path: Path) -> None:
    with paxosd_up(tmp_path, "--restart-delay", "1") as up:
        leader = up.wait_for("a leader", up.leader)
        follower = next(n for n in (1, 2, 3) if n != leader)
        before = up.view(follower)
        os.kill(int(before["pid"]), signal.SIGKILL)
        # The other two keep serving at once: write and read through them.
        others = [up.endpoint(n) for n in (1, 2, 3) if n != follower]
        with Client(others, timeout_s=5) as client:
            for i in range(20):
                client.put(f"while-down-{i}", i)
            assert client.get("while-down-19").value == 19
        # The supervisor brings the node back, and it catches up.
        view = up.wait_for(
            f"node {follower} back",
            lambda: (v := up.status(follower)) and v["pid"] != before["pid"] and v,
        )
        with Client([up.endpoint(follower)], timeout_s=5) as client:
            assert client.get("while-down-19").value == 19
        # Its first answer may come before the leader's first heartbeat; it learns it soon.
        up.wait_for("the leader known", lambda: (v := up.status(follower)) and v["leader"])
        up.wait_for("the catch-up reported", lambda: "event=node_caught_up" in up.stderr())
        said = up.stderr()
        assert f"event=node_exited node={follower}" in said and 'how="killed by SIGKILL"' in said
        assert "quorum=holds" in said and f"event=node_restarted node={follower}" in said
        node_log = (up.data_dir / f"node{follower}" / "node.log").read_text()
        assert "event=node_exited" in node_log  # the node's own log tells its whole story
        assert up.process.poll() is None, "the supervisor must keep running"
        pids = (up.data_dir / "cluster.pids").read_text().split()
        assert str(view["pid"]) in pids and str(before["pid"]) not in pids
        # Asked to stop: every node stops cleanly, and the exit code says it was asked.
        up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(timeout=30) == 128 + signal.SIGTERM
        assert not any(_is_our_node(pid, up.data_dir) for pid in up.seen_pids)
        assert "event=cluster_stopped" in up.stderr()


def test_without_restarts_a_dead_node_stays_down_and_no_node_left_means_exit_1(
    tmp_path: Path,
) -> None:
    with paxosd_up(tmp_path, "--no-restart") as up:
        pids = {n: int(up.view(n)["pid"]) for n in (1, 2, 3)}
        os.kill(pids[1], signal.SIGKILL)
        up.wait_for("the death reported", lambda: "event=node_not_restarted" in up.stderr())
        with Client(up.endpoints()[1:], timeout_s=5) as client:
            client.put("two-left", 1)  # still a quorum
        assert not _is_our_node(pids[1], up.data_dir) and up.process.poll() is None
        os.kill(pids[2], signal.SIGTERM)
        os.kill(pids[3], signal.SIGTERM)
        assert up.process.wait(timeout=30) == 1
        assert "event=supervisor_gives_up" in up.stderr()


def _event_fields(text: str, event: str, node: int) -> list[dict[str, str]]:
    """The key=value fields of every `event=EVENT node=NODE` line in `text`."""
    found = []
    for line in text.splitlines():
        if f"event={event} " in line and f" node={node} " in f" {line} ":
            fields = dict(
                part.split("=", 1) for part in line.split() if "=" in part and '"' not in part
            )
            found.append(fields)
    return found


def test_a_lost_store_is_rebuilt_through_the_supervisor_and_a_hand_started_node_is_left_alone(
    tmp_path: Path,
) -> None:
    """The README's lost-disk recovery once fought `make up`'s supervisor: it restarted the
    node in vain, reported its own failed start as caught up, and the node rebuilt by hand was
    not in cluster.pids. Now the supervisor holds a node whose store is lost and says what to
    do, `paxosd rebuild N` has it rebuilt, node_caught_up waits for the catch-up, and a node
    started by hand is noticed once and listed."""
    # A long restart delay: the node started by hand below must win the race for its store.
    with paxosd_up(tmp_path, "--restart-delay", "10") as up:
        up.wait_for("a leader", up.leader)
        with Client(up.endpoints(), timeout_s=10) as client:
            for i in range(30):
                client.put(f"before-{i}", i)
        doomed = up.view(2)
        (up.data_dir / "node2" / "paxos.log").unlink()  # node 2's disk is lost
        os.kill(int(doomed["pid"]), signal.SIGKILL)
        up.wait_for("the lost store said", lambda: "event=node_store_lost node=2" in up.stderr())
        time.sleep(2)
        said = up.stderr()
        assert said.count("event=node_store_lost node=2") == 1
        assert not _event_fields(said, "node_restarting", 2)  # no start is tried in vain
        assert f"paxosd rebuild 2 --data-dir {up.data_dir}" in said

        asked = subprocess.run(
            [sys.executable, "-m", "paxosd", "rebuild", "2", "--data-dir", str(up.data_dir)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        assert "started with --reinitialize" in asked.stdout
        caught_up = up.wait_for(
            "node 2 caught up",
            lambda: _event_fields(up.stderr(), "node_caught_up", 2),
            timeout_s=90,
        )[0]
        assert int(caught_up["applied"]) >= int(caught_up["leader_commit"]) >= 30
        assert "event=node_rebuilding node=2" in up.stderr()
        view = up.view(2)
        assert view["rebuilding"] is False
        assert str(view["pid"]) in (up.data_dir / "cluster.pids").read_text().split()
        with Client([up.endpoint(2)], timeout_s=10) as client:
            assert client.get("before-29").value == 29

        healthy = subprocess.run(
            [sys.executable, "-m", "paxosd", "rebuild", "1", "--data-dir", str(up.data_dir)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert healthy.returncode == 1 and "runs on its store" in healthy.stderr

        # Node 3 dies and the operator starts it by hand before the supervisor does.
        old = up.view(3)
        os.kill(int(old["pid"]), signal.SIGKILL)
        config = str(up.data_dir / "node3.toml")
        with open(up.data_dir / "node3" / "node.log", "ab") as node_log:
            by_hand = subprocess.Popen(
                [sys.executable, "-m", "paxosd", "node", "--config", config],
                stdout=node_log, stderr=node_log,
            )  # fmt: skip
        _launched.append(by_hand)
        up.wait_for(
            "the hand-started node found",
            lambda: f"event=node_found node=3 pid={by_hand.pid}" in up.stderr(),
            timeout_s=60,
        )
        assert str(by_hand.pid) in (up.data_dir / "cluster.pids").read_text().split()
        time.sleep(3)
        said = up.stderr()
        assert said.count("event=node_running_elsewhere node=3") == 1
        node3_log = (up.data_dir / "node3" / "node.log").read_text()
        assert "LOCK is held" not in node3_log  # the supervisor never tried to start it
        up.process.send_signal(signal.SIGTERM)  # Ctrl-C of `make up` stops it too
        assert up.process.wait(timeout=30) == 128 + signal.SIGTERM
        assert by_hand.wait(timeout=30) == 0
