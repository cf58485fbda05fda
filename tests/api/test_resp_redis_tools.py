"""The real Redis tools against paxosd's RESP front end: redis-cli and redis-benchmark.

They come from Debian's redis-tools package (`apt-get install -y redis-tools`); without them
these tests are skipped with that reason. Each test runs `serve_resp` over `RespFakeNode` on
127.0.0.1 with an ephemeral port and stops it at the end.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from .resp_fakes import LOOP_KINDS, RespFakeNode, ServerThread

REDIS_CLI = shutil.which("redis-cli")
REDIS_BENCHMARK = shutil.which("redis-benchmark")
INSTALL_HINT = "redis-tools not installed (apt-get install -y redis-tools)"

# How long one tool run may take, in seconds.
tool_timeout_s = 120.0


@pytest.fixture
def resp_node() -> RespFakeNode:
    return RespFakeNode(record=False)


@pytest.fixture(params=LOOP_KINDS)
def server(resp_node: RespFakeNode, request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    harness = ServerThread(resp_node, loop_kind=str(request.param))
    yield harness
    harness.close()


def cli(port: int, *args: str) -> str:
    assert REDIS_CLI is not None
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=tool_timeout_s,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(REDIS_CLI is None, reason=INSTALL_HINT)
def test_redis_cli(server: ServerThread, resp_node: RespFakeNode) -> None:
    port = server.port
    assert cli(port, "PING") == "PONG\n"
    assert cli(port, "SET", "x", "1") == "OK\n"
    assert cli(port, "GET", "x") == "1\n"
    assert cli(port, "GET", "missing") == "\n"  # nil, as redis-cli prints it without a tty
    assert cli(port, "LOCK", "job", "worker-1", "5000") == "1\nworker-1\n1\n5000\n"
    assert cli(port, "PROPOSE", "leader", "n1") == "n1\n"
    assert cli(port, "-3", "GET", "x") == "1\n"  # RESP3 (HELLO 3) as well
    assert "role:leader" in cli(port, "INFO")
    assert cli(port, "NOSUCH").startswith("ERR unknown command 'NOSUCH'")
    assert server.call(lambda: resp_node.stored("x")) == "1"


@pytest.mark.skipif(REDIS_CLI is None, reason=INSTALL_HINT)
def test_redis_cli_interactive(server: ServerThread) -> None:
    """Interactive redis-cli asks COMMAND DOCS at startup; our answer must not break it."""
    assert REDIS_CLI is not None
    pid, fd = pty.fork()
    if pid == 0:  # the child: become redis-cli on the pty (TERM=dumb: no cursor queries)
        os.environ["TERM"] = "dumb"
        os.execv(REDIS_CLI, [REDIS_CLI, "-h", "127.0.0.1", "-p", str(server.port)])
    output = b""

    def read_for(seconds: float) -> None:
        nonlocal output
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    output += os.read(fd, 65536)
                except OSError:
                    return

    try:
        for line in (b"SET a 1\r", b"GET a\r", b"LOCKSTATUS free\r"):
            read_for(0.3)
            os.write(fd, line)
        read_for(0.5)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace")
    assert "OK" in text and '"1"' in text
    assert "1) (integer) 0" in text and "2) (nil)" in text


@pytest.mark.skipif(REDIS_BENCHMARK is None, reason=INSTALL_HINT)
def test_redis_benchmark(server: ServerThread, resp_node: RespFakeNode) -> None:
    assert REDIS_BENCHMARK is not None
    done = subprocess.run(
        [
            REDIS_BENCHMARK,
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-t",
            "set,get",
            "-n",
            "2000",
            "-c",
            "20",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=tool_timeout_s,
        check=True,
    )
    # -q prints progress lines ending in \r and one final line per test.
    lines = re.split(r"[\r\n]+", done.stdout)
    rates = {}
    for line in lines:
        match = re.match(r"^\s*(SET|GET): ([\d.]+) requests per second", line)
        if match:
            rates[match[1]] = float(match[2])
    assert set(rates) == {"SET", "GET"}, done.stdout + done.stderr
    assert all(rate > 100 for rate in rates.values()), rates
    assert "Could not fetch server CONFIG" not in done.stdout + done.stderr
    print(f"\nredis-benchmark against RespFakeNode: {rates}")
    # The benchmark's SETs went through the state machine (its default payload: 3 bytes).
    value = server.call(lambda: resp_node.stored("key:__rand_int__"))
    assert isinstance(value, str) and len(value) == 3
