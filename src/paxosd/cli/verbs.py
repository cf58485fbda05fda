"""`paxosd get|put|delete|cas|lock|unlock|register|lookup|propose|query|status`: the
client from the command line. Endpoints default to the local cluster (`paxosd up`), or
PAXOSD_ENDPOINTS, or --endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from paxosd.client import Client, NotHolder, OutcomeUnknown, PaxosdError

console = Console()

endpoints_option = click.option(
    "--endpoints",
    envvar="PAXOSD_ENDPOINTS",
    default="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
    show_default=True,
    help="Comma-separated HOST:PORT of the nodes' HTTP API.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
timeout_option = click.option("--timeout", default=10.0, show_default=True, help="Seconds.")


def _value(text: str, as_string: bool) -> Any:
    """A value on the command line is JSON if it parses as JSON, else a string."""
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _run(endpoints: str, timeout: float, action: Callable[[Client], Any]) -> Any:
    try:
        with Client(endpoints, timeout_s=timeout) as client:
            return action(client)
    except OutcomeUnknown as error:
        click.echo(f"outcome unknown: {error}", err=True)
        click.echo("the write may or may not have happened; read the key to find out", err=True)
        sys.exit(3)
    except PaxosdError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


@click.command()
@click.argument("key")
@endpoints_option
@json_option
@timeout_option
def get(key: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Print KEY's value (linearizable read). Exit 1 if the key does not exist."""
    found = _run(endpoints, timeout, lambda c: c.get(key))
    if found is None:
        _emit(as_json, {"key": key, "value": None, "revision": 0}, f"{key}: not found")
        sys.exit(1)
    data = {"key": found.key, "value": found.value, "revision": found.revision}
    _emit(as_json, data, _show(found.value))


@click.command()
@click.argument("key")
@click.argument("value")
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as a string, not JSON.")
@endpoints_option
@json_option
@timeout_option
def put(
    key: str, value: str, as_string: bool, endpoints: str, as_json: bool, timeout: float
) -> None:
    """Set KEY to VALUE (JSON if it parses, e.g. 1, "a", [1,2], else a string)."""
    revision = _run(endpoints, timeout, lambda c: c.put(key, _value(value, as_string)))
    _emit(as_json, {"key": key, "revision": revision}, f"OK (revision {revision})")


