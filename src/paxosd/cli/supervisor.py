"""The supervisor of `paxosd up`: it keeps a local cluster's node processes running.

Theory of operation. A cluster of 2f+1 nodes serves while any f+1 run, so one node that dies
must not stop the others: the supervisor reports the death (in its own log and in the node's
log, with the exit code or signal), keeps the others running, and starts the node again after
a pause. The pause doubles after each quick failure (a node that exits within `stable_s` of
starting), so a node that cannot start does not spin; after `quick_failures_max` quick
failures in a row the supervisor gives up on that node and says where its log is. A node
that restarts is watched until it answers and has caught up with what its cluster chose
(its applied slot has reached the commit point the leader reported when the node came back).

Before it starts a node, the supervisor looks at the node's data directory:

- **Its store is missing** (a lost disk): starting it would only be refused, again and again.
  The node is held (`node_store_lost`, once, with what to do in the supervisor's terminal)
  until its store is back, or until `paxosd rebuild N` asks for its rebuild: then it starts
  once with `--reinitialize` (`node_rebuilding`) and rebuilds from the others before it votes.
  `paxosd rebuild N` also rebuilds a node that runs damaged (it is stopped first).
- **Its store is locked by another process** (the node was started by hand): the supervisor
  says so once (`node_running_elsewhere`), lists that process in `cluster.pids`, stops it with
  the others, and starts its own node if that process exits.

The supervisor stops (and stops every node) when asked to - SIGINT (Ctrl-C), SIGTERM or
SIGHUP - or when it cannot go on: no node is running and none will be restarted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from paxosd.cli.control import SUPERVISOR_PID, Answer, answer_request, rebuild_requests, requests
from paxosd.runtime import logs
from paxosd.runtime.datadir import has_store_in
from paxosd.storage.fsutil import lock_held

__all__ = ["Backoff", "NodeProcess", "Supervisor", "exit_description"]

log = logging.getLogger("paxosd.up")

stop_timeout_s = 10.0  # after SIGTERM, then SIGKILL
status_timeout_s = 0.5  # asking a restarted node whether it has caught up
# How long to look for the pid of a node started by hand (its status names it).
elsewhere_patience_s = 30.0


@dataclass
class Backoff:
    """The pause before restarting a node: `delay_s`, doubled for each quick failure in a row,
    at most `delay_s_max`; `quick_failures_max` quick failures in a row and it gives up."""

    delay_s: float = 5.0
    delay_s_max: float = 60.0
    stable_s: float = 30.0
    quick_failures_max: int = 5

    def pause_s(self, quick_failures: int) -> float:
        return min(self.delay_s_max, self.delay_s * 2 ** max(0, quick_failures - 1))


@dataclass
class NodeProcess:
    """One node: how to start it, where it logs, and what the supervisor knows of it.
    `data_dir` (its store's directory) lets the supervisor see a lost store or a node
    started by hand before it starts one; without it, it just starts the command."""

    node_id: int
    argv: list[str]
    log_path: Path
    http: tuple[str, int]
    data_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None
    given_up: bool = False
    watching: bool = False  # (re)started, not yet caught up
    answered: bool = False
    catch_up_to: int | None = None  # the leader's commit when the node first answered
    held: str | None = None  # why it is not started: "store lost"
    elsewhere_pid: int | None = None  # a process of this node the supervisor did not start
    elsewhere_since: float | None = None  # looking for that process's pid since
    reinitialize_next: bool = False  # the next start is `--reinitialize` (a rebuild)
    # It joined the cluster later (`paxosd up --add`): a lost store is never rebuilt under
    # its id (its peers know it by the store it joined with); it is removed and joins again.
    joined: bool = False
    stopping_to_rebuild: bool = False
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of the node's process, whoever started it."""
        if self.process is not None:
            return self.process.pid
        return self.elsewhere_pid


def exit_description(code: int) -> str:
    """A process's return code as words: `killed by SIGKILL`, `exited 0 (clean shutdown)`."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = {0: "clean shutdown", 1: "could not start", 2: "bad config", 70: "fsync failed"}
    return f"exited {code}" + (f" ({meaning[code]})" if code in meaning else "")


class Supervisor:
    def __init__(
        self,
        nodes: list[NodeProcess],
        *,
        restart: bool = True,
        backoff: Backoff | None = None,
        log_format: str = "kv",
        pids_path: Path | None = None,
        control_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        add_node: Callable[[int], NodeProcess | str] | None = None,
    ) -> None:
        self.nodes = nodes
        self.restart = restart
        self.backoff = backoff or Backoff()
        self.pids_path = pids_path
        # Where `paxosd rebuild` leaves its requests (cli/control.py): the data directory.
        self.control_dir = control_dir
        # How to make the process of a node that joined (`paxosd up --add`), or why not.
        self.add_node = add_node
        self.clock = clock
        self.majority = len(nodes) // 2 + 1
        self._log_format = log_format
        self._node_logs = {n.node_id: self._node_logger(n, log_format) for n in nodes}
        if control_dir is not None:
            (control_dir / SUPERVISOR_PID).write_text(f"{os.getpid()}\n")

    # -- starting and stopping ------------------------------------------------------------

    def start(self, node: NodeProcess) -> None:
        """Start the node - unless its store is lost or another process runs it (see the
        module docstring)."""
        node.restart_at = None
        if self._elsewhere(node) or self._store_lost(node):
            self._write_pids()
            return
        if node._log_file is None or node._log_file.closed:
            node.log_path.parent.mkdir(parents=True, exist_ok=True)
            node._log_file = open(node.log_path, "ab")  # noqa: SIM115 - shared with the child
        rebuild = node.reinitialize_next
        node.reinitialize_next = False
        node.process = subprocess.Popen(
            node.argv + (["--reinitialize"] if rebuild else []),
            stdout=node._log_file,
            stderr=node._log_file,
            # Its own session: Ctrl-C in the terminal reaches the supervisor, which stops the
            # nodes in order, instead of every node at once.
            start_new_session=True,
        )
        node.started_at = self.clock()
        node.starts += 1
        node.answered = False
        node.catch_up_to = None
        if rebuild:
            node.watching = True
            self._event(
                node, "node_rebuilding", logging.WARNING, pid=node.process.pid,
                detail="started with --reinitialize: it rebuilds its state from every other "
                "member before it votes (what is left of its old store goes to a lost-<time> "
                "folder in its data directory)",
            )  # fmt: skip
        elif node.starts > 1:
            node.watching = True
            self._event(node, "node_restarted", pid=node.process.pid, start=node.starts)
        self._write_pids()

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def stop_all(self) -> None:
        running = [n for n in self.nodes if n.running]
        elsewhere = [n for n in self.nodes if n.elsewhere_pid is not None]
        for node in running:
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
        for node in elsewhere:  # part of this cluster, listed in cluster.pids: stopped too
            assert node.elsewhere_pid is not None
            _signal(node.elsewhere_pid, signal.SIGTERM)
        deadline = time.monotonic() + stop_timeout_s
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._event(node, "node_killed", logging.WARNING, reason="no exit after SIGTERM")
                node.process.kill()
                node.process.wait()
        for node in elsewhere:
            assert node.elsewhere_pid is not None
            while _alive(node.elsewhere_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(node.elsewhere_pid):
                self._event(node, "node_killed", logging.WARNING, reason="no exit after SIGTERM")
                _signal(node.elsewhere_pid, signal.SIGKILL)
        for node in self.nodes:
            if node._log_file is not None:
                node._log_file.close()

    # -- watching -------------------------------------------------------------------------

    def step(self) -> None:
        """Look at every node once: answer rebuild requests, report exits, schedule and make
        restarts, watch the restarted ones catch up."""
        self._answer_requests()
        now = self.clock()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                self._exited(node, now)
            elif node.elsewhere_since is not None:
                self._watch_elsewhere(node, now)
            elif node.restart_at is not None and now >= node.restart_at:
                self.start(node)
            elif node.held is not None and node.data_dir is not None:
                if has_store_in(node.data_dir):  # restored: start it as usual
                    node.held = None
                    self._event(node, "node_store_back", detail="its store is back: starting")
                    self.start(node)
            elif node.watching and node.running:
                self._watch(node)

    def can_go_on(self) -> bool:
        # `process is not None`, not `running`: a process that exited since `step` looked is
        # still to be reported (and perhaps restarted) by the next `step`. A held node counts:
        # it waits for an operator, who can still rebuild it.
        return any(
            n.process is not None
            or n.restart_at is not None
            or n.elsewhere_since is not None
            or n.held is not None
            for n in self.nodes
        )

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> str:
        """Supervise until `stop` is set (returns "asked") or nothing is left ("no node")."""
        while not stop.wait(poll_s):
            self.step()
            if not self.can_go_on():
                why = "no node is running and none will be restarted"
                logs.event(log, "supervisor_gives_up", logging.ERROR, reason=why)
                return "no node"
        return "asked"

    def _exited(self, node: NodeProcess, now: float) -> None:
        assert node.process is not None
        code = node.process.returncode
        uptime_s = now - node.started_at
        pid = node.process.pid
        node.process = None
        node.watching = False
        self._write_pids()
        running = self._running_count()
        quorum = "holds" if running >= self.majority else "lost until a node is back"
        self._event(
            node, "node_exited", logging.WARNING, pid=pid, code=code,
            how=exit_description(code), uptime_s=round(uptime_s, 1),
            running=f"{running}/{len(self.nodes)}", quorum=quorum,
        )  # fmt: skip
        if node.stopping_to_rebuild:  # `paxosd rebuild` stopped it: rebuild now
            node.stopping_to_rebuild = False
            node.reinitialize_next = True
            self.start(node)
            return
        self._schedule_restart(node, now, uptime_s)

    def _schedule_restart(self, node: NodeProcess, now: float, uptime_s: float) -> None:
        if not self.restart:
            self._event(node, "node_not_restarted", reason="restarts are off (--no-restart)")
            return
        if self._store_lost(node):
            return  # held until its store is back or it is rebuilt: said once
        node.quick_failures = node.quick_failures + 1 if uptime_s < self.backoff.stable_s else 0
        if node.quick_failures >= self.backoff.quick_failures_max:
            node.given_up = True
            self._event(
                node, "node_given_up", logging.ERROR, log=node.log_path,
                reason=f"exited {node.quick_failures} times in a row within "
                f"{self.backoff.stable_s:g} s of starting; see its log",
            )  # fmt: skip
            return
        pause = self.backoff.pause_s(node.quick_failures)
        node.restart_at = now + pause
        self._event(node, "node_restarting", in_s=round(pause, 1))

    def _watch(self, node: NodeProcess) -> None:
        """A (re)started node: say when it answers, and when it has caught up with the
        commit point its leader reported when it first answered."""
        view = self._status(node.http)
        # Another process on its port (a node started by hand) is not the one we watch.
        if view is None or node.process is None or view.get("pid") != node.process.pid:
            return
        if not node.answered:
            node.answered = True
            self._event(
                node, "node_answering", role=view.get("role"), leader=view.get("leader"),
                applied=view.get("applied"), commit=view.get("commit"),
                after_s=round(self.clock() - node.started_at, 1),
            )  # fmt: skip
        if view.get("rebuilding") or view.get("role") in (None, "damaged"):
            return
        leader = view.get("leader")
        if node.catch_up_to is None:
            if leader is None:
                return
            if leader == node.node_id:
                node.catch_up_to = int(view.get("commit") or 0)
            else:
                leader_view = self._status(self._http_of(leader))
                if leader_view is None or leader_view.get("role") != "leader":
                    return
                node.catch_up_to = int(leader_view.get("commit") or 0)
        applied = int(view.get("applied") or 0)
        if applied >= node.catch_up_to:
            node.watching = False
            self._event(
                node, "node_caught_up", role=view.get("role"), applied=applied,
                leader_commit=node.catch_up_to,
                after_s=round(self.clock() - node.started_at, 1),
            )  # fmt: skip

    # -- a lost store, a node started by hand -----------------------------------------------

    def _store_lost(self, node: NodeProcess) -> bool:
        """The node's store is missing: hold it (once said) rather than start it in vain."""
        if node.data_dir is None or node.reinitialize_next or has_store_in(node.data_dir):
            return False
        if node.held is None:
            node.held = "store lost"
            where = node.data_dir
            if node.joined:
                self._event(
                    node, "node_store_lost", logging.ERROR, data_dir=where,
                    detail=f"node {node.node_id} has no store in {where}, so it is not "
                    "started. It joined the cluster later, and its peers know it by the store "
                    f"it joined with: remove it (paxosd member remove {node.node_id}) and join "
                    f"it again (paxosd up --add --id {node.node_id}"
                    f"{_data_dir_option(self.control_dir)})",
                )  # fmt: skip
                return True
            if self.control_dir is not None:
                how = (
                    f"run `paxosd rebuild {node.node_id}{_data_dir_option(self.control_dir)}` "
                    "in another terminal; or put its store back (it then starts as usual)"
                )
            else:  # no supervisor stays to take the request (paxosd up --no-wait)
                how = f"start it with `{_manual_rebuild(node)}`"
            self._event(
                node, "node_store_lost", logging.ERROR, data_dir=where,
                detail=f"node {node.node_id} has no store in {where}, so it is not started: "
                "a member that lost its store must not vote as if it remembered. To rebuild "
                f"it from the other members, {how}",
            )  # fmt: skip
        return True

    def _elsewhere(self, node: NodeProcess) -> bool:
        """Another process holds the node's store: leave it running, and say so once."""
        if node.data_dir is None or not lock_held(node.data_dir):
            return False
        if node.elsewhere_since is None:
            node.elsewhere_since = self.clock()
            node.held = None
            self._event(
                node, "node_running_elsewhere", logging.WARNING, data_dir=node.data_dir,
                detail="another process runs this node (started by hand?): the supervisor "
                "leaves it running, lists it in cluster.pids, stops it with the cluster, and "
                "starts the node itself if that process exits",
            )  # fmt: skip
        self._watch_elsewhere(node, self.clock())
        return True

    def _watch_elsewhere(self, node: NodeProcess, now: float) -> None:
        assert node.elsewhere_since is not None
        if node.elsewhere_pid is None:
            view = self._status(node.http)
            pid = view.get("pid") if view is not None else None
            if isinstance(pid, int) and _alive(pid):
                node.elsewhere_pid = pid
                self._write_pids()  # before the line that says so (a reader may act on it)
                self._event(node, "node_found", pid=pid, detail="listed in cluster.pids")
            elif node.data_dir is not None and not lock_held(node.data_dir):
                self._elsewhere_gone(node, now, pid=None)
            elif now - node.elsewhere_since > elsewhere_patience_s:
                node.elsewhere_since = now  # keep looking, quietly
            return
        if not _alive(node.elsewhere_pid):
            self._elsewhere_gone(node, now, pid=node.elsewhere_pid)

    def _elsewhere_gone(self, node: NodeProcess, now: float, pid: int | None) -> None:
        node.elsewhere_pid = None
        node.elsewhere_since = None
        self._write_pids()
        running = self._running_count()
        self._event(
            node, "node_exited", logging.WARNING, pid=pid if pid is not None else "unknown",
            how="exited (started outside the supervisor: its exit code is not known here)",
            running=f"{running}/{len(self.nodes)}",
        )  # fmt: skip
        self._schedule_restart(node, now, uptime_s=self.backoff.stable_s)

    # -- rebuild requests (paxosd rebuild N) ------------------------------------------------

    def _answer_requests(self) -> None:
        if self.control_dir is None:
            return
        for node_id, token in rebuild_requests(self.control_dir):
            answer = self.rebuild(node_id)
            logs.event(
                log, "rebuild_requested", logging.WARNING if answer.accepted else logging.INFO,
                node=node_id, accepted=answer.accepted, detail=answer.detail,
            )  # fmt: skip
            answer_request(self.control_dir, node_id, token, answer)
        for node_id, token in requests(self.control_dir, "add"):
            answer = self.add(node_id)
            logs.event(log, "add_requested", node=node_id, accepted=answer.accepted,
                       detail=answer.detail)  # fmt: skip
            answer_request(self.control_dir, node_id, token, answer, kind="add")

    def add(self, node_id: int) -> Answer:
        """Start, and from now on supervise, a node that has just joined (`paxosd up --add`)."""
        known = next((n for n in self.nodes if n.node_id == node_id), None)
        if known is not None:
            # A replaced node (`--add --id N`): its config file is the joined one now, which
            # the supervisor's command line for it names; start it unless it runs.
            known.joined = True
            if known.held is not None:
                known.held = None
                self.start(known)
            if known.pid is not None:
                return Answer(True, f"node {node_id} runs (pid {known.pid})")
            if known.restart_at is not None:
                return Answer(True, f"node {node_id} starts again shortly")
            return Answer(False, f"node {node_id} is supervised, and not running")
        made = self.add_node(node_id) if self.add_node is not None else "no way to add nodes"
        if isinstance(made, str):
            return Answer(False, made)
        self.nodes.append(made)
        self.majority = len(self.nodes) // 2 + 1
        self._node_logs[node_id] = self._node_logger(made, self._log_format)
        self.start(made)
        if made.process is None:
            return Answer(False, f"node {node_id} could not be started")
        return Answer(True, f"node {node_id} started (pid {made.process.pid})")

    def rebuild(self, node_id: int) -> Answer:
        """Rebuild a node whose store is lost or damaged (`paxosd rebuild`)."""
        node = next((n for n in self.nodes if n.node_id == node_id), None)
        if node is None:
            ids = ",".join(str(n.node_id) for n in self.nodes)
            return Answer(False, f"there is no node {node_id} in this cluster (nodes {ids})")
        if node.elsewhere_pid is not None or node.elsewhere_since is not None:
            return Answer(
                False,
                f"node {node_id} runs outside the supervisor (pid {node.elsewhere_pid or '?'}): "
                "stop that process first (the supervisor then starts its own)",
            )
        if node.stopping_to_rebuild:
            return Answer(True, f"node {node_id} is already being stopped for its rebuild")
        if node.joined:
            return Answer(
                False,
                f"node {node_id} joined the cluster later: its peers know it by the store it "
                f"joined with, so it is not rebuilt under its id. Remove it (paxosd member "
                f"remove {node_id}) and join it again (paxosd up --add --id {node_id}"
                f"{_data_dir_option(self.control_dir)})",
            )
        if node.running:
            view = self._status(node.http)
            role = None if view is None else view.get("role")
            if role == "damaged":
                assert node.process is not None
                node.stopping_to_rebuild = True
                node.process.send_signal(signal.SIGTERM)
                return Answer(True, f"node {node_id} runs damaged: stopping it, then rebuilding it")
            if view is not None and view.get("rebuilding"):
                return Answer(False, f"node {node_id} is rebuilding already")
            why = "does not answer yet" if view is None else f"runs on its store (role {role})"
            return Answer(
                False,
                f"node {node_id} {why}: a rebuild is for a node whose store is lost or "
                "damaged. If its store really is bad, stop it first (kill its pid)",
            )
        node.held = None
        node.given_up = False
        node.quick_failures = 0
        node.reinitialize_next = True
        self.start(node)
        if node.process is None:
            return Answer(False, f"node {node_id} could not be started")
        return Answer(
            True,
            f"node {node_id} started with --reinitialize (pid {node.process.pid}): it "
            "rebuilds from every other member before it votes; the supervisor says "
            "node_caught_up when it is done",
        )

    # -- reporting ------------------------------------------------------------------------

    def _status(self, http: tuple[str, int] | None) -> dict[str, Any] | None:
        if http is None:
            return None
        host, port = http
        try:
            with urllib.request.urlopen(
                f"http://{host}:{port}/v1/status", timeout=status_timeout_s
            ) as answer:
                view = json.loads(answer.read())
        except (OSError, ValueError):
            return None
        return view if isinstance(view, dict) else None

    def _http_of(self, node_id: object) -> tuple[str, int] | None:
        return next((n.http for n in self.nodes if n.node_id == node_id), None)

    def _running_count(self) -> int:
        return sum(1 for n in self.nodes if n.running or n.elsewhere_pid is not None)

    def _event(
        self, node: NodeProcess, name: str, level: int = logging.INFO, **fields: Any
    ) -> None:
        """An event about a node: in the supervisor's log and in the node's own log file, so
        that reading one node's log tells its whole story (its exits included)."""
        # Its folder may be gone (a wiped data directory): the line makes it again, rather
        # than the supervisor dying of a FileNotFoundError.
        node.log_path.parent.mkdir(parents=True, exist_ok=True)
        logs.event(self._node_logs[node.node_id], name, level, node=node.node_id, **fields)

    def _node_logger(self, node: NodeProcess, log_format: str) -> logging.Logger:
        logger = logging.getLogger(f"paxosd.up.node{node.node_id}")
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        node.log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(node.log_path, mode="a", encoding="utf-8", delay=True)
        handler.setFormatter(logs.LineFormatter(log_format, node_id=node.node_id))
        logger.addHandler(handler)
        return logger  # propagates: the supervisor's own log gets the line too

    def _write_pids(self) -> None:
        if self.pids_path is None:
            return
        pids = [
            str(n.pid)
            for n in self.nodes
            if (n.process is not None and n.running) or n.elsewhere_pid is not None
        ]
        temporary = self.pids_path.with_suffix(".tmp")
        temporary.write_text("\n".join(pids) + "\n")
        os.replace(temporary, self.pids_path)

    def close(self) -> None:
        for logger in self._node_logs.values():
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
        if self.control_dir is not None:
            (self.control_dir / SUPERVISOR_PID).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for us.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _manual_rebuild(node: NodeProcess) -> str:
    """The command that rebuilds a node by hand (its config file is in its command line)."""
    argv = node.argv
    config = argv[argv.index("--config") + 1] if "--config" in argv else "FILE"
    return f"paxosd node --config {config} --reinitialize >> {node.log_path} 2>&1 &"


def _data_dir_option(control_dir: Path | None) -> str:
    if control_dir is None or control_dir.resolve() == Path("paxosd-data").resolve():
        return ""
    return f" --data-dir {control_dir}"
