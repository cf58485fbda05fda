"""Identities on the peer wire (runtime/transport.py, codec.py, incarnation.py, config.py):
a member that joined through the log is taken only with the store it joined with, peers of
protocol 5 still connect both ways, and a joined member's addresses come from its record."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.runtime import codec, incarnation
from paxosd.runtime.config import ConfigError, Member, format_contact, local_cluster, parse_contact
from paxosd.runtime.transport import PeerTransport
from tests.ports import free_layout

OLD, NEW = 0xA11CE, 0xB0B


def _frame(fields: tuple[Any, ...]) -> bytes:
    payload = msgpack.packb(fields, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


# -- the handshake's bytes --------------------------------------------------------------------


def test_handshakes_of_protocol_6_and_5_are_read_and_bad_incarnations_refused() -> None:
    (six,) = codec.FrameReader().feed(codec.encode_handshake("c", 3, NEW))
    assert codec.decode_handshake(six) == codec.Handshake("c", 3, codec.protocol_version, NEW)
    (five,) = codec.FrameReader().feed(codec.legacy_handshake("c", 3))
    assert codec.decode_handshake(five) == codec.Handshake("c", 3, 5, None)
    assert msgpack.unpackb(five) == [0, "paxosd", 5, "c", 3], "exactly what a node at 5 sends"
    for bad in (0, -1, 1 << 63, "b0b", 1.5, None, True):
        (payload,) = codec.FrameReader().feed(_frame((0, "paxosd", 6, "c", 3, bad)))
        with pytest.raises(codec.WireError, match="handshake"):
            codec.decode_handshake(payload)
    (seven,) = codec.FrameReader().feed(_frame((0, "paxosd", 6, "c", 3, NEW, "more")))
    with pytest.raises(codec.WireError, match="bad handshake"):
        codec.decode_handshake(seven)


# -- the contact text -------------------------------------------------------------------------


def test_a_contact_round_trips_and_bad_ones_are_refused_with_the_reason() -> None:
    member = Member(4, ("127.0.0.1", 7104), ("127.0.0.1", 7004), ("::1", 6404))
    text = format_contact(member)
    assert text == "peer=127.0.0.1:7104 http=127.0.0.1:7004 resp=::1:6404"
    assert parse_contact(4, text) == member
    assert parse_contact(4, "  resp=::1:6404 http=127.0.0.1:7004  peer=127.0.0.1:7104") == member
    for bad, says in (
        ("", "lacks peer, http, resp"),
        ("peer=127.0.0.1:7104 http=127.0.0.1:7004", "lacks resp"),
        ("peer=127.0.0.1:7104 peer=127.0.0.1:7105 http=h:1 resp=h:2", "names peer twice"),
        ("peer=127.0.0.1:0 http=h:1 resp=h:2", "invalid port"),
        ("peer=127.0.0.1:99999 http=h:1 resp=h:2", "invalid port"),
        ("peer=127.0.0.1 http=h:1 resp=h:2", "HOST:PORT"),
        ("gossip=h:3 peer=h:1 http=h:1 resp=h:2", "is not"),
        ("peer h:1", "is not"),
        ("x" * 600, "over 512"),
        (7104, "must be text"),
    ):
        with pytest.raises(ConfigError, match=says):
            parse_contact(4, bad)


# -- the incarnation file ---------------------------------------------------------------------


def test_an_incarnation_is_written_once_read_back_and_a_damaged_one_refused(
    tmp_path: Path,
) -> None:
    made, new = incarnation.settle(tmp_path)
    assert new and 1 <= made < 1 << 63
    assert incarnation.settle(tmp_path) == (made, False), "a start never changes it"
    assert incarnation.read(tmp_path) == made
    assert incarnation.record(tmp_path) != made, "a new store gets a new one"
    for damaged in ("", "zz", "0", "8000000000000000", "1" * 40, "\x00\x01"):
        (tmp_path / incarnation.INCARNATION_FILE).write_text(damaged)
        with pytest.raises(incarnation.BadIncarnation, match="damaged"):
            incarnation.read(tmp_path)
        with pytest.raises(incarnation.BadIncarnation):
            incarnation.settle(tmp_path)


# -- admission on real sockets ----------------------------------------------------------------


async def _until(condition: Any, seconds: float = 4.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)


def test_a_joined_member_is_taken_with_its_store_and_refused_with_another(
    tmp_path: Path,
) -> None:
    """Node 1 knows node 2 only from the record of its configuration (node 2 is in no config
    file of node 1): node 2 with the recorded store connects, and is dialed back at the
    record's address; node 2 started again on a new store is refused, and both logs (and the
    dialer's refusals, which status shows) say why."""
    base = free_layout(2, offset=1300)
    first, second = local_cluster(2, tmp_path, base, "ids")
    alone = Configuration((1,))
    configuration = alone.after((1,), (2,), Joined(2, OLD, format_contact(second.me)))
    one = type(first)(**{**_fields(first), "members": (first.me,)})

    async def run(store: int) -> tuple[bool, dict[int, str], bool]:
        listener = PeerTransport(one, lambda peer, msg: None)
        listener.adopt(configuration)
        dialer = PeerTransport(second, lambda peer, msg: None, incarnation=store)
        await listener.start()
        await dialer.start()
        try:
            await _until(
                lambda: dialer.refusals or (2 in listener.inbound and 2 in listener.connections)
            )
            return 2 in listener.inbound, dict(dialer.refusals), 2 in listener.connections
        finally:
            await dialer.close()
            await listener.close()

    taken, refusals, dialed_back = asyncio.run(run(OLD))
    assert taken and refusals == {} and dialed_back
    taken, refusals, _ = asyncio.run(run(NEW))
    assert not taken
    reason = refusals[1]
    assert "joined with store incarnation a11ce, but this one is b0b" in reason, reason
    assert "paxosd member remove 2" in reason


