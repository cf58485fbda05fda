"""Many WebSocket text messages in one write to the connection.

Theory of operation. A watch stream sends one message per watcher and change: a write to a
key watched by a thousand watchers of one socket is a thousand messages. aiohttp's
`send_str` makes each one a write to the transport, that is a system call, a TCP segment and
a wake-up of the reader per message; `send_text_frames` frames them all (RFC 6455, section
5.2: a server's frames are not masked) and hands the transport one buffer, which the kernel
sends in as few segments as fit. Each message is still a frame of its own, so a client sees
exactly what `send_str` would have sent it.

What it does not do itself, it leaves to aiohttp: a socket that negotiated per-message
compression gets its messages one by one through aiohttp (the compressor's state runs from
message to message). Flow control: once the transport holds more than `buffered_max`
unsent bytes (a client that reads slowly), it waits for them to drain below it, polling
every `poll_s`; the caller bounds that wait (a watch stream's stall timeout).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final, cast

from aiohttp import WSMsgType, web

__all__ = ["buffered_max", "send_text_frames", "text_frames"]

# Unsent bytes the transport may hold before a writer waits (asyncio's own high-water mark).
buffered_max: Final = 64 * 1024
poll_s: Final = 0.002

_FIN_TEXT: Final = 0x80 | int(WSMsgType.TEXT)


def text_frames(messages: list[bytes]) -> bytes:
    """The messages (UTF-8 text) as unmasked, unfragmented text frames, one after another."""
    parts: list[bytes] = []
    for message in messages:
        size = len(message)
        if size < 126:
            parts.append(bytes((_FIN_TEXT, size)))
        elif size < 1 << 16:
            parts.append(struct.pack("!BBH", _FIN_TEXT, 126, size))
        else:
            parts.append(struct.pack("!BBQ", _FIN_TEXT, 127, size))
        parts.append(message)
    return b"".join(parts)


async def send_text_frames(
    socket: web.WebSocketResponse,
    transport: asyncio.BaseTransport | None,
    messages: list[bytes],
) -> None:
    """Send `messages` (UTF-8 text) on a prepared server socket (module docstring); raises
    ConnectionResetError once the socket or its connection is closed."""
    if not messages:
        return
    if socket.compress:
        for message in messages:
            await socket.send_frame(message, WSMsgType.TEXT)
        return
    if socket.closed or transport is None:
        raise ConnectionResetError("the WebSocket is closed")
    # uvloop's transports are not subclasses of asyncio's, only look like them.
    transport = cast(asyncio.WriteTransport, transport)
    if transport.is_closing():
        raise ConnectionResetError("the WebSocket's connection is closed")
    transport.write(text_frames(messages))
    while transport.get_write_buffer_size() > buffered_max:
        await asyncio.sleep(poll_s)
        if transport.is_closing():
            raise ConnectionResetError("the WebSocket's connection is closed")
