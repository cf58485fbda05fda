"""`paxosd up --add` grows a running local cluster by one node, through the log (cli/join.py),
under the supervisor; a later `paxosd up` on the same data directory starts it with the
founding nodes. Real processes: the supervisor, its nodes, and the `--add` command."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from paxosd import Client

from .cluster import _launched
from .test_up import Up, paxosd_up


def _add(up: Up) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paxosd", "up", "--add", "--data-dir", str(up.data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _voters(up: Up, node: int) -> list[int]:
    return list(((up.status(node) or {}).get("configuration") or {}).get("voters", []))


def _refusal(up: Up, node: int) -> str:
    """What the node answers a read with, if it refuses it."""
    try:
        answer = httpx.get(f"http://{up.endpoint(node)}/v1/kv/x", timeout=2)
    except httpx.HTTPError:
        return ""
    return answer.text if answer.status_code >= 400 else ""


def test_up_add_starts_a_fourth_node_that_later_ups_start_too(tmp_path: Path) -> None:
    with paxosd_up(tmp_path) as up:
        up.wait_for("a leader", up.leader)
        with Client(up.endpoints(), timeout_s=10) as client:
            client.put("before-add", 1)
        added = _add(up)
        assert added.returncode == 0, added.stdout + added.stderr
        assert "node 4 is a member" in added.stdout, added.stdout
        assert "event=join_done" in added.stderr
        four = up.view(4)
        assert 4 in four["configuration"]["voters"] and four["incarnation"]
        assert (up.data_dir / "node4.toml").read_text().count("joined = true") == 1
        pids = (up.data_dir / "cluster.pids").read_text().split()
        assert str(four["pid"]) in pids, "the supervisor runs it"
        answer = httpx.get(
            f"http://{up.endpoint(4)}/v1/kv",
            params={"prefix": "before-add", "serializable": "true"},
        )
        assert answer.status_code == 200, answer.text
        assert [kv["key"] for kv in answer.json()["kvs"]] == ["before-add"], answer.text
        again = _add(up)  # node 5 next: ids are never reused by --add
        assert again.returncode == 0, again.stdout + again.stderr
        assert sorted(_voters(up, 1)) == [1, 2, 3, 4, 5]
        removed = subprocess.run(
            [sys.executable, "-m", "paxosd", "member", "remove", "5",
             "--endpoints", up.endpoint(1), "--timeout", "20"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert removed.returncode == 0, removed.stdout + removed.stderr
        # The members stop dialing it at once: it may learn its removal from their refusals
        # rather than from the log, and so writes it down beside its store (runtime/removal.py).
        up.wait_for(
            "node 5 to know it was removed",
            lambda: "is no member" in _refusal(up, 5) and (up.data_dir / "node5/removed").exists(),
        )
        base = up.base
    # A new `paxosd up` (the same --nodes 3) starts node 4, which joined, with the others, but
    # not node 5, whose store says it was removed: it says so, and how to bring it back.
    stderr_path = tmp_path / "up2.stderr"
    stdout_path = tmp_path / "up2.stdout"
    with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "paxosd", "up", "--base-port", str(base),
             "--data-dir", str(up.data_dir)],
            stdout=stdout, stderr=stderr,
        )  # fmt: skip
    _launched.append(process)
    second = Up(process, up.data_dir, base, stderr_path)
    try:
        second.wait_for("the cluster up", lambda: "event=cluster_up nodes=4" in second.stderr())
        assert "event=node_not_started node=5 reason=removed" in second.stderr()
        said = " ".join(stdout_path.read_text().split())
        assert "node 5 is not started: it was removed from the cluster" in said, said
        assert "paxosd up --add --id 5; or forget it: rm -r" in said, said
        assert second.status(5) is None, "node 5 is not started"
        view = second.view(4)
        assert view["configuration"]["voters"] == [1, 2, 3, 4], view
        with Client([second.endpoint(n) for n in (1, 4)], timeout_s=10) as client:
            client.put("after-restart", 2)
            assert client.get("before-add").value == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_up_add_without_a_running_up_says_to_start_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "up", "--add", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no `paxosd up` runs for" in done.stderr
    assert "paxosd up --add in another terminal" in done.stderr


def test_up_add_id_replaces_a_node_whose_store_was_lost(tmp_path: Path) -> None:
    """The runbook "Replace a failed node" under `paxosd up`: the lost node is removed and
    joins again under its id with a new store; the supervisor runs it from then on."""
    import os
    import shutil

    with paxosd_up(tmp_path, "--restart-delay", "1") as up:
        leader = up.wait_for("a leader", up.leader)
        lost = next(n for n in (1, 2, 3) if n != leader)
        old = up.view(lost)
        shutil.rmtree(up.data_dir / f"node{lost}")
        os.kill(int(old["pid"]), signal.SIGKILL)
        up.wait_for("the store held", lambda: "event=node_store_lost" in up.stderr())
        others = [up.endpoint(n) for n in (1, 2, 3) if n != lost]
        removed = subprocess.run(
            [sys.executable, "-m", "paxosd", "member", "remove", str(lost),
             "--endpoints", ",".join(others), "--timeout", "20"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert removed.returncode == 0, removed.stdout + removed.stderr
        added = subprocess.run(
            [sys.executable, "-m", "paxosd", "up", "--add", "--id", str(lost),
             "--data-dir", str(up.data_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        view = up.wait_for(
            f"node {lost} voting again",
            lambda: (v := up.status(lost)) and lost in v["configuration"]["voters"] and v,
        )
        assert view["incarnation"] != old["incarnation"], "a new store is a new identity"
        assert "joined = true" in (up.data_dir / f"node{lost}.toml").read_text()
        assert str(view["pid"]) in (up.data_dir / "cluster.pids").read_text().split()
