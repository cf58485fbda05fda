"""The peer transport: a connection that dies between turns costs its frames, never the node."""

from __future__ import annotations

from pathlib import Path

from paxosd.core.multi.messages import Accept
from paxosd.core.types import Ballot
from paxosd.runtime.codec import FrameReader, decode
from paxosd.runtime.config import local_cluster
from paxosd.runtime.transport import PeerTransport


class ClosedHandle:
    """What uvloop hands back for a connection that closed before its dialer noticed."""

    def __init__(self, closing: bool) -> None:
        self.closing = closing
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")


class Healthy(ClosedHandle):
    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_a_dead_connection_drops_its_frames_and_the_next_turn_still_sends(tmp_path: Path) -> None:
    config = local_cluster(3, tmp_path)[0]
    transport = PeerTransport(config, lambda peer, msg: None)
    good = Healthy(closing=False)
    for dead in (ClosedHandle(closing=True), ClosedHandle(closing=False)):
        transport.connections = {2: dead, 3: good}  # type: ignore[dict-item]
        transport.out[2].append(b"to-2")
        transport.out[3].append(b"to-3")
        transport.flush()  # must not raise
        assert transport.out == {2: [], 3: []}
    assert good.written == [b"to-3", b"to-3"]
    assert transport.stats["dropped_messages"] == 2


def test_an_accept_sent_before_its_turn_is_durable_tells_only_the_durable_commit_point(
    tmp_path: Path,
) -> None:
    """The leader's Accepts leave while its own fsync runs; the commit point they carry must
    not include slots whose choice counted a vote not yet on disk."""
    config = local_cluster(3, tmp_path)[0]
    transport = PeerTransport(config, lambda peer, msg: None)
    peers = {2: Healthy(closing=False), 3: Healthy(closing=False)}
    transport.connections = peers  # type: ignore[assignment]
    accept = Accept(ballot=Ballot(4, 1), slot=12, batch=(b"put",), commit=11)
    for peer in peers:
        transport.send_early(peer, accept)
    transport.flush_early(commit=9)
    for handle in peers.values():
        (frame,) = FrameReader().feed(b"".join(handle.written))
        sent = decode(frame)
        assert sent == Accept(ballot=Ballot(4, 1), slot=12, batch=(b"put",), commit=9)
    transport.send_early(2, accept)
    transport.flush_early(commit=11)  # nothing to cut
    (_, frame) = FrameReader().feed(b"".join(peers[2].written))
    assert decode(frame) == accept
