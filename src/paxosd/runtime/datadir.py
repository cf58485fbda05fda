"""A node's data directory: made once for a new cluster, never silently made again.

Theory of operation. A node's store holds its promises and acceptances; a node that starts on
an empty store where it used to have one could contradict what it voted and let an
acknowledged write be lost. So there are three distinct ways to get a store, and only the
first two create one:

- `initialise`: a brand-new cluster (`paxosd init`, and `paxosd up` for a new local cluster):
  an empty store, which may vote at once because it never voted before. It is refused where
  the node shows any trace of having been a member (`membership_traces`): its store, its
  `node.log`, a `lost-*` folder, or a peer that answers for this cluster id. A member that
  lost its disk and got an empty voting store from `init` is exactly the amnesia this module
  exists to prevent;
- `reinitialize`: a member lost its store (`paxosd node --reinitialize`): whatever is left is
  moved aside (never deleted), and a new store is made marked `Rebuilding` - the node rebuilds
  its state from every other member before it votes again (core/multi/replica.py, "Amnesia");
- `open_existing`: every ordinary start; a missing store is refused with `MissingStore`, and
  the message says which of the two above applies.

Both creations make the store whole in one step (storage's `initial` records: written into a
temporary file with the header, synced, renamed into place, the directory synced): it holds
its `Configured` membership (and, when rebuilding, its `Rebuilding` mark) from the moment it
exists, so no crash can leave an unmarked empty store that the next ordinary start would run
as a voter. `storage/crashpoints.py` lets a test crash at every step.

Membership. The store records the configuration it was made for; `settle_configuration`
refuses to start a node whose config file names other members (`MembershipMismatch`):
membership changes only through the log, and a member list edited by hand (or `paxosd up
--nodes 3` on a 5-node data directory) could make two majorities that do not overlap.

Nodes that joined. A node added with `paxosd node --join` has a config file marked `joined
= true`: its members are the cluster's when it joined, not founding members, so its store is
never made from the file, the store's configuration is the one that counts (it names the
node; no founding file does), and a lost store is never rebuilt under its id (its record
names the lost store's incarnation, and every peer refuses another): it is removed and joins
again. `initialise`, `reinitialize` and `reseed` refuse such a node, saying so.

Stores without a configuration. A store made before stores recorded their membership has no
`Configured` record. It is still opened: on its first start the node adopts the members its
config file names, writes them into the store (durably, before it votes) and logs
`configuration_adopted` as a warning. What that cannot protect: if the config file was
already changed before that first start, the changed membership is the one adopted. From then
on the store holds it, and any later change is refused.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Configured, Rebuilding, Record
from paxosd.runtime import incarnation, removal, sqlite_pin
from paxosd.runtime.config import NodeConfig
from paxosd.runtime.variants import Variant
from paxosd.storage import (
    LogStore,
    MissingStore,
    Recovered,
    StoreExists,
    make_identity,
    open_store,
)
from paxosd.storage.crashpoints import crash_point
from paxosd.storage.errors import StorageError
from paxosd.storage.fsutil import (
    LOG_NAME,
    SQLITE_NAME,
    STORE_FILES,
    TMP_SUFFIX,
    fsync_dir,
    lock_dir,
)

# The log file `paxosd up` gives each node in its data directory.
NODE_LOG_NAME = "node.log"
# A store moved aside by `--reinitialize`: lost-<UTC time>[-<n>].
LOST_PREFIX = "lost-"
# How long `paxosd init` waits for a peer's status when it looks for a running cluster.
peer_probe_timeout_s = 1.0


class MembershipMismatch(StorageError):
    """The config file names other members than the store was made for."""


class MembershipTraces(StorageError):
    """`paxosd init` where the node shows signs of having been a member."""


def _backend(config: NodeConfig) -> str:
    return "sqlite" if config.storage == "sqlite" else "file"


def configuration_of(config: NodeConfig) -> Configuration:
    """The membership a config file names: every member votes (learners come later, through
    the log)."""
    return Configuration.of(member.id for member in config.members)


def has_store(config: NodeConfig) -> bool:
    return has_store_in(config.data_dir)


def has_store_in(directory: Path) -> bool:
    """Whether `directory` holds a store of either backend (stores appear whole: a name in
    place is a complete store)."""
    return any((directory / name).exists() for name in (LOG_NAME, SQLITE_NAME))


def _open(config: NodeConfig, *, create: bool, initial: list[Record] | None = None) -> LogStore:
    return open_store(
        config.data_dir,
        _backend(config),  # type: ignore[arg-type]
        identity=make_identity(config.cluster_id, config.node_id),
        create=create,
        fsync=config.fsync,
        initial=initial,
    )


class JoinedNode(StorageError):
    """A store operation meant for founding members, asked of a node that joined."""


def refuse_joined(config: NodeConfig, what: str) -> None:
    if config.joined:
        raise JoinedNode(
            f"node {config.node_id} joined a running cluster (its config file says joined = "
            f"true): {what} is for founding members. A node that joined and lost its store "
            f"comes back only as a new member: remove it (paxosd member remove "
            f"{config.node_id}), empty its data directory, and join it again (paxosd node "
            f"--join HOST:PORT --id {config.node_id} --data-dir DIR)"
        )


def open_existing(config: NodeConfig, *, create: bool = False) -> LogStore:
    """The node's store; `MissingStore` (with what to do) if there is none. `create=True` is
    only for the planted `amnesia` variant, which shows what this refusal prevents."""
    try:
        return _open(config, create=create)
    except MissingStore:
        raise MissingStore(missing_store_advice(config)) from None


def missing_store_advice(config: NodeConfig) -> str:
    if config.joined:
        return (
            f"node {config.node_id} has no store in {config.data_dir}. It joined a running "
            f"cluster, and its peers know it by the store it joined with: remove it (paxosd "
            f"member remove {config.node_id}) and join it again with an empty data directory "
            f"(paxosd node --join HOST:PORT --id {config.node_id} --data-dir DIR)"
        )
    return (
        f"node {config.node_id} has no store in {config.data_dir}. If this node was a member "
        f"and lost its disk, it must not vote with an empty store: start it with "
        f"`paxosd node --config FILE --reinitialize`, which rebuilds its state from every "
        f"other member before it votes (docs/operations.md, 'A lost or damaged store'). "
        f"`paxosd init` is never for an existing member: it is only for the nodes of a "
        f"brand-new cluster, before any of them has run."
    )


# -- membership ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settled:
    """The store's state once its membership is settled, and whether it was adopted now."""

    recovered: Recovered
    adopted: bool


