"""The peer transport: a connection that dies between turns costs its frames, never the node."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from paxosd.core.multi.messages import Accept
from paxosd.core.types import Ballot, Envelope
from paxosd.runtime import codec
from paxosd.runtime.codec import FrameReader, decode
from paxosd.runtime.config import local_cluster
from paxosd.runtime.transport import PeerTransport
from paxosd.service.sql.machine import SQLITE_VERSION
from tests.ports import free_layout


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


def _accept(slot: int = 12) -> Envelope:
    return Envelope(1, 2, Accept(ballot=Ballot(4, 1), slot=slot, batch=(b"put",), commit=11))


def test_a_dead_connection_drops_its_frames_and_the_next_turn_still_sends(tmp_path: Path) -> None:
    config = local_cluster(3, tmp_path)[0]
    transport = PeerTransport(config, lambda peer, msg: None)
    good = Healthy(closing=False)
    message = _accept().msg
    for dead in (ClosedHandle(closing=True), ClosedHandle(closing=False)):
        transport.connections = {2: dead, 3: good}  # type: ignore[dict-item]
        transport.send([Envelope(1, 2, message), Envelope(1, 3, message)])  # must not raise
    assert [decode(f) for f in FrameReader().feed(b"".join(good.written))] == [message] * 2
    assert transport.stats["dropped_messages"] == 2


def test_one_write_per_peer_per_call_and_one_encoding_per_message(tmp_path: Path) -> None:
    config = local_cluster(3, tmp_path)[0]
    transport = PeerTransport(config, lambda peer, msg: None)
    peers = {2: Healthy(closing=False), 3: Healthy(closing=False)}
    transport.connections = peers  # type: ignore[assignment]
    shared = _accept().msg
    own = _accept(13).msg
    transport.send([Envelope(1, 2, shared), Envelope(1, 3, shared), Envelope(1, 2, own)])
    assert len(peers[2].written) == 1 and len(peers[3].written) == 1
    assert [decode(f) for f in FrameReader().feed(peers[2].written[0])] == [shared, own]


def test_a_message_over_the_frame_limit_is_never_sent(tmp_path: Path, monkeypatch: Any) -> None:
    """The receiver would drop the connection and the same frame would come again forever."""
    from paxosd.runtime import codec

    monkeypatch.setattr(codec, "frame_bytes_max", 1000)
    config = local_cluster(3, tmp_path)[0]
    transport = PeerTransport(config, lambda peer, msg: None)
    peer = Healthy(closing=False)
    transport.connections = {2: peer}  # type: ignore[dict-item]
    big = Accept(ballot=Ballot(4, 1), slot=1, batch=(b"x" * 2000,), commit=0)
    transport.send([Envelope(1, 2, big), _accept()])
    assert [decode(f) for f in FrameReader().feed(b"".join(peer.written))] == [_accept().msg]
    assert transport.stats["oversized_messages"] == 1


def test_a_flapping_peer_costs_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """The dialer's peer_connected / peer_lost lines, at most one per peer per interval; the
    changes in between are summed up, and a quiet end of the window still says the state."""
    from paxosd.runtime.transport import PeerLines

    now = [0.0]
    timers: list[tuple[float, Any]] = []
    lines = PeerLines(1, lambda: now[0], lambda delay, fn: timers.append((now[0] + delay, fn)))
    with caplog.at_level(logging.INFO, logger="paxosd.transport"):
        lines.note(3, connected=True)
        for _ in range(200):  # 100 losses and 100 reconnections within the window
            now[0] += 0.01
            lines.note(3, connected=False)
            now[0] += 0.01
            lines.note(3, connected=True)
        now[0] += 0.01
        lines.note(3, connected=False)  # the window ends with the peer lost
        lines.note(2, connected=True)  # another peer has its own window
        assert len(timers) == 1
        now[0], fire = timers.pop()
        fire()
    written = [r.getMessage() for r in caplog.records]
    assert len(written) == 3, written
    assert written[0] == "event=peer_connected node=1 peer=3"
    assert written[1] == "event=peer_connected node=1 peer=2"
    assert written[2] == "event=peer_lost node=1 peer=3 flaps=401 in_s=10"


def _handshake(cluster: str, node: int, version: int) -> bytes:
    payload = msgpack.packb((codec.HANDSHAKE, "paxosd", version, cluster, node))
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (codec.protocol_version, None),
        (codec.protocol_version_min, None),  # one version back: a rolling upgrade's peer
        (codec.protocol_version + 1, "newer than this node's"),
        (codec.protocol_version_min - 1, "older than this node's"),
    ],
)
def test_peers_too_old_or_too_new_are_refused_and_told_why(
    tmp_path: Path, version: int, expected: str | None
) -> None:
    """Rolling upgrades: a peer outside the versions this node speaks is refused at the
    handshake, and the refusal reaches the dialer, whose status names the reason."""
    base = free_layout(2, offset=2000)
    older, newer = local_cluster(2, tmp_path, base, "upgrade")

    async def run() -> tuple[dict[int, str], int]:
        listener = PeerTransport(older, lambda peer, msg: None)
        dialer = PeerTransport(newer, lambda peer, msg: None)
        dialer.handshake = _handshake("upgrade", newer.node_id, version)
        await listener.start()
        await dialer.start()
        try:
            for _ in range(100):
                await asyncio.sleep(0.02)
                if dialer.refusals or newer.node_id in listener.inbound:
                    break
            return dict(dialer.refusals), len(listener.inbound)
        finally:
            await dialer.close()
            await listener.close()

    refusals, accepted = asyncio.run(run())
    if expected is None:
        assert refusals == {} and accepted == 1
    else:
        assert accepted == 0
        assert expected in refusals[older.node_id]
        assert f"speaks peer protocol {version}" in refusals[older.node_id]


def test_transfer_messages_round_trip_and_a_plain_prepare_keeps_version_3s_shape() -> None:
    """A node at protocol 4 writes what a node at 3 reads, until a transfer is asked for."""
    from paxosd.core.multi.messages import Prepare, TimeoutNow

    ballot = Ballot(7, 2)
    for message in (
        Prepare(ballot=ballot, from_slot=5),
        Prepare(ballot=ballot, from_slot=5, transfer=True),
        TimeoutNow(ballot=ballot),
    ):
        (payload,) = FrameReader().feed(codec.encode(message))
        assert decode(payload) == message
    (plain,) = FrameReader().feed(codec.encode(Prepare(ballot=ballot, from_slot=5)))
    assert msgpack.unpackb(plain) == [1, [7, 2], 5], "version 3's Prepare: tag, ballot, slot"
    with pytest.raises(codec.WireError):
        decode(msgpack.packb([1, [7, 2], 5, "yes"]))


def test_stale_round_trips_with_the_epoch_its_first_slot_and_its_members() -> None:
    """Stale tells a node of an earlier epoch where the current one starts (epochs.py)."""
    from paxosd.core.multi.configuration import Configuration
    from paxosd.core.multi.messages import Stale

    for configuration in (
        Configuration((1, 2, 3), (4,), epoch=3, first_slot=120),
        Configuration((1, 2, 3)),
    ):
        message = Stale(configuration=configuration)
        (payload,) = FrameReader().feed(codec.encode(message))
        assert decode(payload) == message
    for bad in ([20, [3, 120], [2, 1], []], [20, [3], [1], []], [20, 3, [1]], [20, -1, [1], []]):
        with pytest.raises(codec.WireError):
            decode(msgpack.packb(bad))


def test_a_peer_running_another_sqlite_is_refused_both_ways_and_nothing_passes(
    tmp_path: Path,
) -> None:
    """Replicas of one cluster must run one SQLite: each node's dial gets the other's welcome,
    sees another version and closes before it sends anything, and says why (both versions,
    and what to do). A peer of the same SQLite, dialed the same way, gets its messages."""
    base = free_layout(3, offset=2100)
    first, second, third = local_cluster(3, tmp_path, base, "sqlite-pin")
    received: dict[int, list[Any]] = {1: [], 2: [], 3: []}

    async def run() -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
        a = PeerTransport(first, lambda peer, msg: received[1].append((peer, msg)))
        b = PeerTransport(
            second, lambda peer, msg: received[2].append((peer, msg)), sqlite_version="3.0.1"
        )
        c = PeerTransport(third, lambda peer, msg: received[3].append((peer, msg)))
        for transport in (a, b, c):
            await transport.start()
        try:
            for _ in range(200):
                await asyncio.sleep(0.02)
                if 2 in a.refusals and 1 in b.refusals and 3 in a.connections:
                    break
            accept = Accept(ballot=Ballot(4, 1), slot=1, batch=(b"put",), commit=0)
            a.send([Envelope(src=1, dst=2, msg=accept), Envelope(src=1, dst=3, msg=accept)])
            b.send([Envelope(src=2, dst=1, msg=accept)])
            await asyncio.sleep(0.2)
            return dict(a.refusals), dict(b.refusals), dict(c.refusals)
        finally:
            for transport in (a, b, c):
                await transport.close()

    by_first, by_second, by_third = asyncio.run(run())
    for reason, theirs, mine in (
        (by_first[2], "3.0.1", SQLITE_VERSION),
        (by_second[1], SQLITE_VERSION, "3.0.1"),
    ):
        assert f"runs SQLite {theirs}, this node runs SQLite {mine}" in reason, reason
        assert "same SQLite" in reason
    assert list(by_third) == [2], "node 3 refuses node 2 as well, and only it"
    assert received[2] == [] and received[1] == [], "nothing may pass between the two"
    assert [peer for peer, _ in received[3]] == [1], "a peer of the same SQLite hears node 1"


def test_a_dialer_sends_as_soon_as_the_welcome_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for a welcome ends with it, not with the wait's limit (which is for a peer of
    an earlier release, which sends none)."""
    from paxosd.runtime import transport

    monkeypatch.setattr(transport, "welcome_wait_ms", 10_000)
    base = free_layout(2, offset=2200)
    first, second = local_cluster(2, tmp_path, base, "welcome")

    async def run() -> float:
        listener = PeerTransport(second, lambda peer, msg: None)
        dialer = PeerTransport(first, lambda peer, msg: None)
        await listener.start()
        started = asyncio.get_running_loop().time()
        await dialer.start()
        try:
            while second.node_id not in dialer.connections:
                await asyncio.sleep(0.005)
            return asyncio.get_running_loop().time() - started
        finally:
            await dialer.close()
            await listener.close()

    took_s = asyncio.run(asyncio.wait_for(run(), 30))
    assert took_s < 5, f"the dialer waited {took_s:.1f} s: it did not see the welcome"
