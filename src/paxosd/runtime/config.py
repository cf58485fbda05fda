"""A node's configuration: from a TOML file and/or command-line flags, validated with errors
that say what to fix.

```toml
cluster_id = "paxosd-local"
node_id = 1
data_dir = "paxosd-data/node1"

[timeouts]            # optional; these are the defaults
tick_ms = 10
heartbeat_ms = 40
election_ms_min = 200
election_ms_max = 400
request_timeout_ms = 5000

[watch]               # optional; the watch hub's limits (paxosd.watch.WatchOptions)
progress_interval_ms = 600000

[[members]]           # every node of the cluster, this one included
id = 1
peer = "127.0.0.1:7101"
http = "127.0.0.1:7001"
resp = "127.0.0.1:6401"
```
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paxosd.api.limits import ClientLimits
from paxosd.core.multi.configuration import contact_chars_max
from paxosd.runtime.variants import VARIANTS
from paxosd.service.kv import KvLimits
from paxosd.watch.hub import WatchOptions

snapshot_every_slots_max = 1_000_000_000


class ConfigError(ValueError):
    """The configuration cannot work; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    peer: tuple[str, int]
    http: tuple[str, int]
    resp: tuple[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "peer": _show(self.peer),
            "http": _show(self.http),
            "resp": _show(self.resp),
        }


@dataclass(frozen=True, slots=True)
class Timeouts:
    tick_ms: int = 10
    heartbeat_ms: int = 40
    election_ms_min: int = 200
    election_ms_max: int = 400
    request_timeout_ms: int = 5000

    @property
    def lease_ttl_ms_min(self) -> int:
        """The shortest lease a node grants: 1.5 times the longest election timeout, rounded
        up (etcd's rule): a shorter lease would end at every change of leader."""
        return (3 * self.election_ms_max + 1) // 2


@dataclass(frozen=True, slots=True)
class NodeConfig:
    cluster_id: str
    node_id: int
    data_dir: Path
    members: tuple[Member, ...]
    timeouts: Timeouts = field(default_factory=Timeouts)
    storage: str = "file"
    fsync: bool = True
    # A planted bug (see paxosd.runtime.variants) for proving that the fault tests
    # catch it; never set in production.
    variant: str = "correct"
    # Client commands per slot at most; 1 turns batching off, for benchmarks that show what
    # batching buys.
    batch_commands_max: int = 2048
    # The leader sends its Accepts while its own fsync runs (core/multi/replica.py); false
    # waits for the fsync first, for benchmarks that show what that overlap buys.
    early_accepts: bool = True
    # A snapshot every this many applied slots (the log before it is then dropped): smaller
    # keeps the log and catch-up short, larger writes snapshots of a big state less often.
    snapshot_every_slots: int = 1000
    # The leader promotes a learner by itself once it has caught up (docs/operations.md,
    # "Shrink and grow"); false leaves it to `paxosd member promote`.
    auto_promote: bool = True
    # For fault tests only: a JSON file {"wall_offset_ms": N} the node re-reads every second
    # and adds to its wall clock (the system clock is shared by every node on a machine).
    clock_file: Path | None = None
    # This file was written by `paxosd node --join` (cli/join.py): its members are the ones the
    # cluster had when the node joined, not founding members. Such a node's store is never
    # made from this file (its membership is in the log), and a lost store is never rebuilt
    # under its id: it is removed and joins again (runtime/datadir.py).
    joined: bool = False
    # Connection caps and timeouts of the HTTP and RESP ports (the `[limits]` table).
    limits: ClientLimits = field(default_factory=ClientLimits)
    # The key-value store's limits on requests, answers and history (the `[kv]` table;
    # docs/data-model.md).
    kv: KvLimits = field(default_factory=KvLimits)
    # The watch hub's limits and progress intervals (the `[watch]` table).
    watch: WatchOptions = field(default_factory=WatchOptions)

    @property
    def me(self) -> Member:
        return next(m for m in self.members if m.id == self.node_id)

    def member(self, node_id: int) -> Member | None:
        return next((m for m in self.members if m.id == node_id), None)

    def validate(self) -> NodeConfig:
        if not self.cluster_id or len(self.cluster_id) > 64:
            raise ConfigError("cluster_id must be 1 to 64 characters")
        ids = [m.id for m in self.members]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"member ids must be unique, got {ids}")
        if not self.members:
            raise ConfigError("members is empty: list every node of the cluster, this one too")
        if self.node_id not in ids:
            raise ConfigError(f"node_id {self.node_id} is not among the members {sorted(ids)}")
        if any(i < 1 or i > 255 for i in ids):
            raise ConfigError("member ids must be between 1 and 255")
        addresses = [a for m in self.members for a in (m.peer, m.http, m.resp)]
        if len(set(addresses)) != len(addresses):
            raise ConfigError("two members (or two ports of one member) share an address")
        t = self.timeouts
        if not 1 <= t.tick_ms <= 1000:
            raise ConfigError("timeouts.tick_ms must be between 1 and 1000")
        if not t.tick_ms <= t.heartbeat_ms < t.election_ms_min <= t.election_ms_max:
            raise ConfigError(
                "timeouts must satisfy tick_ms <= heartbeat_ms < election_ms_min <= "
                "election_ms_max (a leader must heartbeat well within the election timeout)"
            )
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {sorted(VARIANTS)}, not {self.variant!r}")
        if self.storage not in ("file", "sqlite"):
            raise ConfigError(f"storage must be file or sqlite, not {self.storage!r}")
        if type(self.batch_commands_max) is not int or not 1 <= self.batch_commands_max <= 4096:
            raise ConfigError("batch_commands_max must be an integer from 1 to 4096")
        every = self.snapshot_every_slots
        if type(every) is not int or not 1 <= every <= snapshot_every_slots_max:
            raise ConfigError(
                f"snapshot_every_slots must be an integer from 1 to {snapshot_every_slots_max}"
            )
        return self


