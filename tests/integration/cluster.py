"""Real paxosd clusters for tests: separate `paxosd node` processes on 127.0.0.1, each with
its own data directory, started and stopped by PID."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paxosd.runtime.config import NodeConfig, local_cluster, to_toml
from paxosd.runtime.datadir import initialise
from tests.ports import free_layout

start_timeout_s = 60.0  # an upper bound: a loaded machine imports slowly
_launched: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_leftovers() -> None:
    """A test run that is interrupted must not leave nodes behind."""
    for process in _launched:
        if process.poll() is None:
            process.kill()


@dataclass
class Cluster:
    root: Path
    configs: list[NodeConfig]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Extra environment of each node's process, at every launch (tests/integration/powerloss).
    node_env: Callable[[int], dict[str, str]] | None = None

    @classmethod
    def start(
        cls,
        root: Path,
        nodes: int = 3,
        configure: Callable[[NodeConfig], NodeConfig] = lambda config: config,
        node_env: Callable[[int], dict[str, str]] | None = None,
    ) -> Cluster:
        base = free_layout(nodes)
        # A cluster id of its own: a stray node of another test's cluster that dials these
        # ports is refused at the handshake instead of joining.
        layout = local_cluster(nodes, root, base, f"test-{os.getpid()}-{base}")
        cluster = cls(root, [configure(config) for config in layout], node_env=node_env)
        try:
            for config in cluster.configs:  # every store first, as `paxosd init` does
                (root / f"node{config.node_id}.toml").write_text(to_toml(config))
                initialise(config)
            for config in cluster.configs:
                cluster.launch(config.node_id)
            cluster.wait_for_leader()
            cluster.wait_until_all_answer()  # a test may talk to any node first
        except BaseException:
            cluster.stop()  # a cluster that failed to start leaves no node behind
            raise
        return cluster

    def launch(self, node: int, *args: str, env: dict[str, str] | None = None) -> None:
        folder = self.root / f"node{node}"
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / "node.log", "ab")  # noqa: SIM115 - the child owns it
        config = str(self.root / f"node{node}.toml")
        if env is None and self.node_env is not None:
            env = self.node_env(node)
        self.processes[node] = subprocess.Popen(
            [sys.executable, "-m", "paxosd", "node", "--config", config, *args],
            stdout=log,
            stderr=log,
            env=None if env is None else {**os.environ, **env},
        )
        _launched.append(self.processes[node])

    def log(self, node: int) -> str:
        return (self.root / f"node{node}" / "node.log").read_text()

    def http(self, node: int) -> str:
        host, port = self.configs[node - 1].me.http
        return f"{host}:{port}"

    def resp_port(self, node: int) -> int:
        return self.configs[node - 1].me.resp[1]

    def endpoints(self, nodes: list[int] | None = None) -> list[str]:
        return [self.http(n) for n in (nodes or [c.node_id for c in self.configs])]

    def status(self, node: int) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://{self.http(node)}/v1/status", timeout=1) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    def leader(self) -> int | None:
        for config in self.configs:
            if config.node_id in self.processes and self.processes[config.node_id].poll() is None:
                status = self.status(config.node_id)
                if status and status.get("role") == "leader":
                    return int(status["node_id"])
        return None

    def wait_for_leader(self, timeout_s: float = start_timeout_s) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            for node, process in self.processes.items():
                if process.poll() is not None:
                    log = (self.root / f"node{node}" / "node.log").read_text()[-3000:]
                    raise AssertionError(f"node {node} exited:\n{log}")
            time.sleep(0.05)
        raise AssertionError(f"no leader within {timeout_s} s")

    def wait_until_all_answer(self, timeout_s: float = start_timeout_s) -> None:
        """Every running node's client port answers (a leader can be elected by two nodes
        while the third, on a busy machine, is still starting)."""
        deadline = time.monotonic() + timeout_s
        waiting = set(self.processes)
        while waiting:
            waiting = {node for node in waiting if self.status(node) is None}
            for node in waiting:
                if self.processes[node].poll() is not None:
                    raise AssertionError(f"node {node} exited:\n{self.log(node)[-3000:]}")
            if waiting and time.monotonic() > deadline:
                raise AssertionError(f"nodes {sorted(waiting)} not answering after {timeout_s} s")
            if waiting:
                time.sleep(0.05)

    def kill9(self, node: int) -> None:
        process = self.processes.pop(node)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def terminate(self, node: int) -> int:
        process = self.processes.pop(node)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=15)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
