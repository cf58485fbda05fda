"""Where a node keeps its SQL database: a file of its own in a directory, and copies of it
at one slot for snapshots, made off the event loop.

The SQL state machine (service/sql/machine.py) does no I/O of its own: a node hands it a
`SqlFiles` (through the state machine's Options) and it keeps its database where that says;
without one (the simulator, tests) the database lives in memory.

Theory of operation: in the simulator and in tests a replica's database lives in memory; a
node keeps it in a file (`db-<pid>-<n>.sqlite` in the data directory's `sql/`), in WAL mode
with `synchronous = OFF`. The file is not what makes a write durable (the log is fsynced
before any answer, and a restarting node rebuilds the database from its last snapshot plus
the log after it, removing what an earlier run left here): it is where the database lives so
that it need not fit in memory, and so that a snapshot can read it while the node goes on
writing. In WAL mode a second connection that opened a read transaction keeps seeing the
database as it was then, whatever the writer commits after (SQLite keeps the pages that
reader needs in the WAL until it ends). So a snapshot `pin`s the state on the event loop,
between two applies (open a connection, begin, read the schema: well under a millisecond),
and a worker thread then copies it with SQLite's online backup API, from that read
transaction, into a file beside the database (`copy_pinned`), and streams that file into the
snapshot (image.py) a chunk at a time. The copy's memory is SQLite's page cache and a chunk.

Nothing here may change what applying the log does: the file and the memory database run
the same statements with the same results (the journal mode and the durability setting do
not touch them), and their images are equal (image.py writes the fields that differ as a
fresh file has them).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

# Settings of a database kept in a file; none of them changes a statement's result.
FILE_SETTINGS: Final = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = OFF",
    # 64 MiB of page cache (SQLite's default is 2 MiB): a database in a file should answer
    # its hot pages from memory, as one in memory does.
    "PRAGMA cache_size = -65536",
    # A snapshot's read transaction keeps the WAL from starting over, so it grows by what is
    # written while a snapshot is copied; once it starts over, it is cut back to 64 MiB.
    "PRAGMA journal_size_limit = 67108864",
)
# The backup API copies this many pages per step, releasing the interpreter in between.
backup_pages_per_step: Final = 4096
read_bytes: Final = 1024 * 1024
_names = itertools.count(1)


def remove(path: Path) -> None:
    """The database file and SQLite's files beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def clear(directory: Path) -> None:
    """Remove every database an earlier run of the node left in `directory` (none of them is
    state: the node rebuilds its database from its snapshot and log)."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.name.startswith("db-") and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def pin(path: Path) -> sqlite3.Connection:
    """A connection to the database at `path` in a read transaction that sees it as it is now,
    whatever is written after (WAL mode). On the loop: cheap."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # the snapshot starts
    except BaseException:
        reader.close()
        raise
    return reader


def copy_pinned(reader: sqlite3.Connection, target: Path) -> bytes:
    """Copy what `reader` (a `pin`) sees into a new file `target`, with the backup API, a
    step at a time (in a worker thread). Returns the source's schema cookie (header bytes
    40-43), which the copy's first page must be given back: the backup API sets the copy's
    own (its previous one plus one), so that its other connections notice the new schema."""
    (cookie,) = reader.execute("PRAGMA schema_version").fetchone()
    remove(target)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        copy.execute("PRAGMA journal_mode = OFF")
        copy.execute("PRAGMA synchronous = OFF")
        reader.backup(copy, pages=backup_pages_per_step, progress=_yield)
    finally:
        copy.close()
    return int(cookie).to_bytes(4, "big")


def _yield(status: int, remaining: int, total: int) -> None:
    time.sleep(0)  # give the interpreter to the event loop between steps


def read_file(path: Path) -> Iterator[bytes]:
    """The bytes of `path`, a piece at a time, giving up the interpreter between pieces."""
    with open(path, "rb") as inp:
        while piece := inp.read(read_bytes):
            yield piece
            time.sleep(0)


def write_file(path: Path, pieces: Iterable[bytes]) -> None:
    """Write `pieces` into a new file `path` (a restore's database)."""
    with open(path, "wb") as out:
        for piece in pieces:
            out.write(piece)


class SqlFiles:
    """The SQL databases of one node, in one directory (its data directory's `sql/`): what
    the state machine is handed to keep its database in a file (the functions above, and a
    directory)."""

    settings: Final = FILE_SETTINGS
    remove = staticmethod(remove)
    pin = staticmethod(pin)
    copy_pinned = staticmethod(copy_pinned)
    read_file = staticmethod(read_file)
    write_file = staticmethod(write_file)

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def new_path(self) -> Path:
        """A database file name of its own (several machines may live at once: the running
        one, one being restored, one being replaced)."""
        return self.directory / f"db-{os.getpid()}-{next(_names)}.sqlite"

    def clear(self) -> None:
        """Remove every database an earlier run of the node left here (none of them is state:
        the node rebuilds its database from its snapshot and log)."""
        clear(self.directory)