def settle_configuration(config: NodeConfig, store: LogStore, recovered: Recovered) -> Settled:
    """Check the config file's members against the store's; `MembershipMismatch` if they
    differ. A store without a configuration (made by older code) adopts the config file's,
    durably, before the node can vote (see the module docstring for what that cannot
    protect)."""
    named = configuration_of(config)
    stored = recovered.configuration
    if config.joined:
        # Its file names the members it joined, not founding ones: the store says which
        # configuration the node is in, and always has one (cli/join.py makes it so).
        if stored is None:
            raise MembershipMismatch(
                f"node {config.node_id} joined a running cluster, but its store records no "
                f"configuration: it was not made by paxosd node --join. "
                + missing_store_advice(config).split(". ", 1)[1]
            )
        return Settled(recovered, adopted=False)
    if stored is None:
        store.write([Configured(named)])
        store.sync()
        return Settled(replace(recovered, configuration=named), adopted=True)
    if stored.epoch > named.epoch:
        # The members changed through the log since the store was made (core/multi/
        # epochs.py): the store's epoch is the one the node is in; the config file names the
        # founding members, and every node it may meet.
        return Settled(recovered, adopted=False)
    if (stored.voters, stored.learners) != (named.voters, named.learners):
        raise MembershipMismatch(mismatch_advice(config, stored))
    return Settled(recovered, adopted=False)


def mismatch_advice(config: NodeConfig, stored: Configuration) -> str:
    named = configuration_of(config)
    count = len(stored.members)
    return (
        f"node {config.node_id}'s store belongs to a {count}-node cluster "
        f"({stored.describe()}, epoch {stored.epoch}), but its config file names members "
        f"{','.join(map(str, named.voters))}. Membership changes only through the log: "
        f"starting with other members could make two majorities that share no node and lose "
        f"acknowledged writes. Start it with the config file its store was made for (for "
        f"`paxosd up`: --nodes {count}); for a new cluster, use another data directory."
    )


def never_voted(config: NodeConfig) -> bool:
    """Whether the node's store is as `initialise` made it: no promise, no vote, no snapshot,
    not rebuilding. Opens the store briefly, so the node must not be running."""
    store = _open(config, create=False)
    try:
        recovered = store.load()
    finally:
        store.close()
    return (
        recovered.promised is None
        and not recovered.accepted
        and recovered.snapshot is None
        and not recovered.rebuilding
    )


