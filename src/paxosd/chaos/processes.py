"""paxosd node processes for the chaos harness: configs behind the proxy mesh, and signals.

Theory of operation. Every node is a real `paxosd node --config FILE` process, started in its
own session (so a Ctrl-C meant for the harness does not reach it) and stopped by its PID only.
`write_configs` lays the cluster out like `paxosd.runtime.config.local_cluster` (HTTP on
base+i, RESP on base-600+i, peer port on base+100+i) and then rewrites, in node i's own config
file, every OTHER member's peer address to the proxy of the link i -> j. A node's own peer
address stays real: that is where its transport listens, and where the proxies of the links
towards it forward. HTTP and RESP are not proxied: clients and the harness always reach a
live node directly, so an unavailable answer is the protocol's doing, not the proxy's.

A node's stdout and stderr go through a pipe that a thread appends to its log file (one file
across restarts, each run headed by a "--- chaos: start #k" line), so that a disk fault on the
node cannot also silence the log line that explains it.

Faults on processes are signals: SIGKILL (a crash: nothing is flushed, the node recovers from
its synced log on restart), SIGTERM (a graceful stop), SIGSTOP / SIGCONT (a pause: the process
keeps its sockets, its peers see silence, then it resumes with stale beliefs - the GC-pause
fault). `limit_file_size` lowers RLIMIT_FSIZE of a running node so that its next append to
the data log fails (EFBIG; Python ignores SIGXFSZ): a failing disk without root tricks.

A node replaced as an operator replaces a machine that lost its disk (the `replace` nemesis)
runs `paxosd node --join` once (`join_with`): it joins through the log under a new incarnation
and writes DATA_DIR/node.toml, which every later start of it uses (`use_config`).

Blocking calls here (waiting for an exit, HTTP status) are plain functions; asyncio callers
run them with `asyncio.to_thread` so the proxies sharing their event loop keep moving.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from paxosd.runtime.config import NodeConfig, Timeouts, local_cluster, to_toml
from paxosd.runtime.datadir import has_store, initialise
from paxosd.service.kv import KvLimits

if TYPE_CHECKING:
    from paxosd.chaos.proxy import Address, ProxyMesh

terminate_timeout_s = 10.0  # SIGTERM, then SIGKILL if the node has not exited by then
kill_timeout_s = 5.0
status_timeout_s = 1.0
ready_poll_s = 0.05
log_chunk_bytes = 64 << 10
log_drain_timeout_s = 2.0
storage_failure_exit_code = 70  # paxosd.runtime.node: a failed write or fsync -> os._exit(70)


def cluster_layout(
    n: int, base_dir: Path, base_port: int, cluster_id: str = "paxosd-chaos"
) -> list[NodeConfig]:
    """The unproxied configs: `local_cluster`'s port layout, data in base_dir/node<i>."""
    return local_cluster(n, base_dir, base_port, cluster_id)


def peer_addresses(n: int, base_port: int) -> dict[int, Address]:
    """Each node's REAL peer address in the layout: what a ProxyMesh forwards to."""
    return {c.node_id: c.me.peer for c in cluster_layout(n, Path("."), base_port)}


# A run keeps its whole key-value history, so that its watchers can be judged against it.
CHAOS_KV_LIMITS = KvLimits(history_revisions_max=1 << 40, history_bytes_max=1 << 36)


def write_configs(
    base_dir: Path,
    n: int,
    base_port: int,
    mesh: ProxyMesh,
    *,
    timeouts: Timeouts | None = None,
    storage: str = "file",
    cluster_id: str = "paxosd-chaos",
    variant: str = "correct",
) -> list[Path]:
    """Write base_dir/node<i>.toml for i in 1..n, peers pointing at the mesh's proxies.

    `variant` plants a bug in every node (`paxosd.core.multi.config.VARIANTS`), to prove that
    the harness catches it. The mesh must forward to the layout's real peer ports (build it
    from `peer_addresses`); a mismatch would silently connect nobody, so it is an error here.
    """
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    layout = cluster_layout(n, base_dir, base_port, cluster_id)
    for config in layout:
        me = config.me
        if mesh.peers.get(me.id) != me.peer:
            raise ValueError(
                f"the mesh forwards to {mesh.peers.get(me.id)} for node {me.id}, but the "
                f"layout for base_port {base_port} listens on {me.peer}"
            )
    paths = []
    for config in layout:
        members = tuple(
            m if m.id == config.node_id else replace(m, peer=mesh.address_for(config.node_id, m.id))
            for m in config.members
        )
        proxied = replace(
            config, members=members, storage=storage, variant=variant,
            clock_file=base_dir / f"node{config.node_id}.clock.json",  # the clock nemesis's
            kv=CHAOS_KV_LIMITS,
        )  # fmt: skip
        if timeouts is not None:
            proxied = replace(proxied, timeouts=timeouts)
        proxied.validate()  # e.g. a proxy port equal to some HTTP port is caught here
        path = base_dir / f"node{config.node_id}.toml"
        path.write_text(to_toml(proxied))
        if not has_store(proxied):  # a brand-new cluster
            initialise(proxied)
        paths.append(path)
    return paths


