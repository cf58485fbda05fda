"""Peer transport: one TCP connection from every node to every other, carrying frames.

Theory of operation. Each node dials every peer and sends on that connection only; it
receives on the connections its peers dialed. The first frame a dialer sends is a handshake
naming its cluster and node id; the listener refuses other clusters, unknown ids and other
protocol versions, and closes the connection on any invalid frame - garbage on the peer port
costs a log line, never a crash. A listener that takes the handshake answers with a welcome
naming its SQLite version; the dialer sends nothing until it has it, and closes the
connection if the versions differ (a statement's result can depend on SQLite's version, so
replicas of one cluster must run one). Every node dials every other, so each side of such a
pair refuses the other and no message passes between them. A peer that sends no welcome
within `welcome_wait_ms` runs a release from before it: it is taken as it was then.

Who may connect. A listener takes a handshake from the members of its config file and from
every member of its replica's current configuration (members that joined through the log are
in no config file: their records carry their addresses, runtime/config.py `parse_contact`).
A member recorded with another store incarnation than the one its handshake names is refused
(`Configuration.admits`: its store was lost, and it never votes with state it has lost), with
the reason to both sides' logs. Whenever the node adopts a new configuration (`adopt`), the
transport dials the joined members it did not know, stops dialing the ones removed, and
closes the inbound connections of peers that are no longer admitted.

Peer protocol 6 and 5. A dialer sends a 6-field handshake (with its incarnation). A listener
at protocol 5 takes only five fields and closes such a connection without a word; a dialer
whose handshake was closed so `legacy_after_silences` times in a row tries once with the
handshake of protocol 5 (codec.py, `legacy_handshake`), and with 6 again after that
connection ends. A listener at 6 always answers a 6-field handshake (a welcome or a refusal):
it is spoken to as a 5 only after two connections in a row dropped before any answer for
another cause (a fault proxy, a flood of connections), and then only until that connection
ends. (Once is not enough: a proxy whose destination is down takes a connection and drops
it, then stops listening; its next connection fails to open, which starts the count again.)

Messages to a peer that is not connected are dropped: the protocol retransmits what matters,
and buffering for a dead peer would only grow memory.

`send` is the driver's peer sink: it encodes a batch of messages (a message for several peers
is encoded once) and hands each connection all of its frames in one write. The driver calls it
at most twice per turn (before and after the sync), so writes are coalesced; sockets use
TCP_NODELAY, since batching is ours, not Nagle's. A frame larger than the wire's limit is
never sent (the receiver would drop the connection and the same frame would come again).

Before a connection has named itself, it costs little and not for long: frames up to
`handshake_frame_bytes_max`, `handshake_timeout_ms` to complete the handshake, and at most
`unnamed_connections_max` such connections at once. A peer that connects again replaces its
older connection, so each peer holds at most one inbound connection.

Logs. A dialer whose connection keeps being closed (a flood of connections on the peer's
port that crowds its handshake out, a peer restarting in a loop) would write a
`peer_connected` and a `peer_lost` line per attempt, hundreds a minute. So each peer gets at
most one such line per `peer_lines_interval_s`; what happened in between is summed up in the
next line (`flaps=N`), and a window that ends quietly still reports the state it ended in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.messages import Stale
from paxosd.core.types import Envelope
from paxosd.runtime import codec
from paxosd.runtime.config import ConfigError, NodeConfig, parse_contact
from paxosd.runtime.logs import event
from paxosd.service.sql.machine import SQLITE_VERSION

log = logging.getLogger("paxosd.transport")

reconnect_ms_min = 20
reconnect_ms_max = 1_000
peer_write_buffer_bytes_max = 64 << 20
handshake_frame_bytes_max = 4096
handshake_timeout_ms = 5_000
# How long a dialer waits for the listener's welcome; a peer of an earlier release sends none.
welcome_wait_ms = 1_000
unnamed_connections_max = 16
# At most one peer_connected / peer_lost line per peer in this many seconds (see "Logs").
peer_lines_interval_s = 10.0
# 6-field handshakes closed without a word in a row before a dialer speaks 5 (see above).
legacy_after_silences = 2


class PeerLines:
    """The dialer's `peer_connected` / `peer_lost` lines, at most one per peer per interval
    (see the module docstring, "Logs"). `clock` and `later` are the event loop's."""

    def __init__(
        self,
        node_id: int,
        clock: Callable[[], float],
        later: Callable[[float, Callable[[], None]], object],
        interval_s: float = peer_lines_interval_s,
    ) -> None:
        self.node_id = node_id
        self.clock = clock
        self.later = later
        self.interval_s = interval_s
        self.logged_at: dict[int, float] = {}  # peer -> when its last line was written
        self.flaps: dict[int, int] = {}  # peer -> changes not written since
        self.connected: dict[int, bool] = {}  # peer -> its latest state

    def note(self, peer: int, connected: bool) -> None:
        self.connected[peer] = connected
        now = self.clock()
        last = self.logged_at.get(peer)
        if last is None or now - last >= self.interval_s:
            self._write(peer, now)
            return
        if peer not in self.flaps:  # the first change held back: report at the window's end
            self.flaps[peer] = 0
            self.later(last + self.interval_s - now, lambda: self._flush(peer))
        self.flaps[peer] += 1

    def _flush(self, peer: int) -> None:
        if peer in self.flaps:
            self._write(peer, self.clock())

    def _write(self, peer: int, now: float) -> None:
        self.logged_at[peer] = now
        flaps = self.flaps.pop(peer, 0)
        extra = {"flaps": flaps, "in_s": round(self.interval_s)} if flaps else {}
        if self.connected[peer]:
            event(log, "peer_connected", node=self.node_id, peer=peer, **extra)
        else:
            event(log, "peer_lost", logging.WARNING, node=self.node_id, peer=peer, **extra)


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Inbound(asyncio.Protocol):
    """A connection a peer dialed: handshake first, then messages."""

    def __init__(self, owner: PeerTransport) -> None:
        self.owner = owner
        self.reader = codec.FrameReader(handshake_frame_bytes_max)
        self.peer: int | None = None
        self.incarnation: int | None = None  # the one its handshake named
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only look like one.
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)
        owner = self.owner
        if len(owner.unnamed) >= unnamed_connections_max:
            owner.stats["rejected_connections"] += 1
            self.transport.abort()
            return
        owner.unnamed.add(self)
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(handshake_timeout_ms / 1000, self._too_slow)

    def _too_slow(self) -> None:
        if self.peer is None:
            self._refuse(f"no handshake within {handshake_timeout_ms} ms")

    def data_received(self, data: bytes) -> None:
        try:
            for payload in self.reader.feed(data):
                if self.peer is None:
                    handshake = self.owner.accept_handshake(payload)
                    self.incarnation = handshake.incarnation
                    self._named(handshake.node_id)
                else:
                    self.owner.deliver(self.peer, codec.decode(payload))
        except codec.HandshakeRefused as error:
            self.refuse(str(error), error.members)
        except codec.WireError as error:
            self._refuse(str(error))

    def refuse(self, reason: str, members: Configuration | None = None) -> None:
        """A paxosd peer that cannot take part: say why before closing, so its own log names
        the cause (a version, a cluster id, a lost store) instead of a bare disconnect; and
        to a node no longer a member, the configuration that left it out."""
        if self.transport is not None:
            self.transport.write(codec.encode_refusal(reason, members))
        self._refuse(reason, flush=True)

    def _named(self, peer: int) -> None:
        self.peer = peer
        if self.transport is not None:
            self.transport.write(codec.encode_welcome(self.owner.sqlite_version))
        self.reader.limit = codec.frame_bytes_max
        if self.deadline is not None:
            self.deadline.cancel()
        self.owner.named(self, peer)

    def _refuse(self, reason: str, flush: bool = False) -> None:
        self.owner.stats["rejected_connections"] += 1
        peer = self.transport.get_extra_info("peername") if self.transport else None
        address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else peer
        event(log, "peer_refused", logging.WARNING, address=address, reason=reason)
        if self.transport is not None:
            if flush:
                self.transport.close()  # after the refusal frame is written
            else:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.owner.unnamed.discard(self)
        if self.peer is not None and self.owner.inbound.get(self.peer) is self:
            del self.owner.inbound[self.peer]


