"""`paxosd elect` and `paxosd instances`: leader election and service registration on
sessions (paxosd.client.session, paxosd.client.election; docs/leases.md).

`paxosd elect NAME VALUE -- COMMAND` campaigns in election NAME with a session of --ttl
seconds; once it leads it runs COMMAND (with $PAXOSD_FENCING_TOKEN, the leadership's
fencing token, and $PAXOSD_ELECTION_KEY) and stops it (SIGTERM, then SIGKILL after
--grace) the moment the session is lost, because from then on another candidate may lead.
When COMMAND exits the leadership is resigned and `elect` exits with COMMAND's code.
`paxosd elect --observe NAME` prints the leader now and at every change.

`paxosd instances register PREFIX NAME [VALUE] [-- COMMAND]` puts PREFIX/NAME as an
ephemeral key of a session: it lives while COMMAND runs (or until Ctrl-C / SIGTERM) and
vanishes when the process ends, or at most --ttl seconds after it dies.
`paxosd instances list PREFIX` prints the live ones; `paxosd instances watch PREFIX` prints
every arrival and departure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Any

import click

from paxosd.cli.common import (
    ERROR,
    Failure,
    Seconds,
    connected,
    emit,
    endpoints_option,
    json_option,
    timeout_option,
)
from paxosd.client import Client, Session
from paxosd.client.election import Leader, value_text

__all__ = ["elect", "instances"]

ttl_option = click.option(
    "--ttl",
    default=10.0,
    show_default=True,
    type=Seconds(0.6, 9_000_000_000),
    help="The session's lease in seconds (at least the cluster's shortest lease, 1.5 "
    "election timeouts).",
)
grace_option = click.option(
    "--grace",
    default=5.0,
    show_default=True,
    type=Seconds(),
    help="Seconds between SIGTERM and SIGKILL when the command must stop.",
)


def _check_command(command: tuple[str, ...]) -> None:
    if command and shutil.which(command[0]) is None:
        raise Failure(
            f"cannot run {command[0]!r}: no such command, or not executable",
            code="bad_request",
        )


class _Command:
    """The COMMAND run while the session lives, stopped (SIGTERM, SIGKILL after `grace`) the
    moment the session is lost. The session's keeper notices the loss in its own thread,
    which may be while this one is still starting the command (a process paused between
    winning and starting it, then resumed past its TTL): starting and stopping hold one
    lock, so a loss noticed first means the command never starts, and one noticed during the
    start stops the command as soon as it exists, never leaving it to run for a leadership
    already lost."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.lost = False

    def run(self, command: tuple[str, ...], env: dict[str, str], session: Session) -> int | None:
        """COMMAND's exit code, or None if the session was lost before it could start."""
        session.state  # noqa: B018 - notices (and calls stop for) a lapse the keeper has not seen
        with self.lock:
            if self.lost:
                return None
            try:
                self.process = subprocess.Popen(list(command), env=env)
            except OSError as error:
                raise Failure(
                    f"cannot run {command[0]!r}: {error.strerror}", code="bad_request"
                ) from None
        return self.process.wait()

    def stop(self, reason: str) -> None:
        """The session-loss callback."""
        with self.lock:
            self.lost = True
            process = self.process
            if process is None or process.poll() is not None:
                return
            click.echo(f"error: session lost ({reason}); stopping the command", err=True)
            process.send_signal(signal.SIGTERM)
        timer = threading.Timer(self.grace, _kill_if_running, (process,))
        timer.daemon = True
        timer.start()


def _kill_if_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()


