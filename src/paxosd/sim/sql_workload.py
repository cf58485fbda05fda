"""The simulator's workload of the SQL database: bank transfers as interactive transactions,
unique sign-ups, and writes that ask for randomness and the clock.

Theory of operation. Each simulated client draws its next operation here when its workload is
`sql`. Its first operation makes the schema (idempotent: every client sends it):

    accounts (id TEXT PRIMARY KEY, balance INTEGER)   'a', 'b', 'c' with 100 each
    signups  (username TEXT UNIQUE, client TEXT)
    noise    (x)

Then, at random:

- a read of every balance (linearizable, answered without the log); after it, sometimes, a
  transfer as an interactive transaction: the client computes the new balances from what it
  read (absolute values, so a transfer committed on a stale read would create or destroy
  money) and commits them in a `SqlExecute` carrying the read's revision and the table it
  read: the commit applies only if `accounts` did not change since;
- a sign-up of one of three usernames (UNIQUE): at most one client ever gets each;
- a write of `random()`, `randomblob(4)` and the time, rewritten by the client to constants
  as a node does before proposing (service/sql/rewrite.py, with the run's seeded generator
  and simulated time), except under the planted bug `sql-random-unrewritten`, which proposes
  them as written and lets every replica run them;
- an audit: the total of the balances, through the log (rqlite's `strong` read).

The `sql-append` workload (a workload of its own, so that it changes none of the `sql`
workload's draws) is list-append through interactive transactions, as Elle checks it: a
table of lists (`lists (k, elements)`: space-separated elements), a read of two lists at
revision B, then a commit that writes each list it chose as what it read plus one element
unique to the run (absolute values, with B and the table it read), or a plain read.

check/sql.py judges the history.
"""

from __future__ import annotations

import random
from typing import Any, Final

from paxosd.service.sql import SqlAnswer, SqlExecute, SqlQuery, Statement
from paxosd.service.sql.rewrite import Sources, rewrite

SQL_KEY: Final = "sql"
ACCOUNTS: Final = ("a", "b", "c")
OPENING_BALANCE: Final = 100
TOTAL: Final = OPENING_BALANCE * len(ACCOUNTS)
USERNAMES: Final = ("paxos_expert", "lamport", "liskov")
SETUP: Final = (
    Statement(
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)"
    ),
    Statement(
        "INSERT OR IGNORE INTO accounts VALUES "
        + ", ".join(f"('{a}', {OPENING_BALANCE})" for a in ACCOUNTS)
    ),
    Statement(
        "CREATE TABLE IF NOT EXISTS signups (id INTEGER PRIMARY KEY, "
        "username TEXT NOT NULL UNIQUE, client TEXT NOT NULL)"
    ),
    Statement("CREATE TABLE IF NOT EXISTS noise (x, b, t)"),
)
READ_BALANCES: Final = SqlQuery(
    statements=(Statement("SELECT id, balance FROM accounts ORDER BY id"),)
)
AUDIT: Final = SqlQuery(
    statements=(Statement("SELECT sum(balance), count(*) FROM accounts"),), through_log=True
)
NOISE: Final = (
    "INSERT INTO noise VALUES (random(), randomblob(4), NULL)",
    "INSERT INTO noise VALUES (NULL, NULL, datetime('now'))",
)
TRANSFER: Final = "UPDATE accounts SET balance = ? WHERE id = ?"
SIGN_UP: Final = "INSERT INTO signups (username, client) VALUES (?, ?)"
# After a read, how often the client goes on to transfer on what it read.
TRANSFER_ODDS: Final = 0.7
LIST_KEYS: Final = ("x", "y", "z")
LISTS_SETUP: Final = (
    Statement("CREATE TABLE IF NOT EXISTS lists (k TEXT PRIMARY KEY, elements TEXT NOT NULL)"),
)
READ_LISTS: Final = "SELECT k, elements FROM lists WHERE k IN (?, ?) ORDER BY k"
APPEND: Final = (
    "INSERT INTO lists (k, elements) VALUES (?, ?) "
    "ON CONFLICT (k) DO UPDATE SET elements = excluded.elements"
)


