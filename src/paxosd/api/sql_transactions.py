"""Interactive SQL transactions: what one node remembers of each while its client works.

Theory of operation: a transaction is optimistic (service/sql/machine.py says why it is
serializable), so the cluster holds nothing for it until its commit: no lock, no log entry.
The node the client talks to keeps, per transaction, the revision it began at, the tables its
queries and writes touched, and its writes so far (each already rewritten to constants, so
its preview and its commit run the same statement). A transaction nobody touches for
`idle_timeout_s` is forgotten (so is every transaction of a node that restarts): its commit
then answers 404 no_transaction and nothing of it was ever applied. At most `open_max` are
open at once per node.
"""

from __future__ import annotations

import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from paxosd.service.sql import Statement, statements_max

from .failures import ApiError

idle_timeout_s: Final = 30.0
open_max: Final = 1024
NO_TRANSACTION: Final = "no_transaction"
TOO_MANY_TRANSACTIONS: Final = "too_many_transactions"


@dataclass(slots=True)
class Transaction:
    id: str
    begin_revision: int
    deadline: float
    tables: set[str] = field(default_factory=set)
    pending: list[Statement] = field(default_factory=list)


class Transactions:
    """The open transactions of one node."""

    def __init__(
        self,
        *,
        idle_timeout_s: float = idle_timeout_s,
        open_max: int = open_max,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.open_max = open_max
        self._clock = clock
        self._open: dict[str, Transaction] = {}

    def __len__(self) -> int:
        self._expire()
        return len(self._open)

    def _expire(self) -> None:
        now = self._clock()
        for key in [key for key, txn in self._open.items() if txn.deadline <= now]:
            del self._open[key]

    def begin(self, revision: int) -> Transaction:
        self._expire()
        if len(self._open) >= self.open_max:
            raise ApiError(
                429,
                TOO_MANY_TRANSACTIONS,
                f"this node has {self.open_max} open transactions (open_max): commit or roll "
                "back some, or wait for abandoned ones to time out",
            )
        txn = Transaction(secrets.token_hex(12), revision, self._clock() + self.idle_timeout_s)
        self._open[txn.id] = txn
        return txn

    def get(self, txn_id: object) -> Transaction:
        """The open transaction `txn_id` (its idle deadline renewed), or 404."""
        txn = self._open.get(txn_id) if type(txn_id) is str else None
        now = self._clock()
        if txn is None or txn.deadline <= now:
            self._open.pop(txn_id, None) if type(txn_id) is str else None
            raise ApiError(
                404,
                NO_TRANSACTION,
                f"no open transaction {str(txn_id)[:40]!r} on this node: it was committed, "
                f"rolled back, idle for {self.idle_timeout_s:g} s, begun on another node, or "
                "the node restarted; nothing of it was applied unless its commit succeeded",
            )
        txn.deadline = now + self.idle_timeout_s
        return txn

    def add_writes(self, txn: Transaction, statements: tuple[Statement, ...]) -> None:
        if len(txn.pending) + len(statements) > statements_max:
            raise ApiError(
                400,
                "bad_request",
                f"a transaction holds at most {statements_max} writes (statements_max)",
            )
        txn.pending.extend(statements)

    def end(self, txn: Transaction) -> None:
        self._open.pop(txn.id, None)


_TABLES: Final[weakref.WeakKeyDictionary[Any, Transactions]] = weakref.WeakKeyDictionary()


def of(node: Any) -> Transactions:
    """The transactions of `node` (made on first use)."""
    table = _TABLES.get(node)
    if table is None:
        table = _TABLES[node] = Transactions()
    return table
