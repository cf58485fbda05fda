"""`paxosd member list` and `GET /v1/members` on real processes: every member with its vote,
role and applied slot as it says them; a stopped member shown as unreachable."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from paxosd import Client

from .cluster import Cluster


def _member_list(cluster: Cluster) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "member", "list", "--json",
         "--endpoints", ",".join(cluster.endpoints())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_member_list_shows_each_members_vote_role_and_progress(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    revision = Client(cluster.endpoints()).put("k", 1)
    assert revision > 0
    answer = httpx.get(f"http://{cluster.http(1)}/v1/members").json()
    assert answer["cluster_id"] == cluster.configs[0].cluster_id
    assert [(m["id"], m["voting"]) for m in answer["members"]] == [
        (1, "voter"), (2, "voter"), (3, "voter"),
    ]  # fmt: skip
    code, listed = _member_list(cluster)
    assert code == 0 and listed["leader"] == leader and listed["epoch"] == 0
    rows = {row["id"]: row for row in listed["members"]}  # type: ignore[attr-defined]
    assert rows[leader]["role"] == "leader"
    assert sorted(row["role"] for row in rows.values()) == ["follower", "follower", "leader"]
    assert all(row["applied"] >= 1 and row["protocol"] >= 1 for row in rows.values())
    assert listed["refusals"] == []

    stopped = next(n for n in (1, 2, 3) if n != leader)
    cluster.terminate(stopped)
    code, listed = _member_list(cluster)
    rows = {row["id"]: row for row in listed["members"]}  # type: ignore[attr-defined]
    assert code == 0, "a leader with a quorum is still known"
    assert rows[stopped]["role"] == "unreachable" and rows[stopped]["applied"] is None
