"""Small filesystem helpers the durable backends share: data directories, fsync, locking.

Theory of operation. A file's data is durable after fdatasync on it; its *name* is durable only
after fsync on the directory that holds it. Skipping the directory fsync after creating or
renaming a file is a classic data-loss bug: the file can vanish (or the rename revert) in a
power cut even though its bytes were synced. Every create and rename below is followed by one.

One store per data directory: a second process appending to the same log would interleave
frames and corrupt it, so the directory is locked (`flock` on a LOCK file, released by the
kernel if the process dies) and each backend refuses a directory holding the other's files.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Final

from .errors import BackendMismatch, DataDirLocked, MissingStore

LOG_NAME: Final = "paxos.log"
SQLITE_NAME: Final = "paxos.sqlite"
LOCK_NAME: Final = "LOCK"
BACKEND_FILES: Final = {"file": LOG_NAME, "sqlite": SQLITE_NAME}
# A store is made under this suffix and renamed into place once it is whole.
TMP_SUFFIX: Final = ".tmp"
# Every file a store of either backend may leave in its directory (LOCK aside).
STORE_FILES: Final = (
    LOG_NAME,
    LOG_NAME + TMP_SUFFIX,
    SQLITE_NAME,
    f"{SQLITE_NAME}-wal",
    f"{SQLITE_NAME}-shm",
    SQLITE_NAME + TMP_SUFFIX,
    f"{SQLITE_NAME}{TMP_SUFFIX}-journal",
    "snapshots",  # the snapshot files (storage/snapshots.py: SNAPSHOTS_DIR)
)


def datasync(fd: int) -> None:
    """Make the file's data (and the size needed to read it back) durable."""
    if sys.platform == "darwin":  # pragma: no cover - macOS fsync does not reach the platter
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    elif hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover
        os.fsync(fd)


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def ensure_dir(path: Path, create: bool, fsync: bool) -> None:
    """Make sure the data directory exists; create it (and make that durable) if allowed."""
    if path.is_dir():
        return
    if not create:
        raise MissingStore(f"{path}: no data directory")
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    if fsync:
        # Each new directory's entry lives in its parent: sync from the deepest up.
        for created in missing:
            fsync_dir(created.parent)


def check_backend(directory: Path, backend: str) -> None:
    """Refuse a directory that holds another backend's store (it would look empty to us)."""
    for other, name in BACKEND_FILES.items():
        if other != backend and (directory / name).exists():
            raise BackendMismatch(
                f"{directory}: holds a {other!r} store ({name}); refusing to open it as {backend!r}"
            )


def lock_held(directory: Path) -> bool:
    """Whether another process holds the directory's lock now (a node runs on it)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if this call took it
    return False


def lock_dir(directory: Path) -> int:
    """Take the directory's exclusive lock; the returned fd holds it until closed."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirLocked(f"{directory}: in use by another store (LOCK is held)") from None
    except BaseException:
        os.close(fd)
        raise
    return fd
