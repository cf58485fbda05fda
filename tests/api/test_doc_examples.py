"""The docs' examples of the key-value store over many keys, run: every ```console tested```
block of docs/etcd-api.md, docs/http-api.md, docs/client.md, docs/resp.md and
docs/recipes.md, and every
```python tested``` block, against one node's HTTP and RESP ports over a FakeNode.

A console block's `$ ` lines are commands (curl, redis-cli, paxosd) and the lines after each
are what it prints; a python block runs with `Client()` pointed at the node and holds its own
asserts. The blocks of one document run in order against one store, so a document reads as
one session. The addresses of the docs (127.0.0.1:7001-7003 over HTTP, 6401-6403 over RESP)
are replaced by the test node's.

PAXOSD_REWRITE_DOCS=1 writes what the commands printed back into the docs (then read the
diff before committing it).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from paxosd.api.http import make_app
from paxosd.api.resp import close_resp_clients, serve_resp
from tests.mvcc_store import needs_store

from .conftest import FakeNode

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["etcd-api.md", "http-api.md", "client.md", "resp.md", "recipes.md", "sql.md", "leases.md"]
BLOCK = re.compile(r"^```(console|python) tested\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
REWRITE = os.environ.get("PAXOSD_REWRITE_DOCS") == "1"
# The cluster id the docs' answers were made with (their header's cluster_id follows from it).
DOC_CLUSTER_ID = "paxosd-local-0a1b2c3d"
command_timeout_s = 60.0


class DocNode:
    """One FakeNode behind both ports, on a background event loop."""

    def __init__(self) -> None:
        self.node = FakeNode(cluster_id=DOC_CLUSTER_ID)
        self.node.member_list = [
            {"id": i, "http": f"127.0.0.1:700{i}", "resp": f"127.0.0.1:640{i}",
             "peer": f"127.0.0.1:710{i}", "connected": True}
            for i in (1, 2, 3)
        ]  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.runner, self.http_port, self.resp_server, self.resp_port = self._run(self._start())

    async def _start(self) -> tuple[web.AppRunner, int, Any, int]:
        runner = web.AppRunner(make_app(self.node))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        resp = await serve_resp(self.node, "127.0.0.1", 0)
        return runner, http_port, resp, resp.sockets[0].getsockname()[1]

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(command_timeout_s)

    def close(self) -> None:
        async def stop() -> None:
            if self.node.watches is not None:
                self.node.watches.close_all()  # streams end, as at a node's shutdown
            self.resp_server.close()
            close_resp_clients(self.resp_server)
            await self.runner.cleanup()

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(command_timeout_s)
        self.loop.close()

    def localize(self, text: str) -> str:
        text = re.sub(r"127\.0\.0\.1:700[1-3]", f"127.0.0.1:{self.http_port}", text)
        text = re.sub(r"port=700[1-3]\b", f"port={self.http_port}", text)
        text = re.sub(r"port=640[1-3]\b", f"port={self.resp_port}", text)
        return re.sub(r"-p 640[1-3]\b", f"-p {self.resp_port}", text)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PAXOSD_ENDPOINTS"] = f"127.0.0.1:{self.http_port}"
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env


def console_examples(text: str) -> list[tuple[str, str]]:
    """(command, expected output) of a console block. A command with a here-document
    (`<<'EOF'`) goes on to the line `EOF`."""
    examples: list[tuple[str, list[str]]] = []
    heredoc: str | None = None
    for line in text.splitlines():
        if heredoc is not None:
            examples[-1] = (examples[-1][0] + "\n" + line, [])
            if line == heredoc:
                heredoc = None
        elif line.startswith("$ "):
            examples.append((line[2:], []))
            found = re.search(r"<<-?'?(\w+)'?", line)
            heredoc = found.group(1) if found else None
        elif examples:
            examples[-1][1].append(line)
    return [(command, "\n".join(output).rstrip()) for command, output in examples]


def run_console(doc: DocNode, block: str) -> str:
    """Run a console block; the block as the commands printed it."""
    out: list[str] = []
    for command, expected in console_examples(block):
        done = subprocess.run(
            ["bash", "-c", doc.localize(command)],
            capture_output=True,
            text=True,
            timeout=command_timeout_s,
            env=doc.environment(),
            stdin=subprocess.DEVNULL,
        )
        printed = (done.stdout + done.stderr).rstrip()
        out.append(f"$ {command}")
        if printed:
            out.append(printed)
        if not REWRITE:
            assert printed == expected, f"$ {command}\nexpected:\n{expected}\nprinted:\n{printed}"
    return "\n".join(out) + "\n"


def run_python(doc: DocNode, block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAXOSD_ENDPOINTS", f"127.0.0.1:{doc.http_port}")
    namespace: dict[str, Any] = {"__name__": "__doc_example__"}
    exec(compile(doc.localize(block), "<doc example>", "exec"), namespace)


@needs_store
@pytest.mark.parametrize("name", DOCS)
def test_doc_examples(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "docs" / name
    text = path.read_text()
    blocks = list(BLOCK.finditer(text))
    assert blocks, f"docs/{name} has no tested examples"
    doc = DocNode()
    pieces: list[str] = []
    at = 0
    try:
        for block in blocks:
            kind, body = block.group(1), block.group(2)
            if kind == "python":
                run_python(doc, body, monkeypatch)
                continue
            printed = run_console(doc, body)
            pieces += [text[at : block.start(2)], printed]
            at = block.end(2)
    finally:
        doc.close()
    if REWRITE:
        path.write_text("".join(pieces) + text[at:])
