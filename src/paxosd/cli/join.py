"""A new node joins a running cluster: `paxosd node --join ENDPOINT` and `paxosd up --add`.

Theory of operation. The new node is in no member's config file; the members learn its
identity and its addresses from the log (core/multi/configuration.py, `Joined`; runtime/
transport.py dials joined members at the addresses their record carries). In order:

1. ask ENDPOINT (any member) for the cluster: its id, its members with their addresses, its
   configuration; refuse an id that is a member already (to replace a node, remove it first)
   and a data directory that holds a store;
2. write the data directory's incarnation (runtime/incarnation.py) and its config file
   (`joined = true`: its members are the cluster's at this moment, not founding members);
3. ask the leader to add the node as a learner with its `Joined` record (`POST /v1/members`
   with a `join` object), and wait until a member reports the change;
4. make the node's store, its `Configured` record the configuration that added it (the node
   is a learner in it: it votes on nothing, and catches up from a snapshot and the log);
5. start the node (the caller), and report its progress (applied against the leader's
   commit) until it is a voter (the leader promotes it once caught up) or a caught-up learner.

Why the store is made after the change (3 before 4): a store always records a configuration
the node can start in, and a node with no vote needs the epoch that names it as a learner (a
store of the first epoch must name its node as a voter). A join cut short between 3 and 4 is
taken up again by the same command on the same directory: the recorded incarnation is this
directory's, so it only makes the store.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paxosd.cli.common import Failure
from paxosd.client import admin
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Configured
from paxosd.runtime import incarnation, logs, sqlite_pin
from paxosd.runtime.config import (
    ConfigError,
    Member,
    NodeConfig,
    Timeouts,
    format_contact,
    parse_address,
    to_toml,
)
from paxosd.runtime.configuration_json import configuration_from_json
from paxosd.runtime.datadir import has_store_in
from paxosd.storage import make_identity, open_store

log = logging.getLogger("paxosd.join")

# How long to wait for the leader to take the change, and for each HTTP answer.
change_wait_s = 30.0
answer_wait_s = 3.0
# How often progress is reported while the new node catches up.
progress_every_s = 1.0


@dataclass(frozen=True, slots=True)
class Cluster:
    """What a member says of its cluster."""

    cluster_id: str
    members: dict[int, Member]  # every member it knows the addresses of
    configuration: Configuration
    leader: int | None
    # The member's: every node of a cluster should share them.
    timeouts: Timeouts = field(default_factory=Timeouts)


def get_json(http: str, path: str, timeout_s: float = answer_wait_s) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{http}{path}", timeout=timeout_s) as answer:
        body = json.loads(answer.read())
    if not isinstance(body, dict):
        raise ValueError(f"{http}{path} answered {type(body).__name__}, not an object")
    return body


def fetch(endpoint: str) -> Cluster:
    """The cluster as the member at `endpoint` (HOST:PORT of its HTTP) knows it."""
    endpoint = endpoint.removeprefix("http://").rstrip("/")
    try:
        status = get_json(endpoint, "/v1/status")
        return cluster_of(status)
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as error:
        raise Failure(
            f"{endpoint} did not say what its cluster is: {error}",
            hint="give the HTTP address (HOST:PORT) of a running member",
            exit_code=1,
        ) from None


def cluster_of(status: dict[str, Any]) -> Cluster:
    members = {}
    for entry in status["members"]:
        node = entry["id"]
        members[node] = Member(
            node,
            parse_address(entry["peer"], f"node {node}'s peer"),
            parse_address(entry["http"], f"node {node}'s http"),
            parse_address(entry["resp"], f"node {node}'s resp"),
        )
    if "configuration" not in status:
        raise ValueError(f"node {status.get('node_id')} runs damaged: ask another member")
    leader = status.get("leader")
    timeouts = Timeouts()
    raw = status.get("timeouts")
    if isinstance(raw, dict):  # (a member of a release before joins says nothing)
        known = set(Timeouts.__dataclass_fields__)
        timeouts = Timeouts(**{k: v for k, v in raw.items() if k in known and type(v) is int})
    return Cluster(
        str(status["cluster_id"]),
        members,
        configuration_from_json(status["configuration"]),
        leader if type(leader) is int else None,
        timeouts,
    )


def local_layout(cluster: Cluster, node_id: int) -> Member | None:
    """Node `node_id`'s addresses if every member follows `paxosd up`'s layout (HTTP on
    base+i, peers on base+100+i, RESP on base-600+i, all on one host); None otherwise."""
    bases = set()
    hosts = set()
    for member in cluster.members.values():
        base = member.http[1] - member.id
        if (member.peer[1], member.resp[1]) != (base + 100 + member.id, base - 600 + member.id):
            return None
        bases.add(base)
        hosts |= {member.http[0], member.peer[0], member.resp[0]}
    if len(bases) != 1 or len(hosts) != 1:
        return None
    base, host = bases.pop(), hosts.pop()
    return Member(
        node_id, (host, base + 100 + node_id), (host, base + node_id), (host, base - 600 + node_id)
    )


def plan(
    cluster: Cluster,
    node_id: int,
    data_dir: Path,
    me: Member | None,
    config_path: Path,
) -> tuple[NodeConfig, bool]:
    """The new node's config, and whether its join was cut short after the change (then only
    its store is left to make). Failure, saying what to do, for what cannot join."""
    if not 1 <= node_id <= 255:
        raise Failure(f"a node id is from 1 to 255, not {node_id}", exit_code=2)
    if has_store_in(data_dir):
        raise Failure(
            f"{data_dir} holds a store already: a node joins with a new, empty data directory",
            hint=f"restart a node that joined before with: paxosd node --config {config_path}",
            exit_code=2,
        )
    configuration = cluster.configuration
    resumed = False
    if configuration.is_member(node_id):
        entry = configuration.joined_entry(node_id)
        mine = _own_incarnation(data_dir)
        if entry is None or mine is None or entry.incarnation != mine:
            raise Failure(
                f"node {node_id} is a member already ({configuration.describe()})",
                hint=f"to replace it, remove it first: paxosd member remove {node_id}; or "
                "join under a new id",
                exit_code=2,
            )
        resumed = True  # added with this directory's incarnation: only the store is missing
    if me is None:
        # A removed member the cluster still knows (a replaced machine) keeps its addresses;
        # a new id takes the next place of `paxosd up`'s layout.
        me = cluster.members.get(node_id) or local_layout(cluster, node_id)
        if me is None:
            raise Failure(
                "the members do not follow one local layout: give this node's addresses",
                hint="--peer HOST:PORT --http HOST:PORT --resp HOST:PORT",
                exit_code=2,
            )
    members = [m for n, m in sorted(cluster.members.items()) if configuration.is_member(n)]
    members = [m for m in members if m.id != node_id] + [me]
    try:
        config = NodeConfig(
            cluster.cluster_id, node_id, data_dir, tuple(sorted(members, key=lambda m: m.id)),
            timeouts=cluster.timeouts, joined=True,
        ).validate()  # fmt: skip
    except ConfigError as error:
        raise Failure(
            f"node {node_id} cannot join with these addresses: {error}", exit_code=2
        ) from None
    return config, resumed


def _own_incarnation(data_dir: Path) -> int | None:
    try:
        return incarnation.read(data_dir)
    except incarnation.BadIncarnation:
        return None


def prepare(config: NodeConfig, config_path: Path, resumed: bool) -> int:
    """Write the data directory's incarnation (kept when resuming) and the config file."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    value = incarnation.read(config.data_dir) if resumed else None
    if value is None:
        value = incarnation.record(config.data_dir, fsync=config.fsync)
    text = to_toml(config)
    temporary = config_path.with_name(config_path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(config_path)
    return value


def ask_to_join(cluster: Cluster, config: NodeConfig, value: int) -> Configuration:
    """Ask the leader to add the node as a learner with its identity; the configuration
    that added it, once a member reports it."""
    node = config.node_id
    joining = {"id": node, "incarnation": incarnation.show(value), "contact": format_contact(
        config.me)}  # fmt: skip
    deadline = time.monotonic() + change_wait_s
    members = dict(cluster.members)
    last = ""
    while time.monotonic() < deadline:
        view = _leader_view(members)
        if view is None:
            last = "no leader answers"
            time.sleep(0.2)
            continue
        current = configuration_from_json(view["configuration"])
        if current.is_member(node):
            entry = current.joined_entry(node)
            if entry is not None and entry.incarnation == value:
                return current
            raise Failure(
                f"node {node} became a member meanwhile, under another identity", exit_code=1
            )
        body = {"voters": list(current.voters), "learners": [*current.learners, node],
                "join": joining}  # fmt: skip
        leader_http = str(view["_http"])
        try:
            _post(leader_http, "/v1/members", body)
        except _Refused as error:
            last = error.message
            if error.busy:
                time.sleep(0.2)  # the leader moved, or another change is finishing
                continue
            raise Failure(f"the leader refused to add node {node}: {last}", exit_code=1) from None
        logs.event(log, "join_asked", node=node, leader=view["node_id"],
                   incarnation=incarnation.show(value))  # fmt: skip
        added = _wait_added(members, node, value, deadline)
        if added is not None:
            return added
        last = "the change was not reported in time"
    raise Failure(
        f"node {node} was not added within {change_wait_s:g} s: {last}",
        hint="see `paxosd member list`; running the same command again takes the join up",
        exit_code=1,
    )


def make_store(config: NodeConfig, configuration: Configuration) -> None:
    """The new node's store: the configuration that added it, from its first appearance."""
    store = open_store(
        config.data_dir,
        "sqlite" if config.storage == "sqlite" else "file",
        identity=make_identity(config.cluster_id, config.node_id),
        create=True,
        fsync=config.fsync,
        initial=[Configured(configuration)],
    )
    store.close()
    sqlite_pin.record(config.data_dir)


def join(
    endpoint: str, node_id: int, data_dir: Path, me: Member | None, config_path: Path
) -> NodeConfig:
    """Steps 1 to 4 of the module docstring: the node's config, its store made."""
    cluster = fetch(endpoint)
    config, resumed = plan(cluster, node_id, data_dir, me, config_path)
    value = prepare(config, config_path, resumed)
    logs.event(log, "join_started", node=node_id, cluster=cluster.cluster_id,
               epoch=cluster.configuration.epoch, members=cluster.configuration.describe(),
               config=config_path, resumed=resumed)  # fmt: skip
    if resumed:
        added = cluster.configuration
    else:
        try:
            added = ask_to_join(cluster, config, value)
        except Failure:
            # Not added: leave the directory as it was, so that nothing looks like a node.
            config_path.unlink(missing_ok=True)
            (data_dir / incarnation.INCARNATION_FILE).unlink(missing_ok=True)
            raise
    make_store(config, added)
    logs.event(log, "join_added", node=node_id, epoch=added.epoch,
               members=added.describe())  # fmt: skip
    return config


# A learner caught up this long and still not promoted: the leader's auto_promote is off, or
# the promotion is refused (paxosd member promote says why). Progress reports end there.
caught_up_wait_s = 10.0


def report_progress(config: NodeConfig, stop: Any, timeout_s: float | None = None) -> bool:
    """Log `join_progress` (the node's applied slot against the leader's commit) every
    second until the node votes, or is a learner that stays caught up without being promoted;
    True then. `stop` (a threading.Event) ends it early."""
    node = config.node_id
    me = f"{config.me.http[0]}:{config.me.http[1]}"
    members = {m.id: m for m in config.members}
    started = time.monotonic()
    caught_up_since: float | None = None
    while not stop.wait(progress_every_s):
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            return False
        try:
            own = get_json(me, "/v1/status")
        except (OSError, ValueError):
            continue
        configuration = own.get("configuration") or {}
        for entry in own.get("members") or []:  # joined members since: reach them too
            try:
                members[entry["id"]] = Member(
                    entry["id"], parse_address(entry["peer"], "peer"),
                    parse_address(entry["http"], "http"), parse_address(entry["resp"], "resp"),
                )  # fmt: skip
            except (KeyError, ConfigError):
                continue
        leader = own.get("leader")
        commit = None
        if leader in members:
            http = members[leader].http
            try:
                commit = get_json(f"{http[0]}:{http[1]}", "/v1/status").get("commit")
            except (OSError, ValueError):
                commit = None
        applied = own.get("applied")
        voting = (
            "voter" if node in configuration.get("voters", [])
            else "learner" if node in configuration.get("learners", []) else "not a member"
        )  # fmt: skip
        lag = None if commit is None or applied is None else max(0, commit - applied)
        logs.event(log, "join_progress", node=node, voting=voting, applied=applied,
                   leader_commit=commit, lag=lag)  # fmt: skip
        if voting == "voter":
            logs.event(log, "join_done", node=node, epoch=configuration.get("epoch"),
                       detail="a voter now")  # fmt: skip
            return True
        if voting != "learner" or lag != 0:
            caught_up_since = None
        elif caught_up_since is None:
            caught_up_since = time.monotonic()
        elif time.monotonic() - caught_up_since >= caught_up_wait_s:
            logs.event(log, "join_done", node=node, epoch=configuration.get("epoch"),
                       detail="a learner, caught up, not promoted by the leader (auto_promote "
                       f"off, or refused): paxosd member promote {node}")  # fmt: skip
            return True
    return False


class _Refused(Exception):
    def __init__(self, message: str, busy: bool) -> None:
        super().__init__(message)
        self.message = message
        self.busy = busy  # it passes by itself (core/multi/busy.py): ask again shortly


def _post(http: str, path: str, body: dict[str, Any]) -> None:
    answer = admin.post(http, path, body, answer_wait_s)
    if answer.status == 0:
        raise _Refused(f"the leader did not answer: {answer.message}", busy=True)
    if not answer.ok:
        raise _Refused(answer.message or f"HTTP {answer.status}", busy=answer.busy)


def _leader_view(members: dict[int, Member]) -> dict[str, Any] | None:
    """The status of the member that says it leads (with its `_http`), if one does."""
    for member in members.values():
        http = f"{member.http[0]}:{member.http[1]}"
        try:
            status = get_json(http, "/v1/status", timeout_s=1.0)
        except (OSError, ValueError):
            continue
        if status.get("role") == "leader" and "configuration" in status:
            return {**status, "_http": http}
    return None


def _wait_added(
    members: dict[int, Member], node: int, value: int, deadline: float
) -> Configuration | None:
    while time.monotonic() < deadline:
        for member in members.values():
            try:
                status = get_json(f"{member.http[0]}:{member.http[1]}", "/v1/status", 1.0)
                current = configuration_from_json(status["configuration"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            entry = current.joined_entry(node)
            if entry is not None and entry.incarnation == value:
                return current
        time.sleep(0.1)
    return None
