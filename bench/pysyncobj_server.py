"""One PySyncObj node serving a replicated dict over a small subset of RESP (Redis protocol).

Not a product: the comparison server that `paxosd bench` (paxosd.benchmark.peers) starts three
of, so that the Go load generator (bench/bin/loadgen -system pysyncobj) can drive PySyncObj over
TCP from another process, as it drives the other systems.

    python bench/pysyncobj_server.py --self 127.0.0.1:24810 \
        --partners 127.0.0.1:24811,127.0.0.1:24812 --client-port 24800 --data-dir DIR

Commands (RESP arrays, or inline):

    SET key value   a write through the Raft log; +OK once committed and applied here
    GET key         a LOCAL read of this node's copy: may be stale (PySyncObj's only read)
    LGET key        a read through the Raft log (a replicated command returning the value):
                    linearizable, at the cost of a write
    DEL key         a delete through the log; :1 or :0
    PING, ROLE (leader | follower | candidate), STATUS (JSON of SyncObj.getStatus()),
    CONFIG / COMMAND (empty array, for redis-benchmark's start-up probes)

Theory of operation: SyncObj runs its own "auto tick" thread (Raft timers, sockets, applying
the log); this process's main thread runs an asyncio server for clients. A command goes to
SyncObj as a replicated-method call with a callback; the callback runs on the tick thread, so
it hands its result back to the event loop through a deque plus ONE call_soon_threadsafe per
batch of results. Replies on a connection leave in request order (a per-connection FIFO),
since a local GET can finish before an earlier SET on the same connection.

Durability: PySyncObj's file journal (`journalFile`, an mmap'd file) and its full dump
(`fullDumpFile`) are the closest it has to a write-ahead log, and they are configured here.
PySyncObj NEVER calls fsync or msync on them while running (only on a clean shutdown), so an
acknowledged write lives in the page cache of each replica: it survives a process crash
(kill -9) but not a power failure or a kernel crash of a majority. `--sync-journal` patches
the journal to msync(MS_SYNC) after every record (NOT upstream behaviour, one sync per log
entry, no group commit), to show what per-entry durability would cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated

ROLE_NAMES = {0: b"follower", 1: b"candidate", 2: b"leader"}
FAIL_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if k.isupper()}
request_bytes_max = 1 << 20
buffer_bytes_max = 8 << 20


class Store(SyncObjConsumer):
    """The replicated dict: bytes keys to bytes values."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[bytes, bytes] = {}

    @replicated
    def set(self, key: bytes, value: bytes) -> bool:
        self.data[key] = value
        return True

    @replicated
    def delete(self, key: bytes) -> bool:
        return self.data.pop(key, None) is not None

    @replicated
    def read(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def bulk(value: bytes | None) -> bytes:
    if value is None:
        return b"$-1\r\n"
    return b"$%d\r\n%b\r\n" % (len(value), value)


def error(text: str) -> bytes:
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


class Results:
    """Results from the SyncObj tick thread, handed to the event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: deque[tuple[Connection, list[bytes | None], bytes]] = deque()
        self.wakeup_pending = False

    def post(self, conn: Connection, slot: list[bytes | None], reply: bytes) -> None:
        """Called on the tick thread."""
        self.queue.append((conn, slot, reply))
        if not self.wakeup_pending:
            self.wakeup_pending = True
            self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        # Clear the flag BEFORE popping: a result appended after the last pop then schedules
        # another drain, so none is stranded.
        self.wakeup_pending = False
        touched: set[Connection] = set()
        while self.queue:
            conn, slot, reply = self.queue.popleft()
            slot[0] = reply
            touched.add(conn)
        for conn in touched:
            conn.flush()


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buf = bytearray()
        self.fifo: deque[list[bytes | None]] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > buffer_bytes_max:
            self.close_with(error("ERR request buffer over limit"))
            return
        while True:
            try:
                parsed = parse(self.buf)
            except ValueError as exc:
                self.close_with(error(f"ERR Protocol error: {exc}"))
                return
            if parsed is None:
                break
            args, used = parsed
            del self.buf[:used]
            if args:
                self.fifo.append(self.server.execute(self, args))
        self.flush()

    def close_with(self, reply: bytes) -> None:
        if self.transport is not None:
            self.transport.write(reply)
            self.transport.close()

    def flush(self) -> None:
        out = []
        while self.fifo and self.fifo[0][0] is not None:
            reply = self.fifo.popleft()[0]
            assert reply is not None
            out.append(reply)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


def parse(buf: bytearray) -> tuple[list[bytes], int] | None:
    """One command from the front of buf: (arguments, bytes used), or None if incomplete."""
    if not buf:
        return None
    if buf[0] != 0x2A:  # inline command
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > request_bytes_max:
                raise ValueError("inline command too long")
            return None
        return bytes(buf[:end]).split(), end + 2
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    count = int(buf[1:end])
    if not 0 <= count <= 64:
        raise ValueError("bad array length")
    pos = end + 2
    args = []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        if buf[pos] != 0x24:
            raise ValueError("expected a bulk string")
        size = int(buf[pos + 1 : end])
        if not 0 <= size <= request_bytes_max:
            raise ValueError("bad bulk length")
        start = end + 2
        if len(buf) < start + size + 2:
            return None
        args.append(bytes(buf[start : start + size]))
        pos = start + size + 2
    return args, pos


class Server:
    def __init__(self, syncobj: SyncObj, store: Store, results: Results) -> None:
        self.syncobj = syncobj
        self.store = store
        self.results = results

    def callback(
        self, conn: Connection, slot: list[bytes | None], render: Callable[[Any], bytes]
    ) -> Callable[[Any, int], None]:
        def done(result: Any, err: int) -> None:
            if err == FAIL_REASON.SUCCESS:
                reply = render(result)
            else:
                reply = error(f"ERR pysyncobj {FAIL_NAMES.get(err, err)}")
            self.results.post(conn, slot, reply)

        return done

    def execute(self, conn: Connection, args: list[bytes]) -> list[bytes | None]:
        name = args[0].upper()
        slot: list[bytes | None] = [None]
        if name == b"SET" and len(args) >= 3:
            self.store.set(
                args[1], args[2], callback=self.callback(conn, slot, lambda _: b"+OK\r\n")
            )
        elif name == b"GET" and len(args) == 2:
            slot[0] = bulk(self.store.data.get(args[1]))
        elif name == b"LGET" and len(args) == 2:
            self.store.read(args[1], callback=self.callback(conn, slot, bulk))
        elif name == b"DEL" and len(args) == 2:
            self.store.delete(
                args[1], callback=self.callback(conn, slot, lambda r: b":%d\r\n" % bool(r))
            )
        elif name == b"PING":
            slot[0] = b"+PONG\r\n"
        elif name == b"ROLE":
            status = self.syncobj.getStatus()
            slot[0] = bulk(ROLE_NAMES.get(status["state"], b"unknown"))
        elif name == b"STATUS":
            status = self.syncobj.getStatus()
            slot[0] = bulk(json.dumps(status, default=str).encode())
        elif name in (b"CONFIG", b"COMMAND"):
            slot[0] = b"*0\r\n"
        else:
            slot[0] = error(f"ERR unknown or malformed command '{name.decode(errors='replace')}'")
        return slot


def patch_sync_journal() -> None:
    """msync the journal after every record: NOT what PySyncObj does (see the docstring)."""
    from pysyncobj import journal

    original = journal.FileJournal.add

    def add_then_sync(self: Any, command: bytes, idx: int, term: int) -> None:
        original(self, command, idx, term)
        self.flush()

    journal.FileJournal.add = add_then_sync


async def serve(args: argparse.Namespace) -> None:
    if args.sync_journal:
        patch_sync_journal()
    os.makedirs(args.data_dir, exist_ok=True)
    loop = asyncio.get_running_loop()
    conf = SyncObjConf(
        journalFile=os.path.join(args.data_dir, "journal.bin"),
        fullDumpFile=os.path.join(args.data_dir, "dump.bin"),
        appendEntriesUseBatch=args.batch,
        dynamicMembershipChange=False,
    )
    store = Store()
    partners = [p for p in args.partners.split(",") if p]
    syncobj = SyncObj(args.self_address, partners, conf, consumers=[store])
    server = Server(syncobj, store, Results(loop))
    listener = await loop.create_server(
        lambda: Connection(server), "127.0.0.1", args.client_port, reuse_address=True, backlog=1024
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"pysyncobj_server ready: raft {args.self_address} client 127.0.0.1:{args.client_port}")
    sys.stdout.flush()
    await stop.wait()
    listener.close()
    syncobj.destroy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--self", dest="self_address", required=True, help="host:port for Raft")
    parser.add_argument("--partners", required=True, help="comma-separated host:port list")
    parser.add_argument("--client-port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--batch",
        action="store_true",
        help="appendEntriesUseBatch=True (PySyncObj's default): entries wait for the next tick",
    )
    parser.add_argument("--sync-journal", action="store_true", help="msync after every record")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
