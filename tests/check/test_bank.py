"""The bank checker (transactions and ranges over many keys): a correct history passes, and
each planted bug - a transfer applied in part, a stale or lost read, two states at one
revision, a value that no write wrote, time running backwards - is caught."""

from __future__ import annotations

import json

from paxosd.check.bank import check_bank
from paxosd.check.history import History, parse_jsonl
from paxosd.check.workloads import judge_workloads

Row = tuple[object, str, str, object, object, float]
BANK = "bank0"


def history(*rows: Row) -> History:
    keys = ("process", "type", "f", "key", "value", "time")
    return parse_jsonl("\n".join(json.dumps(dict(zip(keys, row, strict=True))) for row in rows))


def opened(p: str, revision: int, t: float) -> list[Row]:
    return [(p, "invoke", "open", BANK, [3, 100], t), (p, "ok", "open", BANK, [revision], t + 1)]


def transfer(p: str, a: int, b: int, amount: int, revision: int, wrote: list[list[int]],
             t: float, outcome: str = "ok") -> list[Row]:  # fmt: skip
    done = [revision, wrote] if outcome == "ok" else None
    return [
        (p, "invoke", "transfer", BANK, [a, b, amount], t),
        (p, outcome, "transfer", BANK, done, t + 1),
    ]


def audit(p: str, revision: int, rows: list[list[int]], t: float) -> list[Row]:
    return [
        (p, "invoke", "audit", BANK, None, t),
        (p, "ok", "audit", BANK, [revision, rows], t + 1),
    ]


OPEN = [[0, 2, 100], [1, 2, 100], [2, 2, 100]]


def good() -> list[Row]:
    return [
        *opened("c1", 2, 0),
        *audit("c2", 2, OPEN, 2),
        *transfer("c1", 0, 1, 30, 3, [[0, 70], [1, 130]], 4),
        *transfer("c2", 0, 2, 10, 0, [], 5, outcome="fail"),  # a compare that failed
        *transfer("c3", 1, 2, 5, 0, [], 6, outcome="info"),  # unknown: it happened at 4
        *audit("c2", 4, [[0, 3, 70], [1, 4, 125], [2, 4, 105]], 8),
        *audit("c1", 4, [[0, 3, 70], [1, 4, 125], [2, 4, 105]], 10),
        *audit("c1", 3, [[0, 3, 70], [1, 3, 130], [2, 2, 100]], 6.5),  # another client, older
    ]


def test_a_correct_history_passes() -> None:
    result = check_bank(history(*good()))
    assert result.ok, result.problems
    assert result.checked == 7
    verdicts = judge_workloads(history(*good()))
    assert list(verdicts) == ["bank"] and verdicts["bank"].ok


def test_a_transfer_applied_in_part() -> None:
    rows = [*opened("c1", 2, 0), *audit("c2", 3, [[0, 3, 70], [1, 2, 100], [2, 2, 100]], 2)]
    result = check_bank(history(*rows))
    assert not result.ok and "sum to 270, not 300" in result.problems[0]


def test_a_stale_read_misses_an_acknowledged_write() -> None:
    rows = [
        *opened("c1", 2, 0),
        *transfer("c1", 0, 1, 30, 3, [[0, 70], [1, 130]], 2),
        *audit("c2", 3, OPEN, 4),  # revision 3 claimed, but the write at 3 is not there
    ]
    result = check_bank(history(*rows))
    assert not result.ok
    assert any("acknowledged write at revision 3" in p for p in result.problems)


def test_two_states_at_one_revision() -> None:
    rows = [
        *opened("c1", 2, 0),
        *audit("c2", 2, OPEN, 2),
        *audit("c3", 2, [[0, 2, 100], [1, 2, 100]], 2),
    ]
    result = check_bank(history(*rows))
    assert not result.ok and "at revision 2 reads" in result.problems[0]


def test_a_value_no_write_wrote() -> None:
    rows = [
        *opened("c1", 2, 0),
        *transfer("c1", 0, 1, 30, 3, [[0, 70], [1, 130]], 2),
        *audit("c2", 3, [[0, 3, 60], [1, 3, 140], [2, 2, 100]], 4),
    ]
    result = check_bank(history(*rows))
    assert any("the write at 3 wrote 70" in p for p in result.problems)


def test_time_runs_backwards_for_a_client() -> None:
    rows = [
        *opened("c1", 2, 0),
        *transfer("c1", 0, 1, 30, 3, [[0, 70], [1, 130]], 2),
        *audit("c1", 2, OPEN, 4),  # after its own write at 3, it reads revision 2
    ]
    result = check_bank(history(*rows))
    assert any("ended before it began" in p for p in result.problems)


def test_a_negative_balance_and_a_version_from_the_future() -> None:
    rows = [*opened("c1", 2, 0), *audit("c2", 2, [[0, 2, -1], [1, 5, 201], [2, 2, 100]], 2)]
    problems = check_bank(history(*rows)).problems
    assert any("holds -1" in p for p in problems)
    assert any("after the read's revision 2" in p for p in problems)


def test_a_bank_opened_twice() -> None:
    rows = [*opened("c1", 2, 0), *opened("c2", 5, 3)]
    assert "opened twice" in check_bank(history(*rows)).problems[0]


def test_a_stale_read_after_another_clients_write() -> None:
    rows = [
        *opened("c1", 2, 0),
        *transfer("c1", 0, 1, 30, 3, [[0, 70], [1, 130]], 2),
        *audit("c2", 2, OPEN, 4),  # began after the write at 3 ended, reads revision 2
    ]
    problems = check_bank(history(*rows)).problems
    assert any("a stale read" in p for p in problems), problems