def spare_node(
    base_dir: Path,
    n: int,
    base_port: int,
    log_dir: Path,
    *,
    cluster_id: str = "paxosd-chaos",
    variant: str = "correct",
) -> tuple[NodeProcess, NodeConfig]:
    """Node n + 1 of the layout, in no config file: the process that joins it (`grow`), and
    the config the harness runs its nodes with (its addresses, variant, clock file, limits)."""
    base_dir = Path(base_dir).resolve()
    layout = cluster_layout(n + 1, base_dir, base_port, cluster_id)[-1]
    node = layout.node_id
    machine = replace(
        layout, variant=variant, clock_file=base_dir / f"node{node}.clock.json",
        kv=CHAOS_KV_LIMITS,
    )  # fmt: skip
    process = NodeProcess(
        node, layout.data_dir / "node.toml", Path(log_dir) / f"node{node}.log",
        http=layout.me.http, data_dir=layout.data_dir, clock_file=machine.clock_file,
    )  # fmt: skip
    return process, machine


def write_joined_config(
    path: Path, machine: NodeConfig, mesh: ProxyMesh, real_peer: Address
) -> None:
    """Rewrite the config a replaced node's `paxosd node --join` wrote at `path` for the mesh:
    it listens on its real peer port again (behind its front door, the address its record
    announces), dials every peer through the proxy of its own link, and keeps what the harness
    runs every node with (`machine`, its config before the wipe: variant, clock file, the
    run's key-value limits). Its identity, timeouts and store settings stay the join's."""
    from paxosd.runtime.config import load

    joined = load(path)
    node = joined.node_id
    members = tuple(
        replace(m, peer=real_peer) if m.id == node
        else replace(m, peer=mesh.address_for(node, m.id)) if m.id in mesh.peers
        else m
        for m in joined.members
    )  # fmt: skip
    rewritten = replace(
        joined, members=members, variant=machine.variant, clock_file=machine.clock_file,
        kv=machine.kv,
    ).validate()  # fmt: skip
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(to_toml(rewritten))
    os.replace(temporary, path)