def removed_from(config: NodeConfig) -> Configuration | None:
    """The configuration that left the node out, if it was removed through the log and knew
    it when it stopped: its store is in that epoch, or the node wrote it down having been
    told so by a peer (runtime/removal.py) and its store is in no later epoch that has it as
    a member. None for a member, a node with no store, or a store that cannot be read now
    (the node says why when it starts). Opens the store briefly, so the node must not be
    running."""
    if not has_store(config):
        return None
    try:
        store = _open(config, create=False)
    except StorageError:
        return None
    try:
        stored = store.load().configuration
    except StorageError:
        return None
    finally:
        store.close()
    node = config.node_id
    if stored is not None and not stored.is_member(node):
        return stored
    told = removal.recalled(config.data_dir)
    if told is None or told.is_member(node):
        return None
    if stored is not None and stored.epoch >= told.epoch:
        return None  # a member again, in a later epoch than the one that removed it
    return told


# -- making a store ------------------------------------------------------------------------


def membership_traces(config: NodeConfig, *, ask_peers: bool = True) -> list[str]:
    """Signs that this node was already a member of a cluster: anything here means `paxosd
    init` would give a member an empty store that votes."""
    directory = config.data_dir
    # A temporary file left by an interrupted creation is not a store (it is removed when the
    # store is next opened), so it does not count: `init` can be run again after a crash.
    traces = [
        f"its store ({directory / name})"
        for name in STORE_FILES
        if TMP_SUFFIX not in name and (directory / name).exists()
    ]
    if (directory / NODE_LOG_NAME).exists():
        traces.append(f"its log ({directory / NODE_LOG_NAME})")
    lost = sorted(path.name for path in directory.glob(LOST_PREFIX + "*") if path.is_dir())
    if lost:
        traces.append(f"old stores set aside by --reinitialize ({', '.join(lost)})")
    if ask_peers:
        traces += _answering_peers(config)
    return traces


def _answering_peers(config: NodeConfig) -> list[str]:
    found = []
    for member in config.members:
        if member.id == config.node_id:
            continue
        host, port = member.http
        try:
            with urllib.request.urlopen(
                f"http://{host}:{port}/v1/status", timeout=peer_probe_timeout_s
            ) as answer:
                status = json.loads(answer.read())
        except (OSError, ValueError, http.client.HTTPException):
            continue  # nothing there, or something that is not a paxosd node: no trace
        if isinstance(status, dict) and status.get("cluster_id") == config.cluster_id:
            found.append(
                f"node {member.id} ({host}:{port}) answers for this cluster ({config.cluster_id})"
            )
    return found


def initialise(config: NodeConfig, *, despite_traces: bool = False) -> Path:
    """An empty store for a node of a brand-new cluster. `StoreExists` if it has one,
    `MembershipTraces` if it shows signs of having been a member (unless `despite_traces`,
    an operator's explicit word that it never voted)."""
    refuse_joined(config, "paxosd init")
    if has_store(config):
        raise StoreExists(
            f"node {config.node_id} already has a store in {config.data_dir}; `paxosd init` is "
            "only for a brand-new cluster (to rebuild a member that lost its store, use "
            "`paxosd node --config FILE --reinitialize`)"
        )
    if not despite_traces:
        traces = membership_traces(config)
        if traces:
            raise MembershipTraces(traces_advice(config, traces))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    incarnation.record(config.data_dir, fsync=config.fsync)  # before the store: see its module
    store = _open(config, create=True, initial=[Configured(configuration_of(config))])
    store.close()
    sqlite_pin.record(config.data_dir)
    return config.data_dir


def traces_advice(config: NodeConfig, traces: list[str]) -> str:
    return (
        f"node {config.node_id} looks like a member of an existing cluster: "
        + "; ".join(traces)
        + ". `paxosd init` gives a node an empty store that votes at once; a member that lost "
        "its disk must instead rebuild before it votes: `paxosd node --config FILE "
        "--reinitialize`. Only if this node never ran in any cluster (leftovers of a test, "
        "say), pass --new-cluster-i-am-sure."
    )


