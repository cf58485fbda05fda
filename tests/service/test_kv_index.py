"""The sorted key index: a sorted set by another name, and frozen views that never change."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.service.kv import index as index_module
from paxosd.service.kv.index import KeyIndex

from .helpers import fuzz

keys = st.binary(min_size=1, max_size=3)
ops = st.lists(st.tuples(st.booleans(), keys), max_size=400)


@given(ops, keys, st.none() | keys)
@fuzz(300)
def test_index_is_a_sorted_set(
    steps: list[tuple[bool, bytes]], start: bytes, end: bytes | None
) -> None:
    """Against a plain sorted set: membership, order, and every range."""
    index, reference = KeyIndex(), set()
    frozen = []
    for i, (add, key) in enumerate(steps):
        if add and key not in reference:
            index.add(key)
            reference.add(key)
        elif not add and key in reference:
            index.remove(key)
            reference.discard(key)
        if i % 50 == 0:
            frozen.append((index.freeze(), sorted(reference)))
    index.invariants()
    assert list(index.irange(b"", None)) == sorted(reference)
    expected = [k for k in sorted(reference) if k >= start and (end is None or k < end)]
    assert list(index.irange(start, end)) == expected
    for view, keys_then in frozen:
        assert list(view) == keys_then  # unaffected by every change since


def test_chunks_split_and_merge_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """With tiny chunks, many keys split chunks; removing them all empties the index."""
    monkeypatch.setattr(index_module, "chunk_keys_max", 4)
    index = KeyIndex()
    for i in range(100):
        index.add(b"%03d" % ((i * 37) % 100))
    index.invariants()
    view = index.freeze()
    for i in range(100):
        index.remove(b"%03d" % i)
    index.invariants()
    assert len(index) == 0 and list(index.irange(b"", None)) == []
    assert list(view) == [b"%03d" % i for i in range(100)]


def test_built_from_sorted_keys() -> None:
    index = KeyIndex(b"%05d" % i for i in range(3000))
    index.invariants()
    assert list(index.irange(b"01000", b"01003")) == [b"01000", b"01001", b"01002"]
    assert b"02999" in index and b"3" not in index
