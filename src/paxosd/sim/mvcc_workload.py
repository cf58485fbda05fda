"""The simulator's workload of the key-value store over many keys: ranges (paginated), reads in
the past, transactions and compactions, on a small key set that every operation shares.

Theory of operation. Each simulated client draws its next operation here when its workload is
`mvcc`. Keys are `m/0` .. `m/<keys-1>`; every value written is unique (the client's name and
seq), so a read's answer names the write it saw. A client remembers the revisions it saw and
each key's mod revision as it last saw it, so that its reads in the past ask for revisions
that exist (or were compacted away) and its transactions compare with something true or
recently true:

- put of one key; delete of one key, or of the whole prefix in one revision;
- range of the prefix (sorted now and then, counted now and then), or a page of a listing:
  the first page at the current revision with a limit, the next ones at the revision of the
  first, from the key after the last one seen, until `more` is false;
- a range at a past revision the client saw;
- a transaction: compares on a key's mod revision, version or absence (or on the whole
  prefix), success puts one or two keys and reads the prefix, failure reads the key;
- a compaction to a revision the client saw, a few behind the newest.

The checker (paxosd.check.mvcc) judges every answer against the reference model replaying the
agreed log, and real time against revisions.
"""

from __future__ import annotations

import random
from typing import Any

from paxosd.service.kv import (
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    KeyValue,
    Put,
    Range,
    RangeResponse,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
    prefix_end,
)

PREFIX = b"m/"
PAGE_LIMIT = 2


class MvccClient:
    """One client's memory of the store, and its choice of the next operation."""

    def __init__(self, name: str, keys: int, rng: random.Random) -> None:
        self.name = name
        self.keys = [b"m/%d" % i for i in range(max(2, keys))]
        self.rng = rng
        self.revisions: list[int] = []  # revisions this client saw answered
        self.mods: dict[bytes, KeyValue | None] = {}  # each key as last seen
        self.listing: tuple[int, bytes] | None = None  # (revision, next key) of a listing

    def choose(self, seq: int) -> tuple[str, Any]:
        """(kind, op) of the next operation."""
        rng = self.rng
        if self.listing is not None:
            revision, start = self.listing
            page = Range(
                key=start, range_end=prefix_end(PREFIX), limit=PAGE_LIMIT, revision=revision
            )
            return "page", page
        roll = rng.random()
        key = rng.choice(self.keys)
        if roll < 0.25:
            return "put", Put(key=key, value=b"%s-%d" % (self.name.encode(), seq))
        if roll < 0.32:
            if rng.random() < 0.2:
                return "delete", DeleteRange(key=PREFIX, range_end=prefix_end(PREFIX))
            return "delete", DeleteRange(key=key, prev_kv=rng.random() < 0.5)
        if roll < 0.47:
            return "range", self._range()
        if roll < 0.55:
            self.listing = None
            return "page", Range(key=PREFIX, range_end=prefix_end(PREFIX), limit=PAGE_LIMIT)
        if roll < 0.65 and self.revisions:
            revision = rng.choice(self.revisions[-20:])
            return "past", Range(key=PREFIX, range_end=prefix_end(PREFIX), revision=revision)
        if roll < 0.95:
            return "txn", self._txn(key, seq)
        if self.revisions:
            newest = max(self.revisions)
            target = newest - rng.randrange(0, 6)
            if target > 1:
                return "compact", Compact(revision=target)
        return "range", self._range()

    def _range(self) -> Range:
        rng = self.rng
        order = rng.choice((SortOrder.NONE, SortOrder.NONE, SortOrder.ASCEND, SortOrder.DESCEND))
        target = rng.choice(tuple(SortTarget))
        return Range(
            key=PREFIX,
            range_end=prefix_end(PREFIX),
            sort_order=order,
            sort_target=target,
            limit=rng.choice((0, 0, 0, 1, 3)),
            count_only=rng.random() < 0.1,
            keys_only=rng.random() < 0.1,
        )

    def _txn(self, key: bytes, seq: int) -> Txn:
        rng = self.rng
        seen = self.mods.get(key)
        roll = rng.random()
        if seen is None or roll < 0.3:
            compare = Compare(key=key, target=CompareTarget.CREATE, create_revision=0)
        elif roll < 0.7:
            compare = Compare(key=key, target=CompareTarget.MOD, mod_revision=seen.mod_revision)
        elif roll < 0.85:
            compare = Compare(key=key, target=CompareTarget.VERSION, version=seen.version)
        else:
            compare = Compare(
                key=PREFIX,
                range_end=prefix_end(PREFIX),
                target=CompareTarget.MOD,
                result=CompareResult.LESS,
                mod_revision=max(self.revisions, default=1) + 1,
            )
        value = b"%s-%d" % (self.name.encode(), seq)
        writes: tuple[Any, ...] = (Put(key=key, value=value, prev_kv=True),)
        other = rng.choice(self.keys)
        if other != key and rng.random() < 0.5:
            writes += (Put(key=other, value=value + b"b"),)
        listing = Range(key=PREFIX, range_end=prefix_end(PREFIX))
        return Txn(compare=(compare,), success=(*writes, listing), failure=(Range(key=key),))

    def answered(self, kind: str, op: Any, answer: Any) -> None:
        """Remember what an answer showed (revisions, keys' mod revisions, the listing)."""
        revision = getattr(answer, "revision", None)
        if isinstance(revision, int) and revision > 0:
            self.revisions.append(revision)
            del self.revisions[:-100]
        if isinstance(answer, RangeResponse):
            self._saw(op, answer)
            if kind == "page":
                read_at = op.revision or answer.revision
                if answer.more and answer.kvs:
                    self.listing = (read_at, answer.kvs[-1].key + b"\0")
                else:
                    self.listing = None
        elif isinstance(answer, TxnResponse):
            for child in answer.responses:
                if isinstance(child, RangeResponse):
                    for kv in child.kvs:
                        self.mods[kv.key] = kv
        elif kind == "page":
            self.listing = None  # refused (compacted meanwhile): start again later

    def _saw(self, op: Range, answer: RangeResponse) -> None:
        if op.revision or op.count_only or op.keys_only:
            return
        for kv in answer.kvs:
            self.mods[kv.key] = kv

    def gave_up(self, kind: str) -> None:
        """The operation's outcome is unknown."""
        if kind == "page":
            self.listing = None
