"""A userspace fault proxy for paxosd's peer links: partitions, delay, loss, duplication, resets.

Theory of operation. paxosd node i sends to node j only on the TCP connection i dialed to j
(see `paxosd.runtime.transport`), so every DIRECTED link i -> j is one proxy: a port that
node i's config lists as j's peer address, forwarding to j's real peer port. Cutting the proxy
i -> j silences i towards j and leaves j -> i alone; a one-way partition is one cut, a full
partition is both. No kernel support is needed (no netem, no iptables), only 127.0.0.1 ports.

Each accepted connection opens its own upstream connection and three tasks run it:

- `_read` splits the stream from the dialer into whole frames (4-byte big-endian length and
  payload, `paxosd.runtime.codec.FrameReader`) and decides each frame's fate with the link's
  own `random.Random`: lost, passed once or twice, and when it may leave (delay + jitter).
  Frames are the unit because dropping half a frame would only desynchronise the stream: the
  receiver closes the connection, which is a reset, not a loss.
- `_write` sends the held frames upstream in arrival order. A frame's release time is never
  earlier than its predecessor's, so jitter delays but never reorders a connection (TCP never
  reorders either; reordering across connections still happens after a reset).
- `_back` relays the other direction byte for byte with no faults: paxosd never answers on a
  dialed connection, so faults there would test nothing, and it keeps echo tests simple.

The first `handshake_frames` frames of every connection (paxosd's handshake) are exempt from
loss and duplication: losing or doubling a handshake only makes the receiver close the
connection, and a lossy link would then mostly test reconnection instead of message loss.

A cut link closes its listening socket (new dials get ECONNREFUSED, so the node backs off as
it would against a dead peer) and aborts its connections, discarding held frames. Restoring
binds the same port again. A destination that refuses the upstream dial (its node is down)
also closes the listening socket, until a probe every `probe_interval_s` gets through: the
dialer then backs off as against the dead node itself, instead of reaching the proxy, being
dropped, and dialing again in a tight loop (paxosd resets its backoff after every successful
connect). A connection's held frames are bounded by `held_bytes_max`; a
frame that would exceed it is dropped and counted, so a paused or slow receiver costs bounded
memory. Every decision is counted in `LinkStats`.

A node that joined through the log (`paxosd node --join`) is dialed by every member at the one
peer address its record announces, not at an address of each member's config file. Its
`FrontDoor` listens there: it reads a connection's first frame (the handshake, which names the
dialer) and hands the connection to the proxy of the link dialer -> node, whose faults and
counters then apply as to any other connection of that link. A cut link cannot close a shared
listener: its front-door connections are aborted right after their handshake instead, which
the dialer takes as a silent refusal and backs off from.

Determinism: a link draws from its rng per frame, in this order: loss (if loss > 0),
duplication (if duplicate > 0), jitter (if jitter_ms > 0). `ProxyMesh` gives each link its
own rng seeded from the mesh's rng in link order, so one link's traffic never shifts another
link's draws. What stays non-deterministic is the traffic itself (timing, frame boundaries).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from paxosd.runtime.codec import FrameReader, WireError, decode_handshake, frame_bytes_max

log = logging.getLogger("paxosd.chaos.proxy")

Address = tuple[str, int]
Link = tuple[int, int]  # (src, dst): src's messages to dst

held_bytes_max = 8 << 20  # per connection: frames held for delay beyond this are dropped
read_chunk_bytes = 64 << 10
connect_timeout_s = 2.0  # upstream dial; a stopped (SIGSTOP) node still completes the dial
probe_interval_s = 0.05  # how often a proxy checks whether a down destination is back
rebind_attempts = 40
rebind_pause_s = 0.05
close_timeout_s = 2.0
handshake_frames_default = 1
front_handshake_wait_s = 2.0  # a front door drops a dialer that names itself no sooner
_length = struct.Struct(">I")


@dataclass(slots=True)
class LinkFaults:
    """What a link does to the frames crossing it, changeable at any time."""

    cut: bool = False
    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform in [0, jitter_ms] on top of delay_ms: never less delay
    loss: float = 0.0  # probability that a frame is dropped
    duplicate: float = 0.0  # probability that a (not lost) frame is sent twice

    def validate(self) -> LinkFaults:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        if not 0.0 <= self.loss <= 1.0 or not 0.0 <= self.duplicate <= 1.0:
            raise ValueError("loss and duplicate are probabilities in [0, 1]")
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class LinkStats:
    """Counters of one link since it was created."""

    connections_accepted: int = 0
    connections_reset: int = 0  # closed by reset() or by cutting the link
    upstream_failures: int = 0  # the destination's peer port did not accept (node down)
    stream_errors: int = 0  # invalid length prefix from the dialer: connection closed
    relisten_failures: int = 0  # the port could not be bound again after a down destination
    frames_in: int = 0
    frames_forwarded: int = 0  # written upstream, duplicates included
    frames_lost: int = 0  # dropped by `loss`
    frames_duplicated: int = 0  # extra copies sent
    frames_delayed: int = 0  # held for a positive delay
    frames_overflowed: int = 0  # dropped because the connection held held_bytes_max
    frames_discarded: int = 0  # still held when the connection was cut, reset or lost
    bytes_forwarded: int = 0
    bytes_back: int = 0  # relayed from destination to dialer

    @property
    def frames_dropped(self) -> int:
        return self.frames_lost + self.frames_overflowed + self.frames_discarded

    def to_json(self) -> dict[str, int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["frames_dropped"] = self.frames_dropped
        return out


class _Connection:
    """One dialer connection and its upstream twin (see the module docstring)."""

    def __init__(
        self,
        link: LinkProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.link = link
        self.client_reader, self.client_writer = client
        self.up_reader, self.up_writer = upstream
        self.held: collections.deque[tuple[float, bytes]] = collections.deque()
        self.held_bytes = 0
        self.last_release = 0.0
        self.frames_seen = 0
        self.eof = False
        self.wake = asyncio.Event()
        self.ended = asyncio.Event()
        self.graceful = False
        self.tasks: list[asyncio.Task[None]] = []

    def end(self, graceful: bool = False) -> None:
        if not self.ended.is_set():
            self.graceful = graceful
            self.ended.set()

    async def run(self) -> None:
        self.tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._write()),
            asyncio.create_task(self._back()),
        ]
        try:
            await self.ended.wait()
        finally:
            current = asyncio.current_task()
            for task in self.tasks:
                if task is not current:
                    task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.link.stats.frames_discarded += len(self.held)
            self.held.clear()
            self.held_bytes = 0
            for writer in (self.up_writer, self.client_writer):
                if self.graceful:
                    writer.close()
                else:
                    writer.transport.abort()

    async def _read(self) -> None:
        reader = FrameReader(frame_bytes_max)
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self.client_reader.read(read_chunk_bytes)
                if not data:
                    break
                now = loop.time()
                for payload in reader.feed(data):
                    self._admit(_length.pack(len(payload)) + payload, now)
        except WireError as error:
            self.link.stats.stream_errors += 1
            log.info("%s: closing a connection: %s", self.link.name, error)
            self.end()
            return
        except OSError:
            self.end()
            return
        self.eof = True  # flush what is held, then close: the dialer is done
        self.wake.set()

    def _admit(self, frame: bytes, now: float) -> None:
        link = self.link
        faults = link.faults
        stats = link.stats
        rng = link.rng
        stats.frames_in += 1
        self.frames_seen += 1
        copies = 1
        if self.frames_seen > link.handshake_frames:
            if faults.loss > 0 and rng.random() < faults.loss:
                stats.frames_lost += 1
                return
            if faults.duplicate > 0 and rng.random() < faults.duplicate:
                copies = 2
        wait_ms = faults.delay_ms
        if faults.jitter_ms > 0:
            wait_ms += rng.uniform(0.0, faults.jitter_ms)
        release = max(now + wait_ms / 1000, self.last_release)  # never overtake: FIFO
        for copy in range(copies):
            if self.held_bytes + len(frame) > link.held_bytes_max:
                stats.frames_overflowed += 1
                continue
            if release > now:
                stats.frames_delayed += 1
            if copy:
                stats.frames_duplicated += 1
            self.held.append((release, frame))
            self.held_bytes += len(frame)
        self.last_release = release
        self.wake.set()

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.link.stats
        try:
            while True:
                if not self.held:
                    if self.eof:
                        self.end(graceful=True)
                        return
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                release, _ = self.held[0]
                pause = release - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                # Everything already due leaves in one write: fewer syscalls, same order.
                now = loop.time()
                batch: list[bytes] = []
                while self.held and self.held[0][0] <= now:
                    _, frame = self.held.popleft()
                    self.held_bytes -= len(frame)
                    batch.append(frame)
                if not batch:
                    continue
                data = b"".join(batch)
                self.up_writer.write(data)
                stats.frames_forwarded += len(batch)
                stats.bytes_forwarded += len(data)
                await self.up_writer.drain()
        except OSError:
            self.end()

    async def _back(self) -> None:
        stats = self.link.stats
        try:
            while True:
                data = await self.up_reader.read(read_chunk_bytes)
                if not data:
                    break
                self.client_writer.write(data)
                stats.bytes_back += len(data)
                await self.client_writer.drain()
        except OSError:
            pass
        self.end()  # the destination closed or failed: nothing held can reach it now


class LinkProxy:
    """The proxy of one directed link: listens on `listen`, forwards to `upstream`."""

    def __init__(
        self,
        listen: Address,
        upstream: Address,
        rng: random.Random,
        *,
        name: str = "",
        held_bytes_max: int = held_bytes_max,
        handshake_frames: int = handshake_frames_default,
    ) -> None:
        self.host, self.port = listen
        self.upstream = upstream
        self.rng = rng
        self.name = name or f"proxy:{self.port}->{upstream[1]}"
        self.held_bytes_max = held_bytes_max
        self.handshake_frames = handshake_frames
        self.faults = LinkFaults()
        self.stats = LinkStats()
        self.server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self.handlers: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.upstream_down = False
        self._listener_lock = asyncio.Lock()
        self._probe: asyncio.Task[None] | None = None

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    @property
    def cut(self) -> bool:
        return self.faults.cut

    async def start(self) -> None:
        await self._sync_listener()

    async def _sync_listener(self) -> None:
        """Listen exactly when the link is neither cut, nor facing a down destination, nor
        closed."""
        async with self._listener_lock:
            wanted = not (self.faults.cut or self.upstream_down or self.closed)
            if wanted and self.server is None:
                await self._listen()
            elif not wanted and self.server is not None:
                self.server.close()
                self.server = None

    async def _listen(self) -> None:
        self.server = await _serve(self._accept, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]  # port 0: pin the kernel's choice

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self.handlers.discard(task)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes = b""
    ) -> None:
        """Run one dialer's connection; `first`: a frame a front door read from it already
        (its handshake), sent upstream before anything else."""
        if self.faults.cut or self.closed:
            writer.transport.abort()
            return
        _nodelay(writer)
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), connect_timeout_s
            )
        except (OSError, TimeoutError):
            # The destination is down: refuse the dialer, and refuse dials until it is back.
            self.stats.upstream_failures += 1
            writer.transport.abort()
            if not self.upstream_down:
                self.upstream_down = True
                await self._sync_listener()
                self._probe = asyncio.create_task(self._wait_for_upstream())
            return
        _nodelay(upstream[1])
        if self.faults.cut or self.closed:  # cut while we were dialing
            upstream[1].transport.abort()
            writer.transport.abort()
            return
        self.stats.connections_accepted += 1
        connection = _Connection(self, (reader, writer), upstream)
        if first:
            upstream[1].write(first)
            self.stats.frames_in += 1
            self.stats.frames_forwarded += 1
            self.stats.bytes_forwarded += len(first)
            connection.frames_seen = 1
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    async def _wait_for_upstream(self) -> None:
        while not self.closed:
            await asyncio.sleep(probe_interval_s)
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream), connect_timeout_s
                )
            except (OSError, TimeoutError):
                continue
            writer.close()  # a paxosd node drops a connection that never says hello
            self.upstream_down = False
            try:
                await self._sync_listener()
            except OSError:  # the port is taken: a silently dead link would fake a partition
                log.exception("%s: cannot listen again; retrying", self.name)
                self.stats.relisten_failures += 1
                self.upstream_down = True
                continue
            return

    def configure(
        self,
        *,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
        loss: float | None = None,
        duplicate: float | None = None,
    ) -> None:
        """Change the frame faults; None leaves a setting as it is. Takes effect for frames
        read from now on (frames already held keep their release time)."""
        new = LinkFaults(
            self.faults.cut,
            self.faults.delay_ms if delay_ms is None else float(delay_ms),
            self.faults.jitter_ms if jitter_ms is None else float(jitter_ms),
            self.faults.loss if loss is None else float(loss),
            self.faults.duplicate if duplicate is None else float(duplicate),
        ).validate()
        self.faults = new

    def clear(self) -> None:
        """No delay, loss or duplication (the cut state is unchanged)."""
        self.configure(delay_ms=0, jitter_ms=0, loss=0, duplicate=0)

    async def set_cut(self, cut: bool) -> None:
        """Cut: refuse new dials, close current connections, drop what they hold. Uncut:
        listen again on the same port."""
        if cut == self.faults.cut or self.closed:
            return
        self.faults.cut = cut
        await self._sync_listener()
        if cut:
            self.reset()

    def reset(self) -> int:
        """Abort every current connection (both sides); the dialer reconnects. Returns how
        many were closed."""
        closing = list(self.connections)
        for connection in closing:
            connection.end()
        self.stats.connections_reset += len(closing)
        return len(closing)

    async def close(self) -> None:
        self.closed = True
        await self._sync_listener()
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        for connection in list(self.connections):
            connection.end()
        handlers = list(self.handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=close_timeout_s)
            for task in pending:
                task.cancel()

    def describe(self) -> dict[str, Any]:
        return {
            "listen": f"{self.host}:{self.port}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "connections": len(self.connections),
            "listening": self.server is not None,
            "upstream_down": self.upstream_down,
            **self.faults.to_json(),
            **self.stats.to_json(),
        }


class FrontDoor:
    """The peer address of a node that joined through the log: every member dials it, and each
    connection goes on through the proxy of its own link, found from its handshake."""

    def __init__(self, listen: Address, node: int, links: Mapping[int, LinkProxy]) -> None:
        self.host, self.port = listen
        self.node = node
        self.links = dict(links)  # dialer id -> the proxy of the link dialer -> node
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[Any]] = set()
        self.unknown_dialers = 0
        self.handed_on = 0  # connections handed to a link's proxy

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    async def start(self) -> None:
        self.server = await _serve(self._accept, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            try:
                header = await asyncio.wait_for(reader.readexactly(4), front_handshake_wait_s)
                (length,) = _length.unpack(header)
                if length > frame_bytes_max:
                    raise WireError(f"a first frame of {length} bytes")
                payload = await asyncio.wait_for(reader.readexactly(length), front_handshake_wait_s)
                link = self.links.get(decode_handshake(payload).node_id)
            except (asyncio.IncompleteReadError, TimeoutError, OSError, WireError):
                link = None
            if link is None:
                self.unknown_dialers += 1
                writer.transport.abort()
                return
            self.handed_on += 1
            await link._serve(reader, writer, header + payload)
        finally:
            self.handlers.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        handlers = list(self.handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    # Batching is the nodes' (and the delay queue's) business, not Nagle's.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _group(value: int | Iterable[int]) -> frozenset[int]:
    return frozenset((value,)) if isinstance(value, int) else frozenset(value)


class ProxyMesh:
    """A LinkProxy for every ordered pair of nodes, and the Jepsen topologies over them.

    `peers` maps node id to its REAL peer address (where its transport listens). Node i must
    be configured to dial `address_for(i, j)` for every peer j (`processes.write_configs`).
    Topology calls (`partition`, `isolate`, `bridge`, `one_way`, `cut`) set the complete set
    of cut links, replacing whatever was cut before; `heal` restores everything.
    """

    def __init__(
        self,
        peers: Mapping[int, Address],
        ports: Sequence[int],
        rng: random.Random,
        *,
        host: str = "127.0.0.1",
        held_bytes_max: int = held_bytes_max,
        handshake_frames: int = handshake_frames_default,
        front_ports: Mapping[int, int] | None = None,
    ) -> None:
        self.nodes = sorted(peers)
        self.host = host
        # Where a node that joins through the log is dialed (`open_front`); 0: any free port.
        self.front_ports = {n: (front_ports or {}).get(n, 0) for n in self.nodes}
        self.fronts: dict[int, FrontDoor] = {}
        self._front_handed_closed = 0  # connections handed on by front doors closed since
        self.peers = dict(peers)
        links = [(s, d) for s in self.nodes for d in self.nodes if s != d]
        if len(ports) < len(links):
            raise ValueError(
                f"{len(self.nodes)} nodes need {len(links)} proxy ports, got {len(ports)}"
            )
        # Seeds are drawn in link order before any traffic: a link's fate depends on its
        # own frames only.
        self.proxies: dict[Link, LinkProxy] = {}
        for (src, dst), port in zip(links, ports, strict=False):
            self.proxies[(src, dst)] = LinkProxy(
                (host, port),
                self.peers[dst],
                random.Random(rng.getrandbits(64)),
                name=f"link {src}->{dst}",
                held_bytes_max=held_bytes_max,
                handshake_frames=handshake_frames,
            )

    @staticmethod
    def ports_needed(nodes: int) -> int:
        return nodes * (nodes - 1)

    async def start(self) -> None:
        try:
            for proxy in self.proxies.values():
                await proxy.start()
        except BaseException:
            await self.close()  # `async with` does not exit what failed to enter
            raise

    async def close(self) -> None:
        for node in list(self.fronts):
            await self.close_front(node)
        await asyncio.gather(*(proxy.close() for proxy in self.proxies.values()))

    def front_address(self, node: int) -> Address:
        """Where a node that joins through the log must tell the members to dial it: its front
        door's address (a free port is chosen, once, if the mesh was given none)."""
        port = self.front_ports[node]
        if port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                port = probe.getsockname()[1]
            self.front_ports[node] = port
        return (self.host, port)

    async def open_front(self, node: int) -> Address:
        """Listen at `node`'s front door (see the module docstring); its address."""
        self._check_nodes([node])
        await self.close_front(node)
        links = {src: self.proxies[(src, node)] for src in self.nodes if src != node}
        front = FrontDoor(self.front_address(node), node, links)
        await front.start()
        self.fronts[node] = front
        return front.address

    async def close_front(self, node: int) -> None:
        """Stop listening at `node`'s front door (the node itself listens there while it
        joins), and abort the connections it handed on."""
        front = self.fronts.pop(node, None)
        if front is not None:
            self._front_handed_closed += front.handed_on
            await front.close()
            for src in front.links:
                self.proxies[(src, node)].reset()

    async def __aenter__(self) -> ProxyMesh:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def address_for(self, src: int, dst: int) -> Address:
        """Where node `src` must dial to reach node `dst`."""
        return self.proxies[(src, dst)].address

    def link(self, src: int, dst: int) -> LinkProxy:
        return self.proxies[(src, dst)]

    # -- topology ---------------------------------------------------------------------------

    async def cut(self, links: Iterable[Link]) -> list[Link]:
        """Cut exactly `links` (and restore every other link). Returns the cut links."""
        wanted = set(links)
        unknown = wanted - set(self.proxies)
        if unknown:
            raise ValueError(f"no such links: {sorted(unknown)}")
        # Cut first, restore second: while one topology changes into another, no link is
        # open that both of them cut.
        for key, proxy in self.proxies.items():
            if key in wanted:
                await proxy.set_cut(True)
        for key, proxy in self.proxies.items():
            if key not in wanted:
                await proxy.set_cut(False)
        return sorted(wanted)

    async def partition(self, groups: Sequence[int | Iterable[int]]) -> list[Link]:
        """Nodes talk only within their group; a node in no group is alone."""
        sets = [_group(g) for g in groups]
        members = [n for g in sets for n in g]
        if len(members) != len(set(members)):
            raise ValueError(f"partition groups overlap: {[sorted(g) for g in sets]}")
        self._check_nodes(members)
        side = {n: i for i, g in enumerate(sets) for n in g}
        lone = len(sets)
        for n in self.nodes:
            if n not in side:
                side[n] = lone
                lone += 1
        return await self.cut((s, d) for s, d in self.proxies if side[s] != side[d])

    async def isolate(self, node: int) -> list[Link]:
        return await self.partition([[node], [n for n in self.nodes if n != node]])

    async def bridge(
        self, a: int | Iterable[int], b: int | Iterable[int], c: int | Iterable[int]
    ) -> list[Link]:
        """`b` hears and reaches both sides; the `a` side and the `c` side cannot talk."""
        left, middle, right = _group(a), _group(b), _group(c)
        self._check_nodes(left | middle | right)
        if left & middle or middle & right or left & right:
            raise ValueError("bridge sides must be disjoint")
        blocked = [(s, d) for s in left for d in right] + [(s, d) for s in right for d in left]
        return await self.cut(blocked)

    async def one_way(
        self, src_group: int | Iterable[int], dst_group: int | Iterable[int]
    ) -> list[Link]:
        """Messages from `src_group` to `dst_group` are dropped; the reverse flows."""
        sources, targets = _group(src_group), _group(dst_group)
        self._check_nodes(sources | targets)
        return await self.cut((s, d) for s in sources for d in targets if s != d)

    async def heal(self) -> None:
        """Every link restored and cleared of delay, loss and duplication."""
        for proxy in self.proxies.values():
            proxy.clear()
        await self.cut(())

    def cut_links(self) -> list[Link]:
        return sorted(key for key, proxy in self.proxies.items() if proxy.cut)

    def _check_nodes(self, nodes: Collection[int]) -> None:
        unknown = set(nodes) - set(self.nodes)
        if unknown:
            raise ValueError(f"unknown nodes {sorted(unknown)}; the mesh has {self.nodes}")

    # -- frame faults -----------------------------------------------------------------------

    def set_link(
        self,
        src: int,
        dst: int,
        *,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
        loss: float | None = None,
        duplicate: float | None = None,
    ) -> None:
        self.proxies[(src, dst)].configure(
            delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss, duplicate=duplicate
        )

    def set_all(
        self,
        *,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
        loss: float | None = None,
        duplicate: float | None = None,
    ) -> None:
        for proxy in self.proxies.values():
            proxy.configure(delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss, duplicate=duplicate)

    def reset(self, links: Iterable[Link] | None = None) -> int:
        """Abort the connections of `links` (all links if None); returns how many closed."""
        keys = list(self.proxies) if links is None else list(links)
        return sum(self.proxies[key].reset() for key in keys)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per link "src->dst": address, faults and counters."""
        return {f"{s}->{d}": proxy.describe() for (s, d), proxy in self.proxies.items()}

    def totals(self) -> dict[str, int]:
        """Counters summed over all links."""
        total: collections.Counter[str] = collections.Counter()
        for proxy in self.proxies.values():
            total.update(proxy.stats.to_json())
        if self.fronts or self._front_handed_closed:
            total["front_door_connections"] = self._front_handed_closed + sum(
                front.handed_on for front in self.fronts.values()
            )
        return dict(total)


async def _serve(
    accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str,
    port: int,
) -> asyncio.Server:
    """A listener on `host:port`, tried a few times: the port of a listener or a node just
    closed may linger in the kernel for a moment."""
    for attempt in range(rebind_attempts):
        try:
            return await asyncio.start_server(accept, host, port, reuse_address=True)
        except OSError:
            if attempt == rebind_attempts - 1:
                raise
            await asyncio.sleep(rebind_pause_s)
    raise AssertionError("unreachable: the last attempt raises")
