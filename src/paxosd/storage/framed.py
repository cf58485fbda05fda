"""What the file and memory backends share: replaying a log image, compacting it, and when to.

Theory of operation. Both backends keep the same bytes (`codec`): a header and frames, appended
in write order. Opening replays them through `LogState`; a torn tail is cut off. The file only
grows, so every superseded record (an older promise, a re-accepted slot, every entry a snapshot
covers, older snapshots) is garbage. When garbage outgrows the live state by `garbage_ratio`
and is at least `garbage_bytes_min`, the backend writes the live state as a fresh image (a
snapshot first, then the promise, the entries above it and the commit hint) and swaps it in
atomically. Disk use therefore stays below about (1 + garbage_ratio) x live + garbage_bytes_min
plus one sync's worth of writes, however long the node runs.

The threshold is the larger of the two, not either: "either" would rewrite a 1 GiB state every
`garbage_bytes_min` of writes, a write amplification of hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import decode_header, encode_frame, encode_header, scan_frames
from .errors import ForeignDataDir
from .state import LogState


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    # Compact once the superseded bytes exceed this multiple of the live bytes ...
    garbage_ratio: float = 2.0
    # ... and this many bytes, so a small state is not rewritten at every sync.
    garbage_bytes_min: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        assert self.garbage_ratio > 0 and self.garbage_bytes_min >= 0

    def due(self, log_bytes: int, header_bytes: int, live_bytes: int) -> bool:
        garbage = log_bytes - header_bytes - live_bytes
        return garbage > self.garbage_bytes_min and garbage > self.garbage_ratio * live_bytes


@dataclass(slots=True)
class Replayed:
    state: LogState
    header_bytes: int
    valid_bytes: int  # where the last whole frame ends; the log is truncated to this
    torn_bytes: int  # bytes beyond it (a torn tail), cut off


def replay(image: bytes | bytearray | memoryview, identity: bytes, where: str) -> Replayed:
    """Check the header's identity, then fold every frame. `CorruptLog`, `ForeignDataDir`."""
    found, header_bytes = decode_header(image, where)
    if found != identity:
        raise ForeignDataDir(where, identity, found)
    records, sizes, valid, _torn = scan_frames(image, header_bytes, where)
    state = LogState()
    for record, size in zip(records, sizes, strict=True):
        state.apply(record, size)
    return Replayed(state, header_bytes, valid, len(image) - valid)


def compacted_image(identity: bytes, state: LogState) -> tuple[bytes, LogState]:
    """A fresh log holding exactly `state`, and the fold of that log (with its byte counts)."""
    parts = [encode_header(identity)]
    fresh = LogState()
    for record in state.recovered().records():
        frame = encode_frame(record)
        parts.append(frame)
        fresh.apply(record, len(frame))
    return b"".join(parts), fresh
