"""`paxosd status` and `paxosd endpoint health`: what each node says about the cluster.

Every endpoint is asked at once, each with its own short timeout, so a node that is paused
or gone costs one timeout, not one per node. Exit codes follow the table in
`paxosd.cli.common`: `status` exits 0 when a leader holds a quorum, 1 when nodes answer but
no leader does (no quorum), 2 when no node answers; `endpoint health` exits 0 when every
endpoint is healthy, 1 otherwise.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table

from paxosd.cli.common import (
    DONE,
    NO,
    NOT_RUNNING_HINT,
    Failure,
    connected,
    emit,
    endpoints_option,
    json_option,
    tidy,
    timeout_option_for,
)
from paxosd.client import Client, PaxosdError, Unavailable

__all__ = ["Summary", "endpoint", "health", "status", "summarize"]

T = TypeVar("T")

node_timeout_option = timeout_option_for(2.0, "Seconds to wait for each node.")


def _ask_each(client: Client, ask: Callable[[str], T]) -> list[T | PaxosdError]:
    """`ask(endpoint)` for every endpoint at once; a node's error is its answer."""

    def one(endpoint: str) -> T | PaxosdError:
        try:
            return ask(endpoint)
        except PaxosdError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(client.endpoints)) as pool:
        return list(pool.map(one, client.endpoints))


def _address(endpoint: str) -> str:
    return endpoint.removeprefix("http://").removeprefix("https://")


def _why(error: PaxosdError) -> str:
    if isinstance(error, Unavailable) and error.refused:
        return "connection refused"
    text = str(error)
    return "no answer in time" if "timed out" in text or "timeout" in text else text


@dataclass(frozen=True, slots=True)
class Summary:
    """What the answers add up to."""

    members: int  # the cluster's size, from the members a node lists
    answering: int
    leader: int | None
    ballot: str | None
    connected: int  # members the leader is connected to, itself included
    majority: int

    @property
    def quorum(self) -> bool:
        return self.leader is not None and self.connected >= self.majority

    def line(self) -> str:
        up = f"{self.answering} of {self.members} answering"
        if self.answering == 0:
            return f"no node answered ({up})"
        if self.quorum:
            return (
                f"leader: node {self.leader}, ballot {self.ballot}, {self.connected} of "
                f"{self.members} connected: quorum OK ({up})"
            )
        return f"no leader with a quorum: {up}; a quorum needs {self.majority}"

    def exit_code(self) -> int:
        if self.answering == 0:
            return 2
        return DONE if self.quorum else NO


def summarize(views: list[dict[str, Any]], endpoints: int) -> Summary:
    """A summary of the views of the nodes that answered (`endpoints` were asked)."""
    members = max((len(v.get("members") or []) for v in views), default=0) or endpoints
    majority = members // 2 + 1
    leaders = [v for v in views if v.get("role") == "leader"]
    if not leaders:
        return Summary(members, len(views), None, None, 0, majority)
    # Two nodes may both think they lead for a moment; the one with the higher ballot does.
    best = max(leaders, key=lambda v: _ballot_key(v.get("ballot")))
    me = best.get("node_id")
    linked = sum(1 for m in best.get("members") or [] if m.get("connected") or m.get("id") == me)
    return Summary(members, len(views), me, best.get("ballot"), max(linked, 1), majority)


def _ballot_key(ballot: Any) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(ballot).split("."))
    except ValueError:
        return (-1,)


def _cell(value: Any) -> str:
    """A value for the table: `-` for nothing, never Python's `None`."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _node_ids(views: list[dict[str, Any]]) -> dict[str, int]:
    """HOST:PORT of each member's HTTP API -> its node id, from any node that answered."""
    ids: dict[str, int] = {}
    for view in views:
        for member in view.get("members") or []:
            if member.get("http") and member.get("id") is not None:
                ids[str(member["http"])] = int(member["id"])
    return ids


