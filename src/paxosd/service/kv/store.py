"""The multi-version key-value store: every version of every key since the compacted revision.

Theory of operation. The store keeps, per key, the list of its versions, oldest first
(`KeyValue`s; a deletion is a tombstone: create_revision 0, mod_revision the deleting
revision), and a sorted index of the keys (index.py). The version of a key at revision R is
the newest one whose mod_revision <= R, unless that is a tombstone; so the store as it was at
any revision since the compacted revision can be read, and a paginated listing is consistent
at one revision. The store's `revision` starts at 1 (empty); a request that changes something
writes all its versions at `revision + 1` and then `commit`s, so one request is one revision.
Between requests, no version is newer than `revision`.

Compaction to C (`compact`) forgets every version superseded at or before C, and the
tombstones at or before C: reads at C or later see no difference, reads below C are refused.
It happens in two steps:

* logical: `compact_revision` moves to C at once, in log order, on every replica - it decides
  answers ("required revision has been compacted"), so it is replicated state;
* physical: the versions are freed later, a bounded number of keys at a time (`housekeep`), and
  never below what an open snapshot view still needs (`open_view`): a view captures the store
  at its revision R and compacted revision C_v and is written while the store goes on changing
  (possibly from another thread); physical compaction stops at the smallest C_v of the open
  views. Physical compaction changes no answer, so when it runs is up to each replica.

Accounting: every write that supersedes a version records (cumulative bytes, revision, key) in
an append-only list, the bytes being what compaction past that revision frees (the superseded
version, and for a deletion the tombstone itself). So `history_bytes` (what the history costs
beyond the current keys, by `version_bytes`) and the revision at which compaction would free a
given amount are both O(log n) to find, and compaction visits exactly the keys it frees.

Costs: a write O(1) (a new key: + O(log n + chunk) in the index); a read of one key O(1) at
the current revision, O(versions of the key) at an old one; a range O(log n + keys in range).

Thread safety: the store is changed by one thread (the event loop's apply). A `StoreView` may
be read from another thread at the same time: it reads only frozen index chunks, immutable
`KeyValue`s, and copies of version lists; and it may be closed from that thread. Each of those
steps is one operation on a built-in list or dict (a copy, a lookup, a removal), which the
interpreter's global lock makes atomic, so no lock of our own is needed.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import weakref
from collections.abc import Iterator
from typing import Final

from .index import FrozenKeys, KeyIndex
from .types import KeyValue

# What one version costs beyond its key and value bytes, measured (bench/mvcc_store.py,
# docs/data-model.md): the KeyValue tuple, its int objects, the value's bytes object header,
# its slot in the key's version list and its accounting entry.
version_bytes: Final = 350
# Key-values are built with tuple.__new__, half the cost of the named tuple's own __new__ (a
# write builds one on every replica).
_new_tuple = tuple.__new__
# How many keys one housekeeping step compacts physically (bounds the pause it causes).
housekeeping_keys_max: Final = 512


def version_size(kv: KeyValue) -> int:
    """What keeping `kv` costs, in bytes (an estimate: the key counted once per version)."""
    return len(kv.key) + len(kv.value) + version_bytes


def tombstone(key: bytes, revision: int) -> KeyValue:
    return KeyValue(key, 0, revision, 0, b"", 0)


def at_revision(versions: list[KeyValue], revision: int) -> KeyValue | None:
    """The version live at `revision` (None: absent then, or deleted)."""
    for kv in reversed(versions):
        if kv.mod_revision <= revision:
            return kv if kv.create_revision else None
    return None


class MvccStore:
    """Every version of every key since `compact_revision`. Not thread-safe, except for views."""

    __slots__ = (
        "_changes",
        "_changes_head",
        "_compact_cum",
        "_cum",
        "_physical_head",
        "_physical_revision",
        "_undo",
        "_views",
        "compact_revision",
        "frees_live",
        "history",
        "index",
        "live_keys",
        "revision",
    )

    def __init__(self, *, frees_live: bool = False) -> None:
        # A planted bug (kv/machine.py KV_VARIANTS): physical compaction also frees the version
        # live at the compacted revision.
        self.frees_live = frees_live
        self.revision = 1  # etcd's empty store is at revision 1: the first write is 2
        self.compact_revision = -1  # nothing compacted (etcd's compactMainRev starts at -1)
        self.history: dict[bytes, list[KeyValue]] = {}
        self.index = KeyIndex()
        self.live_keys = 0
        # (cumulative bytes freed by compacting past this entry, revision, key), in revision
        # order; entries before _changes_head are compacted logically, before _physical_head
        # physically too.
        self._changes: list[tuple[int, int, bytes]] = []
        self._changes_head = 0
        self._physical_head = 0
        self._cum = 0  # bytes freed by compacting everything written so far
        self._compact_cum = 0  # ... and by the compaction done so far
        self._physical_revision = -1
        # Undo records of the request being applied (see begin/abort), None outside one:
        # (key, whether the write created its history, change of live keys, _cum before).
        self._undo: list[tuple[bytes, bool, int, int]] | None = None
        # Open views: id -> the compacted revision they captured. A view closes from any
        # thread (one dict removal); readers take a copy of the values (one C-level copy).
        self._views: dict[int, int] = {}

    # -----------------------------------------------------------------------------------------
    # Reading

    @property
    def history_bytes(self) -> int:
        """Bytes held for reads at past revisions (superseded versions and tombstones)."""
        return self._cum - self._compact_cum

    def get(self, key: bytes, revision: int) -> KeyValue | None:
        """`key` as it was at `revision` (which must not be compacted), None if absent."""
        versions = self.history.get(key)
        if versions is None:
            return None
        kv = versions[-1]
        if kv.mod_revision <= revision:
            return kv if kv.create_revision else None
        return at_revision(versions, revision)

    def range(self, start: bytes, end: bytes | None, revision: int) -> Iterator[KeyValue]:
        """The keys live at `revision` in [start, end) (end None: no bound), in key order."""
        history = self.history
        for key in self.index.irange(start, end):
            versions = history[key]
            kv = versions[-1]
            if kv.mod_revision > revision:
                found = at_revision(versions, revision)
                if found is not None:
                    yield found
            elif kv.create_revision:
                yield kv

    # -----------------------------------------------------------------------------------------
    # Writing: one request at a time

    def begin(self) -> None:
        """A request starts: its writes can be undone until `commit` or `abort`."""
        assert self._undo is None, "a request is already open"
        self._undo = []

    def put(
        self, key: bytes, value: bytes, lease: int, version: int | None = None
    ) -> tuple[KeyValue, KeyValue | None]:
        """Write `key` at revision + 1; (the new version, the live version it replaced).
        `version` forces the version number (only for commands older than this model)."""
        revision = self.revision + 1
        versions = self.history.get(key)
        if versions is None:
            kv = _new_tuple(KeyValue, (key, revision, revision, version or 1, value, lease))
            self.history[key] = [kv]
            self.index.add(key)
            self.live_keys += 1
            if self._undo is not None:
                self._undo.append((key, True, 1, self._cum))
            return kv, None
        previous = versions[-1]
        assert previous.mod_revision < revision, "a key is written once per revision"
        if previous.create_revision:
            kv = _new_tuple(
                KeyValue,
                (
                    key,
                    previous.create_revision,
                    revision,
                    version or previous.version + 1,
                    value,
                    lease,
                ),
            )
            freed = len(key) + len(previous.value) + version_bytes
            replaced: KeyValue | None = previous
            live = 0
        else:
            kv = _new_tuple(KeyValue, (key, revision, revision, version or 1, value, lease))
            freed = 0  # the tombstone's bytes were counted when it was written
            replaced = None
            live = 1
        versions.append(kv)
        if self._undo is not None:
            self._undo.append((key, False, live, self._cum))
        self.live_keys += live
        self._cum += freed
        self._changes.append((self._cum, revision, key))
        return kv, replaced

    def delete(self, key: bytes) -> tuple[KeyValue, KeyValue] | None:
        """Delete `key` at revision + 1 if it is live: (the tombstone, the version deleted);
        None if it is absent."""
        versions = self.history.get(key)
        if versions is None:
            return None
        previous = versions[-1]
        if not previous.create_revision:
            return None
        revision = self.revision + 1
        # A key put by one nested transaction may be deleted by a later one in the same
        # request (etcd allows it): both versions then carry this revision, the later wins.
        assert previous.mod_revision <= revision
        dead = tombstone(key, revision)
        versions.append(dead)
        if self._undo is not None:
            self._undo.append((key, False, -1, self._cum))
        self.live_keys -= 1
        self._cum += len(key) + len(previous.value) + version_bytes + version_size(dead)
        self._changes.append((self._cum, revision, key))
        return dead, previous

    def commit(self, changed: bool) -> None:
        """The request is done; if it changed something, the store moves to revision + 1."""
        self._undo = None
        if changed:
            self.revision += 1

    def abort(self) -> None:
        """Undo every write of the request (it was refused after it started writing)."""
        undo = self._undo
        assert undo is not None, "no request is open"
        self._undo = None
        for key, created, live, cum in reversed(undo):
            versions = self.history[key]
            versions.pop()
            if created:
                del self.history[key]
                self.index.remove(key)
            else:
                self._changes.pop()
            self.live_keys -= live
            self._cum = cum

    # -----------------------------------------------------------------------------------------
    # Compaction

    def compact(self, revision: int) -> None:
        """Compact logically to `revision` (compact_revision < revision <= self.revision);
        the versions are freed by `housekeep`."""
        assert self.compact_revision < revision <= self.revision
        self.compact_revision = revision
        changes = self._changes
        head = bisect.bisect_right(changes, revision, lo=self._changes_head, key=_revision_of)
        if head > self._changes_head:
            self._compact_cum = changes[head - 1][0]
            self._changes_head = head

    def compaction_target(self, revisions_max: int, bytes_max: int) -> int | None:
        """The revision to compact to so that at most `revisions_max` revisions of history and
        at most `bytes_max` bytes of it remain; None if within both already."""
        target = self.revision - revisions_max
        excess = self.history_bytes - bytes_max
        if excess > 0:
            changes = self._changes
            # The first entry whose compaction frees at least the excess.
            i = bisect.bisect_left(
                changes, self._compact_cum + excess, lo=self._changes_head, key=_cum_of
            )
            if i < len(changes):
                target = max(target, changes[i][1])
        if target <= self.compact_revision:
            return None
        return min(target, self.revision)

    def housekeep(self, keys_max: int = housekeeping_keys_max) -> bool:
        """Free up to `keys_max` keys' compacted versions; True if more remain to free (now,
        or once the views that hold them close)."""
        limit = min(tuple(self._views.values()), default=self.compact_revision)
        target = min(limit, self.compact_revision)
        changes = self._changes
        head = self._physical_head
        end = min(self._changes_head, head + keys_max)
        while head < end and changes[head][1] <= target:
            self._free(changes[head][2], target)
            head += 1
        self._physical_head = head
        self._physical_revision = max(self._physical_revision, target)
        if head > 4096 and head * 2 > len(changes):
            del changes[:head]
            self._changes_head -= head
            self._physical_head = 0
            head = 0
        return head < self._changes_head

    def _free(self, key: bytes, target: int) -> None:
        versions = self.history.get(key)
        if versions is None:
            return
        keep = 0
        for i, kv in enumerate(versions):
            if kv.mod_revision > target:
                break
            keep = i if kv.create_revision and not self.frees_live else i + 1
        if keep:
            del versions[:keep]
        if not versions:
            del self.history[key]
            self.index.remove(key)

    # -----------------------------------------------------------------------------------------
    # Views

    def open_view(self) -> StoreView:
        """The store as it is now, for writing a snapshot while it goes on changing."""
        assert self._undo is None, "a view is taken between requests"
        view = StoreView(self, self.index.freeze(), self.revision, self.compact_revision)
        self._views[id(view)] = self.compact_revision
        return view

    def _close_view(self, view_id: int) -> None:
        self._views.pop(view_id, None)

    @property
    def open_views(self) -> int:
        return len(self._views)

    def invariants(self) -> None:
        """Checks of the whole store: O(versions); for tests."""
        self.index.invariants()
        assert len(self.index) == len(self.history)
        live = 0
        for key, versions in self.history.items():
            assert versions and key in self.index
            previous = None
            for kv in versions:
                assert kv.key == key and kv.mod_revision <= self.revision
                if previous is not None:
                    assert previous.mod_revision < kv.mod_revision or (
                        previous.mod_revision == kv.mod_revision and not kv.create_revision
                    )
                    if previous.create_revision and kv.create_revision:
                        assert kv.create_revision == previous.create_revision
                        assert kv.version == previous.version + 1 or kv.version == 1
                previous = kv
            live += bool(versions[-1].create_revision)
        assert live == self.live_keys, (live, self.live_keys)
        changes = self._changes
        assert self._physical_head <= self._changes_head <= len(changes)
        assert all(a[1] <= b[1] and a[0] <= b[0] for a, b in itertools.pairwise(changes))


_mod_revision_of: Final = operator.attrgetter("mod_revision")


def _revision_of(entry: tuple[int, int, bytes]) -> int:
    return entry[1]


def _cum_of(entry: tuple[int, int, bytes]) -> int:
    return entry[0]


class StoreView:
    """The store at one revision, readable from any thread while the store changes: the
    versions a restored store needs, key by key. `close` it when done (a view left open keeps
    compaction from freeing memory; a view that is garbage-collected closes itself)."""

    __slots__ = ("__weakref__", "_finalizer", "_history", "_keys", "compact_revision", "revision")

    def __init__(
        self, store: MvccStore, keys: FrozenKeys, revision: int, compact_revision: int
    ) -> None:
        self._keys = keys
        self._history = store.history
        self.revision = revision
        self.compact_revision = compact_revision
        self._finalizer = weakref.finalize(self, store._close_view, id(self))

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> StoreView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def versions(self) -> Iterator[tuple[bytes, list[KeyValue]]]:
        """(key, the versions to keep), in key order, for every key that has some: the
        version live at the compacted revision (if any) and every version after it, up to the
        view's revision."""
        revision, compacted = self.revision, self.compact_revision
        history = self._history
        for key in self._keys:
            versions = history.get(key)
            if versions is None:
                continue
            if len(versions) == 1:  # most keys of a large store: the rule below, for one
                kv = versions[0]
                if kv.mod_revision <= revision and (
                    kv.create_revision or kv.mod_revision > compacted
                ):
                    yield key, [kv]
                continue
            copy = list(versions)
            # Versions are in mod_revision order: those up to the view's revision are a prefix.
            end = bisect.bisect_right(copy, revision, key=_mod_revision_of)
            kept = copy[:end] if end < len(copy) else copy
            mods = list(map(_mod_revision_of, kept))
            if not all(map(operator.lt, mods, mods[1:])):
                # A version followed by one of the same revision was never readable: skip it.
                kept = [
                    kv
                    for i, kv in enumerate(kept)
                    if i + 1 == len(kept) or kept[i + 1].mod_revision != kv.mod_revision
                ]
            # From the version live at the compacted revision (a tombstone there: after it).
            below = bisect.bisect_right(kept, compacted, key=_mod_revision_of)
            start = 0 if not below else below - 1 if kept[below - 1].create_revision else below
            if start < len(kept):
                yield key, kept[start:] if start else kept
