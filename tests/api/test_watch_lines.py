"""A watch stream's events, rendered once and spliced per watcher, are byte for byte the
WatchResponse each watcher would have got alone; many messages written as one buffer of
WebSocket frames reach a client as the same messages, one by one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from paxosd.api import websocket
from paxosd.api.etcd import wire
from paxosd.service.kv.types import Event, EventType, KeyValue

keys = st.binary(min_size=1, max_size=40)
values = st.binary(max_size=300)
revisions = st.integers(min_value=1, max_value=2**63 - 1)
key_values = st.builds(
    KeyValue,
    key=keys,
    create_revision=revisions,
    mod_revision=revisions,
    version=st.integers(min_value=0, max_value=2**40),
    value=values,
    lease=st.integers(min_value=0, max_value=2**63 - 1),
)
events = st.builds(
    Event,
    type=st.sampled_from(list(EventType)),
    kv=key_values,
    prev_kv=st.none() | key_values,
)
headers = st.builds(
    wire.Header,
    cluster_id=st.integers(min_value=0, max_value=2**64 - 1),
    member_id=st.integers(min_value=0, max_value=2**64 - 1),
    raft_term=st.integers(min_value=0, max_value=2**64 - 1),
)


@settings(max_examples=300, deadline=None)
@given(
    node=headers,
    revision=st.integers(min_value=0, max_value=2**63 - 1),
    changes=st.lists(events, max_size=4).map(tuple),
    fragment=st.booleans(),
    prev_kv=st.booleans(),
    watch_ids=st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=4),
)
def test_a_spliced_line_is_the_watch_response_of_that_watcher(
    node: wire.Header,
    revision: int,
    changes: tuple[Event, ...],
    fragment: bool,
    prev_kv: bool,
    watch_ids: list[int],
) -> None:
    parts = wire.watch_events_line(node, revision, changes, fragment=fragment, prev_kv=prev_kv)
    for watch_id in watch_ids:
        document = wire.watch_response(
            node, revision, watch_id, events=changes, fragment=fragment, prev_kv=prev_kv
        )
        expected = json.dumps(document, separators=(",", ":")).encode()
        assert wire.splice_watch_id(parts, watch_id) == expected


def test_frames_of_every_length_class_arrive_as_the_same_messages() -> None:
    # 125, 126 and 65,536 bytes are where a frame's length field changes size (RFC 6455 5.2).
    messages = [b"", b"a", b"b" * 125, b"c" * 126, b"d" * 65_535, b"e" * 65_536, b"f" * 300_000]
    assert _exchange(messages, compress=0) == [m.decode() for m in messages]


def test_a_client_that_negotiated_compression_gets_the_messages_compressed() -> None:
    messages = [json.dumps({"n": n}).encode() * (1 + n * 50) for n in range(20)]
    assert _exchange(messages, compress=15) == [m.decode() for m in messages]


def test_a_writer_waits_while_its_client_reads_nothing_and_goes_on_when_it_reads() -> None:
    async def scenario() -> tuple[bool, int]:
        finished = asyncio.Event()
        big = [b"x" * 100_000 for _ in range(300)]  # 30 MB: more than socket buffers hold

        async def handler(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            await websocket.send_text_frames(socket, request.transport, big)
            finished.set()
            await socket.receive()
            return socket

        app = web.Application()
        app.router.add_get("/", handler)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            socket = await session.ws_connect(server.make_url("/"), max_msg_size=0)
            await asyncio.sleep(0.5)
            waited = not finished.is_set()  # the client has read nothing yet
            got = 0
            for _ in big:
                message = await asyncio.wait_for(socket.receive(), 10)
                got += len(message.data)
            await asyncio.wait_for(finished.wait(), 10)
            await socket.close()
        return waited, got

    waited, got = asyncio.run(scenario())
    assert waited
    assert got == 300 * 100_000


def _exchange(messages: list[bytes], compress: int) -> list[Any]:
    """What an aiohttp client receives when a server sends `messages` in one call."""

    async def scenario() -> list[Any]:
        async def handler(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            await websocket.send_text_frames(socket, request.transport, messages)
            await socket.receive()
            return socket

        app = web.Application()
        app.router.add_get("/", handler)
        received: list[Any] = []
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            url = server.make_url("/")
            async with session.ws_connect(url, compress=compress, max_msg_size=0) as socket:
                for _ in messages:
                    message = await asyncio.wait_for(socket.receive(), 10)
                    assert message.type == aiohttp.WSMsgType.TEXT
                    received.append(message.data)
        return received

    return asyncio.run(scenario())
