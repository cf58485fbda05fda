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
  prefix), success puts one or two keys and reads the prefix, failure reads the key; or
  success deletes another key and then runs a nested transaction whose compare is on that
  key (compares see the store before the transaction, not the delete before them) and whose
  branches each put the first key; or a read-only transaction, answered without the log,
  that reads a key now and the prefix at a revision the client saw;
- ranges now and then filtered by mod or create revision (filter, then sort, then limit);
- a compaction to a revision the client saw, a few behind the newest;
- leases: grants of a few hundred ms of log time, puts of a key with one of the client's
  leases (an ephemeral key: deleted when the lease ends), keep-alives and revokes; a lease
  the client stops renewing ends by log time, under every fault, and its keys with it;
- an election on etcd's recipe: a client campaigns with one of its leases (a transaction
  creating `m/el/<lease in hex>` if absent, attached to the lease), and asks who leads (the
  key under `m/el/` with the lowest create revision). A client that sees its own key first
  leads, with its key's create revision as fencing token (`leads`): the simulated client
  records it as a grant of the lock "election" and uses the token at a fenced resource, so
  the locks checker holds the leaderships to growing tokens in real time.

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
    KvError,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseKeepAlive,
    LeaseRevoke,
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
ELECTION = b"m/el/"
PAGE_LIMIT = 2
# Who leads the election: the key under ELECTION with the lowest create revision.
_LEADER = Range(
    key=ELECTION,
    range_end=prefix_end(ELECTION),
    sort_target=SortTarget.CREATE,
    sort_order=SortOrder.ASCEND,
    limit=1,
)
# How often an operation is a lease's, and the TTLs granted (a few elections' worth: some end
# under faults, some are kept alive through them).
LEASE_ODDS = 0.35
LEASE_TTLS_MS = (300, 600, 1200)


