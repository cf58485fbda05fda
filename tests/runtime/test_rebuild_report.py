"""Whom a rebuild waits for, and why, as the node reports it (runtime/rebuild_report.py)."""

from __future__ import annotations

from pathlib import Path

from paxosd.runtime.config import local_cluster


def test_a_rebuild_names_each_member_it_waits_for_and_why() -> None:
    from paxosd.core.multi.ready import RebuildWait, Role, Status
    from paxosd.runtime.rebuild_report import RebuildReport

    config = local_cluster(5, Path("/nonexistent"), 7000, "t")[0]
    report = RebuildReport(config, lambda: 0.0)
    report.damaged = {4}
    status = Status(
        node_id=1, role=Role.REBUILDING, leader=None, ballot=None, promised=None,
        highest_seen=None, chosen_upto=0, applied=0, next_slot=1, inflight_slots=0,
        queued_commands=0, forward_commands=0, snapshot_slot=0, elections=0, log_time_ms=0,
        wants_log_time=False,
        rebuild_waiting_for=(
            (2, RebuildWait.REBUILDING), (3, RebuildWait.NO_ANSWER),
            (4, RebuildWait.NO_ANSWER), (5, RebuildWait.NO_ANSWER),
        ),
    )  # fmt: skip
    assert report.reasons(status, connected=[5]) == {
        2: "rebuilding",
        3: "unreachable",
        4: "damaged",
        5: "no_answer",
    }
