"""LinkProxy and ProxyMesh against framed endpoints that speak paxosd's length prefix."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from paxosd.chaos.proxy import LinkProxy, ProxyMesh
from paxosd.runtime.codec import FrameReader, encode_handshake
from tests.ports import free_block

pytestmark = pytest.mark.timeout(30)

_length = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    return _length.pack(len(payload)) + payload


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


class Sink:
    """A framed endpoint: records every frame it receives (with its arrival time) and, if
    asked, echoes it back; closes a connection when the other side does."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.frames: list[tuple[float, bytes]] = []
        self.connections = 0
        self.closed = 0
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> Sink:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        frames = FrameReader()
        try:
            while data := await reader.read(65536):
                for payload in frames.feed(data):
                    self.frames.append((time.monotonic(), payload))
                    if self.echo:
                        writer.write(frame(payload))
                self.changed.set()
        except OSError:
            pass
        finally:
            self.closed += 1
            self.changed.set()
            writer.close()

    def payloads(self) -> list[bytes]:
        return [p for _, p in self.frames]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async def poll() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(poll(), timeout_s)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def link(sink: Sink, rng: random.Random | None = None, **kwargs: Any) -> LinkProxy:
    port = free_block(1, 2000)
    proxy = LinkProxy(
        ("127.0.0.1", port), ("127.0.0.1", sink.port), rng or random.Random(1), **kwargs
    )
    await proxy.start()
    return proxy