def _show(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def parse_address(text: Any, what: str) -> tuple[str, int]:
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} has an invalid port: {text!r}")
    return host or "127.0.0.1", int(port)


# A member that joined through the log carries its addresses in its record (core/multi/
# configuration.py, `Joined.contact`) as this text, so that every member can reach it without
# naming it in its config file: "peer=HOST:PORT http=HOST:PORT resp=HOST:PORT".
CONTACT_KEYS = ("peer", "http", "resp")


def format_contact(member: Member) -> str:
    """A member's addresses as a joined record carries them."""
    return " ".join(f"{key}={_show(getattr(member, key))}" for key in CONTACT_KEYS)


def parse_contact(node_id: int, text: Any) -> Member:
    """The member `node_id` at the addresses `text` names (as `format_contact` writes them);
    ConfigError saying what is wrong for anything else."""
    if not isinstance(text, str):
        raise ConfigError(f"node {node_id}'s contact must be text, got {type(text).__name__}")
    if len(text) > contact_chars_max:
        raise ConfigError(
            f"node {node_id}'s contact is {len(text)} characters, over {contact_chars_max}"
        )
    expected = " ".join(f"{key}=HOST:PORT" for key in CONTACT_KEYS)
    found: dict[str, tuple[str, int]] = {}
    for word in text.split():
        key, equals, value = word.partition("=")
        if not equals or key not in CONTACT_KEYS:
            raise ConfigError(f"node {node_id}'s contact {text!r} is not {expected!r}")
        if key in found:
            raise ConfigError(f"node {node_id}'s contact names {key} twice: {text!r}")
        found[key] = parse_address(value, f"node {node_id}'s {key} address")
    missing = [key for key in CONTACT_KEYS if key not in found]
    if missing:
        raise ConfigError(
            f"node {node_id}'s contact {text!r} lacks {', '.join(missing)} (want {expected!r})"
        )
    return Member(node_id, found["peer"], found["http"], found["resp"])


