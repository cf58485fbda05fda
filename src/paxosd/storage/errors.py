"""Typed errors of the durable log stores.

Theory of operation: a node that opens its storage must either get back exactly what it synced
or stop with an error an operator can act on. Every way the bytes on disk (or the directory that
holds them) can be wrong is one of these types, so a driver catches `StorageError` and refuses
to start instead of guessing. Nothing here is raised for a torn tail left by a crash mid-write:
that is normal, repaired on open and reported in `Recovered.repaired_tail_bytes`.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by `paxosd.storage`."""


class MissingStore(StorageError, FileNotFoundError):
    """There is no store where one was expected (opened with `create=False`): a node that was a
    member must never quietly start over with an empty one, which would forget its promises."""


class StoreExists(StorageError, FileExistsError):
    """A new store was asked for where there is one already: making a new store never
    replaces an old one (that is how a member would forget its promises)."""


class CorruptLog(StorageError):
    """Stored bytes are damaged, truncated in the middle, foreign or of an unknown version.

    `offset` is the byte offset in the log (or, for SQLite, the slot / row) where the damage
    starts, `-1` if it does not apply; `where` names the file or table.
    """

    def __init__(self, offset: int, reason: str, where: str = "") -> None:
        place = f"{where} " if where else ""
        super().__init__(f"{place}at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.where = where

    def __reduce__(self) -> tuple[type[CorruptLog], tuple[int, str, str]]:
        # Exceptions pickle their args by default; ours takes three, not the joined message.
        return (type(self), (self.offset, self.reason, self.where))


class ForeignDataDir(StorageError):
    """The data directory belongs to another node or another cluster.

    Starting a node on someone else's promises and log lets two nodes vote with one memory, so
    it is refused. Both identities are in the message so an operator sees which is which.
    """

    def __init__(self, path: str, expected: bytes, found: bytes) -> None:
        super().__init__(
            f"{path}: data directory belongs to identity {found!r}, "
            f"but this node was started as {expected!r}"
        )
        self.path = path
        self.expected = expected
        self.found = found

    def __reduce__(self) -> tuple[type[ForeignDataDir], tuple[str, bytes, bytes]]:
        return (type(self), (self.path, self.expected, self.found))


class BackendMismatch(StorageError):
    """The data directory holds a store of another backend than the one requested.

    Opening it anyway would start an empty store beside the real one: the node would forget its
    promises, which is how two values get chosen for one slot.
    """


class DataDirLocked(StorageError):
    """Another process (or another open store in this process) holds the data directory."""


class InvalidRecord(StorageError, ValueError):
    """A record handed to `write` cannot be stored: wrong field types, out of range, too big.

    Raised at write time so a bad record never reaches the disk, where it would surface only at
    the next restart as `CorruptLog`.
    """


class StoreFailed(StorageError):
    """A write or fsync failed earlier; the store refuses all further use.

    After a failed fsync the kernel may have dropped the dirty pages and cleared the error, so a
    retried fsync can "succeed" without the data being on disk. The only safe reaction is to stop
    and recover from what is durable, by reopening (which happens on process restart).
    """


class StoreClosed(StorageError):
    """The store was used after `close()`."""
