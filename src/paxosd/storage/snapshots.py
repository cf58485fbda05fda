"""Snapshot files: the state machine after some slot, one file per snapshot, beside the log.

Theory of operation. A snapshot can be far larger than anything the log should hold (10
million keys, a 1 GB database), so it lives in a file of its own, and the log holds only a
`Snapshot(slot, size_bytes, checksum)` record that names it (core/multi/records.py). The
rules that make that safe are the engine's (core/multi/snapshots.py): a record is written
only once its file is durable, and older files are removed only once the newer record is.
This module keeps the files:

- `save(slot, write)`: `write` streams the state into `snapshot-<slot>.tmp` (buffered, hashed
  as it goes); the file is fsynced, renamed to `snapshot-<slot>.snap` and the directory
  fsynced, so a crash leaves either no snapshot of that slot or a whole one. Runs in a worker
  thread: it touches no file the event loop uses.
- `open(snapshot)`: a reader that hashes what it reads; `verify()` reads the rest and raises
  `DamagedSnapshot` (a `CorruptLog`) unless size and checksum are the record's. A missing file
  is `DamagedSnapshot` too: either way the node refuses to start on it.
- `read(slot, offset, length)`: one chunk of a snapshot, for a peer catching up.
- `stage(slot, offset, data)` / `finish(snapshot)`: a snapshot arriving from a peer, chunk by
  chunk, into `snapshot-<slot>.staged` (hashed as it arrives, so finishing reads nothing
  back); `finish` checks size and checksum, fsyncs and renames it to the snapshot of its slot.
- `remove_older(slot)` and `keep_only(slot)`: garbage, once a newer record is durable, and at
  start-up (leftover temporary and staged files, files no record names).

The checksum is BLAKE2b with a 16-byte digest over the whole file (it releases the GIL on
large buffers, at about 1 GB/s). The state machine's own format carries its own checks too.
Memory: a chunk and a buffer (`buffer_bytes`), never a whole snapshot.

Sharing the interpreter. A snapshot is written and read by a worker thread, mostly running
Python code, while the event loop runs the protocol. CPython hands the interpreter between
threads only every few milliseconds unless a thread gives it up, and the loop needs it
several times per timer tick; so every `buffer_bytes` written or read, the worker gives it up
(`time.sleep(0)`), which keeps the loop's delays to a few milliseconds (bench/snapshot_bench.py
measures them).

`DirSnapshots` keeps them in a directory (`snapshots/` in the data directory); `MemorySnapshots`
in memory, for tests and the simulator, where a crash loses a staged file (it is not synced
before `finish`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol, cast

from paxosd.core.multi.records import Snapshot

from .codec import snapshot_checksum_bytes
from .errors import CorruptLog
from .fsutil import fsync_dir

SNAPSHOTS_DIR: Final = "snapshots"
buffer_bytes: Final = 64 << 10
_NAME: Final = re.compile(r"snapshot-(\d{20})\.(snap|tmp|staged)")


class DamagedSnapshot(CorruptLog):
    """A snapshot file a record names is missing, or not what the record says it is."""

    def __init__(self, slot: int, problem: str, where: str = "") -> None:
        super().__init__(-1, f"snapshot of slot {slot}: {problem}", where)
        self.slot = slot
        self.problem = problem

    def __reduce__(self) -> tuple[type[DamagedSnapshot], tuple[int, str, str]]:
        return (type(self), (self.slot, self.problem, self.where))


def new_hasher() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=snapshot_checksum_bytes)


class SnapshotReader(io.BufferedReader):
    """A buffered reader of a snapshot file that hashes every byte it reads."""

    def __init__(self, raw: BinaryIO, snapshot: Snapshot, where: str) -> None:
        self._hashing = _HashingRaw(raw)
        super().__init__(self._hashing, buffer_bytes)
        self.snapshot = snapshot
        self.where = where

    def verify(self) -> None:
        """Read what is left and check the whole file against the record: `DamagedSnapshot`
        unless it has the record's size and checksum."""
        while self.read(buffer_bytes):
            pass
        hashing, snapshot = self._hashing, self.snapshot
        if hashing.size != snapshot.size_bytes:
            raise DamagedSnapshot(
                snapshot.slot, f"{hashing.size} bytes, the record says {snapshot.size_bytes}",
                self.where,
            )  # fmt: skip
        if hashing.hasher.digest() != snapshot.checksum:
            raise DamagedSnapshot(snapshot.slot, "checksum mismatch", self.where)