def _member(raw: Any, index: int) -> Member:
    if not isinstance(raw, dict):
        raise ConfigError(f"members[{index}] must be a table with id, peer, http, resp")
    unknown = set(raw) - {"id", "peer", "http", "resp"}
    if unknown:
        raise ConfigError(f"members[{index}] has unknown keys: {', '.join(sorted(unknown))}")
    for key in ("id", "peer", "http", "resp"):
        if key not in raw:
            raise ConfigError(f"members[{index}] is missing {key!r}")
    if type(raw["id"]) is not int:
        raise ConfigError(f"members[{index}].id must be an integer")
    return Member(
        raw["id"],
        parse_address(raw["peer"], f"members[{index}].peer"),
        parse_address(raw["http"], f"members[{index}].http"),
        parse_address(raw["resp"], f"members[{index}].resp"),
    )


def from_mapping(raw: dict[str, Any], base: Path | None = None) -> NodeConfig:
    known = {
        "cluster_id",
        "node_id",
        "data_dir",
        "members",
        "timeouts",
        "storage",
        "fsync",
        "variant",
        "batch_commands_max",
        "early_accepts",
        "snapshot_every_slots",
        "auto_promote",
        "clock_file",
        "joined",
        "limits",
        "kv",
        "watch",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown keys: {', '.join(sorted(unknown))} (known: {sorted(known)})")
    for key in ("cluster_id", "node_id", "data_dir", "members"):
        if key not in raw:
            raise ConfigError(f"missing {key!r}")
    if type(raw["node_id"]) is not int:
        raise ConfigError("node_id must be an integer")
    if not isinstance(raw["members"], list):
        raise ConfigError("members must be an array of tables ([[members]])")
    timeouts = Timeouts()
    if "timeouts" in raw:
        values = raw["timeouts"]
        if not isinstance(values, dict):
            raise ConfigError("timeouts must be a table")
        names = set(Timeouts.__dataclass_fields__)
        for key, value in values.items():
            if key not in names:
                raise ConfigError(f"unknown timeout {key!r} (known: {sorted(names)})")
            if type(value) is not int or value <= 0:
                raise ConfigError(f"timeouts.{key} must be a positive integer (milliseconds)")
        timeouts = replace(timeouts, **values)
    data_dir = Path(str(raw["data_dir"]))
    if base is not None and not data_dir.is_absolute():
        data_dir = base / data_dir
    config = NodeConfig(
        cluster_id=str(raw["cluster_id"]),
        node_id=raw["node_id"],
        data_dir=data_dir,
        members=tuple(_member(m, i) for i, m in enumerate(raw["members"])),
        timeouts=timeouts,
        storage=str(raw.get("storage", "file")),
        fsync=bool(raw.get("fsync", True)),
        variant=str(raw.get("variant", "correct")),
        batch_commands_max=raw.get("batch_commands_max", 2048),
        early_accepts=bool(raw.get("early_accepts", True)),
        snapshot_every_slots=raw.get("snapshot_every_slots", 1000),
        auto_promote=bool(raw.get("auto_promote", True)),
        clock_file=None if raw.get("clock_file") is None else Path(str(raw["clock_file"])),
        joined=_flag(raw, "joined"),
        limits=_limits(raw.get("limits", {})),
        kv=_kv(raw.get("kv", {})),
        watch=_watch(raw.get("watch", {})),
    )
    return config.validate()


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if type(value) is not bool:
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    return value


# The `[watch]` settings a config file may give (the variant comes from `variant`).
_WATCH_SETTINGS = tuple(f.name for f in dataclasses.fields(WatchOptions) if f.name != "variant")


def _watch(table: Any) -> WatchOptions:
    if not isinstance(table, dict):
        raise ConfigError("watch must be a table")
    for key in table:
        if key not in _WATCH_SETTINGS:
            raise ConfigError(f"unknown watch setting {key!r} (known: {list(_WATCH_SETTINGS)})")
    try:
        return WatchOptions(**table)
    except ValueError as error:
        raise ConfigError(f"watch: {error}") from None


def _limits(table: Any) -> ClientLimits:
    try:
        return ClientLimits.from_toml(table)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _kv(table: Any) -> KvLimits:
    if not isinstance(table, dict):
        raise ConfigError("kv must be a table ([kv])")
    names = set(KvLimits.__dataclass_fields__)
    unknown = set(table) - names
    if unknown:
        raise ConfigError(
            f"unknown kv limits: {', '.join(sorted(unknown))} (known: {sorted(names)})"
        )
    try:
        return KvLimits(**table)
    except ValueError as error:
        raise ConfigError(f"kv.{error}") from None


def load(path: Path) -> NodeConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return from_mapping(raw, path.parent)


def local_cluster(
    nodes: int, data_root: Path, base_port: int = 7000, cluster_id: str = "paxosd-local"
) -> list[NodeConfig]:
    """The embedded default: node i serves HTTP on base+i, RESP on base-600+i, peers on
    base+100+i, all on 127.0.0.1."""
    members = tuple(
        Member(
            i,
            ("127.0.0.1", base_port + 100 + i),
            ("127.0.0.1", base_port + i),
            ("127.0.0.1", base_port - 600 + i),
        )
        for i in range(1, nodes + 1)
    )
    return [
        NodeConfig(cluster_id, i, data_root / f"node{i}", members).validate()
        for i in range(1, nodes + 1)
    ]


def to_toml(config: NodeConfig) -> str:
    t = config.timeouts
    lines = [
        f'cluster_id = "{config.cluster_id}"',
        f"node_id = {config.node_id}",
        f'data_dir = "{config.data_dir}"',
        f'storage = "{config.storage}"',
        f"fsync = {'true' if config.fsync else 'false'}",
        f'variant = "{config.variant}"',
        f"batch_commands_max = {config.batch_commands_max}",
        f"early_accepts = {'true' if config.early_accepts else 'false'}",
        f"snapshot_every_slots = {config.snapshot_every_slots}",
        f"auto_promote = {'true' if config.auto_promote else 'false'}",
        *([f'clock_file = "{config.clock_file}"'] if config.clock_file is not None else []),
        *(["joined = true"] if config.joined else []),
        "",
        "[timeouts]",
        f"tick_ms = {t.tick_ms}",
        f"heartbeat_ms = {t.heartbeat_ms}",
        f"election_ms_min = {t.election_ms_min}",
        f"election_ms_max = {t.election_ms_max}",
        f"request_timeout_ms = {t.request_timeout_ms}",
    ]
    for member in config.members:
        lines += [
            "",
            "[[members]]",
            f"id = {member.id}",
            f'peer = "{_show(member.peer)}"',
            f'http = "{_show(member.http)}"',
            f'resp = "{_show(member.resp)}"',
        ]
    return (
        "\n".join(
            lines + _limits_toml(config.limits) + _kv_toml(config.kv) + _watch_toml(config.watch)
        )
        + "\n"
    )


def _kv_toml(kv: KvLimits) -> list[str]:
    """The `[kv]` table, with only the limits that differ from their defaults."""
    default = KvLimits()
    changed = [
        f"{f.name} = {getattr(kv, f.name)}"
        for f in dataclasses.fields(kv)
        if getattr(kv, f.name) != getattr(default, f.name)
    ]
    return ["", "[kv]", *changed] if changed else []


def _watch_toml(watch: WatchOptions) -> list[str]:
    """The `[watch]` table, with only the settings that differ from their defaults."""
    default = WatchOptions()
    changed = [
        f"{name} = {getattr(watch, name)}"
        for name in _WATCH_SETTINGS
        if getattr(watch, name) != getattr(default, name)
    ]
    return ["", "[watch]", *changed] if changed else []


def _limits_toml(limits: ClientLimits) -> list[str]:
    """The `[limits]` tables, with only the limits that differ from their defaults."""
    lines: list[str] = []
    for name, table, default in (
        ("http", limits.http, type(limits.http)()),
        ("resp", limits.resp, type(limits.resp)()),
    ):
        changed = {
            f.name: getattr(table, f.name)
            for f in dataclasses.fields(table)
            if getattr(table, f.name) != getattr(default, f.name)
        }
        if changed:
            lines += ["", f"[limits.{name}]"]
            lines += [f"{key} = {json.dumps(value)}" for key, value in changed.items()]
    return lines
