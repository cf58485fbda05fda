"""`MemoryLog`: the file backend's exact byte format on a simulated disk, with crash semantics.

Theory of operation. The "disk" is a bytearray holding what `FileLog` would hold in
`paxos.log`: a header and frames (`codec`). `write` encodes into a pending list (the page
cache), `sync` appends it to the disk. `crash` throws the pending bytes away, optionally
leaving a prefix of them on the disk first (`tear=True`: a partial last frame, as a power cut
mid-append does), and then restarts: the disk is replayed exactly as `FileLog` replays its file,
torn tail repair and `CorruptLog` included. `corrupt(offset)` flips a byte for tests, and
`image()` hands the disk to a new `MemoryLog`, which is how a test "reopens" or moves a data
directory to another node. `snapshots` are its snapshot files (`MemorySnapshots`): a crash
loses a snapshot still arriving from a peer, never a saved one.

No I/O, no clock, no global randomness (a tear point comes from the caller's `random.Random`),
so the simulator stays deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from paxosd.core.multi.records import Record

from .codec import encode_frame, encode_header
from .errors import StoreClosed
from .framed import CompactionPolicy, compacted_image, replay
from .snapshots import MemorySnapshots
from .state import LogState, Recovered

WHERE = "memory"


class MemoryLog:
    """An in-memory log store; `image` is the disk of a previous store to reopen, if any."""

    def __init__(
        self,
        identity: bytes = b"memory",
        *,
        image: bytes | bytearray | None = None,
        policy: CompactionPolicy | None = None,
        initial: Sequence[Record] = (),
    ) -> None:
        """`initial`: the records a NEW disk starts with (as `FileLog` creates a log holding
        them from its first appearance); only without `image`."""
        assert image is None or not initial, "an existing disk is not created again"
        self.identity = identity
        self.policy = policy or CompactionPolicy()
        if image is None:
            image = encode_header(identity) + b"".join(encode_frame(r) for r in initial)
        self.disk = bytearray(image)
        self._pending: list[bytes] = []
        self._state = LogState()
        self._header_bytes = 0
        self.repaired_tail_bytes = 0
        self._closed = False
        self.snapshots = MemorySnapshots()
        self.fsyncs = 0
        self.compactions = 0
        self._restart()

    # -- the LogStore contract ----------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        frames = [encode_frame(record) for record in records]
        for record, frame in zip(records, frames, strict=True):
            self._state.apply(record, len(frame))
        self._pending.extend(frames)

    def sync(self) -> None:
        self._check_open()
        self._flush()
        if self.policy.due(len(self.disk), self._header_bytes, self._state.live_bytes):
            self.compact()

    def load(self) -> Recovered:
        self._check_open()
        return self._state.recovered(self.repaired_tail_bytes)

    def close(self) -> None:
        if not self._closed:
            self.sync()
            self._closed = True

    def disk_bytes(self) -> int:
        return len(self.disk)

    # -- simulation ----------------------------------------------------------------------------

    def crash(self, tear: bool = False, rng: random.Random | None = None) -> int:
        """Lose unsynced writes and restart from the disk; return how many records were lost.

        With `tear`, a prefix of the unsynced bytes reaches the disk first: a random one drawn
        from `rng`, or, without `rng`, every unsynced frame but half of the last. Whole frames
        in that prefix survive (allowed: unsynced writes *may* survive); the partial one is the
        torn tail the restart must repair.
        """
        lost = len(self._pending)
        if tear and self._pending:
            pending = b"".join(self._pending)
            if rng is not None:
                cut = rng.randrange(1, len(pending))
            else:
                cut = len(pending) - max(1, len(self._pending[-1]) // 2)
            self.disk += pending[:cut]
            whole = 0
            for frame in self._pending:
                cut -= len(frame)
                if cut < 0:
                    break
                whole += 1
            lost -= whole
        self._pending.clear()
        self.snapshots.crash()
        self._closed = False
        self._restart()
        return lost

    def restart(self) -> None:
        """Reopen from the disk as a restarted process would (unsynced writes are lost)."""
        self._pending.clear()
        self.snapshots.crash()
        self._closed = False
        self._restart()

    def corrupt(self, offset: int, mask: int = 0xFF) -> None:
        """Flip bits of the byte at `offset` on the disk (seen at the next restart)."""
        self.disk[offset] ^= mask

    def image(self) -> bytes:
        """The disk's bytes: what a `FileLog` would have in `paxos.log`."""
        return bytes(self.disk)

    def compact(self) -> None:
        """Replace the disk with the live state now (after syncing what is pending)."""
        self._check_open()
        self._flush()
        image, fresh = compacted_image(self.identity, self._state)
        self.disk = bytearray(image)
        self._state = fresh
        self.compactions += 1

    # -- internals -----------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._pending:
            for frame in self._pending:
                self.disk += frame
            self._pending.clear()
            self.fsyncs += 1

    def _restart(self) -> None:
        replayed = replay(self.disk, self.identity, WHERE)
        del self.disk[replayed.valid_bytes :]
        self._state = replayed.state
        self._header_bytes = replayed.header_bytes
        self.repaired_tail_bytes = replayed.torn_bytes

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("memory store is closed")
