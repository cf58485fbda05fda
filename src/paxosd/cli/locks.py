"""`paxosd lock|unlock|lock-status`: leased locks with fencing tokens from the command line.

`paxosd lock NAME -- COMMAND` holds the lock while COMMAND runs and stops COMMAND (SIGTERM)
the moment the lease is lost, because from then on another owner may hold the lock; the
fencing token in $PAXOSD_FENCING_TOKEN is what protects a resource from the gap.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import click

from paxosd.cli.common import (
    ERROR,
    NO,
    Failure,
    Seconds,
    connected,
    emit,
    endpoints_option,
    json_option,
    timeout_option,
)
from paxosd.client import Client, LockGrant, LockLost
from paxosd.client.lease import Acquisition
from paxosd.service.commands import ttl_ms_max, ttl_ms_min

__all__ = ["lock", "lock_status", "unlock"]

ttl_option = click.option(
    "--ttl",
    default=10.0,
    show_default=True,
    type=Seconds(ttl_ms_min / 1000, ttl_ms_max / 1000),
    help="Lease in seconds.",
)


def _remaining_s(grant: LockGrant) -> float | None:
    return None if grant.expires_in_ms is None else round(grant.expires_in_ms / 1000, 1)


@click.command()
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@ttl_option
@click.option("--owner", help="Owner name (default: cli-PID).")
@click.option(
    "--wait",
    "wait_s",
    default=30.0,
    show_default=True,
    type=Seconds(),
    help="Seconds to wait while another owner holds the lock (0: try once).",
)
@endpoints_option
@json_option
@timeout_option
def lock(
    name: str, command: tuple[str, ...], ttl: float, owner: str | None, wait_s: float,
    endpoints: str, as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Take lock NAME, waiting up to --wait seconds while another owner holds it (exit 1 if
    it stays held). With a COMMAND (after --), hold it while the command runs, with the
    fencing token in $PAXOSD_FENCING_TOKEN, and exit with the command's code; without, print
    the token and keep the lease for --ttl seconds (release it with
    `paxosd unlock NAME --owner OWNER`)."""
    owner = owner or f"cli-{os.getpid()}"
    if command:
        if shutil.which(command[0]) is None:
            raise Failure(
                f"cannot run {command[0]!r}: no such command, or not executable "
                "(the lock was not taken)",
                code="bad_request",
            )
        with connected(endpoints, timeout) as client:
            code = _hold_while(client, name, command, ttl=ttl, owner=owner, wait_s=wait_s)
        sys.exit(code)
    with connected(endpoints, timeout) as client:
        attempt = Acquisition(name, owner, ttl, wait_s, random.Random())
        while True:
            attempt.sending()
            grant = client.acquire(name, owner, ttl)
            if attempt.settle(grant) is not None:  # raises LockHeld when the wait is over
                break
            time.sleep(attempt.pause_s())
    data = {
        "acquired": True,
        "name": name,
        "owner": owner,
        "fencing_token": grant.fencing_token,
        "remaining_s": _remaining_s(grant),
    }
    emit(as_json, data, f"acquired {name} as {owner}: fencing token {grant.fencing_token}")


def _hold_while(
    client: Client, name: str, command: tuple[str, ...], *, ttl: float, owner: str, wait_s: float
) -> int:
    """Run `command` under the lock; its exit code. Stops it if the lease is lost."""
    child: list[subprocess.Popen[bytes]] = []

    def stop_the_command(error: LockLost) -> None:
        if child and child[0].poll() is None:
            click.echo(f"error: {error}; stopping the command", err=True)
            child[0].send_signal(signal.SIGTERM)

    try:
        with client.lock(
            name, ttl=ttl, owner=owner, wait_s=wait_s, on_lost=stop_the_command
        ) as token:
            env = dict(os.environ, PAXOSD_FENCING_TOKEN=str(int(token)))
            try:
                child.append(subprocess.Popen(list(command), env=env))
            except OSError as error:
                raise Failure(
                    f"cannot run {command[0]!r}: {error.strerror}", code="bad_request"
                ) from None
            return child[0].wait()
    except LockLost as error:
        raise Failure(f"{error} while the command ran", code="lock_lost", exit_code=ERROR) from None


@click.command()
@click.argument("name")
@click.option("--owner", required=True, help="The owner that holds the lock.")
@endpoints_option
@json_option
@timeout_option
def unlock(name: str, owner: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Release lock NAME held by OWNER. Exit 1 if OWNER does not hold it (another owner
    does, or the lease ended and someone else took it)."""
    try:
        with connected(endpoints, timeout) as client:
            released = client.release(name, owner)
    except Failure as failure:
        if failure.code != "not_holder":
            raise
        raise Failure(f"not released: {failure.message}", code="not_holder", exit_code=NO) from None
    emit(as_json, {"released": released}, "released" if released else "was not held")


@click.command("lock-status")
@click.argument("name")
@endpoints_option
@json_option
@timeout_option
def lock_status(name: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Who holds lock NAME, its fencing token and about how long its lease has left (exit 0
    whether it is held or free)."""
    with connected(endpoints, timeout) as client:
        grant = client.lock_status(name)
    data: dict[str, Any] = {
        "name": name,
        "held": grant.acquired,
        "owner": grant.owner if grant.acquired else None,
        "fencing_token": grant.fencing_token if grant.acquired else None,
        "remaining_s": _remaining_s(grant) if grant.acquired else None,
    }
    if not grant.acquired:
        text = f"{name}: free"
    else:
        left = _remaining_s(grant)
        about = f", about {left:g} s left" if left is not None else ""
        text = f"{name}: held by {grant.owner}, fencing token {grant.fencing_token}{about}"
    emit(as_json, data, text)