class _Outbound(asyncio.Protocol):
    def __init__(
        self,
        lost: asyncio.Future[None],
        refused: Callable[[str, Configuration | None], None],
        welcomed: Callable[[dict[str, str]], str | None],
    ) -> None:
        self.lost = lost
        self.refused = refused
        self.welcomed = welcomed
        self.welcome: asyncio.Future[dict[str, str]] = lost.get_loop().create_future()
        self.reader = codec.FrameReader(handshake_frame_bytes_max)
        self.transport: asyncio.BaseTransport | None = None
        # Whether the listener said anything (a welcome or a refusal): one that closes a
        # handshake without a word runs protocol 5 (see the module docstring).
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        # A peer answers on the connection we dialed only to welcome it or to refuse it.
        try:
            frames = self.reader.feed(data)
        except codec.WireError:
            return  # neither: ignored, as anything else a peer sends here
        for payload in frames:
            self.answered = True
            refusal = codec.decode_refusal(payload)
            if refusal is not None:
                self.refused(*refusal)
                continue
            fields = codec.decode_welcome(payload)
            if fields is None:
                continue
            if not self.welcome.done():
                self.welcome.set_result(fields)
            # Checked here too, for a welcome that came after the dialer stopped waiting.
            if self.welcomed(fields) is not None and self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class PeerTransport:
    def __init__(
        self,
        config: NodeConfig,
        on_message: Callable[[int, Any], None],
        sqlite_version: str = SQLITE_VERSION,
        incarnation: int | None = None,
    ) -> None:
        self.config = config
        self.sqlite_version = sqlite_version
        self.on_message = on_message
        self.connections: dict[int, asyncio.Transport] = {}
        self.inbound: dict[int, _Inbound] = {}
        self.unnamed: set[_Inbound] = set()
        self.server: asyncio.Server | None = None
        # One dialer per peer, and the peer address it dials (see `adopt`).
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.dialing: dict[int, tuple[str, int]] = {}
        self.closing = False
        self.handshake = codec.encode_handshake(config.cluster_id, config.node_id, incarnation)
        self.legacy_handshake = codec.legacy_handshake(config.cluster_id, config.node_id)
        # The replica's current configuration (`adopt`): None until the node gives one, and
        # then only the config file's members are taken (as before membership changes).
        self.configuration: Configuration | None = None
        # Peers that refused our connection, and why (their last word; see `_refused`).
        self.refusals: dict[int, str] = {}
        # The protocol version each peer that dialed this node announced (runtime/node.py
        # refuses a membership change while one speaks a version that cannot take part).
        self.peer_versions: dict[int, int] = {}
        self.stats = {
            "dropped_messages": 0,
            "rejected_connections": 0,
            "frames_sent": 0,
            "oversized_messages": 0,
        }

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.lines = PeerLines(self.config.node_id, loop.time, loop.call_later)
        host, port = self.config.me.peer
        self.server = await loop.create_server(lambda: _Inbound(self), host, port)
        self._dial_all()

    def peer_addresses(self) -> dict[int, tuple[str, int]]:
        """Every peer to dial, at its peer address: the config file's members, and the members
        of the current configuration that joined through the log, at the addresses their
        records carry (a record is newer than the file: a node that was replaced may have
        moved). A member removed from the configuration that is in no config file is not
        dialed."""
        addresses = {m.id: m.peer for m in self.config.members}
        configuration = self.configuration
        if configuration is not None:
            for entry in configuration.joined:
                try:
                    addresses[entry.node] = parse_contact(entry.node, entry.contact).peer
                except ConfigError as error:
                    if entry.node not in addresses:
                        event(log, "contact_unusable", logging.ERROR, node=self.config.node_id,
                              peer=entry.node, reason=str(error))  # fmt: skip
        addresses.pop(self.config.node_id, None)
        return addresses

    def adopt(self, configuration: Configuration) -> None:
        """The node's replica is in `configuration` now: dial its joined members, stop dialing
        removed ones, and close the connections of peers it no longer admits (each is told
        why)."""
        self.configuration = configuration
        if self.server is not None:
            self._dial_all()
        for peer, connection in list(self.inbound.items()):
            reason = self.admission(peer, connection.incarnation)
            if reason is not None:
                connection.refuse(reason)

    def _dial_all(self) -> None:
        wanted = self.peer_addresses()
        for peer in [p for p in self.tasks if self.dialing.get(p) != wanted.get(p)]:
            self.tasks.pop(peer).cancel()
            self.dialing.pop(peer, None)
            transport = self.connections.pop(peer, None)
            if transport is not None:
                transport.close()
        for peer, address in wanted.items():
            if peer not in self.tasks:
                self.dialing[peer] = address
                self.tasks[peer] = asyncio.create_task(self._dial(peer, *address))

    async def _dial(self, peer: int, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        delay_ms = reconnect_ms_min
        was_up = False
        legacy = False  # this attempt speaks protocol 5 (see the module docstring)
        silences = 0  # 6-field handshakes closed without a word, in a row
        while not self.closing:
            lost: asyncio.Future[None] = loop.create_future()
            try:
                transport, outbound = await loop.create_connection(
                    functools.partial(
                        _Outbound,
                        lost,
                        functools.partial(self._refused, peer),
                        functools.partial(self._welcomed, peer),
                    ),
                    host,
                    port,
                )
            except OSError:
                silences = 0
                await asyncio.sleep(delay_ms / 1000)
                delay_ms = min(reconnect_ms_max, delay_ms * 2)
                continue
            transport.write(self.legacy_handshake if legacy else self.handshake)
            # Nothing is sent before the peer's welcome says it runs our SQLite (or it sent
            # none in time: a release from before the welcome).
            await asyncio.wait(
                (outbound.welcome, lost),
                timeout=welcome_wait_ms / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if lost.done() or transport.is_closing():
                transport.close()
                await lost
                # Closed without a word: perhaps a listener at protocol 5 (see above).
                silences = 0 if legacy or outbound.answered else silences + 1
                legacy = silences >= legacy_after_silences
                if legacy:
                    silences = 0
                    continue
                await asyncio.sleep(delay_ms / 1000)
                delay_ms = min(reconnect_ms_max, delay_ms * 2)
                continue
            if not outbound.welcome.done():
                outbound.welcome.cancel()
            self.refusals.pop(peer, None)
            self.connections[peer] = transport
            self.lines.note(peer, connected=True)
            was_up = True
            delay_ms = reconnect_ms_min
            try:
                await lost
            finally:
                if self.connections.get(peer) is transport:
                    del self.connections[peer]
            legacy, silences = False, 0
            if was_up and not self.closing:
                self.lines.note(peer, connected=False)
            if not self.closing:
                await asyncio.sleep(delay_ms / 1000)

    def _refused(self, peer: int, reason: str, members: Configuration | None = None) -> None:
        """Peer `peer` refused this node's connection: logged when the reason is new (the
        dialer tries again every second), and kept for status until a connection holds. A
        refusal that names the configuration leaving this node out is passed on as the
        Stale it stands for (the engine then knows this node was removed)."""
        if self.refusals.get(peer) != reason:
            event(log, "refused_by_peer", logging.ERROR, node=self.config.node_id, peer=peer,
                  reason=reason)  # fmt: skip
        self.refusals[peer] = reason
        if members is not None and not members.is_member(self.config.node_id):
            self.deliver(peer, Stale(configuration=members))

    def _welcomed(self, peer: int, fields: dict[str, str]) -> str | None:
        """Why this node refuses peer `peer` after its welcome (None if it does not): a peer
        that runs another SQLite. Logged when the reason is new, and kept for status."""
        problem = codec.sqlite_problem(fields.get("sqlite"), self.sqlite_version, peer)
        if problem is not None:
            if self.refusals.get(peer) != problem:
                event(log, "peer_refused", logging.ERROR, node=self.config.node_id, peer=peer,
                      reason=problem)  # fmt: skip
            self.refusals[peer] = problem
        return problem

    def accept_handshake(self, payload: bytes) -> codec.Handshake:
        handshake = codec.decode_handshake(payload)
        cluster, node = handshake.cluster_id, handshake.node_id
        problem = codec.version_problem(handshake.version, node)
        if problem is not None:
            raise codec.HandshakeRefused(problem)
        if cluster != self.config.cluster_id:
            raise codec.HandshakeRefused(
                f"node {node} belongs to cluster {cluster!r}, not {self.config.cluster_id!r}"
            )
        reason = self.admission(node, handshake.incarnation)
        if reason is not None:
            configuration = self.configuration
            left_out = (
                configuration is not None
                and configuration.epoch > 0
                and not configuration.is_member(node)
                and self.config.member(node) is None
            )
            # A node removed while it could not hear it (a joined member, whose peers no
            # longer dial it) learns from the refusal that it was removed, as from a Stale.
            raise codec.HandshakeRefused(reason, configuration if left_out else None)
        self.peer_versions[node] = handshake.version
        return handshake

    def admission(self, node: int, incarnation: int | None) -> str | None:
        """Why peer `node`, whose store is `incarnation`, may not connect (None: it may): it
        is this node, or neither in the config file nor a member of the current
        configuration, or a member recorded with another store (`Configuration.admits`)."""
        configuration = self.configuration
        if node == self.config.node_id:
            return f"node id {node} is not a peer in this cluster"
        if self.config.member(node) is None and (
            configuration is None or not configuration.is_member(node)
        ):
            if configuration is None:
                return f"node id {node} is not a peer in this cluster"
            return (
                f"node id {node} is not a member of this cluster (epoch {configuration.epoch}: "
                f"{configuration.describe()}): add it first (paxosd node --join)"
            )
        if configuration is None:
            return None
        return configuration.admits(node, incarnation)

    def named(self, connection: _Inbound, peer: int) -> None:
        """A connection completed its handshake as `peer`: it replaces any older one."""
        self.unnamed.discard(connection)
        older = self.inbound.get(peer)
        self.inbound[peer] = connection
        if older is not None and older.transport is not None:
            older.transport.close()

    def deliver(self, peer: int, msg: Any) -> None:
        self.on_message(peer, msg)

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Encode and write these messages now, one write per peer (the driver's peer sink)."""
        frames: dict[int, list[bytes]] = {}
        encoded: dict[int, bytes | None] = {}  # one message to several peers: encode it once
        for envelope in envelopes:
            msg = envelope.msg
            data = encoded.get(id(msg), b"")
            if data == b"":
                try:
                    data = encoded[id(msg)] = codec.encode(msg)
                except codec.FrameTooLarge as error:
                    data = encoded[id(msg)] = None
                    self.stats["oversized_messages"] += 1
                    event(
                        log, "message_not_sent", logging.ERROR,
                        message=type(msg).__name__, to=envelope.dst, reason=str(error),
                    )  # fmt: skip
            if data is not None:
                frames.setdefault(envelope.dst, []).append(data)
        for peer, queue in frames.items():
            self._write(peer, queue)

    def _write(self, peer: int, frames: list[bytes]) -> None:
        transport = self.connections.get(peer)
        count = len(frames)
        if (
            transport is None
            or transport.is_closing()  # closed, but its dialer has not noticed yet
            or transport.get_write_buffer_size() > peer_write_buffer_bytes_max
        ):
            self.stats["dropped_messages"] += count
            return
        try:
            transport.write(b"".join(frames) if count > 1 else frames[0])
        except (RuntimeError, OSError):  # uvloop: "the handler is closed"
            self.stats["dropped_messages"] += count
            return
        self.stats["frames_sent"] += count

    def connected(self) -> list[int]:
        return sorted(self.connections)

    async def close(self) -> None:
        self.closing = True
        for task in self.tasks.values():
            task.cancel()
        for transport in list(self.connections.values()):
            transport.close()
        for connection in [*self.inbound.values(), *self.unnamed]:
            if connection.transport is not None:
                connection.transport.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