@click.command()
@click.argument("key")
@endpoints_option
@json_option
@timeout_option
def delete(key: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Delete KEY."""
    existed = _run(endpoints, timeout, lambda c: c.delete(key))
    _emit(as_json, {"key": key, "existed": existed}, "deleted" if existed else "no such key")


@click.command()
@click.argument("key")
@click.argument("expected")
@click.argument("value")
@click.option(
    "--absent", is_flag=True, help="Succeed only if KEY does not exist (EXPECTED is ignored)."
)
@endpoints_option
@json_option
@timeout_option
def cas(
    key: str, expected: str, value: str, absent: bool, endpoints: str, as_json: bool,
    timeout: float,
) -> None:  # fmt: skip
    """Set KEY to VALUE only if it holds EXPECTED. Exit 1 if it did not."""
    old = None if absent else _value(expected, False)
    outcome = _run(endpoints, timeout, lambda c: c.cas(key, old, _value(value, False)))
    data = {"succeeded": outcome.succeeded, "value": outcome.value, "revision": outcome.revision}
    text = "OK" if outcome.succeeded else f"not swapped: {key} holds {_show(outcome.value)}"
    _emit(as_json, data, text)
    sys.exit(0 if outcome.succeeded else 1)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--ttl", default=10.0, show_default=True, help="Lease in seconds.")
@click.option("--owner", help="Owner name (default: one made for this call).")
@click.option("--wait", "wait_s", default=30.0, show_default=True, help="Seconds to wait.")
@endpoints_option
@json_option
@timeout_option
def lock(
    name: str, command: tuple[str, ...], ttl: float, owner: str | None, wait_s: float,
    endpoints: str, as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Take lock NAME. With a COMMAND (after --), hold it while the command runs, with the
    fencing token in $PAXOSD_FENCING_TOKEN; without, print the token and keep the lease
    for --ttl seconds (release it with `paxosd unlock NAME --owner OWNER`)."""
    owner = owner or f"cli-{os.getpid()}"
    if command:

        def hold(client: Client) -> int:
            with client.lock(name, ttl=ttl, owner=owner, wait_s=wait_s) as token:
                env = dict(os.environ, PAXOSD_FENCING_TOKEN=str(token))
                return subprocess.call(list(command), env=env)

        sys.exit(_run(endpoints, timeout, hold))
    grant = _run(endpoints, timeout, lambda c: c.acquire(name, owner, ttl))
    data = {
        "acquired": grant.acquired, "owner": grant.owner, "fencing_token": grant.fencing_token,
        "expires_in_ms": grant.expires_in_ms,
    }  # fmt: skip
    if grant.acquired:
        _emit(as_json, data, f"acquired {name} as {owner}: fencing token {grant.fencing_token}")
    else:
        _emit(as_json, data, f"{name} is held by {grant.owner}")
        sys.exit(1)


@click.command()
@click.argument("name")
@click.option("--owner", required=True, help="The owner that holds the lock.")
@endpoints_option
@json_option
@timeout_option
def unlock(name: str, owner: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Release lock NAME held by OWNER."""
    try:
        with Client(endpoints, timeout_s=timeout) as client:
            released = client.release(name, owner)
    except NotHolder as error:
        click.echo(f"not released: {error}", err=True)
        sys.exit(1)
    except PaxosdError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    _emit(as_json, {"released": released}, "released" if released else "was not held")


@click.command()
@click.argument("name")
@click.option("--owner", required=True)
@endpoints_option
@json_option
@timeout_option
def register(name: str, owner: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Claim NAME for OWNER, forever. Exit 1 if someone else has it."""
    result = _run(endpoints, timeout, lambda c: c.register(name, owner))
    data = {"registered": result.registered, "name": name, "owner": result.owner}
    if result.registered:
        _emit(as_json, data, f"{name} is yours ({owner})")
    else:
        _emit(as_json, data, f"{name} is taken by {result.owner}")
        sys.exit(1)


@click.command()
@click.argument("decision")
@click.argument("value")
@endpoints_option
@json_option
@timeout_option
def propose(decision: str, value: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """The book's propose(): offer VALUE for DECISION; print the value chosen."""
    chosen = _run(endpoints, timeout, lambda c: c.propose(decision, _value(value, False)))
    _emit(as_json, {"id": decision, "chosen": chosen}, _show(chosen))


@click.command()
@click.argument("decision")
@endpoints_option
@json_option
@timeout_option
def query(decision: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """The book's query(): print DECISION's chosen value. Exit 1 if undecided."""
    chosen = _run(endpoints, timeout, lambda c: c.query(decision))
    _emit(
        as_json,
        {"id": decision, "chosen": chosen},
        "undecided" if chosen is None else _show(chosen),
    )
    sys.exit(0 if chosen is not None else 1)


@click.command()
@endpoints_option
@json_option
@timeout_option
def status(endpoints: str, as_json: bool, timeout: float) -> None:
    """Every node's view: role, leader, ballot, slots, lag."""
    rows = []
    with Client(endpoints, timeout_s=timeout) as client:
        for endpoint in client.endpoints:
            try:
                rows.append(client.status(endpoint))
            except Exception as error:  # one node down must not hide the others
                rows.append({"endpoint": endpoint, "error": str(error)})
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table("node", "role", "leader", "ballot", "commit", "applied", "lag", "pid")
    for row in rows:
        if "error" in row:
            table.add_row(row["endpoint"], "[red]unreachable[/red]", "", "", "", "", "", "")
            continue
        table.add_row(
            str(row.get("node_id")), str(row.get("role")), str(row.get("leader")),
            str(row.get("ballot")), str(row.get("commit")), str(row.get("applied")),
            str(row.get("lag")), str(row.get("pid")),
        )  # fmt: skip
    console.print(table)
