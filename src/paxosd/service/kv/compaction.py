"""Automatic compaction: the leader proposes a Compact when the history grows past its limits.

Theory of operation: compaction decides answers (a read below the compacted revision is
refused), so it must happen at the same point of the log on every replica: it is a `Compact`
command in the log like any other, and only the leader proposes it (as etcd's compactor runs
on its leader). The leader's host asks `AutoCompactor.due` on its ticks; once the history is
an eighth over either limit of its configuration (`history_revisions_max` revisions,
`history_bytes_max` bytes of superseded versions, see store.py `compaction_target`), the
answer is the Compact that brings it back within both, else None. A proposal in flight is
not proposed again until `retry_calls` more calls have passed without it taking effect (a
leader change may have lost it; a Compact applied twice is refused the second time, which
changes nothing).

Followers keep the history the leader's proposals leave them; a node whose limits are larger
than the leader's keeps less than its own limits allow, and the other way round.
"""

from __future__ import annotations

from typing import Final

from .checks import KvLimits
from .store import MvccStore
from .types import Compact

# How many calls (host ticks) a proposed compaction may take to apply before it is proposed
# again: a few election timeouts of 10 ms ticks.
retry_calls: Final = 200
# A compaction is proposed once the history is this fraction over a limit (1/8), and brings
# it back within the limits: under a steady write load the leader then proposes a Compact
# every eighth of the history's length, not on every tick (each one a log entry, an apply on
# every replica and a line in the log).
slack_divisor: Final = 8


class AutoCompactor:
    """One leader's decisions to compact. Pure: the host calls `due` and proposes the answer."""

    __slots__ = ("_calls", "_limits", "_pending", "_proposed_at")

    def __init__(self, limits: KvLimits) -> None:
        self._limits = limits
        self._pending = -1  # the revision last proposed
        self._proposed_at = 0
        self._calls = 0

    def due(self, store: MvccStore) -> Compact | None:
        """The Compact to propose now, if any."""
        self._calls += 1
        revisions_max, bytes_max = (
            self._limits.history_revisions_max,
            self._limits.history_bytes_max,
        )
        over = store.compaction_target(
            revisions_max + revisions_max // slack_divisor, bytes_max + bytes_max // slack_divisor
        )
        if over is None:
            return None
        target = store.compaction_target(revisions_max, bytes_max)
        if target is None:
            return None
        waiting = store.compact_revision < self._pending
        if waiting and self._calls - self._proposed_at < retry_calls:
            return None
        self._pending = target
        self._proposed_at = self._calls
        return Compact(revision=target)
