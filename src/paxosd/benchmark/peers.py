"""Start and stop clusters on loopback for `paxosd bench`: paxosd itself, etcd, ZooKeeper and
PySyncObj (docs/benchmarks.md). The peers are installed by bench/setup.sh.

    from paxosd.benchmark.peers import start_etcd
    with start_etcd(base_dir, 23790) as cluster:     # ready when the call returns
        cluster.endpoints   # "127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792" (loadgen form)
        cluster.pids        # server PIDs, one per node
        cluster.leader_pid()
    # stopped (SIGTERM, then SIGKILL after 10 s), by PID

Every server listens on 127.0.0.1 only, keeps its data under `base_dir` (which must be on a
real disk, not tmpfs, or fsync costs nothing), and syncs before it acknowledges a write:

- etcd 3.4: fsyncs its WAL before acknowledging (always on; no flag turns it off in 3.4).
- ZooKeeper 3.8: `forceSync=yes` (the default, written out) with a separate `dataLogDir`; the
  JVM gets `-Xms512m -Xmx512m`.
- PySyncObj 0.3.17: its file journal and full dump are configured, but PySyncObj never
  fsyncs them (see bench/pysyncobj_server.py): the one peer that acknowledges before a sync.
- paxosd: `paxosd node` processes with fsync on (group commit: one fdatasync per turn).

Ports, from `base_port` (B): etcd clients B+i, peers B+10+i; ZooKeeper clients B+i, quorum
B+10+i, election B+20+i; PySyncObj clients B+i, Raft B+10+i (i = 0, 1, 2); paxosd the
layout of `paxosd up` (RESP B-600+i, HTTP B+i, peers B+100+i, i = 1..n).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from paxosd.api.limits import ClientLimits
from paxosd.runtime.config import local_cluster, to_toml
from paxosd.runtime.datadir import has_store, initialise
from paxosd.runtime.ports import all_free, free_layout, layout_ports, port_free, search_range

# The repository's bench/ folder (the loadgen binary, the PySyncObj server): this package runs
# from a source checkout (`pip install -e`); PAXOSD_BENCH_DIR points elsewhere.
REPO_DIR = Path(__file__).resolve().parents[3]
BENCH_DIR = Path(os.environ.get("PAXOSD_BENCH_DIR", REPO_DIR / "bench"))
LOADGEN = BENCH_DIR / "bin" / "loadgen"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
SLF4J_SIMPLE_JAR = Path("/usr/share/java/slf4j-simple.jar")
ZOOKEEPER_HEAP = "512m"
NODES = 3
# Ports each system uses, as offsets from its base port.
PORT_OFFSETS = {
    "etcd": {0, 1, 2, 10, 11, 12},
    "zk": {0, 1, 2, 10, 11, 12, 20, 21, 22},
    "pysyncobj": {0, 1, 2, 10, 11, 12},
}
ready_timeout_s_default = 60.0
stop_timeout_s = 10.0


# ---------------------------------------------------------------------------------------
# What is installed


def pysyncobj_python() -> str | None:
    """A Python interpreter that can import pysyncobj: this one, the project's .venv, or
    bench/.venv-peers (where bench/setup.sh puts it when there is no project venv)."""
    candidates = [
        sys.executable,
        str(REPO_DIR / ".venv" / "bin" / "python"),
        str(BENCH_DIR / ".venv-peers" / "bin" / "python"),
    ]
    for python in candidates:
        if not os.path.exists(python):
            continue
        probe = subprocess.run(
            [python, "-c", "import pysyncobj"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return python
    return None


def missing(system: str) -> list[str]:
    """Why `system` (etcd, zk, pysyncobj, loadgen) cannot run here; empty when it can."""
    reasons = []
    if system == "etcd" and shutil.which("etcd") is None:
        reasons.append("no etcd binary (apt-get install etcd-server)")
    if system == "zk":
        if shutil.which("java") is None:
            reasons.append("no java (a JDK/JRE is needed for ZooKeeper)")
        if not ZOOKEEPER_JAR.exists():
            reasons.append(f"no {ZOOKEEPER_JAR} (apt-get install zookeeper)")
    if system == "pysyncobj" and pysyncobj_python() is None:
        reasons.append("pysyncobj is not importable (pip install pysyncobj==0.3.17)")
    if system == "loadgen" and not os.access(LOADGEN, os.X_OK):
        reasons.append(f"no {LOADGEN} (run bench/setup.sh)")
    if system == "redis-benchmark" and shutil.which("redis-benchmark") is None:
        reasons.append("no redis-benchmark (apt-get install redis-tools)")
    return reasons


def filesystem_of(path: str | Path) -> str:
    """The filesystem type holding `path` (from /proc/mounts), e.g. 'ext4' or 'tmpfs'."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 3:
                continue
            mount_point = fields[1].replace("\\040", " ")
            under = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if under and len(mount_point) >= len(best):
                best, kind = mount_point, fields[2]
    return kind


