"""Integrity framing for state-machine snapshots.

Theory of operation: a snapshot travels between nodes and sits on disk, so bytes can arrive
truncated, bit-flipped, from another program, or from a future version of this one. Restoring
any of those must fail loudly (`CorruptSnapshot`), never yield a subtly different state, because
a replica restored from a bad snapshot would diverge from the others forever.

Frame layout (all big-endian):

    magic    4 bytes   b"PXSM"
    version  2 bytes   format version of the body (currently 2)
    digest  32 bytes   SHA-256 over magic, version and body
    body     rest      msgpack document, see machine.py

SHA-256 rather than CRC32 because corruption detection must hold for any damage, not just the
burst errors a CRC is designed for; at ~1 GB/s it costs far less than building the body.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from .errors import CorruptSnapshot

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