@click.command()
@click.option(
    "--pid",
    "pid_of",
    metavar="NODE|leader",
    help="Print only the pid of node NODE (or of the leader), e.g. for `kill -9 $(...)`.",
)
@endpoints_option
@json_option
@node_timeout_option
def status(pid_of: str | None, endpoints: str, as_json: bool, timeout: float) -> None:
    """Every node's view: role, leader, ballot, chosen and applied slots, lag. Exit 0 if a
    leader holds a quorum, 1 if not, 2 if no node answers."""
    if pid_of is not None and pid_of != "leader" and not pid_of.isdigit():
        raise Failure(f"--pid {pid_of}: expected a node id or 'leader'", code="usage")
    with connected(endpoints, timeout) as client:
        answers = _ask_each(client, lambda e: client.status(e, timeout_s=timeout))
        asked = client.endpoints
    views = [a for a in answers if isinstance(a, dict)]
    summary = summarize(views, len(asked))
    if pid_of is not None:
        _print_pid(pid_of, summary, views)
        return
    ids = _node_ids(views)
    rows: list[dict[str, Any]] = []
    for endpoint, answer in zip(asked, answers, strict=True):
        address = _address(endpoint)
        if isinstance(answer, dict):
            rows.append({"endpoint": address, **answer})
        else:
            rows.append({"endpoint": address, "node_id": ids.get(address), "error": _why(answer)})
    if as_json:
        summary_data = {
            "members": summary.members,
            "answering": summary.answering,
            "leader": summary.leader,
            "ballot": summary.ballot,
            "connected": summary.connected,
            "quorum": summary.quorum,
        }
        emit(True, {"summary": summary_data, "nodes": rows}, "")
        sys.exit(summary.exit_code())
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for column in ("node", "address", "role", "leader", "ballot", "commit", "applied", "lag"):
        table.add_column(column, no_wrap=True)
    table.add_column("pid", no_wrap=True)
    for row in sorted(rows, key=lambda r: (r.get("node_id") is None, r.get("node_id") or 0)):
        if "error" in row:
            cells = [_cell(row.get("node_id")), row["endpoint"], "[red]unreachable[/red]"]
            table.add_row(*cells, *["-"] * 6)
            continue
        role = _cell(row.get("role"))
        table.add_row(
            _cell(row.get("node_id")), row["endpoint"],
            f"[bold]{role}[/bold]" if role == "leader" else role,
            _cell(row.get("leader")), _cell(row.get("ballot")), _cell(row.get("commit")),
            _cell(row.get("applied")), _cell(row.get("lag")), _cell(row.get("pid")),
        )  # fmt: skip
    console = Console()
    console.print(table)
    for row in rows:
        if "error" in row:
            console.print(f"{row['endpoint']}: {row['error']}", style="dim", highlight=False)
    for line in _trouble(rows):
        console.print(line, style="yellow", highlight=False)
    if summary.answering == 0:
        raise Failure(summary.line(), code="unavailable", hint=NOT_RUNNING_HINT)
    console.print(summary.line() if summary.quorum else f"[red]{summary.line()}[/red]")
    sys.exit(summary.exit_code())


def _trouble(rows: list[dict[str, Any]]) -> list[str]:
    """A line for each node that is damaged, or rebuilding and waiting (and for whom)."""
    lines = []
    for row in sorted(rows, key=lambda r: r.get("node_id") or 0):
        node = row.get("node_id")
        if row.get("role") == "damaged":
            lines.append(f"node {node} is damaged: {row.get('damage') or 'see its log'}")
        waiting = row.get("rebuild_waiting_for")
        if row.get("rebuilding") and isinstance(waiting, dict) and waiting:
            named = ", ".join(f"node {peer} ({why})" for peer, why in sorted(waiting.items()))
            lines.append(
                f"node {node} is rebuilding and waits for {named}: it votes again once every "
                "other member has reported"
            )
    return lines


def _print_pid(pid_of: str, summary: Summary, views: list[dict[str, Any]]) -> None:
    node = summary.leader if pid_of == "leader" else int(pid_of)
    pid = next((v.get("pid") for v in views if node is not None and v.get("node_id") == node), None)
    if pid is None:
        what = "no node leads" if node is None else f"node {node} did not answer"
        raise Failure(f"no pid to print: {what}", code="not_found", exit_code=NO)
    click.echo(pid)


@click.group()
def endpoint() -> None:
    """Checks of each endpoint on its own."""


@endpoint.command()
@endpoints_option
@json_option
@node_timeout_option
def health(endpoints: str, as_json: bool, timeout: float) -> None:
    """Ask each endpoint whether it is healthy (up, and knows a leader). Exit 0 if every
    endpoint is, 1 if any is not."""

    def check(endpoint: str) -> dict[str, Any]:
        started = time.monotonic()
        answer = client.health(endpoint, timeout_s=timeout)
        return {**answer, "took_ms": round((time.monotonic() - started) * 1000, 1)}

    with connected(endpoints, timeout) as client:
        answers = _ask_each(client, check)
        asked = client.endpoints
    results: list[dict[str, Any]] = []
    for url, answer in zip(asked, answers, strict=True):
        if isinstance(answer, dict):
            results.append({
                "endpoint": _address(url), "healthy": bool(answer.get("ok")),
                "node_id": answer.get("node_id"), "leader": answer.get("leader"),
                "took_ms": answer.get("took_ms"), "error": answer.get("reason"),
            })  # fmt: skip
        else:
            results.append({
                "endpoint": _address(url), "healthy": False, "node_id": None, "leader": None,
                "took_ms": None, "error": _why(answer),
            })  # fmt: skip
    lines = []
    for r in results:
        node = f"node {r['node_id']}" if r["node_id"] is not None else "-"
        if r["healthy"]:
            lines.append(
                f"{r['endpoint']} {node}: healthy, leader {r['leader']}, took {r['took_ms']:g} ms"
            )
        elif r["node_id"] is not None:
            lines.append(f"{r['endpoint']} {node}: unhealthy: {r['error'] or 'not ok'}")
        else:
            lines.append(f"{r['endpoint']}: unreachable: {r['error']}")
    emit(as_json, tidy(results), "\n".join(lines))
    sys.exit(DONE if all(r["healthy"] for r in results) else NO)
