"""A node's table of open interactive transactions: abandoned ones time out and hold nothing,
the table is bounded, and an unknown id is a clear 404."""

from __future__ import annotations

import pytest

from paxosd.api.failures import ApiError
from paxosd.api.sql_transactions import Transactions
from paxosd.service.sql import Statement


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_transaction_times_out_and_its_writes_are_gone() -> None:
    clock = Clock()
    table = Transactions(idle_timeout_s=30, clock=clock)
    txn = table.begin(revision=4)
    table.add_writes(txn, (Statement("INSERT INTO t VALUES (1)"),))
    clock.now = 29.0
    assert table.get(txn.id) is txn  # touched: its deadline moves on
    clock.now = 58.0
    assert table.get(txn.id).pending == [Statement("INSERT INTO t VALUES (1)")]
    clock.now = 88.5
    with pytest.raises(ApiError) as refused:
        table.get(txn.id)
    assert refused.value.status == 404 and "idle for 30 s" in str(refused.value)
    assert len(table) == 0


def test_the_table_is_bounded_and_expired_ones_make_room() -> None:
    clock = Clock()
    table = Transactions(idle_timeout_s=10, open_max=2, clock=clock)
    table.begin(1)
    table.begin(1)
    with pytest.raises(ApiError) as refused:
        table.begin(1)
    assert refused.value.status == 429
    clock.now = 11
    assert table.begin(1).begin_revision == 1


@pytest.mark.parametrize("txn_id", [None, 5, "", "nope", ["x"]])
def test_unknown_ids_are_404(txn_id: object) -> None:
    with pytest.raises(ApiError) as refused:
        Transactions().get(txn_id)
    assert refused.value.status == 404
