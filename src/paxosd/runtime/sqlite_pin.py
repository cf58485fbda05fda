"""The SQLite version a node's data directory is pinned to.

Theory of operation: the SQL database is rebuilt on every start from the last snapshot and
the log after it, by the SQLite of the Python the node runs from. A statement's result (and
the work SQLite counts for it) can depend on that version, so a node whose SQLite changed
under its data directory (Python upgraded in place, the node started from another venv)
could replay the same log into a database unlike its peers'. So the version is written into
the data directory (`sqlite-version`) when the store is made, and a start with another is
refused, naming both and what to do. A data directory made before the file existed adopts
the running version at its first start. Peers are held to one version at the handshake
(transport.py), so a cluster runs one SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from paxosd.service.sql.machine import SQLITE_VERSION
from paxosd.storage.errors import StorageError
from paxosd.storage.fsutil import fsync_dir

SQLITE_VERSION_FILE: Final = "sqlite-version"
_version_chars_max: Final = 100


class SqliteMismatch(StorageError):
    """The data directory was made by a node running another SQLite version."""


def record(directory: Path, version: str = SQLITE_VERSION) -> None:
    """Pin `directory` to `version`, durably (a new file renamed into place)."""
    path = directory / SQLITE_VERSION_FILE
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(version + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    fsync_dir(directory)


def settle(directory: Path, node_id: int, version: str = SQLITE_VERSION) -> bool:
    """Check the data directory's SQLite against `version`: True if it had none and now
    records this one; `SqliteMismatch` (with what to do) if it records another."""
    path = directory / SQLITE_VERSION_FILE
    try:
        recorded = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        record(directory, version)
        return True
    if recorded == version:
        return False
    raise SqliteMismatch(
        f"node {node_id}'s data directory {directory} was made with SQLite "
        f"{recorded[:_version_chars_max]!r}, and this node runs SQLite {version!r}: replaying "
        f"its log with another SQLite could build a database unlike its peers'. Start it from "
        f"the Python it ran with (python3 -c 'import sqlite3; print(sqlite3.sqlite_version)' "
        f"shows a Python's), or move the whole cluster to one SQLite together: stop every "
        f"node, take a backup (paxosd snapshot save), and restore it into a new cluster run by "
        f"the new SQLite (docs/sql.md, 'One SQLite')"
    )