def free_base_port(span: int = 30, tries: int = 200) -> int:
    """A base port B with B .. B+span-1 all free on 127.0.0.1 now, drawn at random from
    `search_range()` (below Linux's ephemeral range, so outgoing connections do not take them
    meanwhile; random, so clusters started one after another rarely meet)."""
    import random

    low, high = search_range()
    chooser = random.Random()
    for _ in range(tries):
        base = chooser.randrange(low, high - span, 10)
        if all_free(range(base, base + span)):
            return base
    raise RuntimeError(f"no {span} free ports in a row between {low} and {high}")


# ---------------------------------------------------------------------------------------
# Nodes and clusters


@dataclass
class Node:
    """One server process: how to start it, where it logs, its client address."""

    index: int
    argv: list[str]
    client_port: int
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    http_port: int = 0  # paxosd only: where /v1/status answers

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # a Ctrl-C in the terminal does not reach the servers
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash, then reap."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=stop_timeout_s)

    def stop(self) -> None:
        """SIGTERM; SIGKILL if it has not exited after stop_timeout_s."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=stop_timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# Asks one node whether it is the leader: True, False, or None (no answer).
LeaderProbe = Callable[[Node], bool | None]
# Asks one node whether it serves requests in a cluster with a leader.
ReadyProbe = Callable[[Node], bool]


@dataclass
class Cluster:
    """A running 3-node cluster. `name` is the loadgen's -system value."""

    name: str
    nodes: list[Node]
    base_dir: Path
    probe_leader: LeaderProbe = field(repr=False)
    probe_ready: ReadyProbe = field(repr=False)

    @property
    def endpoints(self) -> str:
        """Client addresses as the loadgen's -endpoints takes them."""
        return ",".join(f"127.0.0.1:{node.client_port}" for node in self.nodes)

    @property
    def pids(self) -> list[int]:
        """PIDs of the live server processes."""
        return [node.pid for node in self.nodes if node.alive() and node.pid is not None]

    def leader_index(self) -> int | None:
        claims = [node.index for node in self.nodes if node.alive() and self.probe_leader(node)]
        return claims[0] if len(claims) == 1 else None

    def leader_pid(self) -> int | None:
        """PID of the node that says it leads, or None (no leader, or more than one claim)."""
        index = self.leader_index()
        return None if index is None else self.nodes[index].pid

    def wait_leader(self, timeout_s: float = ready_timeout_s_default) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pid = self.leader_pid()
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no single leader within {timeout_s} s")

    def wait_ready(self, timeout_s: float = ready_timeout_s_default) -> None:
        """Until every live node serves requests and exactly one says it leads."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [node for node in self.nodes if node.proc is not None and not node.alive()]
            if dead:
                raise RuntimeError(
                    f"{self.name} node {dead[0].index} exited "
                    f"(code {dead[0].proc.returncode if dead[0].proc else '?'}); log tail:\n"
                    + dead[0].log_tail()
                )
            live = [node for node in self.nodes if node.alive()]
            if all(self.probe_ready(node) for node in live) and self.leader_pid() is not None:
                return
            time.sleep(0.1)
        tails = "\n".join(f"--- node {n.index}\n{n.log_tail(8)}" for n in self.nodes)
        raise TimeoutError(f"{self.name}: not ready within {timeout_s} s\n{tails}")

    def kill(self, index: int) -> None:
        """kill -9 one node (a crash)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout_s: float = ready_timeout_s_default) -> None:
        """Start a stopped or killed node again on its old data and wait until it serves."""
        node = self.nodes[index]
        node.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not node.alive():
                raise RuntimeError(
                    f"{self.name} node {index} exited on restart:\n{node.log_tail()}"
                )
            if self.probe_ready(node):
                self.wait_ready(max(1.0, deadline - time.monotonic()))
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} node {index}: not serving {timeout_s} s after restart")

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL), by PID. The leader goes first, alone: an
        etcd leader stopped together with its followers waits seconds for a leadership
        transfer that cannot happen (about 7 s)."""
        for _ in range(len(self.nodes)):
            leader = None
            with contextlib.suppress(Exception):
                leader = self.leader_index()
            if leader is None:
                break
            self.nodes[leader].stop()  # the others may elect a new leader: stop it alone too
        for node in self.nodes:
            if node.alive() and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(cluster: Cluster, ready_timeout_s: float, ports: list[int] | None = None) -> Cluster:
    if ports is None:
        base = min(node.client_port for node in cluster.nodes)
        offsets = PORT_OFFSETS[cluster.name]
        ports = [port for port in range(base, base + 30) if port - base in offsets]
    busy = [port for port in ports if not port_free(port)]
    if busy:
        raise RuntimeError(f"{cluster.name}: ports already in use on 127.0.0.1: {busy}")
    try:
        for node in cluster.nodes:
            node.start()
        cluster.wait_ready(ready_timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _node_dir(base_dir: str | Path, system: str, index: int) -> Path:
    path = Path(base_dir) / system / f"n{index}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _http(url: str, body: bytes | None = None, timeout_s: float = 1.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, data=body, timeout=timeout_s) as response:
            return bytes(response.read())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# etcd


def _etcd_status(node: Node) -> dict[str, object] | None:
    raw = _http(f"http://127.0.0.1:{node.client_port}/v3/maintenance/status", b"{}")
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _etcd_is_leader(node: Node) -> bool | None:
    status = _etcd_status(node)
    if not status or "leader" not in status:
        return None
    header = status.get("header")
    member = header.get("member_id") if isinstance(header, dict) else None
    return member is not None and str(member) == str(status["leader"])


def _etcd_ready(node: Node) -> bool:
    raw = _http(f"http://127.0.0.1:{node.client_port}/health")
    return raw is not None and b'"health":"true"' in raw.replace(b" ", b"")


def start_etcd(
    base_dir: str | Path, base_port: int = 23790, ready_timeout_s: float = ready_timeout_s_default
) -> Cluster:
    """Three etcd members with default heartbeat (100 ms) and election timeout (1000 ms)."""
    peers = ",".join(f"n{i}=http://127.0.0.1:{base_port + 10 + i}" for i in range(NODES))
    nodes = []
    for i in range(NODES):
        data = _node_dir(base_dir, "etcd", i)
        client = f"http://127.0.0.1:{base_port + i}"
        peer = f"http://127.0.0.1:{base_port + 10 + i}"
        argv = [
            "etcd",
            f"--name=n{i}",
            f"--data-dir={data / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={peers}",
            "--initial-cluster-token=paxosd-bench",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=warn",
        ]
        nodes.append(Node(i, argv, base_port + i, data / "etcd.log"))
    cluster = Cluster("etcd", nodes, Path(base_dir), _etcd_is_leader, _etcd_ready)
    return _launch(cluster, ready_timeout_s)


# ---------------------------------------------------------------------------------------
# ZooKeeper


def four_letter_word(port: int, word: bytes, timeout_s: float = 1.0) -> bytes | None:
    """Send a ZooKeeper four-letter command (srvr, stat, ruok, mntr) and read to EOF."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(word)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
    except OSError:
        return None