async def send_all(port: int, payloads: list[bytes]) -> None:
    """Send every payload as a frame on one connection, then close it (EOF)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(frame(p) for p in payloads))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def numbered(count: int) -> list[bytes]:
    return [b"frame-%06d" % i for i in range(count)]


def test_forwards_frames_intact_both_ways() -> None:
    async def body() -> None:
        sink = await Sink(echo=True).start()
        proxy = await link(sink)
        payloads = [bytes([i % 256]) * (i * 37 % 5000) for i in range(300)]
        payloads.append(b"x" * (1 << 20))  # one big frame, read in many chunks
        reader, writer = await asyncio.open_connection(*proxy.address)
        stream = b"".join(frame(p) for p in payloads)
        # Split writes across frame boundaries: the proxy must reassemble whole frames.
        for offset in range(0, len(stream), 7919):
            writer.write(stream[offset : offset + 7919])
        await writer.drain()
        echoed = FrameReader()
        got: list[bytes] = []
        while len(got) < len(payloads):
            data = await reader.read(65536)
            assert data, "the proxy closed the connection"
            got += echoed.feed(data)
        assert got == payloads
        assert sink.payloads() == payloads
        writer.close()
        await sink.wait_for(lambda: sink.closed == 1)
        stats = proxy.stats
        assert stats.frames_in == stats.frames_forwarded == len(payloads)
        assert stats.frames_dropped == 0 and stats.frames_duplicated == 0
        assert stats.bytes_forwarded == stats.bytes_back == len(stream)
        await proxy.close()
        await sink.close()

    run(body)


def test_cut_drops_everything_and_refuses_connections() -> None:
    async def body() -> None:
        sink = await Sink().start()
        proxy = await link(sink)
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(frame(b"before"))
        await sink.wait_for(lambda: sink.payloads() == [b"before"])
        await proxy.set_cut(True)
        # The current connection is gone on both sides...
        assert await asyncio.wait_for(reader.read(), 2) == b""
        await sink.wait_for(lambda: sink.closed == 1)
        with pytest.raises(OSError):
            writer.write(frame(b"during"))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(frame(b"during"))
            await writer.drain()
        # ...and new dials are refused, as by a dead host.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*proxy.address)
        await asyncio.sleep(0.1)
        assert sink.payloads() == [b"before"]
        await proxy.set_cut(False)
        await send_all(proxy.port, [b"after"])
        await sink.wait_for(lambda: sink.payloads() == [b"before", b"after"])
        assert proxy.stats.connections_reset == 1
        await proxy.close()
        await sink.close()

    run(body)


def test_delay_holds_every_frame_and_keeps_order() -> None:
    async def body() -> None:
        sink = await Sink().start()
        proxy = await link(sink, random.Random(3))
        proxy.configure(delay_ms=100, jitter_ms=50)
        _, writer = await asyncio.open_connection(*proxy.address)
        sent: list[float] = []
        for payload in numbered(20):
            sent.append(time.monotonic())
            writer.write(frame(payload))
            await writer.drain()
            await asyncio.sleep(0.005)  # jitter larger than the spacing: order must hold
        await sink.wait_for(lambda: len(sink.frames) == 20)
        assert sink.payloads() == numbered(20)
        for (arrived, _), left in zip(sink.frames, sent, strict=True):
            assert arrived - left >= 0.100
        assert proxy.stats.frames_delayed == 20
        writer.close()
        await proxy.close()
        await sink.close()

    run(body)


def test_loss_drops_the_seeded_fraction_of_whole_frames() -> None:
    async def body() -> None:
        count, p, seed = 1000, 0.3, 7
        sink = await Sink().start()
        proxy = await link(sink, random.Random(seed), handshake_frames=0)
        proxy.configure(loss=p)
        await send_all(proxy.port, numbered(count))
        await sink.wait_for(lambda: sink.closed == 1)
        replay = random.Random(seed)
        lost = [i for i in range(count) if replay.random() < p]  # one draw per frame
        assert 0.25 * count < len(lost) < 0.35 * count
        assert proxy.stats.frames_lost == len(lost)
        expected = [f for i, f in enumerate(numbered(count)) if i not in set(lost)]
        assert sink.payloads() == expected  # whole frames, in order, the stream intact
        await proxy.close()
        await sink.close()

    run(body)


def test_handshake_frames_are_exempt_from_loss() -> None:
    async def body() -> None:
        sink = await Sink().start()
        proxy = await link(sink)  # handshake_frames=1, as for paxosd
        proxy.configure(loss=1.0)
        await send_all(proxy.port, [b"hello", b"m1", b"m2"])
        await sink.wait_for(lambda: sink.closed == 1)
        assert sink.payloads() == [b"hello"]
        await proxy.close()
        await sink.close()

    run(body)


def test_duplicate_sends_whole_frames_twice() -> None:
    async def body() -> None:
        count, p, seed = 500, 0.4, 11
        sink = await Sink().start()
        proxy = await link(sink, random.Random(seed), handshake_frames=0)
        proxy.configure(duplicate=p)
        await send_all(proxy.port, numbered(count))
        await sink.wait_for(lambda: sink.closed == 1)
        replay = random.Random(seed)
        doubled = {i for i in range(count) if replay.random() < p}
        expected = [
            f for i, f in enumerate(numbered(count)) for _ in range(2 if i in doubled else 1)
        ]
        assert sink.payloads() == expected
        assert proxy.stats.frames_duplicated == len(doubled)
        assert proxy.stats.frames_forwarded == count + len(doubled)
        await proxy.close()
        await sink.close()

    run(body)


def test_held_bytes_are_bounded() -> None:
    async def body() -> None:
        sink = await Sink().start()
        proxy = await link(sink, held_bytes_max=10_000)
        proxy.configure(delay_ms=300)
        payloads = [b"y" * 996] * 50  # 1000-byte frames: 10 fit
        await send_all(proxy.port, payloads)
        await sink.wait_for(lambda: sink.closed == 1)
        assert len(sink.frames) == 10
        assert proxy.stats.frames_overflowed == 40
        await proxy.close()
        await sink.close()

    run(body)


def test_reset_closes_connections_and_the_dialer_can_reconnect() -> None:
    async def body() -> None:
        sink = await Sink().start()
        proxy = await link(sink)
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(frame(b"one"))
        await sink.wait_for(lambda: len(sink.frames) == 1)
        assert proxy.reset() == 1
        assert await asyncio.wait_for(reader.read(), 2) == b""
        await sink.wait_for(lambda: sink.closed == 1)
        await send_all(proxy.port, [b"two"])
        await sink.wait_for(lambda: sink.payloads() == [b"one", b"two"])
        assert sink.connections == 2 and proxy.stats.connections_reset == 1
        writer.close()
        await proxy.close()
        await sink.close()

    run(body)


def test_down_destination_is_refused_until_it_is_back() -> None:
    async def body() -> None:
        dead = free_block(1, 2100)  # nobody listens there
        proxy = LinkProxy(("127.0.0.1", free_block(1, 2200)), ("127.0.0.1", dead), random.Random(1))
        await proxy.start()
        reader, _ = await asyncio.open_connection(*proxy.address)
        try:
            data = await asyncio.wait_for(reader.read(), 2)
        except ConnectionResetError:
            data = b""  # the proxy aborts: a reset, or an EOF if the read came first
        assert data == b""
        assert proxy.stats.upstream_failures == 1 and proxy.upstream_down
        # Like the dead node itself: refused, so the dialer backs off instead of spinning.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*proxy.address)
        sink = await Sink().start(dead)
        deadline = time.monotonic() + 3
        while proxy.upstream_down and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await send_all(proxy.port, [b"back"])
        await sink.wait_for(lambda: b"back" in sink.payloads())
        await proxy.close()
        await sink.close()

    run(body)


async def delivered_links(mesh: ProxyMesh, sinks: dict[int, Sink]) -> set[tuple[int, int]]:
    """Which directed links carry a frame right now: each node dials each peer's proxy."""

    async def probe(src: int, dst: int) -> bool:
        tag = f"{src}->{dst}@{time.monotonic_ns()}".encode()
        sink = sinks[dst]
        try:
            _, writer = await asyncio.open_connection(*mesh.address_for(src, dst))
        except ConnectionRefusedError:
            return False
        writer.write(frame(tag))
        try:
            await sink.wait_for(lambda: tag in sink.payloads(), 1.0)
            return True
        except TimeoutError:
            return False
        finally:
            writer.close()

    links = [(s, d) for s in mesh.nodes for d in mesh.nodes if s != d]
    results = await asyncio.gather(*(probe(s, d) for s, d in links))
    return {key for key, ok in zip(links, results, strict=True) if ok}


