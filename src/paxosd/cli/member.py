"""`paxosd member list`: the cluster's members, whether each votes, and how far each is;
`paxosd member transfer-leader N`: hand leadership to node N; `paxosd member add|promote|
remove N`: change the members through the log (one change at a time, learners first).

One node that answers names the members (its configuration: voters and learners, the epoch)
and the leader it knows; then every member is asked for its own view at once, each with its
own short timeout, so that the table shows each one's role and applied slot as that member
says them, and how far it is behind the leader's commit. A member that refuses a peer's
connection (a protocol version too old or too new: a rolling upgrade gone too far) shows the
reason it gave. Exit codes: 0 a leader is known, 1 members answer but none leads, 2 no node
answers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

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
from paxosd.client import Client, PaxosdError, admin

__all__ = ["member"]

node_timeout_option = timeout_option_for(2.0, "Seconds to wait for each node.")
# A handover not seen within this long is asked for again (the leader abandons one after an
# election timeout); a busy leader is asked again after `busy_pause_s`.
handover_watch_s = 3.0
busy_pause_s = 0.2
T = TypeVar("T")


@click.group()
def member() -> None:
    """The cluster's members: list them (voters, learners, each one's progress), change them
    (add a learner, promote it, remove a member), and hand leadership from one to another."""


@member.command(name="list")
@endpoints_option
@node_timeout_option
@json_option
def list_(endpoints: str, timeout: float, as_json: bool) -> None:
    """Every member: voter or learner, its role and applied slot as it says them, its lag
    behind the leader's commit, and any peer it refuses (with the reason)."""
    with connected(endpoints, timeout) as client:
        view = members_view(_first_view(client, timeout))
        own = _ask_members(client, view["members"], timeout)
        # The node that answered first may lag or have been removed (it keeps the epoch in
        # which it was): the members of the latest epoch any member reports are the members.
        latest = max(
            (a for a in own.values() if isinstance(a, dict)),
            key=lambda a: members_view(a)["epoch"] or 0,
            default=None,
        )
        if latest is not None and (members_view(latest)["epoch"] or 0) > (view["epoch"] or 0):
            view = members_view(latest)
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
        # Its store's incarnation id (hex), as it says it (runtime/incarnation.py).
        "incarnation": None,
    }
    if isinstance(own, dict):
        protocol = own.get("protocol") or {}
        row.update(
            role=own.get("role"),
            applied=own.get("applied"),
            commit=own.get("commit"),
            version=own.get("version"),
            protocol=protocol.get("version"),
            incarnation=own.get("incarnation"),
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


@member.command(name="transfer-leader")
@click.argument("target", type=click.IntRange(0))
@endpoints_option
@timeout_option_for(10.0, "Seconds to wait for the new leader.")
@json_option
def transfer_leader(target: int, endpoints: str, timeout: float, as_json: bool) -> None:
    """Hand leadership to node TARGET (for maintenance of the leader's machine). The leader
    stops forming new batches, waits until TARGET has applied everything, and tells it to
    take over at once: writes meanwhile wait, none fails."""
    started = time.monotonic()
    with connected(endpoints, min(timeout, 2.0)) as client:
        view = _first_view(client, min(timeout, 2.0))
        members = {m.get("id"): m for m in view.get("members") or []}
        if target not in members:
            raise Failure(f"node {target} is not a member (members: {sorted(members)})")
        leader = _leader_of(client, members, timeout)
        if leader == target:
            emit(as_json, {"from": leader, "to": target, "seconds": 0.0},
                 f"node {target} already leads")  # fmt: skip
            return
        if _hand_over(client, members, target, started + timeout, lambda now: now == target):
            seconds = round(time.monotonic() - started, 3)
            emit(as_json, {"from": leader, "to": target, "seconds": seconds},
                 f"node {target} leads now (was node {leader}), after {seconds} s")  # fmt: skip
            return
    raise Failure(
        f"node {target} did not take over within {timeout} s; node {leader} went on leading "
        "(a handover is abandoned after an election timeout; it was asked again until then)",
        hint=f"see `paxosd member list`: is node {target} up, and caught up?",
    )


def _hand_over(
    client: Client,
    members: dict[Any, dict[str, Any]],
    target: int,
    deadline: float,
    done: Callable[[Any], bool],
) -> Any:
    """Ask the leader to hand leadership to `target` until a leader `done` accepts leads
    (that leader), or the deadline passes (None). A handover the target cannot finish in an
    election timeout (it was slow to catch up) is abandoned by the leader: it is asked
    again, as is a leader that was busy (another handover or a change under way)."""
    while time.monotonic() < deadline:
        leader = _leader_of(client, members, max(deadline - time.monotonic(), 0.1))
        if done(leader):
            return leader
        with contextlib.suppress(_Busy):  # one under way already: watch it
            _ask_transfer(str(members[leader]["http"]), target)
        watch_until = min(deadline, time.monotonic() + handover_watch_s)
        while time.monotonic() < watch_until:
            try:
                status = client.status(str(members[target]["http"]), timeout_s=1.0)
            except PaxosdError:
                status = {}
            if status.get("leader") not in (None, leader) and done(status["leader"]):
                return status["leader"]
            time.sleep(0.05)
    return None


def _leader_of(client: Client, members: dict[Any, dict[str, Any]], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node, info in members.items():
            try:
                status = client.status(str(info.get("http")), timeout_s=1.0)
            except PaxosdError:
                continue
            if status.get("role") == "leader":
                return node
        time.sleep(0.1)
    raise Failure("no leader answers: nothing to hand over", hint=NOT_RUNNING_HINT)


def _ask_transfer(http: str, target: int) -> None:
    _post(http, "/v1/leader/transfer", {"to": target})


# -- changing the members (core/multi/epochs.py) ----------------------------------------------


@member.command(name="add")
@click.argument("node", type=click.IntRange(0))
@endpoints_option
@timeout_option_for(10.0, "Seconds to wait for the change to be chosen.")
@json_option
def add(node: int, endpoints: str, timeout: float, as_json: bool) -> None:
    """Add node NODE as a learner: it receives the log and catches up, and the leader
    promotes it to voter once it has (unless the nodes run with auto_promote = false: then
    `paxosd member promote NODE`). NODE must be in every member's config file; a new node
    in none joins with `paxosd node --join` (or `paxosd up --add`), which adds it itself."""

    def target(voters: list[int], learners: list[int]) -> tuple[list[int], list[int]]:
        if node in voters or node in learners:
            raise Failure(f"node {node} is a member already")
        return voters, [*learners, node]

    _change(endpoints, timeout, as_json, target, f"node {node} joined as a learner")


@member.command(name="promote")
@click.argument("node", type=click.IntRange(0))
@endpoints_option
@timeout_option_for(10.0, "Seconds to wait for the change to be chosen.")
@json_option
def promote(node: int, endpoints: str, timeout: float, as_json: bool) -> None:
    """Make the learner NODE a voter (the leader does it by itself once NODE is caught up,
    unless auto_promote = false). Refused while it is not caught up (within 90 % of the
    leader's log) or if the new voters that answer could not make a quorum."""

    def target(voters: list[int], learners: list[int]) -> tuple[list[int], list[int]]:
        if node not in learners:
            raise Failure(f"node {node} is not a learner", hint="add it first: paxosd member add")
        return [*voters, node], [n for n in learners if n != node]

    _change(endpoints, timeout, as_json, target, f"node {node} votes now")


@member.command(name="remove")
@click.argument("node", type=click.IntRange(0))
@endpoints_option
@timeout_option_for(10.0, "Seconds to wait for the change to be chosen.")
@json_option
def remove(node: int, endpoints: str, timeout: float, as_json: bool) -> None:
    """Remove NODE from the members (a voter or a learner). If NODE leads, it first hands
    leadership to another voter. The removed node stops campaigning; stop its process."""

    def target(voters: list[int], learners: list[int]) -> tuple[list[int], list[int]]:
        if node not in voters and node not in learners:
            raise Failure(f"node {node} is not a member")
        return [n for n in voters if n != node], [n for n in learners if n != node]

    _change(endpoints, timeout, as_json, target, f"node {node} was removed", hand_over=node)


def _change(
    endpoints: str,
    timeout: float,
    as_json: bool,
    target: Any,
    done: str,
    hand_over: int | None = None,
) -> None:
    """Ask the leader for the membership `target(voters, learners)` names, and wait until a
    member reports the new epoch with a leader."""
    started = time.monotonic()
    deadline = started + timeout
    with connected(endpoints, min(timeout, 2.0)) as client:
        view = _first_view(client, min(timeout, 2.0))
        members = {m.get("id"): m for m in view.get("members") or []}

        def ask() -> int:
            """Ask the leader (once another leads, if it is the node to remove) for the
            change; the epoch it is asked in."""
            leader = _leader_of(client, members, max(deadline - time.monotonic(), 0.1))
            if leader == hand_over:
                voters = _configuration(client, members[leader])[0]
                others = [v for v in voters if v != leader]
                if not others:
                    raise Failure(f"node {leader} is the only voter: it cannot be removed")
                leader = _hand_over(
                    client, members, others[0], deadline, lambda now: now != hand_over
                )
                if leader is None:
                    raise Failure(
                        f"node {hand_over} did not hand leadership over within {timeout} s"
                    )
            voters, learners = _configuration(client, members[leader])
            epoch = _configuration_epoch(client, members[leader])
            new_voters, new_learners = target(voters, learners)
            _post(str(members[leader]["http"]), "/v1/members",
                  {"voters": new_voters, "learners": new_learners})  # fmt: skip
            return epoch

        epoch_now = _until_not_busy(ask, deadline)
        while time.monotonic() - started < timeout:
            for info in members.values():
                try:
                    status = client.status(str(info.get("http")), timeout_s=1.0)
                except PaxosdError:
                    continue
                configuration = status.get("configuration") or {}
                if configuration.get("epoch", 0) > epoch_now and status.get("role") == "leader":
                    seconds = round(time.monotonic() - started, 3)
                    data = {"epoch": configuration["epoch"], "voters": configuration["voters"],
                            "learners": configuration["learners"], "leader": status["node_id"],
                            "seconds": seconds}  # fmt: skip
                    emit(as_json, data, f"{done} (epoch {data['epoch']}, node "
                         f"{data['leader']} leads), after {seconds} s")  # fmt: skip
                    return
            time.sleep(0.05)
    raise Failure(
        f"the change was not done within {timeout} s",
        hint="see `paxosd member list`: the voters of the new epoch must be up to elect a leader",
    )


def _configuration(client: Client, info: dict[str, Any]) -> tuple[list[int], list[int]]:
    configuration = client.status(str(info.get("http")), timeout_s=2.0).get("configuration") or {}
    return list(configuration.get("voters", [])), list(configuration.get("learners", []))


def _configuration_epoch(client: Client, info: dict[str, Any]) -> int:
    status = client.status(str(info.get("http")), timeout_s=2.0)
    return int((status.get("configuration") or {}).get("epoch", 0))


def _until_not_busy(ask: Callable[[], T], deadline: float) -> T:
    """`ask()` again while the leader answers that it is busy (core/multi/busy.py: not the
    leader any more, or a change or a handover under way), until the deadline."""
    while True:
        try:
            return ask()
        except _Busy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(busy_pause_s)


class _Busy(Failure):
    """The leader refused for a reason that passes by itself (HTTP 409 "busy")."""


def _post(http: str, path: str, body: dict[str, Any]) -> None:
    answer = admin.post(http, path, body, timeout_s=5)
    if answer.status == 0:
        raise Failure(f"the leader did not answer: {answer.message}")
    if not answer.ok:
        kind = _Busy if answer.busy else Failure
        raise kind(f"the leader refused: {answer.message or f'HTTP {answer.status}'}")
