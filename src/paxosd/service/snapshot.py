"""Integrity framing for state-machine snapshots.

Theory of operation: a snapshot travels between nodes and sits on disk, so bytes can arrive
truncated, bit-flipped, from another program, or from a future version of this one. Restoring
any of those must fail loudly (`CorruptSnapshot`), never yield a subtly different state, because
a replica restored from a bad snapshot would diverge from the others forever.

Version 3 (written now) is a stream, so a snapshot of millions of keys is written and read a
piece at a time, never whole in memory (all integers big-endian):

    magic    4 bytes   b"PXSM"
    version  2 bytes   3
    frames             each: length (4 bytes), then that many bytes of msgpack objects
    end      4 bytes   a frame of length 0
    digest  32 bytes   SHA-256 over everything before it

The objects (router.py, then each state machine's section) are one msgpack stream split into
frames of about `frame_bytes_target`; a frame may end inside an object. The digest comes last,
so a reader verifies it only at the end: restoring builds a new state and throws it away if
the digest (or anything else) is wrong. Equal objects give equal bytes.

Version 2 (read only) was one sealed body:

    magic    4 bytes   b"PXSM"
    version  2 bytes   2
    digest  32 bytes   SHA-256 over magic, version and body
    body     rest      one msgpack document

SHA-256 rather than CRC32 because corruption detection must hold for any damage, not just the
burst errors a CRC is designed for; at ~1 GB/s it costs far less than building the body.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO, Final

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type information

from .errors import CorruptSnapshot

snapshot_magic: Final = b"PXSM"
snapshot_version: Final = 3
legacy_version: Final = 2
_HEADER: Final = struct.Struct(">4sH")
_LENGTH: Final = struct.Struct(">I")
_DIGEST_BYTES: Final = 32
header_bytes: Final = _HEADER.size + _DIGEST_BYTES
frame_bytes_target: Final = 64 * 1024
# A frame longer than this is damage, not data (the largest object is a value of 1 MiB).
frame_bytes_max: Final = 64 * 1024 * 1024


class SnapshotWriter:
    """Writes a version-3 snapshot to `out`: `write` objects, then `close`."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._packer = msgpack.Packer()
        self._emit(_HEADER.pack(snapshot_magic, snapshot_version))

    def _emit(self, data: bytes) -> None:
        self._hash.update(data)
        self._out.write(data)

    def write(self, document: object) -> None:
        self._buffer += self._packer.pack(document)
        if len(self._buffer) >= frame_bytes_target:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._emit(_LENGTH.pack(len(self._buffer)))
            self._emit(bytes(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        self._flush()
        self._emit(_LENGTH.pack(0))
        self._out.write(self._hash.digest())


class SnapshotReader:
    """Reads the objects of a version-3 snapshot from `inp`, a frame at a time; `finish`
    checks that nothing follows and that the digest matches. Raises `CorruptSnapshot` only."""

    def __init__(self, inp: BinaryIO, head: bytes) -> None:
        self._inp = inp
        self._hash = hashlib.sha256(head)
        self._unpacker = msgpack.Unpacker(max_buffer_size=frame_bytes_max * 2)
        self._ended = False

    def _read(self, size: int) -> bytes:
        data = self._inp.read(size)
        if len(data) != size:
            raise CorruptSnapshot(f"truncated: {size} bytes expected, {len(data)} found")
        return bytes(data)

    def objects(self) -> Iterator[Any]:
        """Every object, in order."""
        while True:
            try:
                yield from self._unpacker
            except Exception as exc:  # msgpack raises several types; all mean "not ours"
                raise CorruptSnapshot(f"malformed snapshot data ({type(exc).__name__})") from None
            if self._ended:
                return
            head = self._read(_LENGTH.size)
            self._hash.update(head)
            (length,) = _LENGTH.unpack(head)
            if length == 0:
                self._ended = True
                continue
            if length > frame_bytes_max:
                raise CorruptSnapshot(f"a frame of {length} bytes: damaged")
            frame = self._read(length)
            self._hash.update(frame)
            self._unpacker.feed(frame)

    def next(self, objects: Iterator[Any], what: str) -> Any:
        """The next object, naming `what` was expected if there is none."""
        try:
            return next(objects)
        except StopIteration:
            raise CorruptSnapshot(f"the snapshot ends before {what}") from None

    def finish(self, objects: Iterator[Any]) -> None:
        """Nothing may follow, and the digest must match."""
        for extra in objects:
            raise CorruptSnapshot(f"unexpected data after the state: {extra!r:.40}")
        digest = self._inp.read(_DIGEST_BYTES + 1)
        if len(digest) != _DIGEST_BYTES:
            raise CorruptSnapshot("the digest is missing, cut, or followed by other data")
        if digest != self._hash.digest():
            raise CorruptSnapshot("checksum mismatch: the snapshot is damaged or truncated")


def open_snapshot(source: bytes | bytearray | memoryview | BinaryIO) -> tuple[int, Any]:
    """(version, what to read it with): for version 2 the unsealed body bytes, for version 3
    a `SnapshotReader`. Raises `CorruptSnapshot` for anything else."""
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    head = source.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise CorruptSnapshot(f"truncated: {len(head)} bytes, a header alone is {_HEADER.size}")
    magic, version = _HEADER.unpack(head)
    if magic != snapshot_magic:
        raise CorruptSnapshot(f"not a paxosd state-machine snapshot (magic {magic!r})")
    if version == legacy_version:
        return version, unseal(head + source.read())
    if version != snapshot_version:
        raise CorruptSnapshot(
            f"unsupported snapshot version {version} "
            f"(this code reads {legacy_version} and {snapshot_version})"
        )
    return version, SnapshotReader(source, head)


def seal(body: bytes, version: int = legacy_version) -> bytes:
    """Frame `body` with magic, version and digest (version 2; for tests of old snapshots)."""
    head = _HEADER.pack(snapshot_magic, version)
    return head + hashlib.sha256(head + body).digest() + body


def unseal(data: bytes) -> bytes:
    """The body of a version-2 frame; raises `CorruptSnapshot` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptSnapshot(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < header_bytes:
        raise CorruptSnapshot(f"truncated: {len(data)} bytes, a header alone is {header_bytes}")
    magic, version = _HEADER.unpack_from(data)
    if magic != snapshot_magic:
        raise CorruptSnapshot(f"not a paxosd state-machine snapshot (magic {magic!r})")
    if version != legacy_version:
        raise CorruptSnapshot(
            f"unsupported snapshot version {version} (this code reads {legacy_version} here)"
        )
    head = data[: _HEADER.size]
    digest = data[_HEADER.size : header_bytes]
    body = data[header_bytes:]
    if hashlib.sha256(head + body).digest() != digest:
        raise CorruptSnapshot("checksum mismatch: the snapshot is damaged or truncated")
    return body
