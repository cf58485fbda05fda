"""`FileLog`: a node's Multi-Paxos state as one append-only file with group commit.

Theory of operation. The data directory holds `paxos.log` (header + frames, see `codec`) and a
`LOCK` file. `write` encodes records into frames in memory and folds them into an in-memory
mirror of the state (`LogState`); it does no I/O. `sync` appends everything buffered with one
`write(2)` and one `fdatasync`, so a batch of protocol steps costs one disk flush however many
records it produced. The node replies only after `sync` returns, so what it revealed is durable.

Creation. A new log appears whole or not at all: its header and its first records (for a new
store, the `Configured` membership and, for a rebuilding member, `Rebuilding(True)`) are
written to `paxos.log.tmp`, fsynced, renamed into place and the directory fsynced. A crash
before the rename leaves no log (the `.tmp` is deleted on the next open); after it, the whole
one. So no crash leaves a store that exists without the records it was created with.

Crashes. Unsynced bytes may or may not reach the disk, whole or in part; synced bytes do. On
open the file is replayed; a torn tail is truncated away (and the truncation synced) and
reported in `Recovered.repaired_tail_bytes`; damage anywhere else is `CorruptLog`.

Compaction (`framed.CompactionPolicy`) runs inside `sync`, after the appended data is durable:
the live state is written to `paxos.log.tmp`, fsynced, renamed over `paxos.log`, and the
directory fsynced. A crash at any point leaves either the old or the new file, both complete;
a leftover `.tmp` is deleted on open. It costs a rewrite of the live state, which the policy
keeps to a fraction of what was appended since the previous compaction.

Failure. If an append or fsync fails, the kernel may already have dropped the dirty pages and
forgotten the error, so retrying could report success for data that is gone. The store poisons
itself (`StoreFailed` from then on); the node must restart and recover from the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from paxosd.core.multi.records import Record

from .codec import encode_frame, encode_header
from .crashpoints import crash_point
from .errors import MissingStore, StoreClosed, StoreExists, StoreFailed
from .framed import CompactionPolicy, compacted_image, replay
from .fsutil import (
    LOG_NAME,
    TMP_SUFFIX,
    check_backend,
    datasync,
    ensure_dir,
    fsync_dir,
    lock_dir,
    write_all,
)
from .snapshots import SNAPSHOTS_DIR, DirSnapshots
from .state import Recovered


class FileLog:
    """An append-only log file in `directory`, owned by the node called `identity`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        identity: bytes,
        *,
        create: bool = True,
        fsync: bool = True,
        policy: CompactionPolicy | None = None,
        initial: Sequence[Record] | None = None,
    ) -> None:
        """Open (or create) the log and recover it. With `initial`, make a NEW log that holds
        exactly those records from its first appearance (`StoreExists` if there is a log).
        `fsync=False` is for tests only: it makes every crash lose data. Raises `CorruptLog`,
        `ForeignDataDir`, `BackendMismatch`, `DataDirLocked`, `InvalidRecord` (a bad identity
        or initial record)."""
        self.directory = Path(directory)
        self.path = self.directory / LOG_NAME
        self.identity = identity
        self.snapshots = DirSnapshots(self.directory / SNAPSHOTS_DIR, fsync=fsync)
        self.policy = policy or CompactionPolicy()
        self._fsync = fsync
        self._create = create or initial is not None
        # Encoded before anything touches the disk: a bad record must not leave a half store.
        self._initial: bytes | None = (
            None if initial is None else b"".join(encode_frame(record) for record in initial)
        )
        self._buffer: list[bytes] = []
        self._fd = -1
        self._closed = False
        self._failed: BaseException | None = None
        self.fsyncs = 0
        self.compactions = 0
        encode_header(identity)  # validates the identity before anything touches the disk
        ensure_dir(self.directory, self._create, fsync)
        check_backend(self.directory, "file")
        self._lock_fd = lock_dir(self.directory)
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> None:
        tmp = self._tmp_path()
        if tmp.exists():  # an interrupted create or compaction; the real log is intact
            tmp.unlink()
            self._sync_dir()
        if self._initial is not None and self.path.exists():
            raise StoreExists(f"{self.path}: there is a store already")
        if not self.path.exists():
            if not self._create:
                raise MissingStore(f"{self.path}: no store")
            # Created by renaming a synced header and its first records into place, so no
            # crash leaves a log without them (see the module docstring, "Creation").
            self._install(encode_header(self.identity) + (self._initial or b""), creating=True)
        with open(self.path, "rb") as file:
            image = file.read()
        replayed = replay(image, self.identity, str(self.path))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if replayed.torn_bytes:
            os.ftruncate(self._fd, replayed.valid_bytes)
            if self._fsync:
                datasync(self._fd)
        self._state = replayed.state
        self._header_bytes = replayed.header_bytes
        self._log_bytes = replayed.valid_bytes
        self.repaired_tail_bytes = replayed.torn_bytes
        if self.policy.due(self._log_bytes, self._header_bytes, self._state.live_bytes):
            self._compact()

    def _tmp_path(self) -> Path:
        return self.path.with_name(LOG_NAME + TMP_SUFFIX)

    def _install(self, image: bytes, *, creating: bool = False) -> None:
        """Atomically replace the log with `image`: write a temp file, sync, rename, sync dir."""
        tmp = self._tmp_path()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, image)
            if creating:
                crash_point("new log: temporary file written, not synced")
            if self._fsync:
                os.fsync(fd)  # a new file: its size and allocation must be durable too
        finally:
            os.close(fd)
        if creating:
            crash_point("new log: temporary file synced, not renamed")
        os.replace(tmp, self.path)
        if creating:
            crash_point("new log: renamed into place, directory not synced")
        self._sync_dir()
        if creating:
            crash_point("new log: directory synced")

    def _sync_dir(self) -> None:
        if self._fsync:
            fsync_dir(self.directory)

    # -- the LogStore contract ----------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        """Buffer `records`; no I/O. All or none: an invalid record raises `InvalidRecord`."""
        self._check_usable()
        frames = [encode_frame(record) for record in records]
        apply = self._state.apply
        for record, frame in zip(records, frames, strict=True):
            apply(record, len(frame))
        self._buffer.extend(frames)

    def sync(self) -> None:
        """Append everything buffered and fdatasync once; compact if due. Durable on return."""
        self._check_usable()
        if self._buffer:
            self._flush()
        if self.policy.due(self._log_bytes, self._header_bytes, self._state.live_bytes):
            self._guarded(self._compact)

    def load(self) -> Recovered:
        """The state as written (durable once synced), and the tail repaired on open."""
        self._check_usable()
        return self._state.recovered(self.repaired_tail_bytes)

    def close(self) -> None:
        """Sync what is buffered (unless the store failed) and release the file and the lock."""
        if self._closed:
            return
        try:
            if self._failed is None and self._buffer:
                self._flush()
        finally:
            self._release()

    def disk_bytes(self) -> int:
        return self._log_bytes

    # -- extras --------------------------------------------------------------------------------

    def compact(self) -> None:
        """Rewrite the log as its live state now, whatever the policy says."""
        self._check_usable()
        if self._buffer:
            self._flush()
        self._guarded(self._compact)

    def abandon(self) -> None:
        """Drop buffered writes and release everything without syncing: a crash, for tests."""
        self._buffer.clear()
        self._release()

    def __enter__(self) -> FileLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreClosed(f"{self.path}: store is closed")
        if self._failed is not None:
            raise StoreFailed(f"{self.path}: an earlier write failed: {self._failed}")

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:
            self._failed = exc
            raise StoreFailed(f"{self.path}: {exc}") from exc

    def _flush(self) -> None:
        data = b"".join(self._buffer)
        self._buffer.clear()
        try:
            write_all(self._fd, data)
            if self._fsync:
                datasync(self._fd)
        except OSError as exc:
            self._failed = exc
            raise StoreFailed(f"{self.path}: append failed: {exc}") from exc
        self._log_bytes += len(data)
        self.fsyncs += 1

    def _compact(self) -> None:
        image, fresh = compacted_image(self.identity, self._state)
        try:
            self._install(image)
        finally:
            self._tmp_path().unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._state = fresh
        self._log_bytes = len(image)
        self.compactions += 1

    def _release(self) -> None:
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
