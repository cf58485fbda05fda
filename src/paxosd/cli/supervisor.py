"""The supervisor of `paxosd up`: it keeps a local cluster's node processes running.

Theory of operation. A cluster of 2f+1 nodes serves while any f+1 run, so one node that dies
must not stop the others: the supervisor reports the death (in its own log and in the node's
log, with the exit code or signal), keeps the others running, and starts the node again after
a pause. The pause doubles after each quick failure (a node that exits within `stable_s` of
starting), so a node that cannot start does not spin; after `quick_failures_max` quick
failures in a row the supervisor gives up on that node and says where its log is. A node
that restarts is watched until it answers and has caught up with what its cluster chose.

The supervisor stops (and stops every node) when asked to - SIGINT (Ctrl-C), SIGTERM or
SIGHUP - or when it cannot go on: no node is running and none will be restarted.
"""

from __future__ import annotations

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

from paxosd.runtime import logs

__all__ = ["Backoff", "NodeProcess", "Supervisor", "exit_description"]

log = logging.getLogger("paxosd.up")

stop_timeout_s = 10.0  # after SIGTERM, then SIGKILL
status_timeout_s = 0.5  # asking a restarted node whether it has caught up


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
    """One node: how to start it, where it logs, and what the supervisor knows of it."""

    node_id: int
    argv: list[str]
    log_path: Path
    http: tuple[str, int]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None
    given_up: bool = False
    watching: bool = False  # restarted, not yet caught up
    answered: bool = False
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nodes = nodes
        self.restart = restart
        self.backoff = backoff or Backoff()
        self.pids_path = pids_path
        self.clock = clock
        self.majority = len(nodes) // 2 + 1
        self._node_logs = {n.node_id: self._node_logger(n, log_format) for n in nodes}

    # -- starting and stopping ------------------------------------------------------------

    def start(self, node: NodeProcess) -> None:
        if node._log_file is None or node._log_file.closed:
            node.log_path.parent.mkdir(parents=True, exist_ok=True)
            node._log_file = open(node.log_path, "ab")  # noqa: SIM115 - shared with the child
        node.process = subprocess.Popen(
            node.argv,
            stdout=node._log_file,
            stderr=node._log_file,
            # Its own session: Ctrl-C in the terminal reaches the supervisor, which stops the
            # nodes in order, instead of every node at once.
            start_new_session=True,
        )
        node.started_at = self.clock()
        node.starts += 1
        node.restart_at = None
        node.answered = False
        if node.starts > 1:
            node.watching = True
            self._event(node, "node_restarted", pid=node.process.pid, start=node.starts)
        self._write_pids()

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def stop_all(self) -> None:
        running = [n for n in self.nodes if n.running]
        for node in running:
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + stop_timeout_s
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._event(node, "node_killed", logging.WARNING, reason="no exit after SIGTERM")
                node.process.kill()
                node.process.wait()
        for node in self.nodes:
            if node._log_file is not None:
                node._log_file.close()

    # -- watching -------------------------------------------------------------------------

    def step(self) -> None:
        """Look at every node once: report exits, schedule and make restarts, watch the
        restarted ones catch up."""
        now = self.clock()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                self._exited(node, now)
            elif node.restart_at is not None and now >= node.restart_at:
                self.start(node)
            elif node.watching and node.running:
                self._watch(node)

    def can_go_on(self) -> bool:
        # `process is not None`, not `running`: a process that exited since `step` looked is
        # still to be reported (and perhaps restarted) by the next `step`.
        return any(n.process is not None or n.restart_at is not None for n in self.nodes)

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
        running = sum(1 for n in self.nodes if n.running)
        quorum = "holds" if running >= self.majority else "lost until a node is back"
        self._event(
            node, "node_exited", logging.WARNING, pid=pid, code=code,
            how=exit_description(code), uptime_s=round(uptime_s, 1),
            running=f"{running}/{len(self.nodes)}", quorum=quorum,
        )  # fmt: skip
        if not self.restart:
            self._event(node, "node_not_restarted", reason="restarts are off (--no-restart)")
            return
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
        """A restarted node: say when it answers again and when it has caught up."""
        host, port = node.http
        try:
            with urllib.request.urlopen(
                f"http://{host}:{port}/v1/status", timeout=status_timeout_s
            ) as answer:
                view: dict[str, Any] = json.loads(answer.read())
        except (OSError, ValueError):
            return
        if not node.answered:
            node.answered = True
            self._event(
                node, "node_answering", role=view.get("role"), leader=view.get("leader"),
                applied=view.get("applied"), commit=view.get("commit"),
                after_s=round(self.clock() - node.started_at, 1),
            )  # fmt: skip
        if view.get("leader") is not None and view.get("lag") == 0:
            node.watching = False
            self._event(
                node, "node_caught_up", role=view.get("role"), applied=view.get("applied"),
                after_s=round(self.clock() - node.started_at, 1),
            )  # fmt: skip

    # -- reporting ------------------------------------------------------------------------

    def _event(
        self, node: NodeProcess, name: str, level: int = logging.INFO, **fields: Any
    ) -> None:
        """An event about a node: in the supervisor's log and in the node's own log file, so
        that reading one node's log tells its whole story (its exits included)."""
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
        pids = [str(n.process.pid) for n in self.nodes if n.process is not None and n.running]
        temporary = self.pids_path.with_suffix(".tmp")
        temporary.write_text("\n".join(pids) + "\n")
        os.replace(temporary, self.pids_path)

    def close(self) -> None:
        for logger in self._node_logs.values():
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
