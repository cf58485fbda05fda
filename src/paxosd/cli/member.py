"""`paxosd member list`: the cluster's members, whether each votes, and how far each is.

One node that answers names the members (its configuration: voters and learners, the epoch)
and the leader it knows; then every member is asked for its own view at once, each with its
own short timeout, so that the table shows each one's role and applied slot as that member
says them, and how far it is behind the leader's commit. A member that refuses a peer's
connection (a protocol version too old or too new: a rolling upgrade gone too far) shows the
reason it gave. Exit codes: 0 a leader is known, 1 members answer but none leads, 2 no node
answers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from paxosd.api.member_handlers import members_view
from paxosd.cli.common import (
    DONE,
    NO,
    NOT_RUNNING_HINT,
    Failure,
    connected,
    emit,
    endpoints_option,
    json_option,
    timeout_option_for,
)
from paxosd.client import Client, PaxosdError

__all__ = ["member"]

node_timeout_option = timeout_option_for(2.0, "Seconds to wait for each node.")


@click.group()
def member() -> None:
    """The cluster's members: list them (voters, learners, each one's progress)."""


@member.command(name="list")
@endpoints_option
@node_timeout_option
@json_option
def list_(endpoints: str, timeout: float, as_json: bool) -> None:
    """Every member: voter or learner, its role and applied slot as it says them, its lag
    behind the leader's commit, and any peer it refuses (with the reason)."""
    with connected(endpoints, timeout) as client:
        first = _first_view(client, timeout)
        view = members_view(first)
        own = _ask_members(client, view["members"], timeout)
    rows = [_row(entry, own.get(entry.get("id"))) for entry in view["members"]]
    leader = next((r["id"] for r in rows if r["role"] == "leader"), view["leader"])
    commit = next((r["commit"] for r in rows if r["id"] == leader), None)
    for row in rows:
        applied = row["applied"]
        row["lag"] = None if commit is None or applied is None else max(0, commit - applied)
    notes = _refusals(own)
    data = {
        "cluster_id": view["cluster_id"],
        "epoch": view["epoch"],
        "leader": leader,
        "members": rows,
        "refusals": notes,
    }
    if as_json:
        emit(True, data, "")
    else:
        _table(rows, view, leader, notes)
    raise SystemExit(DONE if leader is not None else NO)


def _first_view(client: Client, timeout: float) -> dict[str, Any]:
    problems = []
    for endpoint in client.endpoints:
        try:
            return client.status(endpoint, timeout_s=timeout)
        except PaxosdError as error:
            problems.append(f"{endpoint.removeprefix('http://')}: {error}")
    raise Failure("no node answered: " + "; ".join(problems), hint=NOT_RUNNING_HINT)


def _ask_members(
    client: Client, members: list[dict[str, Any]], timeout: float
) -> dict[Any, dict[str, Any] | str]:
    """Each member's own status (or why it did not answer), asked at once."""

    def one(entry: dict[str, Any]) -> dict[str, Any] | str:
        try:
            return client.status(str(entry.get("http")), timeout_s=timeout)
        except PaxosdError as error:
            refused = getattr(error, "refused", False)
            return "unreachable" if refused else "no answer"

    with ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        answers = list(pool.map(one, members))
    return {entry.get("id"): answer for entry, answer in zip(members, answers, strict=True)}


def _row(entry: dict[str, Any], own: dict[str, Any] | str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": entry.get("id"),
        "http": entry.get("http"),
        "peer": entry.get("peer"),
        "voting": entry.get("voting"),
        "role": own if isinstance(own, str) else "no answer",
        "applied": None,
        "commit": None,
        "version": None,
        "protocol": None,
    }
    if isinstance(own, dict):
        protocol = own.get("protocol") or {}
        row.update(
            role=own.get("role"),
            applied=own.get("applied"),
            commit=own.get("commit"),
            version=own.get("version"),
            protocol=protocol.get("version"),
        )
    return row


def _refusals(own: dict[Any, dict[str, Any] | str]) -> list[str]:
    """Every refusal any member reports: which member refuses which, and the reason."""
    notes = []
    for answer in own.values():
        if not isinstance(answer, dict):
            continue
        for entry in answer.get("members") or []:
            if entry.get("refused"):
                notes.append(
                    f"node {entry.get('id')} refuses node {answer.get('node_id')}: "
                    f"{entry['refused']}"
                )
    return notes


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _table(rows: list[dict[str, Any]], view: dict[str, Any], leader: Any, notes: list[str]) -> None:
    console = Console()
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for column in ("node", "http", "voting", "role", "applied", "lag", "version", "protocol"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            *(_cell(row[k]) for k in ("id", "http", "voting", "role", "applied", "lag")),
            _cell(row["version"]),
            _cell(row["protocol"]),
        )
    console.print(table)
    epoch = view["epoch"]
    head = f"cluster {view['cluster_id']}, epoch {_cell(epoch)}: " + (
        f"leader node {leader}" if leader is not None else "no leader known"
    )
    console.print(head, highlight=False)
    for note in notes:
        console.print(note, highlight=False, style="red")
