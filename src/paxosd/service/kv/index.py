"""The key-value store's sorted key index: byte-ordered keys in chunks, frozen in O(chunks).

Theory of operation: a range `[start, end)` must not scan every key, so the store keeps its
keys sorted: a list of sorted chunks (each at most `chunk_keys_max` keys) and the last key of
each chunk. Finding a key is a binary search over the chunks' last keys, then one within the
chunk; adding or removing a key shifts at most one chunk. A chunk that grows past
`chunk_keys_max` splits in two; one that empties disappears.

Snapshots are written while the store goes on changing (possibly from another thread), so
the index can be frozen: `freeze()` hands out the current chunks as they are and marks every
chunk shared. A shared chunk is never changed in place again - the first change to it after a
freeze copies it first (copy-on-write) - so a frozen index keeps seeing exactly the keys it
was frozen with, however the live one changes. Freezing costs O(number of chunks): about
20,000 references at 10 million keys. Each chunk is copied at most once per freeze, on its
first change.

Costs (n keys, c = chunk_keys_max): add/remove O(log n + c) (a memmove of at most c
references); a range of k keys O(log n + k).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Final

chunk_keys_max: Final = 1024


class KeyIndex:
    """Sorted distinct byte keys. Not thread-safe, except that a frozen view (see `freeze`)
    may be read from another thread while this index changes."""

    __slots__ = ("_chunks", "_gens", "_len", "_maxes", "_shared_below")

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        """An index of `keys`, which must be sorted and distinct."""
        self._chunks: list[list[bytes]] = []
        self._maxes: list[bytes] = []
        # A chunk whose generation is below _shared_below may be referenced by a frozen view.
        self._gens: list[int] = []
        self._shared_below = 0
        self._len = 0
        ordered = keys if isinstance(keys, list) else list(keys)
        half = chunk_keys_max // 2  # half full: room to grow before the first splits
        for first in range(0, len(ordered), half):
            self._append_chunk(ordered[first : first + half])

    def _append_chunk(self, chunk: list[bytes]) -> None:
        assert not self._maxes or self._maxes[-1] < chunk[0], "keys must be sorted and distinct"
        self._chunks.append(chunk)
        self._maxes.append(chunk[-1])
        self._gens.append(self._shared_below)
        self._len += len(chunk)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: bytes) -> bool:
        i = bisect.bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        chunk = self._chunks[i]
        j = bisect.bisect_left(chunk, key)
        return j < len(chunk) and chunk[j] == key

    def _writable(self, i: int) -> list[bytes]:
        """Chunk i, copied first if a frozen view may hold it."""
        if self._gens[i] < self._shared_below:
            self._chunks[i] = list(self._chunks[i])
            self._gens[i] = self._shared_below
        return self._chunks[i]

    def add(self, key: bytes) -> None:
        """Add `key`, which must not be in the index."""
        maxes = self._maxes
        if not maxes:
            self._chunks.append([key])
            maxes.append(key)
            self._gens.append(self._shared_below)
            self._len = 1
            return
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1  # past the last key: append to the last chunk
            chunk = self._writable(i)
            chunk.append(key)
            maxes[i] = key
        else:
            chunk = self._writable(i)
            j = bisect.bisect_left(chunk, key)
            assert j == len(chunk) or chunk[j] != key, "key already in the index"
            chunk.insert(j, key)
        self._len += 1
        if len(chunk) > chunk_keys_max:
            half = len(chunk) // 2
            self._chunks[i : i + 1] = [chunk[:half], chunk[half:]]
            maxes[i : i + 1] = [chunk[half - 1], chunk[-1]]
            self._gens[i : i + 1] = [self._shared_below, self._shared_below]

    def remove(self, key: bytes) -> None:
        """Remove `key`, which must be in the index."""
        i = bisect.bisect_left(self._maxes, key)
        chunk = self._writable(i)
        j = bisect.bisect_left(chunk, key)
        assert chunk[j] == key, "key not in the index"
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._chunks[i]
            del self._maxes[i]
            del self._gens[i]
        elif j == len(chunk):
            self._maxes[i] = chunk[-1]

    def irange(self, start: bytes, end: bytes | None) -> Iterator[bytes]:
        """Keys k with start <= k < end (end None: no upper bound), in order. The index must
        not change while the iterator is used (freeze it for that)."""
        return _irange(self._chunks, self._maxes, start, end)

    def freeze(self) -> FrozenKeys:
        """The keys as they are now, unaffected by later changes. O(number of chunks)."""
        frozen = FrozenKeys(tuple(self._chunks), tuple(self._maxes), self._len)
        # Every chunk's generation is now below the mark: all are shared until copied.
        self._shared_below += 1
        return frozen

    def invariants(self) -> None:
        assert len(self._chunks) == len(self._maxes) == len(self._gens)
        assert sum(len(chunk) for chunk in self._chunks) == self._len
        previous: bytes | None = None
        for chunk, last in zip(self._chunks, self._maxes, strict=True):
            assert chunk and chunk[-1] == last and len(chunk) <= chunk_keys_max
            for key in chunk:
                assert previous is None or previous < key
                previous = key


class FrozenKeys:
    """The keys of an index as they were when it was frozen. Safe to read from any thread."""

    __slots__ = ("_chunks", "_len", "_maxes")

    def __init__(
        self, chunks: tuple[list[bytes], ...], maxes: tuple[bytes, ...], length: int
    ) -> None:
        self._chunks = chunks
        self._maxes = maxes
        self._len = length

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            yield from chunk

    def irange(self, start: bytes, end: bytes | None) -> Iterator[bytes]:
        return _irange(self._chunks, self._maxes, start, end)


def _irange(
    chunks: list[list[bytes]] | tuple[list[bytes], ...],
    maxes: list[bytes] | tuple[bytes, ...],
    start: bytes,
    end: bytes | None,
) -> Iterator[bytes]:
    i = bisect.bisect_left(maxes, start)
    if i == len(maxes):
        return
    chunk = chunks[i]
    j = bisect.bisect_left(chunk, start)
    while True:
        if end is not None and maxes[i] >= end:
            # The range ends in this chunk.
            stop = bisect.bisect_left(chunk, end, j)
            yield from chunk[j:stop]
            return
        yield from chunk[j:] if j else chunk
        i += 1
        if i == len(chunks):
            return
        chunk = chunks[i]
        j = 0
