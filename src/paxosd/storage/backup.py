"""Backup files: a running cluster's state at one revision, in one checksummed file.

Theory of operation. A backup is what an operator keeps away from the cluster to survive the
loss of every node: `paxosd snapshot save` asks one node for it (over HTTP), `paxosd snapshot
status` says what a file holds, and `paxosd snapshot restore` seeds the stores of a NEW
cluster from it. The state inside is exactly a state-machine snapshot as the engine writes
it for its own snapshot files and for peers catching up (service/snapshot.py, format 3), so
a backup is restored by the same code that installs a peer's snapshot.

The file (all integers big-endian):

    magic         4 bytes   b"PXBK"
    version       2 bytes   1
    meta length   4 bytes
    meta                    UTF-8 JSON: what `status` shows without reading the state
    state                   the state-machine snapshot, `state_bytes` (in the meta) long
    digest       32 bytes   SHA-256 over everything before it

The meta names the cluster and node it came from, the slot and revision it holds, and how
many keys; it is covered by the digest, so a file whose meta was edited is refused like a
file whose state was. The digest comes last so that a node can stream a backup while it
writes it; a reader checks it at the end, and a file that is cut anywhere is refused (its
digest is missing or wrong). The state's own SHA-256 (service/snapshot.py) is checked again
when it is restored.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from paxosd.core.multi.learner import batch_shift

from .errors import StorageError

backup_magic: Final = b"PXBK"
backup_version: Final = 1
_HEADER: Final = struct.Struct(">4sHI")
digest_bytes: Final = 32
# The meta is a few hundred bytes; anything far larger is damage, not a backup.
meta_bytes_max: Final = 64 * 1024
chunk_bytes: Final = 1 << 20


def engine_slot(command_index: int) -> int:
    """The log slot of a state machine's last applied command: the machine counts commands
    (slot << batch_shift | position in the slot's batch, core/multi/learner.py), a snapshot
    record names the slot."""
    return command_index >> batch_shift if command_index >= 0 else -1


class StateView(Protocol):
    """A state machine's snapshot view (core/multi/learner.py's SnapshotView)."""

    def write(self, out: BinaryIO) -> None: ...


def spool_state(view: StateView, directory: Path) -> tuple[BinaryIO, int]:
    """Write `view`'s state into an unnamed temporary file in `directory` (it disappears when
    closed, or with the process): the file, rewound, and its size. The state's size must be
    known before a backup's header is sent, and a node keeps no second copy of it anywhere a
    crash would leave it."""
    file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - the caller closes it
    try:
        view.write(file)
        size = file.tell()
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file, size


class DamagedBackup(StorageError):
    """A backup file that is not whole, not ours, or not what its meta says: never restored."""


@dataclass(frozen=True, slots=True)
class BackupMeta:
    """What a backup holds, as its header says (checked against the state at restore)."""

    cluster_id: str  # the cluster it was taken from
    node_id: int  # the node that wrote it
    slot: int  # the last log slot applied to the state (a snapshot record's slot)
    revision: int  # the key-value store's revision
    compact_revision: int
    keys: int  # live keys at that revision
    state_bytes: int  # the state-machine snapshot's length
    created_at: str  # UTC, ISO 8601, the node's clock (for people only)
    paxosd_version: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> BackupMeta:
        fields: dict[str, type] = {
            "cluster_id": str, "node_id": int, "slot": int, "revision": int,
            "compact_revision": int, "keys": int, "state_bytes": int, "created_at": str,
            "paxosd_version": str,
        }  # fmt: skip
        if not isinstance(raw, dict):
            raise DamagedBackup("the backup's header is not a JSON object")
        missing = sorted(set(fields) - set(raw))
        if missing:
            raise DamagedBackup(f"the backup's header lacks {', '.join(missing)}")
        for name, kind in fields.items():
            value = raw[name]
            if type(value) is not kind or (isinstance(value, int) and value < -1):
                raise DamagedBackup(f"the backup's header has a bad {name}: {value!r:.40}")
        return cls(**{name: raw[name] for name in fields})


def header(meta: BackupMeta) -> bytes:
    """Magic, version and meta: what precedes the state."""
    text = json.dumps(meta.to_json(), sort_keys=True).encode()
    return _HEADER.pack(backup_magic, backup_version, len(text)) + text


class BackupFraming:
    """The bytes of a backup, in order: `head`, then each piece of the state through `state`,
    then `end()` (the digest). Hashes exactly what it hands out; the caller writes it (to a
    file, or to an HTTP response as it goes)."""

    def __init__(self, meta: BackupMeta) -> None:
        self.head = header(meta)
        self.total_bytes = len(self.head) + meta.state_bytes + digest_bytes
        self._hash = hashlib.sha256(self.head)
        self._left = meta.state_bytes

    def state(self, data: bytes) -> bytes:
        self._left -= len(data)
        assert self._left >= 0, "more state than the meta announced"
        self._hash.update(data)
        return data

    def end(self) -> bytes:
        assert self._left == 0, "less state than the meta announced"
        return self._hash.digest()


def write_backup(out: BinaryIO, meta: BackupMeta, state: BinaryIO) -> None:
    """A whole backup into `out`, its state read from `state` (`meta.state_bytes` long)."""
    framing = BackupFraming(meta)
    out.write(framing.head)
    while data := state.read(chunk_bytes):
        out.write(framing.state(data))
    out.write(framing.end())


def read_meta(inp: BinaryIO) -> tuple[BackupMeta, hashlib._Hash]:
    """The meta at the head of `inp` and the hash of what was read so far (the state's bytes
    follow). `DamagedBackup` for anything that is not a backup header."""
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise DamagedBackup(f"truncated: {len(head)} bytes, the header alone is {_HEADER.size}")
    magic, version, length = _HEADER.unpack(head)
    if magic != backup_magic:
        hint = " (a node's snapshot file, not a backup)" if magic == b"PXSM" else ""
        raise DamagedBackup(f"not a paxosd backup (magic {magic!r}){hint}")
    if version != backup_version:
        raise DamagedBackup(
            f"backup format version {version}: this paxosd reads version {backup_version}"
        )
    if length > meta_bytes_max:
        raise DamagedBackup(f"a header of {length} bytes: damaged")
    text = inp.read(length)
    if len(text) != length:
        raise DamagedBackup(f"truncated in its header ({len(text)} of {length} bytes)")
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise DamagedBackup("the backup's header is not JSON: damaged") from None
    hasher = hashlib.sha256(head)
    hasher.update(text)
    return BackupMeta.from_json(raw), hasher


class StateReader:
    """The state's bytes of a backup, read a chunk at a time and hashed; `finish` checks that
    the state is whole, the digest follows and matches, and nothing comes after it."""

    def __init__(self, inp: BinaryIO, meta: BackupMeta, hasher: hashlib._Hash) -> None:
        self._inp = inp
        self._left = meta.state_bytes
        self._hash = hasher

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            size = self._left
        data = self._inp.read(size)
        self._hash.update(data)
        self._left -= len(data)
        if size and not data:
            raise DamagedBackup(f"truncated: {self._left} bytes of its state are missing")
        return data

    def chunks(self) -> Iterator[bytes]:
        while self._left:
            yield self.read(chunk_bytes)

    def finish(self) -> bytes:
        """The digest, once checked. Reads whatever of the state is left first."""
        for _ in self.chunks():
            pass
        digest = self._inp.read(digest_bytes + 1)
        if len(digest) < digest_bytes:
            raise DamagedBackup("truncated: the checksum at its end is missing or cut")
        if len(digest) > digest_bytes:
            raise DamagedBackup("other data follows the checksum: not a whole backup file")
        if digest != self._hash.digest():
            raise DamagedBackup("checksum mismatch: the file is damaged")
        return digest
