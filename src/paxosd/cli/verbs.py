"""`paxosd put|cas|register|lookup|propose|query`: the client from the command line (get,
del, txn and compact are in `paxosd.cli.kv`). Endpoints default to the local cluster
(`paxosd up`), or $PAXOSD_ENDPOINTS, or --endpoints. Exit codes: see `paxosd.cli.common`
(0 done, 1 a definite no, 2 an error, 3 outcome unknown). Locks are in `paxosd.cli.locks`,
status and health in `paxosd.cli.status`.
"""

from __future__ import annotations

import sys

import click

from paxosd.cli.common import (
    NO,
    connected,
    emit,
    endpoints_option,
    json_option,
    parse_value,
    show,
    timeout_option,
)
from paxosd.cli.lease import LEASE_ID

__all__ = ["cas", "lookup", "propose", "put", "query", "register"]

string_option = click.option(
    "--string", "as_string", is_flag=True, help="Take the values as text, not JSON."
)


@click.command()
@click.argument("key")
@click.argument("value")
@string_option
@click.option(
    "--lease",
    "lease_id",
    type=LEASE_ID,
    default=None,
    help="Attach KEY to this lease (hex, as `paxosd lease grant` prints it).",
)
@endpoints_option
@json_option
@timeout_option
def put(
    key: str, value: str, as_string: bool, lease_id: int | None, endpoints: str,
    as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Set KEY to VALUE (JSON if it parses, e.g. 1, "a", [1,2], else a string); with
    --lease, KEY is deleted when the lease ends."""
    parsed = parse_value(value, as_string)
    with connected(endpoints, timeout) as client:
        revision = client.put(key, parsed, lease=lease_id or 0)
    emit(as_json, {"key": key, "revision": revision}, f"OK (revision {revision})")


@click.command()
@click.argument("key")
@click.argument("expected")
@click.argument("value")
@click.option(
    "--absent", is_flag=True, help="Succeed only if KEY does not exist (EXPECTED is ignored)."
)
@string_option
@endpoints_option
@json_option
@timeout_option
def cas(
    key: str, expected: str, value: str, absent: bool, as_string: bool, endpoints: str,
    as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Set KEY to VALUE only if it holds EXPECTED. Exit 1 if it did not."""
    old = None if absent else parse_value(expected, as_string)
    new = parse_value(value, as_string)
    with connected(endpoints, timeout) as client:
        outcome = client.cas(key, old, new)
    data = {"succeeded": outcome.succeeded, "value": outcome.value, "revision": outcome.revision}
    if outcome.succeeded:
        text = f"OK (revision {outcome.revision})"
    elif outcome.revision == 0:
        text = f"not swapped: {key} does not exist"
    else:
        text = f"not swapped: {key} holds {show(outcome.value)}"
    emit(as_json, data, text)
    sys.exit(0 if outcome.succeeded else NO)


@click.command()
@click.argument("name")
@click.option("--owner", required=True, help="Who claims the name.")
@endpoints_option
@json_option
@timeout_option
def register(name: str, owner: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Claim NAME for OWNER, forever. Exit 1 if someone else has it."""
    with connected(endpoints, timeout) as client:
        result = client.register(name, owner)
    data = {"registered": result.registered, "name": name, "owner": result.owner}
    if result.registered:
        emit(as_json, data, f"{name} is yours ({owner})")
    else:
        emit(as_json, data, f"{name} is taken by {result.owner}")
        sys.exit(NO)


@click.command()
@click.argument("name")
@endpoints_option
@json_option
@timeout_option
def lookup(name: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """Print the owner of NAME. Exit 1 if nobody has registered it."""
    with connected(endpoints, timeout) as client:
        owner = client.lookup(name)
    emit(as_json, {"name": name, "owner": owner}, owner or f"{name}: not registered")
    sys.exit(0 if owner is not None else NO)


@click.command()
@click.argument("decision")
@click.argument("value")
@string_option
@endpoints_option
@json_option
@timeout_option
def propose(
    decision: str, value: str, as_string: bool, endpoints: str, as_json: bool, timeout: float
) -> None:
    """The book's propose(): offer VALUE for DECISION; print the value chosen (yours, or
    one chosen before)."""
    offered = parse_value(value, as_string)
    with connected(endpoints, timeout) as client:
        chosen = client.propose(decision, offered)
    emit(as_json, {"id": decision, "chosen": chosen}, show(chosen))


@click.command()
@click.argument("decision")
@endpoints_option
@json_option
@timeout_option
def query(decision: str, endpoints: str, as_json: bool, timeout: float) -> None:
    """The book's query(): print DECISION's chosen value. Exit 1 if undecided."""
    with connected(endpoints, timeout) as client:
        chosen = client.query(decision)
    text = "undecided" if chosen is None else show(chosen)
    emit(as_json, {"id": decision, "chosen": chosen}, text)
    sys.exit(0 if chosen is not None else NO)
