"""Elections on etcd's concurrency recipe: one leader among candidates, and who it is.

Theory of operation. An election NAME is the keys under the prefix `NAME/`. A candidate
campaigns with a session (session.py): it creates the key `NAME/<lease id in hex>` with its
value, attached to its session's lease, in a transaction that creates it only if absent. The
candidate whose key has the lowest create revision under the prefix leads; every other one
waits until each key created before its own is gone (deleted by a resignation, or by the end
of its owner's session when the owner died). Keys, values and order are etcd's (its
clientv3/concurrency Election), so a program using etcd's election through paxosd's etcd API
and one using this module take part in the same election.

A leadership's fencing token is its key's create revision: strictly larger for each new
leader, since each new key takes a new revision. The leadership lasts as long as the
session: when the session is lost, so is the leadership (the key is gone or about to be), and
a resource that remembers the highest token it has seen refuses the old leader's actions.

Values: stored as their UTF-8 bytes, as etcd's clients store them (a value that happens to be
JSON text reads back as the same text). `observe()` reads the leader, then watches the
prefix and reads the leader again after every change, yielding it whenever it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paxosd.client import kv
from paxosd.client.core import BadRequest, KeyValue, PaxosdError
from paxosd.client.session import Session

if TYPE_CHECKING:
    from paxosd.client.sync import Client

__all__ = [
    "AsyncElection",
    "AsyncLeadership",
    "Election",
    "ElectionLost",
    "Leader",
    "Leadership",
    "value_text",
]

# How often a waiting candidate looks again at the key before its own.
wait_poll_s = 0.05


class ElectionLost(PaxosdError):
    """The candidate's key is gone (its session ended, or it resigned): it does not lead."""


@dataclass(frozen=True, slots=True)
class Leader:
    """Who leads: the leader's key, its value, and its fencing token (the key's create
    revision)."""

    key: str
    value: str
    revision: int


def value_text(value: Any) -> str:
    """A stored election value as text (module docstring)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def prefix_of(name: str) -> str:
    if not isinstance(name, str) or not name.strip("/"):
        raise BadRequest(f"an election's name is a non-empty string, not {name!r}")
    return name.rstrip("/") + "/"


def leader_of(kvs: list[KeyValue]) -> Leader | None:
    if not kvs:
        return None
    first = kvs[0]
    return Leader(first.key, value_text(first.value), first.create_revision)


class Leadership:
    """This candidate leads (`Election.campaign`). `token` is the fencing token."""

    def __init__(self, election: Election, key: str, revision: int, session: Session) -> None:
        self.election = election
        self.key = key
        self.revision = revision
        self.session = session

    @property
    def token(self) -> int:
        return self.revision

    @property
    def lost(self) -> bool:
        """True once the session is lost: another candidate may lead now."""
        return self.session.state == "lost"

    def check(self) -> None:
        """Raise SessionLost if the leadership may be over."""
        self.session.check()

    def proclaim(self, value: str) -> None:
        """Change the leader's value, if this candidate still leads (ElectionLost if not)."""
        client = self.election.client
        txn = (
            client.txn()
            .compare(kv.create(self.key) == self.revision)
            .success(kv.put(self.key, value.encode(), lease=self.session.id))
        )
        if not txn.commit().succeeded:
            raise ElectionLost(f"{self.key} is gone: this candidate no longer leads")

    def resign(self) -> None:
        """Stop leading: the key is deleted (if it is still this leadership's)."""
        client = self.election.client
        client.txn().compare(kv.create(self.key) == self.revision).success(
            kv.delete(self.key)
        ).commit()

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(PaxosdError):  # the session's end deletes the key anyway
            self.resign()


