"""`GET /v1/snapshot`: a backup of the cluster's state, streamed from this node.

The node confirms a linearizable read, takes its state machine's snapshot at one slot and
writes it to a temporary file off the loop (runtime/node.py `backup`); this handler streams
the backup file around it (storage/backup.py: header, state, digest) a chunk at a time, the
chunks read in a worker thread so a large state never holds the event loop. Writes go on
meanwhile. Content-Length is exact, so a client sees a cut transfer for what it is.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from paxosd.storage.backup import BackupFraming, chunk_bytes

from .calls import Call

BACKUP_TYPE = "application/octet-stream"


async def snapshot_save(call: Call) -> web.StreamResponse:
    meta, state = await call.node.backup()
    try:
        framing = BackupFraming(meta)
        response = web.StreamResponse(
            headers={
                "Content-Type": BACKUP_TYPE,
                "Content-Length": str(framing.total_bytes),
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="{_file_name(meta.revision)}"',
            }
        )
        await response.prepare(call.request)
        await response.write(framing.head)
        loop = asyncio.get_running_loop()
        while data := await loop.run_in_executor(None, state.read, chunk_bytes):
            await response.write(framing.state(data))
        await response.write(framing.end())
        await response.write_eof()
        return response
    finally:
        state.close()


def _file_name(revision: int) -> str:
    return f"paxosd-backup-r{revision}.pxbk"