def _zk_mode(node: Node) -> bytes | None:
    answer = four_letter_word(node.client_port, b"srvr")
    if not answer:
        return None
    for line in answer.splitlines():
        if line.startswith(b"Mode:"):
            return line.split(b":", 1)[1].strip()
    return None


def _zk_is_leader(node: Node) -> bool | None:
    mode = _zk_mode(node)
    return None if mode is None else mode == b"leader"


def _zk_ready(node: Node) -> bool:
    return _zk_mode(node) in (b"leader", b"follower")


def start_zookeeper(
    base_dir: str | Path, base_port: int = 21810, ready_timeout_s: float = ready_timeout_s_default
) -> Cluster:
    """Three ZooKeeper servers from Debian's package, forceSync=yes, separate dataLogDir."""
    servers = [
        f"server.{i + 1}=127.0.0.1:{base_port + 10 + i}:{base_port + 20 + i}" for i in range(NODES)
    ]
    classpath = [str(ZOOKEEPER_JAR)]
    if SLF4J_SIMPLE_JAR.exists():
        classpath.append(str(SLF4J_SIMPLE_JAR))  # logs to stderr instead of nowhere
    nodes = []
    for i in range(NODES):
        home = _node_dir(base_dir, "zk", i)
        data, log_dir = home / "data", home / "txlog"
        data.mkdir(exist_ok=True)
        log_dir.mkdir(exist_ok=True)
        (data / "myid").write_text(f"{i + 1}\n")
        config = home / "zoo.cfg"
        config.write_text(
            "\n".join(
                [
                    "tickTime=2000",
                    "initLimit=10",
                    "syncLimit=5",
                    f"dataDir={data}",
                    f"dataLogDir={log_dir}",
                    f"clientPort={base_port + i}",
                    "clientPortAddress=127.0.0.1",
                    "forceSync=yes",
                    "maxClientCnxns=0",
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=srvr,stat,ruok,mntr,conf",
                    "autopurge.purgeInterval=0",
                    *servers,
                    "",
                ]
            )
        )
        argv = [
            "java",
            f"-Xms{ZOOKEEPER_HEAP}",
            f"-Xmx{ZOOKEEPER_HEAP}",
            "-Djava.net.preferIPv4Stack=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            f"-Dzookeeper.log.dir={home}",
            "-cp",
            ":".join(classpath),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(config),
        ]
        nodes.append(Node(i, argv, base_port + i, home / "zookeeper.log"))
    cluster = Cluster("zk", nodes, Path(base_dir), _zk_is_leader, _zk_ready)
    return _launch(cluster, ready_timeout_s)