class Election:
    """An election NAME (module docstring): `client.election(NAME)`."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self.prefix = prefix_of(name)

    def campaign(self, value: str, session: Session, *, wait_s: float | None = None) -> Leadership:
        """Stand with `session` and wait until this candidate leads (at most `wait_s`
        seconds: then TimeoutError, the key left standing). SessionLost if the session
        ends first."""
        if not isinstance(value, str):
            raise BadRequest(f"an election value is a string, not {type(value).__name__}")
        client = self.client
        key = f"{self.prefix}{session.id:x}"
        data = value.encode()
        answer = (
            client.txn()
            .compare(kv.create(key) == 0)
            .success(kv.put(key, data, lease=session.id))
            .failure(kv.get(key))
            .commit()
        )
        if answer.succeeded:
            revision = answer.revision
        else:
            existing = answer.responses[0].kvs  # this session campaigned before
            if not existing:
                raise ElectionLost(f"{key} vanished while campaigning")
            revision = existing[0].create_revision
        leadership = Leadership(self, key, revision, session)
        if not answer.succeeded and value_text(answer.responses[0].kvs[0].value) != value:
            leadership.proclaim(value)
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            session.check()
            before = client.range(
                prefix=self.prefix,
                max_create_revision=revision - 1,
                sort_by="create",
                order="descend",
                limit=1,
                keys_only=True,
            )
            if not before.kvs:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: {before.kvs[0].key} still leads or waits")
            session.lost.wait(wait_poll_s)
        mine = client.get(key)
        if mine is None or mine.create_revision != revision:
            raise ElectionLost(f"{key} is gone: the session ended while waiting")
        return leadership

    def leader(self) -> Leader | None:
        """Who leads now (None: nobody campaigns), linearizable."""
        found = self.client.range(prefix=self.prefix, sort_by="create", order="ascend", limit=1)
        return leader_of(found.kvs)

    def observe(self) -> Iterator[Leader | None]:
        """The leader now, then again every time it changes (its key or its value), for as
        long as the caller iterates: built on a watch of the election's keys."""
        client = self.client
        found = client.range(prefix=self.prefix, sort_by="create", order="ascend", limit=1)
        current = leader_of(found.kvs)
        yield current
        with client.watch(prefix=self.prefix, start_revision=found.revision + 1) as watch:
            for event in watch:
                now = client.range(
                    prefix=self.prefix,
                    sort_by="create",
                    order="ascend",
                    limit=1,
                    revision=event.revision,
                )
                leader = leader_of(now.kvs)
                if leader != current:
                    current = leader
                    yield leader


class AsyncLeadership:
    """`Leadership` for `AsyncClient`."""

    def __init__(self, election: AsyncElection, key: str, revision: int, session: Any) -> None:
        self.election = election
        self.key = key
        self.revision = revision
        self.session = session

    @property
    def token(self) -> int:
        return self.revision

    @property
    def lost(self) -> bool:
        return bool(self.session.state == "lost")

    def check(self) -> None:
        self.session.check()

    async def proclaim(self, value: str) -> None:
        txn = (
            self.election.client.txn()
            .compare(kv.create(self.key) == self.revision)
            .success(kv.put(self.key, value.encode(), lease=self.session.id))
        )
        if not (await txn.commit()).succeeded:
            raise ElectionLost(f"{self.key} is gone: this candidate no longer leads")

    async def resign(self) -> None:
        mine = kv.create(self.key) == self.revision
        await self.election.client.txn().compare(mine).success(kv.delete(self.key)).commit()

    async def __aenter__(self) -> AsyncLeadership:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(PaxosdError):
            await self.resign()


class AsyncElection:
    """`Election` for `AsyncClient` (`client.election(NAME)`)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.prefix = prefix_of(name)

    async def campaign(
        self, value: str, session: Any, *, wait_s: float | None = None
    ) -> AsyncLeadership:
        if not isinstance(value, str):
            raise BadRequest(f"an election value is a string, not {type(value).__name__}")
        client = self.client
        key = f"{self.prefix}{session.id:x}"
        answer = await (
            client.txn()
            .compare(kv.create(key) == 0)
            .success(kv.put(key, value.encode(), lease=session.id))
            .failure(kv.get(key))
            .commit()
        )
        if answer.succeeded:
            revision = answer.revision
        else:
            existing = answer.responses[0].kvs
            if not existing:
                raise ElectionLost(f"{key} vanished while campaigning")
            revision = existing[0].create_revision
        leadership = AsyncLeadership(self, key, revision, session)
        if not answer.succeeded and value_text(answer.responses[0].kvs[0].value) != value:
            await leadership.proclaim(value)
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            session.check()
            before = await client.range(
                prefix=self.prefix,
                max_create_revision=revision - 1,
                sort_by="create",
                order="descend",
                limit=1,
                keys_only=True,
            )
            if not before.kvs:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: {before.kvs[0].key} still leads or waits")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.lost.wait(), wait_poll_s)
        mine = await client.get(key)
        if mine is None or mine.create_revision != revision:
            raise ElectionLost(f"{key} is gone: the session ended while waiting")
        return leadership

    async def leader(self) -> Leader | None:
        found = await self.client.range(
            prefix=self.prefix, sort_by="create", order="ascend", limit=1
        )
        return leader_of(found.kvs)

    async def observe(self) -> AsyncIterator[Leader | None]:
        client = self.client
        found = await client.range(prefix=self.prefix, sort_by="create", order="ascend", limit=1)
        current = leader_of(found.kvs)
        yield current
        async with client.watch(prefix=self.prefix, start_revision=found.revision + 1) as watch:
            async for event in watch:
                now = await client.range(
                    prefix=self.prefix,
                    sort_by="create",
                    order="ascend",
                    limit=1,
                    revision=event.revision,
                )
                leader = leader_of(now.kvs)
                if leader != current:
                    current = leader
                    yield leader