def reinitialize(config: NodeConfig) -> Path | None:
    """A new store, marked `Rebuilding`, for a member that lost (or damaged) its own. What is
    left of the old one is moved into a `lost-<time>` folder beside it, never deleted; the
    folder is returned (None if there was nothing to move)."""
    refuse_joined(config, "--reinitialize (a rebuild under the same identity)")
    kept = _move_aside(config)
    # A new store is a new incarnation: a member that joined through the log is then refused
    # by its peers (its record names the lost store's), and rejoins as a new member.
    incarnation.record(config.data_dir, fsync=config.fsync)
    # The mark is IN the new store from its first appearance: no crash leaves it unmarked.
    initial: list[Record] = [Configured(configuration_of(config)), Rebuilding(True)]
    if Variant(config.variant).reinit_unmarked:
        # The planted bug: the store appears unmarked and is marked in a second step, so a
        # crash between the two leaves an empty store that the next start runs as a voter.
        store = _open(config, create=True, initial=initial[:1])
        crash_point("reinitialize: new store made, not yet marked (planted bug)")
        store.write(initial[1:])
        store.sync()
        store.close()
        return kept
    store = _open(config, create=True, initial=initial)
    store.close()
    # It rebuilds from its peers, who refuse it at the handshake if it runs another SQLite.
    sqlite_pin.record(config.data_dir)
    return kept


def _move_aside(config: NodeConfig) -> Path | None:
    """Move what is left of a store into a new `lost-<time>` folder (never delete it); the
    folder, or None if there was nothing to move."""
    directory = config.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    kept: Path | None = None
    lock = lock_dir(directory)  # DataDirLocked if the node is running: never move its files
    try:
        leftovers = [directory / name for name in STORE_FILES if (directory / name).exists()]
        if leftovers:
            kept = _lost_folder(directory)
            crash_point("reinitialize: lost folder made, nothing moved")
            for path in leftovers:
                path.rename(kept / path.name)
                crash_point(f"reinitialize: {path.name} moved aside")
            if config.fsync:
                fsync_dir(kept)
                fsync_dir(directory)
            crash_point("reinitialize: old store moved aside, durably")
    finally:
        os.close(lock)
    return kept


def _lost_folder(directory: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for attempt in range(1000):
        folder = directory / (LOST_PREFIX + stamp + (f"-{attempt}" if attempt else ""))
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{directory}: too many {LOST_PREFIX}{stamp}* folders")


# -- two lost stores: re-seed from a survivor ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reseeded:
    kept: Path | None  # where what was left of the node's old store went
    promised: str  # the survivor's promise, as copied
    snapshot_slot: int
    top_slot: int  # the highest slot the survivor had accepted (or its snapshot's)


def reseed(config: NodeConfig, survivor: NodeConfig) -> Reseeded:
    """Give `config`'s node a copy of `survivor`'s acceptor state, NOT marked rebuilding:
    the way out when too many stores are lost for a rebuild (which needs every other member)
    to ever finish. Whatever was acknowledged by a majority that did not include the
    survivor can be lost: the operator's explicit choice (`paxosd reseed
    --i-accept-data-loss`). Both nodes must be stopped (their stores are locked meanwhile).

    Safe for what survives: the copy holds exactly what the survivor promised and accepted,
    so the two agree with each other, and every later majority meets one of them."""
    refuse_joined(config, "paxosd reseed")
    if survivor.node_id == config.node_id:
        raise MembershipMismatch("a node cannot be re-seeded from itself")
    if survivor.cluster_id != config.cluster_id or configuration_of(survivor) != (
        configuration_of(config)
    ):
        raise MembershipMismatch(
            f"node {survivor.node_id}'s config names another cluster or other members than "
            f"node {config.node_id}'s: re-seed only from a member of the same cluster"
        )
    source = open_existing(survivor)
    try:
        recovered = source.load()
        if recovered.rebuilding:
            raise MembershipMismatch(
                f"node {survivor.node_id} is itself rebuilding: it holds no complete state to "
                "copy (choose a member that was not rebuilding when the stores were lost)"
            )
        if recovered.configuration is not None and recovered.configuration != configuration_of(
            config
        ):
            raise MembershipMismatch(mismatch_advice(config, recovered.configuration))
        kept = _move_aside(config)
        incarnation.record(config.data_dir, fsync=config.fsync)
        copied: list[Record] = [Configured(configuration_of(config))]
        copied += [r for r in recovered.records() if not isinstance(r, Configured | Rebuilding)]
        store = _open(config, create=True, initial=copied)
        store.close()
    finally:
        source.close()
    top = max(recovered.accepted, default=recovered.snapshot_slot)
    promised = "none" if recovered.promised is None else str(recovered.promised)
    return Reseeded(kept, promised, recovered.snapshot_slot, top)