# ---------------------------------------------------------------------------------------
# PySyncObj


def resp_call(port: int, *args: bytes, timeout_s: float = 1.0) -> bytes | None:
    """One RESP command to 127.0.0.1:port; the reply's first line or bulk payload."""
    command = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(command)
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
            head, _, rest = data.partition(b"\r\n")
            if not head.startswith(b"$"):
                return head
            size = int(head[1:])
            if size < 0:
                return b""
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                rest += chunk
            return rest[:size]
    except (OSError, ValueError):
        return None


def _pso_is_leader(node: Node) -> bool | None:
    role = resp_call(node.client_port, b"ROLE")
    return None if role is None else role == b"leader"


def _pso_ready(node: Node) -> bool:
    raw = resp_call(node.client_port, b"STATUS")
    try:
        status = json.loads(raw) if raw else None
    except ValueError:
        return False
    if not isinstance(status, dict):
        return False
    return status.get("leader") not in (None, "None") and bool(status.get("has_quorum"))


def start_pysyncobj(
    base_dir: str | Path,
    base_port: int = 24800,
    ready_timeout_s: float = ready_timeout_s_default,
    batch: bool = False,
    sync_journal: bool = False,
) -> Cluster:
    """Three bench/pysyncobj_server.py processes (RESP on B+i, Raft on B+10+i).

    batch=False sets appendEntriesUseBatch=False (an entry is sent at once rather than on the
    next 50 ms tick): what a latency-minded user configures. sync_journal adds an msync after
    every journal record, which PySyncObj does not do (see the server's docstring)."""
    python = pysyncobj_python()
    if python is None:
        raise RuntimeError("pysyncobj is not installed (bench/setup.sh)")
    raft = [f"127.0.0.1:{base_port + 10 + i}" for i in range(NODES)]
    nodes = []
    for i in range(NODES):
        home = _node_dir(base_dir, "pysyncobj", i)
        argv = [
            python,
            str(BENCH_DIR / "pysyncobj_server.py"),
            f"--self={raft[i]}",
            "--partners=" + ",".join(raft[:i] + raft[i + 1 :]),
            f"--client-port={base_port + i}",
            f"--data-dir={home / 'data'}",
        ]
        if batch:
            argv.append("--batch")
        if sync_journal:
            argv.append("--sync-journal")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        nodes.append(Node(i, argv, base_port + i, home / "server.log", env=env))
    name = "pysyncobj"
    cluster = Cluster(name, nodes, Path(base_dir), _pso_is_leader, _pso_ready)
    return _launch(cluster, ready_timeout_s)


