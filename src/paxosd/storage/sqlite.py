"""`SqliteLog`: a node's Multi-Paxos state in SQLite (stdlib `sqlite3`, WAL, synchronous=FULL).

Theory of operation. The data directory holds `paxos.sqlite` (plus SQLite's `-wal`/`-shm`) and
the `LOCK` file. The tables hold the *folded* state (`state.LogState`), not a record history:

    meta(key PRIMARY KEY, value, crc)           identity, promised [round, node], rebuilding [0|1],
                                                configuration [epoch, [voters], [learners]],
                                                snapshot_file [slot, size, checksum]
    log(slot PRIMARY KEY, ballot_round, ballot_node, batch, crc)   batch: msgpack list of bytes
    snapshot(slot PRIMARY KEY, data, crc)       an inline snapshot, as older stores held them

The snapshot is the `snapshot_file` row (a `Snapshot` record: the file it names is in
`snapshots/`), or, in a store written before snapshot files, the one `snapshot` row (an
`InlineSnapshot`); writing either removes the other.

`write` validates and folds records into a small pending delta in memory (the dirty slots, a
new promise, rebuilding flag or snapshot); `sync` applies the delta in ONE transaction
(`executemany` upserts, a snapshot deletes the rows it covers) and commits, which in WAL mode
with synchronous=FULL appends to the WAL and fsyncs it once. SQLite's own recovery makes each
commit all-or-nothing across a crash, so there is no torn tail to repair here.

Creation. A new database appears whole or not at all: it is made as `paxos.sqlite.tmp` (a
rollback journal, so the file is complete by itself), its schema, identity and first records
(the `Configured` membership and, for a rebuilding member, `Rebuilding(True)`) committed in
ONE transaction, the file fsynced, renamed into place and the directory fsynced. An empty
database named `paxos.sqlite` is therefore never a store: it is refused as missing.

Every row carries a CRC32 of its content, verified on load: SQLite checks its page structure
(optionally, `integrity_check=True`) but not the bytes in a blob, and a flipped bit in a
promise must not come back as a different promise. The database is stamped with an
`application_id` and a `user_version` (the format version), so another program's database, or
a future format, is `CorruptLog` rather than a store that merely looks empty.

Disk use: superseded rows are deleted, their pages go to SQLite's freelist and are reused, so
the file stays near the peak live size; the WAL is checkpointed every ~1000 pages and truncated
to `wal_bytes_max` afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import (
    Accepted,
    Batch,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
    SnapshotRecord,
)
from paxosd.core.types import Ballot

from .codec import (
    FORMAT_VERSION,
    BadPayload,
    check_record,
    check_size,
    configuration_fields,
    decode_batch,
    decode_configuration,
    encode_batch,
    encode_header,
    int_max,
    pack,
    snapshot_checksum_bytes,
    unpack,
)
from .crashpoints import crash_point
from .errors import (
    CorruptLog,
    ForeignDataDir,
    MissingStore,
    StoreClosed,
    StoreExists,
    StoreFailed,
)
from .fsutil import SQLITE_NAME, TMP_SUFFIX, check_backend, ensure_dir, fsync_dir, lock_dir
from .snapshots import SNAPSHOTS_DIR, DirSnapshots
from .state import Recovered, fold

# "PXOS": marks the file as a paxosd store (SQLite's PRAGMA application_id).
APPLICATION_ID: Final = 0x50584F53

_SCHEMA: Final = (
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL)",
    "CREATE TABLE log(slot INTEGER PRIMARY KEY, ballot_round INTEGER NOT NULL,"
    " ballot_node INTEGER NOT NULL, batch BLOB NOT NULL, crc INTEGER NOT NULL)",
    "CREATE TABLE snapshot(slot INTEGER PRIMARY KEY, data BLOB NOT NULL, crc INTEGER NOT NULL)",
)
_UPSERT_LOG: Final = "INSERT OR REPLACE INTO log VALUES (?, ?, ?, ?, ?)"
_UPSERT_META: Final = "INSERT OR REPLACE INTO meta VALUES (?, ?, ?)"

_INTS3: Final = struct.Struct("<qqq")
_INT1: Final = struct.Struct("<q")

# The WAL is truncated back to this after a checkpoint (it only grows past it while one big
# transaction, such as a large snapshot, is in flight).
wal_bytes_max: Final = 16 * 1024 * 1024

LogRow = tuple[int, int, int, bytes, int]


def _log_crc(slot: int, ballot_round: int, ballot_node: int, batch: bytes) -> int:
    return zlib.crc32(batch, zlib.crc32(_INTS3.pack(slot, ballot_round, ballot_node)))


def _meta_crc(key: str, value: bytes) -> int:
    return zlib.crc32(value, zlib.crc32(key.encode()))


def _snapshot_crc(slot: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(_INT1.pack(slot)))


def _log_row(slot: int, ballot: Ballot, batch: Batch) -> LogRow:
    blob = encode_batch(batch)
    return (slot, ballot.round, ballot.node, blob, _log_crc(slot, ballot.round, ballot.node, blob))


def _store(
    db: sqlite3.Connection,
    *,
    snapshot: SnapshotRecord | None,
    rows: list[LogRow],
    promised: Ballot | None,
    rebuilding: bool | None,
    configuration: Configuration | None,
) -> None:
    """Write a delta of the folded state, inside the caller's transaction."""
    if type(snapshot) is InlineSnapshot:
        db.execute("DELETE FROM snapshot")
        db.execute("DELETE FROM meta WHERE key = 'snapshot_file'")
        db.execute(
            "INSERT INTO snapshot VALUES (?, ?, ?)",
            (snapshot.slot, snapshot.data, _snapshot_crc(snapshot.slot, snapshot.data)),
        )
    elif type(snapshot) is Snapshot:
        db.execute("DELETE FROM snapshot")
        named = pack((snapshot.slot, snapshot.size_bytes, snapshot.checksum))
        db.execute(_UPSERT_META, ("snapshot_file", named, _meta_crc("snapshot_file", named)))
    if snapshot is not None:
        db.execute("DELETE FROM log WHERE slot <= ?", (snapshot.slot,))
    if rows:
        db.executemany(_UPSERT_LOG, rows)
    for key, value in (
        ("promised", None if promised is None else pack((promised.round, promised.node))),
        ("rebuilding", None if rebuilding is None else pack((int(rebuilding),))),
        (
            "configuration",
            None if configuration is None else pack(configuration_fields(configuration)),
        ),
    ):
        if value is not None:
            db.execute(_UPSERT_META, (key, value, _meta_crc(key, value)))


