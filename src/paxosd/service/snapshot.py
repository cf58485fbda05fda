"""Integrity framing for state-machine snapshots.

Theory of operation: a snapshot travels between nodes and sits on disk, so bytes can arrive
truncated, bit-flipped, from another program, or from a future version of this one. Restoring
any of those must fail loudly (`CorruptSnapshot`), never yield a subtly different state, because
a replica restored from a bad snapshot would diverge from the others forever.

Frame layout of version 2 (`seal`; all big-endian; version 3, streamed, is below):

    magic    4 bytes   b"PXSM"
    version  2 bytes   format version of the body (2)
    digest  32 bytes   SHA-256 over magic, version and body
    body     rest      msgpack document, see machine.py

SHA-256 rather than CRC32 because corruption detection must hold for any damage, not just the
burst errors a CRC is designed for; at ~1 GB/s it costs far less than building the body.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Final

from .errors import CorruptSnapshot
from .values import pack, unpack

snapshot_magic: Final = b"PXSM"
snapshot_version: Final = 2
_HEADER: Final = struct.Struct(">4sH")
_DIGEST_BYTES: Final = 32
header_bytes: Final = _HEADER.size + _DIGEST_BYTES


def seal(body: bytes, version: int = snapshot_version) -> bytes:
    """Frame `body` with magic, version and digest."""
    head = _HEADER.pack(snapshot_magic, version)
    return head + hashlib.sha256(head + body).digest() + body


def unseal(data: bytes) -> bytes:
    """The body of a frame made by `seal`; raises `CorruptSnapshot` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptSnapshot(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < header_bytes:
        raise CorruptSnapshot(f"truncated: {len(data)} bytes, a header alone is {header_bytes}")
    magic, version = _HEADER.unpack_from(data)
    if magic != snapshot_magic:
        raise CorruptSnapshot(f"not a paxosd state-machine snapshot (magic {magic!r})")
    if version != snapshot_version:
        raise CorruptSnapshot(
            f"unsupported snapshot version {version} (this code reads {snapshot_version})"
        )
    head = data[: _HEADER.size]
    digest = data[_HEADER.size : header_bytes]
    body = data[header_bytes:]
    if hashlib.sha256(head + body).digest() != digest:
        raise CorruptSnapshot("checksum mismatch: the snapshot is damaged or truncated")
    return body


# -- the streamed format (version 3) --------------------------------------------------------
#
# A snapshot that may be gigabytes is written and read as a stream, in small pieces, so that
# neither side ever holds it whole and a writer in a worker thread never holds the
# interpreter for long (each frame is one short msgpack call):
#
#     magic    4 bytes   b"PXSM"
#     version  2 bytes   3
#     frames             u32 length | msgpack [section, [row, ...]]   (length > 0)
#     end                u32 0
#     digest  32 bytes   SHA-256 over everything before it
#
# Sections come in increasing order, each in as many frames as it needs (`rows_per_frame`
# rows each, so equal states give equal bytes); what a section holds is the machine's
# (machine.py). Version 2 (`seal`) is still read.

stream_version: Final = 3
rows_per_frame: Final = 1024
# No frame the writer makes comes near this; a longer one is damage, refused before reading.
frame_bytes_max: Final = 64 << 20
_LENGTH: Final = struct.Struct(">I")


class StreamWriter:
    """Writes one snapshot in the streamed format to `out`."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hasher = hashlib.sha256()
        self._emit(_HEADER.pack(snapshot_magic, stream_version))

    def _emit(self, data: bytes) -> None:
        self.hasher.update(data)
        self.out.write(data)

    def section(self, index: int, rows: Iterable[Any]) -> None:
        iterator = iter(rows)
        while chunk := list(itertools.islice(iterator, rows_per_frame)):
            payload = pack([index, chunk])
            self._emit(_LENGTH.pack(len(payload)) + payload)

    def close(self) -> None:
        self._emit(_LENGTH.pack(0))
        self.out.write(self.hasher.digest())


def read_header(inp: BinaryIO) -> tuple[bytes, int]:
    """(the header's bytes, the format version) of a snapshot; `CorruptSnapshot` for another
    program's bytes."""
    head = _read_exactly(inp, _HEADER.size, "header")
    magic, version = _HEADER.unpack(head)
    if magic != snapshot_magic:
        raise CorruptSnapshot(f"not a paxosd state-machine snapshot (magic {magic!r})")
    return head, version


class StreamReader:
    """Reads the sections of a streamed snapshot, one frame at a time, checking the digest at
    `finish`. Any damage is `CorruptSnapshot`."""

    def __init__(self, inp: BinaryIO, head: bytes) -> None:
        self.inp = inp
        self.hasher = hashlib.sha256(head)
        self._next: tuple[int, list[Any]] | None = None
        self._ended = False
        self._section = -1

    def _frame(self) -> tuple[int, list[Any]] | None:
        if self._next is not None:
            frame, self._next = self._next, None
            return frame
        if self._ended:
            return None
        raw = _read_exactly(self.inp, _LENGTH.size, "frame length")
        self.hasher.update(raw)
        (length,) = _LENGTH.unpack(raw)
        if length == 0:
            self._ended = True
            return None
        if length > frame_bytes_max:
            raise CorruptSnapshot(f"a frame of {length} bytes (at most {frame_bytes_max})")
        payload = _read_exactly(self.inp, length, "frame")
        self.hasher.update(payload)
        try:
            frame = unpack(payload)
        except Exception as exc:  # any msgpack failure means the frame is not ours
            raise CorruptSnapshot(f"a frame is not msgpack ({type(exc).__name__})") from None
        if (
            type(frame) is not list
            or len(frame) != 2
            or type(frame[0]) is not int
            or type(frame[1]) is not list
            or not frame[1]
        ):
            raise CorruptSnapshot("a frame is not [section, rows]")
        if frame[0] < self._section:
            raise CorruptSnapshot(f"section {frame[0]} after section {self._section}")
        self._section = frame[0]
        return frame[0], frame[1]

    def rows(self, section: int) -> Iterator[Any]:
        """The rows of `section` (none if it is empty), in order."""
        while (frame := self._frame()) is not None:
            if frame[0] != section:
                self._next = frame  # a later section's
                return
            yield from frame[1]

    def finish(self) -> None:
        """Every section was read: the stream must end here, with a matching digest."""
        if self._frame() is not None:
            raise CorruptSnapshot(f"an unknown section {self._section} at the end")
        digest = _read_exactly(self.inp, _DIGEST_BYTES, "digest")
        if digest != self.hasher.digest():
            raise CorruptSnapshot("checksum mismatch: the snapshot is damaged or truncated")
        if self.inp.read(1):
            raise CorruptSnapshot("bytes after the end of the snapshot")


def _read_exactly(inp: BinaryIO, size: int, what: str) -> bytes:
    data = inp.read(size)
    while len(data) < size:
        more = inp.read(size - len(data))
        if not more:
            raise CorruptSnapshot(f"truncated in the {what}: {len(data)} of {size} bytes")
        data += more
    return data
