"""A real etcd 3.4 member on loopback for tests that hold paxosd's etcd API against etcd's own:
one `etcd` process with a data directory of its own, started and stopped by PID.

Skip reasons are returned, not raised, so a test says why it cannot run (no /usr/bin/etcd:
CI installs it with bench/setup.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_block

start_timeout_s = 60.0


def etcd_missing() -> str | None:
    """Why no etcd can be started here, or None."""
    if shutil.which("etcd") is None:
        return "no etcd binary on PATH (bench/setup.sh installs etcd 3.4.23, as CI does)"
    return None


@dataclass
class EtcdServer:
    client_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @classmethod
    def start(cls, root: Path) -> EtcdServer:
        port = free_block(2, offset=2000)
        client = f"http://127.0.0.1:{port}"
        peer = f"http://127.0.0.1:{port + 1}"
        root.mkdir(parents=True, exist_ok=True)
        log = root / "etcd.log"
        argv = [
            "etcd",
            "--name=e1",
            f"--data-dir={root / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e1={peer}",
            "--initial-cluster-state=new",
            "--log-level=warn",
        ]
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=out)
        server = cls(port, process, log)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def version(self) -> dict[str, str] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/version", timeout=1) as reply:
                answer: dict[str, str] = json.loads(reply.read())
                return answer
        except (OSError, ValueError):
            return None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"etcd exited:\n{self.log.read_text()[-3000:]}")
            try:
                request = urllib.request.Request(f"{self.url}/v3/kv/range", b'{"key": "AA=="}')
                with urllib.request.urlopen(request, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"etcd not ready within {start_timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