class _StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM for a verb without COMMAND, which holds its session until
    asked to stop. This process handles both itself, also when it was started with SIGINT
    ignored (as a shell starts a command put in the background with `&` in a script, and as
    some CI runners start everything): left ignored, SIGINT would not stop a leader, which
    would keep its session alive and lead on until killed.

    Until `hold()`, a signal interrupts (KeyboardInterrupt, as Ctrl-C does; the session is
    closed on the way out). `hold()` comes before the process says it leads (or is
    registered), so that a signal sent the moment it says so is not lost; from then on a
    signal only sets `asked`, which `wait` polls. It raises nothing there, because an
    exception raised by a handler can land inside threading's own code, between taking a
    lock and the block that releases it; and the event is polled, never waited on, because
    the handler runs in the thread that waits and would block on the lock it holds. Once
    `wait` returns, a signal interrupts again: a second Ctrl-C cuts the resignation short."""

    numbers = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool) -> None:
        self.active = active
        self.holding = False
        self.asked = threading.Event()
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if self.active:
            self.previous = {number: signal.signal(number, self._handle) for number in self.numbers}
        return self

    def __exit__(self, *exc: object) -> None:
        for number, before in self.previous.items():
            if before is not None:  # None: a handler not set from Python, nothing to restore
                signal.signal(number, before)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.holding:
            raise KeyboardInterrupt
        self.asked.set()

    def hold(self) -> None:
        self.holding = True

    def wait(self, session: Session) -> None:
        """Block until SIGINT or SIGTERM, or until the session is lost."""
        self.hold()
        try:
            while not self.asked.is_set() and not session.lost.wait(0.2):
                pass
        finally:
            self.holding = False


def _leader_json(leader: Leader | None) -> dict[str, Any]:
    if leader is None:
        return {"leader": None}
    return {"leader": leader.value, "key": leader.key, "fencing_token": leader.revision}


@click.command()
@click.argument("name")
@click.argument("value", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--observe", is_flag=True, help="Print the leader now and at every change.")
@ttl_option
@grace_option
@endpoints_option
@json_option
@timeout_option
def elect(
    name: str, value: str | None, command: tuple[str, ...], observe: bool, ttl: float,
    grace: float, endpoints: str, as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Campaign in election NAME with VALUE and, once leading, run COMMAND (after --) until
    it exits or leadership is lost (then it is stopped). Without COMMAND, lead until Ctrl-C.
    With --observe, print who leads NAME, now and at every change, until Ctrl-C."""
    if observe:
        if value is not None or command:
            raise Failure("--observe takes the election's NAME only", code="usage")
        with connected(endpoints, timeout) as client, contextlib.suppress(KeyboardInterrupt):
            for leader in client.election(name).observe():
                text = "no leader" if leader is None else f"{leader.value}"
                if leader is not None:
                    text += f" (fencing token {leader.revision})"
                emit(as_json, _leader_json(leader), text)
                sys.stdout.flush()
        return
    if value is None:
        raise Failure("give the candidate's VALUE (or --observe)", code="usage")
    _check_command(command)
    child = _Command(grace)
    code: int | None = 0
    with _StopSignals(not command) as signals, connected(endpoints, timeout) as client:
        session = client.session(ttl, on_lost=child.stop)
        try:
            leadership = client.election(name).campaign(value, session)
            data = {"leader": value, "key": leadership.key, "fencing_token": leadership.token}
            if not command:
                signals.hold()
            emit(as_json, data, f"leading {name} as {value}: fencing token {leadership.token}")
            sys.stdout.flush()
            if command:
                env = dict(
                    os.environ,
                    PAXOSD_FENCING_TOKEN=str(leadership.token),
                    PAXOSD_ELECTION_KEY=leadership.key,
                )
                code = child.run(command, env, session)
            else:
                signals.wait(session)
            lost = session.state == "lost"
            if not lost:
                leadership.resign()
        finally:
            session.close()
    if lost:
        raise Failure(
            f"leadership of {name} lost: {session.keeper.reason}",
            code="leadership_lost",
            exit_code=ERROR,
        )
    sys.exit(code)


@click.group()
def instances() -> None:
    """Service registration: live instances under a prefix, each an ephemeral key."""


def _instance_key(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


@instances.command("register")
@click.argument("prefix")
@click.argument("name")
@click.argument("value", required=False, default="")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@ttl_option
@grace_option
@endpoints_option
@json_option
@timeout_option
def register(
    prefix: str, name: str, value: str, command: tuple[str, ...], ttl: float, grace: float,
    endpoints: str, as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Register instance NAME under PREFIX (the key PREFIX/NAME, holding VALUE) for as long
    as COMMAND runs (after --), or until Ctrl-C; it vanishes when this process ends."""
    _check_command(command)
    key = _instance_key(prefix, name)
    child = _Command(grace)
    code: int | None = 0
    with _StopSignals(not command) as signals, connected(endpoints, timeout) as client:
        session = client.session(ttl, on_lost=child.stop)
        try:
            revision = session.put(key, value.encode())
            if not command:
                signals.hold()
            emit(as_json, {"key": key, "lease": session.id, "revision": revision},
                 f"registered {key} (lease {session.id})")  # fmt: skip
            sys.stdout.flush()
            if command:
                code = child.run(command, dict(os.environ, PAXOSD_INSTANCE_KEY=key), session)
            else:
                signals.wait(session)
            lost = session.state == "lost"
        finally:
            session.close()
    if lost:
        raise Failure(f"registration of {key} lost: {session.keeper.reason}", code="session_lost")
    sys.exit(code)


def _live(client: Client, prefix: str) -> tuple[dict[str, str], int]:
    found = client.range(prefix=prefix.rstrip("/") + "/")
    return {kv.key: value_text(kv.value) for kv in found.kvs}, found.revision


@instances.command("list")
@click.argument("prefix")
@endpoints_option
@json_option
@timeout_option
def list_(prefix: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """The live instances under PREFIX (linearizable)."""
    with connected(endpoints, timeout) as client:
        live, revision = _live(client, prefix)
    lines = [f"{key} {text}".rstrip() for key, text in live.items()]
    emit(as_json, {"revision": revision, "instances": live}, "\n".join(lines) or "(none)")


@instances.command("watch")
@click.argument("prefix")
@endpoints_option
@json_option
@timeout_option
def watch(prefix: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """The live instances under PREFIX, then every arrival and departure, until Ctrl-C."""
    with connected(endpoints, timeout) as client, contextlib.suppress(KeyboardInterrupt):
        live, revision = _live(client, prefix)
        for key, text in live.items():
            _say(as_json, "up", key, text)
        with client.watch(prefix=prefix.rstrip("/") + "/", start_revision=revision + 1) as events:
            for event in events:
                if event.type == "delete":
                    _say(as_json, "down", event.key, "")
                else:
                    _say(as_json, "up", event.key, value_text(event.value))


def _say(as_json: bool, what: str, key: str, text: str) -> None:
    if as_json:
        click.echo(json.dumps({"event": what, "key": key, "value": text}))
    else:
        click.echo(f"{what} {key} {text}".rstrip())
    sys.stdout.flush()