def test_mesh_topologies_block_exactly_the_expected_links() -> None:
    async def body() -> None:
        sinks = {i: await Sink().start() for i in (1, 2, 3)}
        first = free_block(6, 2300)
        ports = range(first, first + 6)
        mesh = ProxyMesh(
            {i: ("127.0.0.1", s.port) for i, s in sinks.items()}, ports, random.Random(5)
        )
        everything = {(s, d) for s in (1, 2, 3) for d in (1, 2, 3) if s != d}
        async with mesh:
            assert len({mesh.address_for(s, d) for s, d in everything}) == 6
            assert await delivered_links(mesh, sinks) == everything

            cut = await mesh.bridge(1, 2, 3)
            assert set(cut) == {(1, 3), (3, 1)}
            assert await delivered_links(mesh, sinks) == everything - {(1, 3), (3, 1)}

            cut = await mesh.partition([[1, 2], [3]])
            assert set(cut) == {(1, 3), (2, 3), (3, 1), (3, 2)}
            assert await delivered_links(mesh, sinks) == {(1, 2), (2, 1)}

            cut = await mesh.one_way([1], [2, 3])
            assert await delivered_links(mesh, sinks) == everything - {(1, 2), (1, 3)}

            await mesh.isolate(2)
            assert mesh.cut_links() == [(1, 2), (2, 1), (2, 3), (3, 2)]
            assert await delivered_links(mesh, sinks) == {(1, 3), (3, 1)}

            mesh.set_link(1, 2, loss=1.0)
            await mesh.heal()
            assert mesh.cut_links() == []
            assert await delivered_links(mesh, sinks) == everything
            stats = mesh.stats()
            assert set(stats) == {f"{s}->{d}" for s, d in everything}
            assert stats["1->2"]["loss"] == 0.0 and stats["1->2"]["cut"] is False
        for sink in sinks.values():
            await sink.close()

    run(body)


def test_mesh_draws_per_link_seeds_deterministically() -> None:
    peers = {i: ("127.0.0.1", 1000 + i) for i in (1, 2, 3)}
    draws = []
    for _ in range(2):
        mesh = ProxyMesh(peers, range(30000, 30006), random.Random(42))
        draws.append([mesh.link(s, d).rng.random() for s, d in sorted(mesh.proxies)])
    assert draws[0] == draws[1]
    assert len(set(draws[0])) == 6
    with pytest.raises(ValueError):
        ProxyMesh(peers, range(30000, 30005), random.Random(1))


def test_front_door_hands_each_dialer_to_its_own_link() -> None:
    """A joined node is dialed by every member at one address: the door reads who dials from
    the handshake and the link's own faults apply (here: 1 -> 3 cut, 2 -> 3 open); a dialer
    that names no member, or sends garbage, is dropped."""

    async def body() -> None:
        sinks = {i: await Sink().start() for i in (1, 2, 3)}
        first = free_block(9, 2400)
        mesh = ProxyMesh(
            {i: ("127.0.0.1", s.port) for i, s in sinks.items()},
            range(first, first + 6),
            random.Random(5),
            front_ports={3: first + 8},
        )
        async with mesh:
            door = await mesh.open_front(3)
            assert door == ("127.0.0.1", first + 8) == mesh.front_address(3)
            await mesh.cut([(1, 3)])

            async def dial(node: int, payload: bytes) -> bool:
                _, writer = await asyncio.open_connection(*door)
                writer.write(frame(encode_handshake("c", node, 7)[4:]) + frame(payload))
                try:
                    await sinks[3].wait_for(lambda: payload in sinks[3].payloads(), 1.0)
                    return True
                except TimeoutError:
                    return False
                finally:
                    writer.close()

            assert await dial(2, b"from 2")
            assert not await dial(1, b"from 1")
            assert not await dial(9, b"from nobody")
            _, writer = await asyncio.open_connection(*door)
            writer.write(frame(b"not a handshake") + frame(b"garbage"))
            await asyncio.sleep(0.2)
            writer.close()
            assert b"garbage" not in sinks[3].payloads()
            assert mesh.link(2, 3).stats.frames_forwarded == 2  # the handshake and the payload
            assert mesh.link(1, 3).stats.frames_forwarded == 0
            assert mesh.totals()["front_door_connections"] == 2  # 2's and 1's (then cut)
            await mesh.heal()
            assert await dial(1, b"from 1 again")
            await mesh.close_front(3)  # the node listens there itself while it joins again
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(*door)
            assert mesh.totals()["front_door_connections"] == 3
        for sink in sinks.values():
            await sink.close()

    run(body)