class _HashingRaw(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hasher = new_hasher()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.hasher.update(data)
        self.size += count
        time.sleep(0)  # the event loop's turn (see "Sharing the interpreter")
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


class _HashingWriter(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hasher = new_hasher()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.raw.write(data)
        self.hasher.update(data)
        count = len(data)
        self.size += count
        time.sleep(0)  # the event loop's turn (see "Sharing the interpreter")
        return count


def _write_hashed(raw: BinaryIO, slot: int, write: Callable[[BinaryIO], None]) -> Snapshot:
    """Stream `write`'s output into `raw` through a buffer, hashing it; the record naming it."""
    hashing = _HashingWriter(raw)
    buffered = io.BufferedWriter(cast(Any, hashing), buffer_bytes)
    write(buffered)
    buffered.flush()
    return Snapshot(slot, hashing.size, hashing.hasher.digest())


class SnapshotStore(Protocol):
    """Where a node keeps its snapshot files (see the module docstring)."""

    def save(self, slot: int, write: Callable[[BinaryIO], None]) -> Snapshot:
        """Write a durable snapshot file of `slot` from `write`'s output; the record naming it."""
        ...

    def open(self, snapshot: Snapshot) -> SnapshotReader:
        """A reader of the file `snapshot` names; `DamagedSnapshot` if there is none."""
        ...

    def read(self, slot: int, offset: int, length: int) -> bytes:
        """Up to `length` bytes of the snapshot file of `slot` from `offset`; `DamagedSnapshot`
        if there is no such file."""
        ...

    def stage(self, slot: int, offset: int, data: bytes) -> None:
        """Bytes `offset` on of a snapshot arriving from a peer (offset 0 starts it over)."""
        ...

    def finish(self, snapshot: Snapshot) -> None:
        """The staged snapshot is complete: check it against `snapshot` (`DamagedSnapshot`
        otherwise), and make it the durable snapshot file of its slot."""
        ...

    def remove_older(self, slot: int) -> None:
        """Remove the snapshot files and staged files of slots below `slot`."""
        ...

    def keep_only(self, slot: int | None) -> None:
        """Remove every file but the snapshot of `slot`: temporary and staged files too."""
        ...

    def slots(self) -> list[int]:
        """The slots that have a whole snapshot file, in order."""
        ...

    def disk_bytes(self) -> int: ...


class DirSnapshots:
    """Snapshot files in `directory` (created when the first one is written)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        # The snapshot arriving now: (slot, open file, hasher, bytes so far).
        self._staging: tuple[int, BinaryIO, hashlib.blake2b, int] | None = None

    def _path(self, slot: int, kind: str = "snap") -> Path:
        return self.directory / f"snapshot-{slot:020d}.{kind}"

    def _ensure_dir(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sync_dir(self.directory.parent)

    def _sync_dir(self, path: Path | None = None) -> None:
        if self._fsync:
            fsync_dir(path or self.directory)

    def save(self, slot: int, write: Callable[[BinaryIO], None]) -> Snapshot:
        self._ensure_dir()
        final, tmp = self._path(slot), self._path(slot, "tmp")
        try:
            with open(tmp, "wb", buffering=0) as file:
                snapshot = _write_hashed(file, slot, write)
                if self._fsync:
                    os.fsync(file.fileno())  # a new file: size and allocation too
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_dir()
        return snapshot

    def open(self, snapshot: Snapshot) -> SnapshotReader:
        path = self._path(snapshot.slot)
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 - the reader closes it
        except FileNotFoundError:
            raise DamagedSnapshot(snapshot.slot, "the file is missing", str(path)) from None
        return SnapshotReader(raw, snapshot, str(path))

    def read(self, slot: int, offset: int, length: int) -> bytes:
        path = self._path(slot)
        try:
            with open(path, "rb", buffering=0) as file:
                return os.pread(file.fileno(), length, offset)
        except FileNotFoundError:
            raise DamagedSnapshot(slot, "the file is missing", str(path)) from None

    def stage(self, slot: int, offset: int, data: bytes) -> None:
        staging = self._staging
        if offset == 0:
            self._drop_staging()
            self._ensure_dir()
            staged: BinaryIO = open(self._path(slot, "staged"), "wb", buffering=0)  # noqa: SIM115
            staging = (slot, staged, new_hasher(), 0)
        assert staging is not None and staging[0] == slot and staging[3] == offset, (
            f"chunk at {offset} of slot {slot} does not continue the staged snapshot"
        )
        _, file, hasher, size = staging
        file.write(data)
        hasher.update(data)
        self._staging = (slot, file, hasher, size + len(data))

    def finish(self, snapshot: Snapshot) -> None:
        staging, self._staging = self._staging, None
        assert staging is not None and staging[0] == snapshot.slot, "nothing staged to finish"
        slot, file, hasher, size = staging
        staged = self._path(slot, "staged")
        try:
            if size != snapshot.size_bytes or hasher.digest() != snapshot.checksum:
                raise DamagedSnapshot(slot, "arrived damaged (size or checksum)", str(staged))
            if self._fsync:
                os.fsync(file.fileno())
        except BaseException:
            file.close()
            staged.unlink(missing_ok=True)
            raise
        file.close()
        os.replace(staged, self._path(slot))
        self._sync_dir()

    def _drop_staging(self) -> None:
        staging, self._staging = self._staging, None
        if staging is not None:
            staging[1].close()
            self._path(staging[0], "staged").unlink(missing_ok=True)

    def _files(self) -> list[tuple[int, str, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _NAME.fullmatch(path.name)
            if match is not None:
                found.append((int(match.group(1)), match.group(2), path))
        return sorted(found)

    def remove_older(self, slot: int) -> None:
        staging = self._staging
        if staging is not None and staging[0] < slot:
            self._drop_staging()
        removed = False
        for found, kind, path in self._files():
            if found < slot and kind == "snap":
                path.unlink(missing_ok=True)
                removed = True
        if removed:
            self._sync_dir()

    def keep_only(self, slot: int | None) -> None:
        self._drop_staging()
        removed = False
        for found, kind, path in self._files():
            if found != slot or kind != "snap":
                path.unlink(missing_ok=True)
                removed = True
        if removed:
            self._sync_dir()

    def slots(self) -> list[int]:
        return [slot for slot, kind, _ in self._files() if kind == "snap"]

    def disk_bytes(self) -> int:
        total = 0
        for _, _, path in self._files():
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                total += path.stat().st_size
        return total


class MemorySnapshots:
    """Snapshot files in memory, with crash semantics: a staged snapshot is lost in a crash
    (a saved one is durable when `save` returns, as `DirSnapshots` makes it)."""

    WHERE = "memory snapshots"

    def __init__(self) -> None:
        self.files: dict[int, bytes] = {}
        self._staging: tuple[int, bytearray, hashlib.blake2b] | None = None

    def save(self, slot: int, write: Callable[[BinaryIO], None]) -> Snapshot:
        out = io.BytesIO()
        snapshot = _write_hashed(out, slot, write)
        self.files[slot] = out.getvalue()
        return snapshot

    def open(self, snapshot: Snapshot) -> SnapshotReader:
        data = self.files.get(snapshot.slot)
        if data is None:
            raise DamagedSnapshot(snapshot.slot, "the file is missing", self.WHERE)
        return SnapshotReader(io.BytesIO(data), snapshot, self.WHERE)

    def read(self, slot: int, offset: int, length: int) -> bytes:
        data = self.files.get(slot)
        if data is None:
            raise DamagedSnapshot(slot, "the file is missing", self.WHERE)
        return data[offset : offset + length]

    def stage(self, slot: int, offset: int, data: bytes) -> None:
        if offset == 0:
            self._staging = (slot, bytearray(), new_hasher())
        staging = self._staging
        assert staging is not None and staging[0] == slot and len(staging[1]) == offset, (
            f"chunk at {offset} of slot {slot} does not continue the staged snapshot"
        )
        staging[1].extend(data)
        staging[2].update(data)

    def finish(self, snapshot: Snapshot) -> None:
        staging, self._staging = self._staging, None
        assert staging is not None and staging[0] == snapshot.slot, "nothing staged to finish"
        slot, data, hasher = staging
        if len(data) != snapshot.size_bytes or hasher.digest() != snapshot.checksum:
            raise DamagedSnapshot(slot, "arrived damaged (size or checksum)", self.WHERE)
        self.files[slot] = bytes(data)

    def remove_older(self, slot: int) -> None:
        if self._staging is not None and self._staging[0] < slot:
            self._staging = None
        for found in [s for s in self.files if s < slot]:
            del self.files[found]

    def keep_only(self, slot: int | None) -> None:
        self._staging = None
        for found in [s for s in self.files if s != slot]:
            del self.files[found]

    def slots(self) -> list[int]:
        return sorted(self.files)

    def disk_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())

    # -- simulation ----------------------------------------------------------------------------

    def crash(self) -> None:
        """A crash: what was staged and not finished (never synced) is gone."""
        self._staging = None

    def damage(self, slot: int) -> None:
        """Flip a byte of the snapshot file of `slot` (a test's damaged disk)."""
        data = bytearray(self.files[slot])
        data[len(data) // 2] ^= 0xFF
        self.files[slot] = bytes(data)