def _show(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def _pump(source: IO[bytes], path: Path) -> None:
    """Copy a node's output to its log file until the node exits (EOF)."""
    with source, open(path, "ab") as sink:
        while chunk := source.read1(log_chunk_bytes):  # type: ignore[attr-defined]
            sink.write(chunk)
            sink.flush()  # a tail read right after an event must see it


def fetch_status(http: Address, timeout_s: float = status_timeout_s) -> dict[str, Any] | None:
    """GET /v1/status of one node; None if it does not answer (down, paused, starting)."""
    url = f"http://{http[0]}:{http[1]}/v1/status"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


class NodeProcess:
    """One `paxosd node` subprocess; every operation acts on its own PID only."""

    def __init__(
        self,
        node_id: int,
        config_path: Path,
        log_path: Path,
        *,
        http: Address | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        clock_file: Path | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock_file = clock_file
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.http = http
        self.data_dir = data_dir
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0
        self.exit_codes: list[int] = []  # of every earlier run, in order
        self._log_pump: threading.Thread | None = None
        self._reaped = True  # no run yet, nothing to record
        # While set, the next start joins the cluster (`paxosd node --join ...`) instead of
        # running from `config_path`.
        self.join_args: list[str] | None = None

    @classmethod
    def from_config(cls, config_path: Path, log_dir: Path) -> NodeProcess:
        from paxosd.runtime.config import load

        config = load(config_path)
        return cls(
            config.node_id,
            config_path,
            Path(log_dir) / f"node{config.node_id}.log",
            http=config.me.http,
            data_dir=config.data_dir,
            clock_file=config.clock_file,
        )

    @property
    def command(self) -> list[str]:
        node = [sys.executable, "-m", "paxosd", "node"]
        if self.join_args is not None:
            return [*node, *self.join_args]
        return [*node, "--config", str(self.config_path)]

    def join_with(self, endpoint: Address, peer: Address, http: Address, resp: Address) -> None:
        """Make the next start join the cluster of the member whose HTTP is at `endpoint`,
        announcing these addresses; the node's data directory must be new and empty."""
        if self.data_dir is None:
            raise ValueError(f"node {self.node_id} has no data directory to join with")
        self.join_args = [
            "--join", _show(endpoint), "--id", str(self.node_id),
            "--data-dir", str(self.data_dir),
            "--peer", _show(peer), "--http", _show(http), "--resp", _show(resp),
        ]  # fmt: skip
        self.http = http

    def use_config(self, config_path: Path) -> None:
        """Start from `config_path` from now on (a joined node: the file its join wrote)."""
        self.join_args = None
        self.config_path = Path(config_path)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        """Running or paused; False once it exited (and was reaped)."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def start(self) -> int:
        if self.alive:
            raise RuntimeError(f"node {self.node_id} is already running (pid {self.pid})")
        self._reap()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"--- chaos: start #{self.starts + 1} at {time.time():.3f}\n".encode())
        # The node logs into a pipe that a thread copies to the file, not into the file
        # itself: a disk fault (RLIMIT_FSIZE) must fail the data log, not the log telling why.
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self._log_pump = threading.Thread(
            target=_pump, args=(self.process.stdout, self.log_path), daemon=True
        )
        self._log_pump.start()
        self.paused = False
        self._reaped = False
        self.starts += 1
        return self.process.pid

    def _signal(self, signum: signal.Signals) -> bool:
        if not self.alive:
            return False
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)
        return True

    def kill9(self, timeout_s: float = kill_timeout_s) -> int | None:
        """SIGKILL and reap: a crash. Returns the exit status (-9), None if not running."""
        if not self._signal(signal.SIGKILL):
            return self._reap()
        self.paused = False
        return self.wait(timeout_s)

    def terminate(self, timeout_s: float = terminate_timeout_s) -> int | None:
        """SIGTERM and wait: a graceful stop; SIGKILL if it takes longer than timeout_s."""
        if not self._signal(signal.SIGTERM):
            return self._reap()
        if self.paused:  # a stopped process acts on SIGTERM only once continued
            self.resume()
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill9()

    def pause(self) -> bool:
        """SIGSTOP: frozen with its sockets open, as in a long GC pause or a VM stall."""
        if self._signal(signal.SIGSTOP):
            self.paused = True
        return self.paused

    def resume(self) -> bool:
        """SIGCONT."""
        resumed = self._signal(signal.SIGCONT)
        self.paused = False
        return resumed

    def restart(self, timeout_s: float = terminate_timeout_s) -> int:
        """Stop (gracefully) if running, then start again with the same config and data."""
        if self.alive:
            self.terminate(timeout_s)
        return self.start()

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the exit; raises subprocess.TimeoutExpired if it does not come."""
        if self.process is None:
            return None
        self.process.wait(timeout_s)
        return self._reap()

    def _reap(self) -> int | None:
        """Record the exit status of a finished run (once) and close its log handle."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        if not self._reaped:
            self._reaped = True
            self.exit_codes.append(code)
            if self._log_pump is not None:
                self._log_pump.join(log_drain_timeout_s)  # the exit's last words, in the file
                self._log_pump = None
        return code

    def set_wall_offset(self, offset_ms: float) -> None:
        """Skew the node's wall clock by `offset_ms` (it re-reads its clock file every
        second; the machine's clock is shared by every node, so the skew goes through here)."""
        if self.clock_file is None:
            raise ValueError(f"node {self.node_id} has no clock_file in its config")
        temporary = self.clock_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"wall_offset_ms": offset_ms}))
        os.replace(temporary, self.clock_file)

    def limit_file_size(self, limit_bytes: int) -> tuple[int, int]:
        """Lower RLIMIT_FSIZE of the running process: any write to a regular file at or beyond
        `limit_bytes` then fails with EFBIG. Returns the previous (soft, hard) limits."""
        if not self.alive or self.pid is None:
            raise RuntimeError(f"node {self.node_id} is not running")
        old = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (limit_bytes, old[1]))
        return old

    def restore_file_size(self, limits: tuple[int, int]) -> None:
        if self.alive and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(self.pid, resource.RLIMIT_FSIZE, limits)

    def data_log_bytes(self) -> int | None:
        """Size of the file backend's data log (None for another backend or no data dir)."""
        if self.data_dir is None:
            return None
        try:
            return os.stat(self.data_dir / "paxos.log").st_size
        except FileNotFoundError:
            return None

    def status(self, timeout_s: float = status_timeout_s) -> dict[str, Any] | None:
        if self.http is None or not self.alive or self.paused:
            return None
        return fetch_status(self.http, timeout_s)

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Poll /v1/status until it answers; RuntimeError (with the log's tail) if the process
        exits or does not answer within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(
                    f"node {self.node_id} exited with {self.returncode}:\n{self.log_tail()}"
                )
            status = self.status()
            if status is not None:
                return status
            time.sleep(ready_poll_s)
        raise RuntimeError(f"node {self.node_id} did not answer in {timeout_s} s")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Make sure the process is gone (SIGKILL if needed) and the log is closed."""
        if self.alive:
            self.kill9()
        self._reap()
