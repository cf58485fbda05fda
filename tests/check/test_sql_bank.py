"""The chaos harness's SQL bank checker (check/workloads.py `check_sql_bank`): every audit
must find the opening total; a history where money appeared or vanished fails."""

from __future__ import annotations

import json

from paxosd.check.history import History, parse_jsonl
from paxosd.check.workloads import judge_workloads

TABLE = "chaos_run"


def history(*rows: tuple[object, ...]) -> History:
    keys = ("process", "type", "f", "key", "value", "time")
    return parse_jsonl("\n".join(json.dumps(dict(zip(keys, row, strict=True))) for row in rows))


def run(total: int) -> History:
    return history(
        ("p0", "invoke", "sql-open", TABLE, [4, 100], 0.0),
        ("p0", "ok", "sql-open", TABLE, None, 0.1),
        ("p1", "invoke", "sql-transfer", TABLE, [0, 1], 0.2),
        ("p1", "ok", "sql-transfer", TABLE, [0, 1, 30], 0.3),
        ("p2", "invoke", "sql-transfer", TABLE, [2, 3], 0.2),
        ("p2", "info", "sql-transfer", TABLE, None, 0.4),
        ("p0", "invoke", "sql-audit", TABLE, None, 0.5),
        ("p0", "ok", "sql-audit", TABLE, [total, 4], 0.6),
    )


def test_audits_of_the_opening_total_pass() -> None:
    verdict = judge_workloads(run(400))["sql"]
    assert verdict.ok and verdict.checked == 4


def test_money_created_by_a_lost_update_fails() -> None:
    verdict = judge_workloads(run(430))["sql"]
    assert not verdict.ok
    assert "holds 430, not 400" in verdict.problems[0]