class MvccClient:
    """One client's memory of the store, and its choice of the next operation."""

    def __init__(self, name: str, keys: int, rng: random.Random) -> None:
        self.name = name
        self.keys = [b"m/%d" % i for i in range(max(2, keys))]
        self.rng = rng
        self.revisions: list[int] = []  # revisions this client saw answered
        self.mods: dict[bytes, KeyValue | None] = {}  # each key as last seen
        self.listing: tuple[int, bytes] | None = None  # (revision, next key) of a listing
        self.leases: list[int] = []  # leases granted to this client, not known ended
        # Off near the end of a run, so that every lease ends (and its keys with it) while
        # watchers still watch: their liveness check wants every revision the log made.
        self.lease_ops = True
        self.campaign: tuple[int, bytes] | None = None  # (lease, key) this client stands with
        self.leads: int | None = None  # the fencing token of the leadership just seen
        self.check_leader = False  # a campaign was answered: ask who leads next

    def choose(self, seq: int) -> tuple[str, Any]:
        """(kind, op) of the next operation."""
        rng = self.rng
        if self.check_leader:
            self.check_leader = False
            return "lease-leader", _LEADER
        if self.listing is not None:
            revision, start = self.listing
            page = Range(
                key=start, range_end=prefix_end(PREFIX), limit=PAGE_LIMIT, revision=revision
            )
            return "page", page
        key = rng.choice(self.keys)
        if rng.random() < LEASE_ODDS and self.lease_ops:
            return self._lease(key, seq)
        roll = rng.random()
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
            return self._txn(key, seq)
        if self.revisions:
            newest = max(self.revisions)
            target = newest - rng.randrange(0, 6)
            if target > 1:
                return "compact", Compact(revision=target)
        return "range", self._range()

    def _lease(self, key: bytes, seq: int) -> tuple[str, Any]:
        """(kind, op) of a lease operation: `lease-grant`, `lease-put` (an ephemeral key),
        `lease-keepalive` or `lease-revoke`."""
        rng = self.rng
        if not self.leases or rng.random() < 0.2:
            return "lease-grant", LeaseGrant(ttl_ms=rng.choice(LEASE_TTLS_MS))
        # Mostly the newest lease, so that leases hold several keys when they end.
        lease = self.leases[-1] if rng.random() < 0.7 else rng.choice(self.leases)
        if rng.random() < 0.4:
            return self._elect(self.leases[-1])
        roll = rng.random()
        if roll < 0.5:
            # Mostly a key of this client's own (under the prefix, so every listing shows it),
            # which no other client overwrites: leases then end with keys on them.
            if rng.random() < 0.8:
                key = b"%s%s.e%d" % (PREFIX, self.name.encode(), rng.randrange(3))
            value = b"%s-%d-e" % (self.name.encode(), seq)
            return "lease-put", Put(key=key, value=value, lease=lease)
        if roll < 0.8:
            return "lease-keepalive", LeaseKeepAlive(id=lease)
        self.leases.remove(lease)
        return "lease-revoke", LeaseRevoke(id=lease)

    def _elect(self, lease: int) -> tuple[str, Any]:
        """`lease-campaign` (with `lease`, unless this client stands with a lease it still
        holds) or `lease-leader` (who leads)."""
        if self.campaign is None or self.campaign[0] not in self.leases:
            key = b"%s%x" % (ELECTION, lease)
            absent = Compare(key=key, target=CompareTarget.CREATE, create_revision=0)
            stand = Put(key=key, value=self.name.encode(), lease=lease)
            self.campaign = (lease, key)
            return "lease-campaign", Txn(
                compare=(absent,), success=(stand,), failure=(Range(key=key),)
            )
        return "lease-leader", _LEADER

    def _range(self) -> Range:
        rng = self.rng
        order = rng.choice((SortOrder.NONE, SortOrder.NONE, SortOrder.ASCEND, SortOrder.DESCEND))
        target = rng.choice(tuple(SortTarget))
        # Now and then one of the four revision filters: min/max mod, min/max create.
        bounds = [0, 0, 0, 0]
        if self.revisions and rng.random() < 0.2:
            bounds[rng.randrange(4)] = rng.choice(self.revisions[-20:])
        return Range(
            key=PREFIX,
            range_end=prefix_end(PREFIX),
            sort_order=order,
            sort_target=target,
            limit=rng.choice((0, 0, 0, 1, 3)),
            count_only=rng.random() < 0.1,
            keys_only=rng.random() < 0.1,
            min_mod_revision=bounds[0],
            max_mod_revision=bounds[1],
            min_create_revision=bounds[2],
            max_create_revision=bounds[3],
        )

    def _txn(self, key: bytes, seq: int) -> tuple[str, Txn]:
        """(kind, op): `txn`, `nested-txn` or `read-txn`."""
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
        listing = Range(key=PREFIX, range_end=prefix_end(PREFIX))
        other = rng.choice(self.keys)
        shape = rng.random()
        if shape < 0.2:
            past = rng.choice(self.revisions[-20:]) if self.revisions else 0
            now_and_then = (
                Range(key=key),
                Range(key=PREFIX, range_end=listing.range_end, revision=past),
            )
            counted = Range(key=PREFIX, range_end=listing.range_end, count_only=True)
            return "read-txn", Txn(compare=(compare,), success=now_and_then, failure=(counted,))
        if shape < 0.4 and other != key:
            # The nested compare is on `other` as it was before the transaction: the delete
            # just before it does not change which branch runs (etcd's compareToPath).
            nested = Txn(
                compare=(
                    Compare(key=other, target=CompareTarget.VERSION, result=CompareResult.GREATER),
                ),
                success=(Put(key=key, value=value + b"s", prev_kv=True),),
                failure=(Put(key=key, value=value + b"f"),),
            )
            deleted = DeleteRange(key=other, prev_kv=True)
            return "nested-txn", Txn(
                compare=(compare,), success=(deleted, nested, listing), failure=(Range(key=key),)
            )
        writes: tuple[Any, ...] = (Put(key=key, value=value, prev_kv=True),)
        if other != key and shape < 0.7:
            writes += (Put(key=other, value=value + b"b"),)
        return "txn", Txn(compare=(compare,), success=(*writes, listing), failure=(Range(key=key),))

    def answered(self, kind: str, op: Any, answer: Any) -> None:
        """Remember what an answer showed (revisions, keys' mod revisions, the listing)."""
        revision = getattr(answer, "revision", None)
        if isinstance(revision, int) and revision > 0:
            self.revisions.append(revision)
            del self.revisions[:-100]
        if isinstance(answer, LeaseGrantResponse):
            self.leases.append(answer.id)
            del self.leases[:-4]  # the newest few; the others end by themselves
        elif isinstance(answer, KvError) and answer.code == "lease_not_found":
            lease = getattr(op, "lease", 0) or getattr(op, "id", 0)
            if lease in self.leases:
                self.leases.remove(lease)  # it ended by log time
        if kind == "lease-campaign" and isinstance(answer, TxnResponse):
            self.check_leader = True
        if kind == "lease-leader":
            first = answer.kvs[0] if isinstance(answer, RangeResponse) and answer.kvs else None
            mine = self.campaign is not None and first is not None and first.key == self.campaign[1]
            self.leads = first.create_revision if mine and first is not None else None
        if isinstance(answer, RangeResponse):
            self._saw(op, answer)
            if kind == "page":
                read_at = op.revision or answer.revision
                if answer.more and answer.kvs:
                    self.listing = (read_at, answer.kvs[-1].key + b"\0")
                else:
                    self.listing = None
        elif isinstance(answer, TxnResponse):
            self._saw_txn(op, answer)
        elif kind == "page":
            self.listing = None  # refused (compacted meanwhile): start again later

    def _saw(self, op: Range, answer: RangeResponse) -> None:
        """Each key as a read of the present showed it (not one of the past, or filtered)."""
        filtered = op.min_mod_revision or op.max_mod_revision
        filtered = filtered or op.min_create_revision or op.max_create_revision
        if op.revision or op.count_only or op.keys_only or filtered:
            return
        for kv in answer.kvs:
            self.mods[kv.key] = kv

    def _saw_txn(self, op: Txn, answer: TxnResponse) -> None:
        for child, response in zip(
            op.success if answer.succeeded else op.failure, answer.responses, strict=False
        ):
            if isinstance(child, Range) and isinstance(response, RangeResponse):
                self._saw(child, response)

    def gave_up(self, kind: str) -> None:
        """The operation's outcome is unknown."""
        if kind == "page":
            self.listing = None


def reached(op: Any, answer: Any) -> tuple[str, ...]:
    """The mechanisms (sim/reach.py) an answered operation shows."""
    if isinstance(answer, TxnResponse):
        ran = op.success if answer.succeeded else op.failure
        nested = any(isinstance(child, Txn) for child in ran)
        return (
            ("mvcc_txns_answered", "mvcc_nested_txns_answered")
            if nested
            else ("mvcc_txns_answered",)
        )
    if isinstance(op, Put) and op.lease and not isinstance(answer, KvError):
        return ("mvcc_ephemeral_keys_put",)
    if isinstance(op, LeaseKeepAlive):
        if isinstance(answer, KvError):
            return ("mvcc_leases_ended_by_time",)  # this client never revokes one it renews
        return ("mvcc_leases_renewed",)
    if isinstance(op, Range) and op.revision:
        if isinstance(answer, RangeResponse):
            return ("mvcc_past_reads_answered",)
        if getattr(answer, "code", None) == "compacted":
            return ("mvcc_compacted_reads_refused",)
    return ()