# ---------------------------------------------------------------------------------------
# paxosd


def _paxosd_status(node: Node) -> dict[str, object] | None:
    raw = _http(f"http://127.0.0.1:{node.http_port}/v1/status")
    try:
        status = json.loads(raw) if raw else None
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


def _paxosd_is_leader(node: Node) -> bool | None:
    status = _paxosd_status(node)
    return None if status is None else status.get("role") == "leader"


def _paxosd_ready(node: Node) -> bool:
    status = _paxosd_status(node)
    return status is not None and status.get("leader") is not None


def start_paxosd(
    base_dir: str | Path,
    base_port: int | None = None,
    ready_timeout_s: float = ready_timeout_s_default,
    nodes: int = NODES,
    batch_commands_max: int | None = None,
    early_accepts: bool = True,
    snapshot_every_slots: int | None = None,
) -> Cluster:
    """`nodes` paxosd node processes (fsync on), laid out as `paxosd up` does from a free
    base port; the cluster's client port is each node's RESP port."""
    if base_port is None:
        base_port = free_layout(nodes)
    data_dir = Path(base_dir) / "paxosd"
    members = []
    # A cluster id of its own: a stray node of another cluster that dials these ports is
    # refused at the handshake.
    for config in local_cluster(nodes, data_dir, base_port, f"paxosd-bench-{base_port}"):
        if batch_commands_max is not None:
            config = replace(config, batch_commands_max=batch_commands_max)
        config = replace(config, early_accepts=early_accepts, limits=_one_load_generator())
        if snapshot_every_slots is not None:
            config = replace(config, snapshot_every_slots=snapshot_every_slots)
        folder = config.data_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder.parent / f"node{config.node_id}.toml"
        path.write_text(to_toml(config))
        if not has_store(config):
            initialise(config)
        argv = [sys.executable, "-m", "paxosd", "node", "--config", str(path)]
        node = Node(config.node_id - 1, argv, config.me.resp[1], folder / "node.log")
        node.http_port = config.me.http[1]
        members.append(node)
    cluster = Cluster("paxosd", members, Path(base_dir), _paxosd_is_leader, _paxosd_ready)
    return _launch(cluster, ready_timeout_s, layout_ports(nodes, base_port))


def _one_load_generator() -> ClientLimits:
    """Client limits for a benchmark: every client connection comes from one address (the
    load generator's), so the per-address caps are lifted to the ports' caps."""
    limits = ClientLimits()
    return replace(
        limits,
        http=replace(limits.http, connections_per_address_max=limits.http.connections_max),
        resp=replace(limits.resp, connections_per_address_max=limits.resp.connections_max),
    )


STARTERS: dict[str, Callable[..., Cluster]] = {
    "paxosd": start_paxosd,
    "etcd": start_etcd,
    "zk": start_zookeeper,
    "pysyncobj": start_pysyncobj,
}


@contextlib.contextmanager
def cluster_of(
    system: str, base_dir: str | Path, base_port: int | None, **options: object
) -> Iterator[Cluster]:
    """`with cluster_of("zk", dir, 21810) as cluster:` - started, then always stopped."""
    cluster = STARTERS[system](base_dir, base_port, **options)
    try:
        yield cluster
    finally:
        cluster.stop()