def test_a_peer_no_longer_admitted_is_closed_and_a_removed_joiner_no_longer_dialed(
    tmp_path: Path,
) -> None:
    base = free_layout(2, offset=1400)
    first, second = local_cluster(2, tmp_path, base, "ids2")
    one = type(first)(**{**_fields(first), "members": (first.me,)})
    joined = Configuration((1,)).after((1,), (2,), Joined(2, OLD, format_contact(second.me)))
    removed = joined.after((1,), ())

    async def run() -> tuple[bool, bool, dict[int, str], list[int]]:
        listener = PeerTransport(one, lambda peer, msg: None)
        listener.adopt(joined)
        dialer = PeerTransport(second, lambda peer, msg: None, incarnation=OLD)
        await listener.start()
        await dialer.start()
        try:
            await _until(lambda: 2 in listener.inbound and 2 in listener.connections)
            was_in = 2 in listener.inbound
            listener.adopt(removed)
            await _until(lambda: 1 in dialer.refusals)
            await asyncio.sleep(0.1)
            return was_in, 2 in listener.inbound, dict(dialer.refusals), sorted(listener.tasks)
        finally:
            await dialer.close()
            await listener.close()

    was_in, still_in, refusals, dialing = asyncio.run(run())
    assert was_in and not still_in
    assert "not a member of this cluster (epoch 2: voters 1)" in refusals[1], refusals
    assert dialing == [], "a removed member in no config file is no longer dialed"


def test_a_node_at_6_and_a_node_at_5_connect_both_ways(tmp_path: Path) -> None:
    """A rolling upgrade: a listener at protocol 5 closes a 6-field handshake without a word
    (its decoder takes five fields); after two such silences the dialer at 6 speaks 5 to it
    and is taken."""
    base = free_layout(2, offset=1500)
    first, _ = local_cluster(2, tmp_path, base, "mixed")
    host, port = first.members[1].peer
    seen: list[list[Any]] = []

    async def old_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        handshake = msgpack.unpackb(await reader.readexactly(length))
        seen.append(handshake)
        if len(handshake) != 5 or not 4 <= handshake[2] <= 5:  # what a node at 5 checks
            writer.transport.abort()
            return
        writer.write(codec.encode_welcome(_sqlite()))
        await asyncio.sleep(5)
        writer.close()

    async def run() -> bool:
        server = await asyncio.start_server(old_listener, host, port)
        dialer = PeerTransport(first, lambda peer, msg: None, incarnation=NEW)
        await dialer.start()
        try:
            await _until(lambda: 2 in dialer.connections)
            return 2 in dialer.connections
        finally:
            await dialer.close()
            server.close()

    assert asyncio.run(run())
    # Two silences in a row first: one alone may be a fault proxy's dropped connection.
    assert [len(h) for h in seen[:3]] == [6, 6, 5], seen
    assert seen[2] == [0, "paxosd", 5, "mixed", 1]


def _sqlite() -> str:
    from paxosd.service.sql.machine import SQLITE_VERSION

    return SQLITE_VERSION


def _fields(config: Any) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_every_way_to_make_a_store_makes_a_new_incarnation(tmp_path: Path) -> None:
    from paxosd.runtime import datadir

    config = local_cluster(3, tmp_path, free_layout(3, offset=1600), "made")[0]
    datadir.initialise(config, despite_traces=True)
    first = incarnation.read(config.data_dir)
    assert first is not None
    datadir.reinitialize(config)
    second = incarnation.read(config.data_dir)
    assert second is not None and second != first, "a rebuilt store is another incarnation"


def test_a_refusal_carries_the_configuration_that_left_the_dialer_out() -> None:
    left_out = Configuration((1, 2, 3), epoch=5, first_slot=40)
    frame = codec.encode_refusal("node id 4 is not a member", left_out)
    assert codec.decode_refusal(frame[4:]) == ("node id 4 is not a member", left_out)
    assert codec.decode_refusal(codec.encode_refusal("no")[4:]) == ("no", None)
    # A fourth field that is no configuration is left out; the reason is kept.
    for junk in ([1], "x", [[1], [2], [3]]):
        payload = msgpack.packb([codec.REFUSAL, "paxosd", "why", junk])
        assert codec.decode_refusal(payload) == ("why", None), junk
