"""The SQL database's image in a snapshot: a zlib stream in chunks, written and read a piece
at a time.

Theory of operation: a snapshot carries the database as the bytes of its file (SQLite's
format), compressed (a database's pages are mostly free space and repeated text, and a
lagging node fetches a snapshot a chunk per round trip). The image is produced and consumed
as a stream, so neither side holds more than a few chunks of it in memory, however large the
database: `deflate_chunks` turns pieces of the file (any sizes) into compressed chunks of
exactly `chunk_bytes` (the last one shorter), and `Inflater` turns chunks back into pieces of
at most `piece_bytes_max`. Equal files give equal chunks: replicas' snapshots of one slot must
be equal bytes (a lagging node may take its chunks from several peers), and zlib's output
depends only on the bytes and the level, not on how they were handed to it.

Three header fields of the file describe a connection's history or mode, not the database
(bytes 18-19: the journal mode, WAL for a database in a file, legacy in memory; 24-27: the
change counter; 92-99: the version-valid-for number and the SQLite that last wrote it): they
are written as a fresh legacy-mode file has them, so every replica's image of one database
is the same, wherever it keeps it (a header whose change counter equals its version-valid-for
still vouches for its page count).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Final

from paxosd.service.errors import CorruptSnapshot

chunk_bytes: Final = 1024 * 1024
piece_bytes_max: Final = 4 * 1024 * 1024
# zlib's fastest level: most of what level 6 saves on a database's pages at a fraction of the
# time (a 1 GB database is compressed by one thread while the node runs).
level: Final = 1
_HEADER_BYTES: Final = 100


def normalize_header(first: bytes) -> bytes:
    """`first`, the file's first bytes, with the history fields as a fresh file has them."""
    if len(first) < _HEADER_BYTES:
        return first
    data = bytearray(first)
    data[18:20] = b"\x01\x01"
    data[24:28] = bytes(4)
    data[92:100] = bytes(8)
    return bytes(data)


def deflate_chunks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The compressed stream of the concatenated `pieces`, in chunks of `chunk_bytes`."""
    deflate = zlib.compressobj(level)
    pending = bytearray()
    for piece in pieces:
        pending += deflate.compress(piece)
        while len(pending) >= chunk_bytes:
            yield bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
    pending += deflate.flush()
    for start in range(0, len(pending), chunk_bytes):
        yield bytes(pending[start : start + chunk_bytes])


class Inflater:
    """Decompresses chunks of an image into pieces, refusing more than `image_bytes_max` in
    all, and anything but one whole zlib stream (`CorruptSnapshot`)."""

    def __init__(self, image_bytes_max: int) -> None:
        self._inflate = zlib.decompressobj()
        self._left = image_bytes_max
        self._limit = image_bytes_max
        self.total = 0

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self._inflate.eof:
            raise CorruptSnapshot("the SQL database image is followed by other data")
        data = chunk
        while data:
            try:
                piece = self._inflate.decompress(data, min(piece_bytes_max, self._left + 1))
            except zlib.error as exc:
                raise CorruptSnapshot(f"the SQL database image is not zlib data: {exc}") from None
            self.total += len(piece)
            self._left -= len(piece)
            if self._left < 0:
                raise CorruptSnapshot(
                    f"the SQL database image is over {self._limit} bytes (image_bytes_max)"
                )
            if piece:
                yield piece
            data = self._inflate.unconsumed_tail
            if self._inflate.eof and (data or self._inflate.unused_data):
                raise CorruptSnapshot("the SQL database image is followed by other data")

    def finish(self) -> None:
        if not self._inflate.eof:
            raise CorruptSnapshot("the SQL database image is cut")