class SqliteLog:
    """A SQLite database in `directory`, owned by the node called `identity`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        identity: bytes,
        *,
        create: bool = True,
        fsync: bool = True,
        integrity_check: bool = False,
        initial: Sequence[Record] | None = None,
    ) -> None:
        """Open (or create) the database and check it is ours. With `initial`, make a NEW one
        that holds exactly those records from its first appearance (`StoreExists` if there is
        one). `fsync=False` (synchronous=OFF) is for tests only. `integrity_check=True` runs
        PRAGMA integrity_check on open (it reads the whole database). Raises `CorruptLog`,
        `ForeignDataDir`, `BackendMismatch`, `DataDirLocked`, `InvalidRecord` (a bad identity
        or initial record)."""
        self.directory = Path(directory)
        self.path = self.directory / SQLITE_NAME
        self.identity = identity
        self.snapshots = DirSnapshots(self.directory / SNAPSHOTS_DIR, fsync=fsync)
        self._fsync = fsync
        self._closed = False
        self._failed: BaseException | None = None
        self._dir_synced = False
        self.fsyncs = 0
        # The pending delta (see the module docstring) and the folded scalars it is judged by.
        self._dirty: dict[int, LogRow] = {}
        self._new_promised: Ballot | None = None
        self._new_rebuilding: bool | None = None
        self._new_snapshot: SnapshotRecord | None = None
        self._new_configuration: Configuration | None = None
        encode_header(identity)  # validates the identity exactly as the file backend does
        for record in initial or ():
            check_record(record)  # before anything touches the disk
        ensure_dir(self.directory, create or initial is not None, fsync)
        check_backend(self.directory, "sqlite")
        self._lock_fd = lock_dir(self.directory)
        self._db: sqlite3.Connection | None = None
        try:
            self._open(create or initial is not None, integrity_check, initial)
        except sqlite3.DatabaseError as exc:
            self._release()
            if isinstance(exc, sqlite3.OperationalError):
                raise
            raise CorruptLog(-1, f"not a usable SQLite database: {exc}", str(self.path)) from exc
        except BaseException:
            self._release()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _open(self, create: bool, integrity_check: bool, initial: Sequence[Record] | None) -> None:
        where = str(self.path)
        self._remove_leftovers()
        if initial is not None and self.path.exists():
            raise StoreExists(f"{where}: there is a store already")
        if not self.path.exists():
            if not create:
                raise MissingStore(f"{where}: no store")
            self._create(initial or ())
        # isolation_level=None: no implicit transactions; sync() issues BEGIN/COMMIT itself.
        # check_same_thread=False: a driver may sync from a worker thread (one at a time).
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db = db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise CorruptLog(-1, f"cannot switch to WAL mode (got {mode!r})", where)
        db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'OFF'}")
        db.execute(f"PRAGMA journal_size_limit={wal_bytes_max}")
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        if application_id == 0:
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise CorruptLog(-1, "a SQLite database, but not a paxosd store", where)
            # Stores are made whole under another name and renamed into place; an empty
            # database here is not one (and opening it as a fresh store could make a member
            # forget its promises).
            raise MissingStore(f"{where}: an empty database, not a store")
        elif application_id != APPLICATION_ID:
            raise CorruptLog(-1, f"foreign SQLite application_id {application_id:#x}", where)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != FORMAT_VERSION:
            raise CorruptLog(
                -1, f"unknown format version {version} (this code reads {FORMAT_VERSION})", where
            )
        found = self._meta(db, "identity")
        if found is None:
            raise CorruptLog(-1, "no identity in meta", f"{where} meta")
        if found != self.identity:
            raise ForeignDataDir(where, self.identity, found)
        if integrity_check:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise CorruptLog(-1, f"integrity_check: {'; '.join(problems)[:500]}", where)
        # The folded scalars `write` judges new records by.
        recovered = self._read()
        self._promised = recovered.promised
        self._rebuilding = recovered.rebuilding
        self._configuration = recovered.configuration
        self._snapshot_slot = None if recovered.snapshot is None else recovered.snapshot.slot

    def _create(self, initial: Sequence[Record]) -> None:
        """Make the database under a temporary name, complete with its first records, and
        rename it into place (see the module docstring, "Creation")."""
        tmp = self.directory / (SQLITE_NAME + TMP_SUFFIX)
        self._remove_leftovers()
        recovered = fold(initial)
        # A rollback journal while it is made: the file is then whole by itself when renamed
        # (nothing of it waits in a WAL); the store switches to WAL when it is opened.
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'OFF'}")
            crash_point("new database: temporary file opened, nothing committed")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            identity = self.identity
            db.execute(_UPSERT_META, ("identity", identity, _meta_crc("identity", identity)))
            _store(
                db,
                snapshot=recovered.snapshot,
                rows=[_log_row(slot, *entry) for slot, entry in recovered.accepted.items()],
                promised=recovered.promised,
                rebuilding=recovered.rebuilding or None,
                configuration=recovered.configuration,
            )
            db.execute("COMMIT")
        finally:
            db.close()
        crash_point("new database: committed in the temporary file, not renamed")
        if self._fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, self.path)
        crash_point("new database: renamed into place, directory not synced")
        if self._fsync:
            fsync_dir(self.directory)
        crash_point("new database: directory synced")

    def _remove_leftovers(self) -> None:
        """An interrupted creation's temporary database (and its journal): never a store."""
        removed = False
        for name in (SQLITE_NAME + TMP_SUFFIX, f"{SQLITE_NAME}{TMP_SUFFIX}-journal"):
            path = self.directory / name
            if path.exists():
                path.unlink()
                removed = True
        if removed and self._fsync:
            fsync_dir(self.directory)

    # -- the LogStore contract ----------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        """Fold `records` into the pending delta; no I/O. All or none (`InvalidRecord`)."""
        self._check_usable()
        for record in records:
            check_record(record)
        rows: list[tuple[int, LogRow]] = []
        for record in records:
            if type(record) is Accepted:
                rows.append((record.slot, _log_row(record.slot, record.ballot, record.batch)))
            elif type(record) is InlineSnapshot:
                check_size(len(record.data))
        # Validation and encoding done: nothing below can fail, so the fold is all or none.
        row_iter = iter(rows)
        for record in records:
            if type(record) is Accepted:
                slot, row = next(row_iter)
                if self._snapshot_slot is None or slot > self._snapshot_slot:
                    self._dirty[slot] = row
            elif type(record) is Promised:
                if self._promised is None or record.ballot > self._promised:
                    self._promised = self._new_promised = record.ballot
            elif type(record) is Rebuilding:
                self._rebuilding = self._new_rebuilding = record.active
            elif (type(record) is Snapshot or type(record) is InlineSnapshot) and (
                self._snapshot_slot is None or record.slot >= self._snapshot_slot
            ):
                assert isinstance(record, Snapshot | InlineSnapshot)
                self._snapshot_slot = record.slot
                self._new_snapshot = record
                for slot in [s for s in self._dirty if s <= record.slot]:
                    del self._dirty[slot]
            elif type(record) is Configured:
                configuration = record.configuration
                if self._configuration is None or (
                    configuration.epoch >= self._configuration.epoch
                ):
                    self._configuration = self._new_configuration = configuration

    def sync(self) -> None:
        """Commit the pending delta in one transaction (one WAL fsync). Durable on return."""
        self._check_usable()
        if not (
            self._dirty
            or self._new_promised
            or self._new_rebuilding is not None
            or self._new_snapshot
            or self._new_configuration
        ):
            return
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            _store(
                db,
                snapshot=self._new_snapshot,
                rows=list(self._dirty.values()),
                promised=self._new_promised,
                rebuilding=self._new_rebuilding,
                configuration=self._new_configuration,
            )
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._failed = exc
            # There may be no transaction left to roll back; the store is poisoned either way.
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise StoreFailed(f"{self.path}: commit failed: {exc}") from exc
        self._dirty.clear()
        self._new_promised = self._new_rebuilding = self._new_snapshot = None
        self._new_configuration = None
        self.fsyncs += 1
        if self._fsync and not self._dir_synced:
            # SQLite may have (re)created the WAL on this first commit since open; make its
            # name durable once per session.
            fsync_dir(self.directory)
            self._dir_synced = True

    def load(self) -> Recovered:
        """The state as of the last sync (read back from the database, CRCs verified)."""
        self._check_usable()
        return self._read()

    def close(self) -> None:
        """Commit what is pending (unless the store failed) and release the database and lock."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.sync()
        finally:
            self._release()

    def disk_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += os.path.getsize(str(self.path) + suffix)
        return total

    # -- extras --------------------------------------------------------------------------------

    def abandon(self) -> None:
        """Drop the pending delta and release everything without committing: a crash, for tests."""
        self._dirty.clear()
        self._new_promised = self._new_rebuilding = self._new_snapshot = None
        self._new_configuration = None
        self._release()

    def __enter__(self) -> SqliteLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def _meta(self, db: sqlite3.Connection, key: str) -> bytes | None:
        row = db.execute("SELECT value, crc FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, crc = row
        if type(value) is not bytes or type(crc) is not int or _meta_crc(key, value) != crc:
            raise CorruptLog(-1, f"meta {key!r}: checksum mismatch", f"{self.path} meta")
        return value

    def _meta_ints(self, db: sqlite3.Connection, key: str, count: int) -> list[int] | None:
        value = self._meta(db, key)
        if value is None:
            return None
        try:
            raw: Any = unpack(value)
        except BadPayload as exc:
            raise CorruptLog(-1, f"meta {key!r}: {exc}", f"{self.path} meta") from None
        if (
            type(raw) is not list
            or len(raw) != count
            or not all(type(n) is int and 0 <= n <= int_max for n in raw)
        ):
            raise CorruptLog(-1, f"meta {key!r}: not {count} ints", f"{self.path} meta")
        return raw

    def _read(self) -> Recovered:
        db = self._db
        assert db is not None
        where = str(self.path)
        # One read transaction: a consistent view even if another connection were writing.
        db.execute("BEGIN")
        try:
            promised_raw = self._meta_ints(db, "promised", 2)
            rebuilding_raw = self._meta_ints(db, "rebuilding", 1)
            configuration = self._meta_configuration(db)
            snapshot: SnapshotRecord | None = self._meta_snapshot_file(db)
            for slot, data, crc in db.execute(
                "SELECT slot, data, crc FROM snapshot ORDER BY slot DESC LIMIT 1"
            ):
                if (
                    type(slot) is not int
                    or not 0 <= slot <= int_max
                    or type(data) is not bytes
                    or type(crc) is not int
                    or _snapshot_crc(slot, data) != crc
                ):
                    offset = slot if type(slot) is int else -1
                    raise CorruptLog(offset, "snapshot row: bad checksum", f"{where} snapshot")
                if snapshot is None or slot > snapshot.slot:
                    snapshot = InlineSnapshot(slot, data)
            floor = -1 if snapshot is None else snapshot.slot
            accepted = {}
            for slot, ballot_round, ballot_node, blob, crc in db.execute(
                "SELECT slot, ballot_round, ballot_node, batch, crc FROM log"
                " WHERE slot > ? ORDER BY slot",
                (floor,),
            ):
                if not (
                    type(slot) is int
                    and type(ballot_round) is int
                    and type(ballot_node) is int
                    and 0 <= slot <= int_max
                    and Ballot(ballot_round, ballot_node).in_range
                    and type(blob) is bytes
                    and type(crc) is int
                    and _log_crc(slot, ballot_round, ballot_node, blob) == crc
                ):
                    offset = slot if type(slot) is int else -1
                    raise CorruptLog(offset, "log row: bad checksum or field", f"{where} log")
                try:
                    batch = decode_batch(unpack(blob))
                except BadPayload as exc:
                    raise CorruptLog(slot, f"log row: {exc}", f"{where} log") from None
                accepted[slot] = (Ballot(ballot_round, ballot_node), batch)
        finally:
            db.execute("COMMIT")
        promised = None if promised_raw is None else Ballot(promised_raw[0], promised_raw[1])
        if promised is not None and not promised.in_range:
            raise CorruptLog(-1, f"meta 'promised': ballot {promised} out of range", where)
        return Recovered(
            promised=promised,
            accepted=accepted,
            rebuilding=rebuilding_raw is not None and rebuilding_raw[0] == 1,
            snapshot=snapshot,
            configuration=configuration,
        )

    def _meta_snapshot_file(self, db: sqlite3.Connection) -> Snapshot | None:
        value = self._meta(db, "snapshot_file")
        if value is None:
            return None
        where = f"{self.path} meta"
        try:
            raw: Any = unpack(value)
        except BadPayload as exc:
            raise CorruptLog(-1, f"meta 'snapshot_file': {exc}", where) from None
        if (
            type(raw) is not list
            or len(raw) != 3
            or not all(type(n) is int and 0 <= n <= int_max for n in raw[:2])
            or type(raw[2]) is not bytes
            or len(raw[2]) != snapshot_checksum_bytes
        ):
            raise CorruptLog(-1, "meta 'snapshot_file': not [slot, size, checksum]", where)
        return Snapshot(raw[0], raw[1], raw[2])

    def _meta_configuration(self, db: sqlite3.Connection) -> Configuration | None:
        value = self._meta(db, "configuration")
        if value is None:
            return None
        try:
            raw: Any = unpack(value)
            if type(raw) is not list or len(raw) != 3:
                raise BadPayload("not [epoch, voters, learners]")
            return decode_configuration(raw[0], raw[1], raw[2])
        except BadPayload as exc:
            raise CorruptLog(-1, f"meta 'configuration': {exc}", f"{self.path} meta") from None

    # -- internals -----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreClosed(f"{self.path}: store is closed")
        if self._failed is not None:
            raise StoreFailed(f"{self.path}: an earlier commit failed: {self._failed}")

    def _release(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
