"""Durable storage of a node's Multi-Paxos state: promises, accepted entries, a commit hint and
state-machine snapshots (`paxosd.core.multi.records`).

Theory of operation. The driver calls `write(records)` after each protocol step (buffered, no
I/O), `sync()` once per batch of steps (one fsync for all of them: group commit) and replies
only after `sync` returns; on start, `load()` gives back the durable state as `Recovered`.
Three backends keep that contract:

- `FileLog` (`filelog`): one append-only file of checksummed frames, compacted by rewriting
  the live state and renaming it into place. The default (see docs/storage.md for the numbers).
- `SqliteLog` (`sqlite`): stdlib sqlite3 in WAL mode with synchronous=FULL.
- `MemoryLog` (`memory`): the file format on a bytearray, with `crash()`, for tests and the
  simulator.

`codec` is the pure byte format (`encode_frame` / `decode_frames`) shared by the file and memory
backends; `state` has the fold every backend implements and the `LogStore` protocol.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

from paxosd.core.multi.records import Record

from .codec import decode_frames, encode_frame
from .errors import (
    BackendMismatch,
    CorruptLog,
    DataDirLocked,
    ForeignDataDir,
    InvalidRecord,
    MissingStore,
    StorageError,
    StoreClosed,
    StoreExists,
    StoreFailed,
)
from .filelog import FileLog
from .framed import CompactionPolicy
from .memory import MemoryLog
from .sqlite import SqliteLog
from .state import LogStore, Recovered, fold

Backend = Literal["file", "sqlite"]
BACKENDS: Final[tuple[Backend, ...]] = ("file", "sqlite")
# Chosen by measurement (bench/storage_bench.py, docs/storage.md).
DEFAULT_BACKEND: Final[Backend] = "file"

if TYPE_CHECKING:
    # mypy proves every backend keeps the LogStore contract.
    _BACKEND_CLASSES: tuple[type[LogStore], ...] = (FileLog, SqliteLog, MemoryLog)


def make_identity(cluster: str, node: int) -> bytes:
    """The identity a node's data directory is stamped with: cluster id and node id."""
    return f"{cluster}/node-{node}".encode()


def open_store(
    path: str | os.PathLike[str],
    backend: Backend = DEFAULT_BACKEND,
    *,
    identity: bytes,
    create: bool = True,
    fsync: bool = True,
    initial: Sequence[Record] | None = None,
) -> LogStore:
    """Open (creating if allowed) the store in data directory `path`.

    `identity` names the owner (e.g. `make_identity(cluster, node)`); a directory stamped with
    another identity raises `ForeignDataDir`, one holding the other backend's store
    `BackendMismatch`. `create=False` makes a missing store an error (`MissingStore`) instead
    of a fresh, empty one: a node that rejoins must not silently forget its promises.
    `initial` makes a NEW store (`StoreExists` if there is one) that holds exactly those
    records from the moment it appears: a crash leaves it whole or absent, never without them.
    `fsync=False` is for tests only.
    """
    if backend == "file":
        return FileLog(path, identity, create=create, fsync=fsync, initial=initial)
    if backend == "sqlite":
        return SqliteLog(path, identity, create=create, fsync=fsync, initial=initial)
    raise ValueError(f"unknown storage backend {backend!r}; expected one of {BACKENDS}")


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "BackendMismatch",
    "CompactionPolicy",
    "CorruptLog",
    "DataDirLocked",
    "FileLog",
    "ForeignDataDir",
    "InvalidRecord",
    "LogStore",
    "MemoryLog",
    "MissingStore",
    "Recovered",
    "SqliteLog",
    "StorageError",
    "StoreClosed",
    "StoreExists",
    "StoreFailed",
    "decode_frames",
    "encode_frame",
    "fold",
    "make_identity",
    "open_store",
]
