"""Peer transport: one TCP connection from every node to every other, carrying frames.

Theory of operation. Each node dials every peer and sends on that connection only; it
receives on the connections its peers dialed. The first frame a dialer sends is a handshake
naming its cluster and node id; the listener refuses other clusters, unknown ids and other
protocol versions, and closes the connection on any invalid frame - garbage on the peer port
costs a log line, never a crash. Messages to a peer that is not connected are dropped: the
protocol retransmits what matters, and buffering for a dead peer would only grow memory.

Writes are coalesced: `send` encodes into a per-peer list and `flush` (called once per turn
of the node's event loop, after the turn's records are synced) hands each connection all of
its frames in one write. `send_early` / `flush_early` are a second such list for the leader's
Accept messages, which the node sends while its own fsync runs (see runtime/node.py). Sockets
use TCP_NODELAY: batching is ours, not Nagle's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from paxosd.core.multi.messages import Accept
from paxosd.runtime import codec
from paxosd.runtime.config import NodeConfig

log = logging.getLogger("paxosd.transport")

reconnect_ms_min = 20
reconnect_ms_max = 1_000
peer_write_buffer_bytes_max = 64 << 20


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Inbound(asyncio.Protocol):
    """A connection a peer dialed: handshake first, then messages."""

    def __init__(self, owner: PeerTransport) -> None:
        self.owner = owner
        self.reader = codec.FrameReader()
        self.peer: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only look like one.
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        try:
            for payload in self.reader.feed(data):
                if self.peer is None:
                    self.peer = self.owner.accept_handshake(payload)
                else:
                    self.owner.deliver(self.peer, codec.decode(payload))
        except codec.WireError as error:
            self.owner.stats["rejected_connections"] += 1
            address = self.transport.get_extra_info("peername") if self.transport else None
            log.warning("closing peer connection from %s: %s", address, error)
            if self.transport is not None:
                self.transport.abort()


class _Outbound(asyncio.Protocol):
    def __init__(self, lost: asyncio.Future[None]) -> None:
        self.lost = lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        pass  # peers never answer on the connection we dialed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class PeerTransport:
    def __init__(self, config: NodeConfig, on_message: Callable[[int, Any], None]) -> None:
        self.config = config
        self.on_message = on_message
        self.peers = [m for m in config.members if m.id != config.node_id]
        self.out: dict[int, list[bytes]] = {m.id: [] for m in self.peers}
        self.early: dict[int, list[Any]] = {m.id: [] for m in self.peers}
        self.connections: dict[int, asyncio.Transport] = {}
        self.server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closing = False
        self.handshake = codec.encode_handshake(config.cluster_id, config.node_id)
        self.stats = {"dropped_messages": 0, "rejected_connections": 0, "frames_sent": 0}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.config.me.peer
        self.server = await loop.create_server(lambda: _Inbound(self), host, port)
        for member in self.peers:
            self.tasks.append(asyncio.create_task(self._dial(member.id, *member.peer)))

    async def _dial(self, peer: int, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        delay_ms = reconnect_ms_min
        while not self.closing:
            lost: asyncio.Future[None] = loop.create_future()
            try:
                transport, _ = await loop.create_connection(
                    functools.partial(_Outbound, lost), host, port
                )
            except OSError:
                await asyncio.sleep(delay_ms / 1000)
                delay_ms = min(reconnect_ms_max, delay_ms * 2)
                continue
            transport.write(self.handshake)
            self.connections[peer] = transport
            delay_ms = reconnect_ms_min
            try:
                await lost
            finally:
                self.connections.pop(peer, None)
            if not self.closing:
                await asyncio.sleep(delay_ms / 1000)

    def accept_handshake(self, payload: bytes) -> int:
        cluster, node, version = codec.decode_handshake(payload)
        if version != codec.protocol_version:
            raise codec.WireError(
                f"node {node} speaks protocol {version}, this node {codec.protocol_version}"
            )
        if cluster != self.config.cluster_id:
            raise codec.WireError(
                f"node {node} belongs to cluster {cluster!r}, not {self.config.cluster_id!r}"
            )
        if node == self.config.node_id or self.config.member(node) is None:
            raise codec.WireError(f"node id {node} is not a peer in this cluster")
        return node

    def deliver(self, peer: int, msg: Any) -> None:
        self.on_message(peer, msg)

    def send(self, dst: int, msg: Any) -> None:
        queue = self.out.get(dst)
        if queue is None:
            return
        queue.append(codec.encode(msg))

    def send_early(self, dst: int, msg: Accept) -> None:
        queue = self.early.get(dst)
        if queue is None:
            return
        queue.append(msg)  # encoded by flush_early, once the durable commit point is known

    def flush_early(self, commit: int) -> None:
        """Encode the queued Accepts, their commit point cut to `commit` (what synced turns
        had chosen), and send them now."""
        encoded: dict[int, bytes] = {}  # one Accept goes to every peer: encode it once
        for frames in self.early.values():
            for index, frame in enumerate(frames):
                data = encoded.get(id(frame))
                if data is None:
                    message = frame if frame.commit <= commit else replace(frame, commit=commit)
                    data = encoded[id(frame)] = codec.encode(message)
                frames[index] = data
        self._write(self.early)

    def flush(self) -> None:
        self._write(self.out)

    def _write(self, queues: dict[int, list[bytes]]) -> None:
        for peer, frames in queues.items():
            if not frames:
                continue
            transport = self.connections.get(peer)
            data, count = b"".join(frames), len(frames)
            frames.clear()  # first: whatever happens below, no frame is sent twice
            if (
                transport is None
                or transport.is_closing()  # closed, but its dialer has not noticed yet
                or transport.get_write_buffer_size() > peer_write_buffer_bytes_max
            ):
                self.stats["dropped_messages"] += count
                continue
            try:
                transport.write(data)
            except (RuntimeError, OSError):  # uvloop: "the handler is closed"
                self.stats["dropped_messages"] += count
                continue
            self.stats["frames_sent"] += count

    def connected(self) -> list[int]:
        return sorted(self.connections)

    async def close(self) -> None:
        self.closing = True
        for task in self.tasks:
            task.cancel()
        for transport in list(self.connections.values()):
            transport.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await asyncio.gather(*self.tasks, return_exceptions=True)