class SqlClient:
    """One client's interactive transaction (the revision and balances it read) and its
    choice of the next operation."""

    def __init__(
        self,
        name: str,
        rng: random.Random,
        unrewritten: bool = False,
        append_rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.rng = rng
        self.unrewritten = unrewritten
        self.ready = False  # the schema is known made
        self.read: tuple[int, dict[str, int]] | None = None  # (revision, balances)
        # The sql-append workload's own state and generator.
        self.append_rng = append_rng or random.Random(f"append-{name}")
        self.lists_ready = False
        self.lists_read: tuple[int, dict[str, list[str]]] | None = None
        self.elements = 0

    def choose_append(self) -> tuple[str, Any]:
        """The sql-append workload's next operation."""
        rng = self.append_rng
        if not self.lists_ready:
            return "lists-setup", SqlExecute(statements=LISTS_SETUP)
        if self.lists_read is not None:
            revision, lists = self.lists_read
            self.lists_read = None
            statements = []
            for key in sorted(rng.sample(sorted(lists), rng.randint(1, 2))):
                self.elements += 1
                element = f"{self.name}.{self.elements}"
                statements.append(Statement(APPEND, (key, " ".join([*lists[key], element]))))
            op = SqlExecute(
                statements=tuple(statements), begin_revision=revision, tables=("lists",)
            )
            return "append", op
        keys = sorted(rng.sample(LIST_KEYS, 2))
        return "lists-read", SqlQuery(statements=(Statement(READ_LISTS, tuple(keys)),))

    def choose(self, now_ms: float) -> tuple[str, Any]:
        rng = self.rng
        if not self.ready:
            return "setup", SqlExecute(statements=SETUP)
        if self.read is not None:
            revision, balances = self.read
            self.read = None
            source, target = rng.sample(ACCOUNTS, 2)
            amount = rng.randint(1, 30)
            statements = (
                Statement(TRANSFER, (balances[source] - amount, source)),
                Statement(TRANSFER, (balances[target] + amount, target)),
            )
            op = SqlExecute(statements=statements, begin_revision=revision, tables=("accounts",))
            return "transfer", op
        draw = rng.random()
        if draw < 0.4:
            return "read", READ_BALANCES
        if draw < 0.65:
            username = rng.choice(USERNAMES)
            return "signup", SqlExecute(statements=(Statement(SIGN_UP, (username, self.name)),))
        if draw < 0.85:
            sql = rng.choice(NOISE)
            if not self.unrewritten:
                sql = rewrite(sql, Sources(now_ms=int(now_ms), random_bytes=rng.randbytes))
            return "noise", SqlExecute(statements=(Statement(sql),))
        return "audit", AUDIT

    def answered(self, kind: str, result: Any, op: Any = None) -> None:
        if not isinstance(result, SqlAnswer):
            return
        if kind == "setup" and result.applied:
            self.ready = True
        if kind == "lists-setup" and result.applied:
            self.lists_ready = True
        if kind == "lists-read" and result.error is None and self.append_rng.random() < 0.8:
            keys = [str(k) for k in op.statements[0].params] if op is not None else []
            found = {str(row[0]): str(row[1]).split() for row in result.results[0].rows}
            self.lists_read = (result.revision, {k: found.get(k, []) for k in keys})
        if kind == "read" and result.error is None and self.rng.random() < TRANSFER_ODDS:
            rows = result.results[0].rows
            balances = {str(row[0]): int(row[1]) for row in rows}  # type: ignore[arg-type]
            if set(balances) == set(ACCOUNTS):
                self.read = (result.revision, balances)

    def gave_up(self, kind: str) -> None:
        """The operation's outcome is unknown; a transfer is not retried on an old read."""
        self.read = None
        self.lists_read = None


def reached(kind: str, answer: Any) -> list[str]:
    """The mechanisms an answered operation shows (sim/reach.py counts them)."""
    from paxosd.service.results import Error

    if kind == "transfer" and isinstance(answer, Error):
        return ["sql_commits_conflicted"]
    if kind == "transfer" and isinstance(answer, SqlAnswer) and answer.applied:
        return ["sql_commits_applied"]
    if kind == "signup" and isinstance(answer, SqlAnswer) and answer.error is not None:
        return ["sql_unique_refused"]
    return []
