"""The watch checker: each watcher saw exactly the committed changes of its keys, in revision
order, with no gap and no duplicate, across reconnects, and every promise it was given held.

Theory of operation. The reference is the committed history itself: every change of every
key, in revision order (each revision's in key order), as the replicas applied it (the
simulator records it from the applied commands; a real cluster's is read back from a node
that applied everything; agreement of the replicas is checked elsewhere). A client's watch
over time is a `Session`: streams, one per connection, each from a start revision, each
holding what the client received, in order. The checker replays each stream against the
reference:

* Created comes first and names the start revision asked for (or the next one, for 0);
* every Events item carries the reference's changes of the watched keys (after the watch's
  filters, with previous values if asked for) from where the stream stood up to the item's
  revision - exactly those, in order: a missing change is a gap, one seen twice a duplicate,
  one that never happened (or with another value) a lie;
* a Progress item at P promises every change up to P came before it: one arriving before
  changes at or below P overtook them;
* a Cancelled item is last; everything before its resume revision was delivered; a
  "compacted" one names a compaction that really happened, at or above the revision the
  watch needed;
* across streams, the next stream starts where the last one's promises ended: a resume that
  skips a revision holding a change of the watched keys is a gap, one that starts before it
  repeats changes. A stream that follows a re-list (after "compacted") starts afresh, and the
  listing it followed must be the reference's state at the listed revision.

Revisions in a reference are those of the store (an empty store is at revision 1).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from paxosd.service.kv.types import in_range

__all__ = [
    "Change",
    "Reference",
    "Session",
    "Stream",
    "change_of",
    "check_session",
]

# One change as the checker compares it: (type: 0 put / 1 delete, key, value, mod_revision,
# create_revision, version, previous (key, value, mod_revision, create_revision, version) or
# None).
Change: TypeAlias = tuple[int, bytes, bytes, int, int, int, tuple[Any, ...] | None]


def change_of(event: Any, prev_kv: bool = True) -> Change:
    """A service `Event` (types.Event) as a Change."""
    kv = event.kv
    prev = event.prev_kv
    previous = None
    if prev_kv and prev is not None:
        previous = (prev.key, prev.value, prev.mod_revision, prev.create_revision, prev.version)
    return (
        int(event.type),
        kv.key,
        kv.value,
        kv.mod_revision,
        kv.create_revision,
        kv.version,
        previous,
    )


@dataclass
class Stream:
    """One watch on one node, as its client received it. `items` are tuples:
    ("created", start_revision), ("events", revision, [Change...], fragment),
    ("progress", revision), ("cancelled", reason, resume_revision, compact_revision).
    `listed` is (revision, {key: value}) if the stream follows a re-list at that revision."""

    node: Any
    key: bytes
    range_end: bytes
    start_revision: int  # as asked (0: the next one)
    prev_kv: bool = False
    no_put: bool = False
    no_delete: bool = False
    items: list[tuple[Any, ...]] = field(default_factory=list)
    listed: tuple[int, dict[bytes, bytes]] | None = None


@dataclass
class Session:
    """One client's watch over time: its streams, in the order it opened them."""

    name: str
    streams: list[Stream] = field(default_factory=list)


class Reference:
    """The committed history: every change, in revision order, and the compactions."""

    def __init__(self, changes: Sequence[Change], compactions: Sequence[int] = ()) -> None:
        self.changes = list(changes)
        self.revisions = [c[3] for c in self.changes]
        self.compactions = set(compactions)
        assert self.revisions == sorted(self.revisions), "the reference is in revision order"

    @property
    def last_revision(self) -> int:
        return self.revisions[-1] if self.revisions else 1

    def between(self, stream: Stream, first: int, last: int) -> list[Change]:
        """The changes `stream` must see with first <= revision <= last."""
        lo = bisect.bisect_left(self.revisions, first)
        hi = bisect.bisect_right(self.revisions, last)
        found = []
        for change in self.changes[lo:hi]:
            if not in_range(change[1], stream.key, stream.range_end):
                continue
            if (change[0] == 0 and stream.no_put) or (change[0] == 1 and stream.no_delete):
                continue
            found.append(change if stream.prev_kv else (*change[:6], None))
        return found

    def state_at(self, revision: int, key: bytes, range_end: bytes) -> dict[bytes, bytes]:
        """The live keys of the range at `revision`, and their values."""
        state: dict[bytes, bytes] = {}
        hi = bisect.bisect_right(self.revisions, revision)
        for change in self.changes[:hi]:
            if not in_range(change[1], key, range_end):
                continue
            if change[0] == 0:
                state[change[1]] = change[2]
            else:
                state.pop(change[1], None)
        return state


def check_session(session: Session, reference: Reference) -> list[str]:
    """Every way `session` broke its promises (module docstring); empty if none."""
    problems: list[str] = []
    covered: int | None = None  # the last revision the previous stream promised
    for number, stream in enumerate(session.streams):
        where = f"watcher {session.name} stream {number} (node {stream.node})"
        if stream.listed is not None:
            # A re-list starts afresh: the listing is the state at its revision, and the
            # stream must carry on from the next one.
            revision, listing = stream.listed
            if listing != reference.state_at(revision, stream.key, stream.range_end):
                problems.append(
                    f"{where}: the re-list at revision {revision} is not the state then"
                )
            if stream.start_revision != revision + 1:
                problems.append(
                    f"{where}: watched from {stream.start_revision} after a list at {revision}"
                )
            covered = revision
        start, stream_covered = _check_stream(stream, reference, where, problems)
        if start is None:
            continue  # nothing was received: no promise made
        if covered is not None:
            if start > covered + 1:
                missed = reference.between(stream, covered + 1, start - 1)
                if missed:
                    problems.append(
                        f"{where}: resumed at revision {start} after revision {covered}: "
                        f"gap, {len(missed)} change(s) never delivered (first at revision "
                        f"{missed[0][3]})"
                    )
            elif start <= covered:
                again = reference.between(stream, start, covered)
                if again:
                    problems.append(
                        f"{where}: resumed at revision {start} though revision {covered} was "
                        f"delivered: {len(again)} change(s) delivered twice"
                    )
        covered = stream_covered
    return problems


def _check_stream(
    stream: Stream, reference: Reference, where: str, problems: list[str]
) -> tuple[int | None, int]:
    """Check one stream; (its start revision, the last revision it promised)."""
    items = stream.items
    if not items:
        return None, 0
    first = items[0]
    if first[0] != "created":
        problems.append(f"{where}: the first item is {first[0]}, not created")
        return None, 0
    start = first[1]
    if stream.start_revision and start != stream.start_revision:
        problems.append(f"{where}: asked to start at {stream.start_revision}, created at {start}")
    told = start - 1
    pending: list[Change] = []  # fragments of one revision
    ended = False
    for index, item in enumerate(items[1:], 1):
        kind = item[0]
        at = f"{where} item {index}"
        if ended:
            problems.append(f"{at}: {kind} after the watch was cancelled")
            break
        if kind == "events":
            _, revision, changes, fragment = item
            pending.extend(changes)
            if fragment:
                continue
            received, pending = pending, []
            if revision < told:
                problems.append(f"{at}: revision {revision} after revision {told}")
                continue
            expected = reference.between(stream, told + 1, revision)
            if received != expected:
                problems.append(f"{at}: {_difference(received, expected, told + 1, revision)}")
            told = revision
        elif kind == "progress":
            revision = item[1]
            if revision < told:
                problems.append(f"{at}: progress at {revision} after revision {told}")
                continue
            overtaken = reference.between(stream, told + 1, revision)
            if overtaken:
                problems.append(
                    f"{at}: progress notification at revision {revision} overtook "
                    f"{len(overtaken)} change(s) (first at revision {overtaken[0][3]})"
                )
            told = revision
        elif kind == "cancelled":
            _, reason, resume, compact = item
            ended = True
            if resume <= told:
                problems.append(
                    f"{at}: cancelled ({reason}) to resume at {resume}, but {told} was delivered"
                )
            elif reference.between(stream, told + 1, resume - 1):
                problems.append(
                    f"{at}: cancelled ({reason}) to resume at {resume}: changes after {told} "
                    "and before it were never delivered"
                )
            else:
                told = resume - 1
            if reason == "compacted":
                if compact not in reference.compactions:
                    problems.append(
                        f"{at}: compacted at {compact}, but no compaction to {compact} happened"
                    )
                elif compact < resume:
                    problems.append(
                        f"{at}: cancelled as compacted at {compact}, but needed {resume}"
                    )
        else:
            problems.append(f"{at}: unknown item {kind}")
    return start, told


def _difference(received: list[Change], expected: list[Change], first: int, last: int) -> str:
    seen = {(c[3], c[1]) for c in received}
    wanted = {(c[3], c[1]) for c in expected}
    missing = sorted(wanted - seen)
    extra = sorted(seen - wanted)
    if missing:
        revision, key = missing[0]
        return (
            f"gap: {len(missing)} change(s) of revisions {first}..{last} missing "
            f"(first: {key!r} at {revision})"
        )
    if extra:
        revision, key = extra[0]
        return f"{len(extra)} change(s) that are not in the history (first: {key!r} at {revision})"
    if len(received) != len(expected):
        return (
            f"duplicate: {len(received)} changes delivered for {len(expected)} "
            f"in revisions {first}..{last}"
        )
    for got, want in zip(received, expected, strict=True):
        if got != want:
            return f"revision {want[3]} key {want[1]!r}: delivered {got}, committed {want}"
    return "changes out of order"
