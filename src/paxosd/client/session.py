"""Client sessions: a lease kept alive in the background, and what its holder may assume.

Theory of operation. A session is one lease of the cluster's store (docs/leases.md) that the
client keeps alive with a keep-alive every third of its TTL. The cluster measures a lease on
log time from when its leader applied the grant or the last keep-alive, which is after the
client sent that request, and log time never runs faster than the leader's monotonic clock.
So on the client's own monotonic clock the lease cannot end before the send time of the last
request that got through plus the TTL (`valid_until`, less a small margin for clock rates).

States, as kazoo names a ZooKeeper session's:

* `alive`: the last keep-alive got through;
* `suspended`: a keep-alive failed (no node answered in time), but the lease is still
  certainly alive until `valid_until`; the keeper keeps trying, more often;
* `lost`: the cluster said the lease does not exist (it ended), or `valid_until` passed with
  no keep-alive through. For good: a later keep-alive proves nothing about the gap, when the
  session's ephemeral keys may have been deleted and an election won by another.

A callback (`on_state(state)` on every change, `on_lost(reason)` once) and an event (`lost`)
tell the program; closing the session revokes the lease, so its keys go at once. If the
process dies (kill -9), nobody keeps the lease alive and its keys go when its TTL has passed
in log time. `SessionKeeper` holds the decisions without the waiting: a thread for `Session`,
a task for `AsyncSession` (aio.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paxosd.client import operations as ops
from paxosd.client.core import BadRequest, LeaseNotFound, PaxosdError

if TYPE_CHECKING:
    from paxosd.client.sync import Client

__all__ = [
    "ALIVE",
    "LOST",
    "SUSPENDED",
    "AsyncSession",
    "Session",
    "SessionKeeper",
    "SessionLost",
    "ttl_ms_of",
]

log = logging.getLogger("paxosd.client")

ALIVE = "alive"
SUSPENDED = "suspended"
LOST = "lost"
# The client's clock and the leader's may run at slightly different rates.
margin_fraction = 0.01


class SessionLost(PaxosdError):
    """The session's lease ended (or may have): its ephemeral keys are gone, and whatever
    it held (an election) is another's now or soon."""


def ttl_ms_of(ttl_s: float) -> int:
    if not isinstance(ttl_s, int | float) or not 0 < ttl_s <= 9_000_000_000:  # refuses NaN
        raise BadRequest(f"a session's ttl is a positive number of seconds, not {ttl_s!r}")
    return max(1, round(ttl_s * 1000))


class SessionKeeper:
    """A session's decisions (module docstring): when to keep alive next, and what each
    outcome means."""

    def __init__(
        self,
        lease_id: int,
        ttl_s: float,
        sent_at: float,
        on_state: Callable[[str], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
    ) -> None:
        self.lease_id = lease_id
        self.ttl_s = ttl_s
        self.valid_until = sent_at + ttl_s * (1 - margin_fraction)
        self.state = ALIVE
        self.reason: str | None = None
        self.on_state = on_state
        self.on_lost = on_lost
        self.lost = threading.Event()
        self.last_error: str | None = None
        self.pending: list[Any] = []  # what callbacks returned (an async caller awaits them)

    def wait_s(self, now: float) -> float:
        interval = self.ttl_s / 3 if self.state == ALIVE else max(0.05, self.ttl_s / 10)
        return max(0.0, min(interval, self.valid_until - now))

    def time_left_s(self, now: float) -> float:
        return max(0.01, self.valid_until - now)

    def expired(self, now: float) -> bool:
        """True (and the session lost) once the lease could have ended."""
        if self.state == LOST:
            return True
        if now < self.valid_until:
            return False
        why = "no keep-alive got through before the lease could have ended"
        self.lose(f"{why} (last error: {self.last_error})" if self.last_error else why)
        return True

    def kept(self, sent_at: float) -> None:
        if self.state == LOST:
            return
        self.last_error = None
        self.valid_until = max(self.valid_until, sent_at + self.ttl_s * (1 - margin_fraction))
        self._move(ALIVE)

    def failed(self, error: PaxosdError) -> bool:
        """A keep-alive failed; True if that ends the session."""
        if isinstance(error, LeaseNotFound):
            self.lose(f"the cluster says lease {self.lease_id} does not exist: it ended")
            return True
        self.last_error = str(error)
        self._move(SUSPENDED)
        return False

    def lose(self, reason: str) -> None:
        if self.state == LOST:
            return
        self.reason = reason
        self._move(LOST)
        self.lost.set()
        self._call(self.on_lost, reason)

    def close(self) -> None:
        """The program ended the session itself: lost, without the loss callbacks."""
        if self.state != LOST:
            self.state, self.reason = LOST, "closed"
            self.lost.set()

    def _move(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._call(self.on_state, state)

    def _call(self, callback: Callable[[Any], Any] | None, argument: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(argument)
            if inspect.isawaitable(result):
                self.pending.append(result)
        except Exception:  # the program's callback must not kill the keeper silently
            log.exception("session %d: callback %r failed", self.lease_id, callback)

    def take_pending(self) -> list[Any]:
        pending, self.pending = self.pending, []
        return pending


class Session:
    """A lease kept alive by a background thread (`Client.session()`; module docstring).
    Use it as a context manager, or `close()` it: that revokes the lease."""

    def __init__(
        self,
        client: Client,
        ttl: float = 10.0,
        *,
        on_state: Callable[[str], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
    ) -> None:
        self.client = client
        self.ttl = ttl
        sent_at = time.monotonic()
        lease_id = client.grant(ttl)
        self.keeper = SessionKeeper(lease_id, ttl, sent_at, on_state, on_lost)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._keep_alive, daemon=True, name=f"session-{lease_id}"
        )
        self._thread.start()

    @property
    def id(self) -> int:
        """The lease's id: attach keys to it (`put(..., lease=session.id)`)."""
        return self.keeper.lease_id

    @property
    def state(self) -> str:
        """alive, suspended or lost (module docstring)."""
        self.keeper.expired(time.monotonic())
        return self.keeper.state

    @property
    def lost(self) -> threading.Event:
        """Set once the session is lost."""
        return self.keeper.lost

    @property
    def valid_for_s(self) -> float:
        """Seconds the lease is certainly still alive for (0 once lost)."""
        if self.state == LOST:
            return 0.0
        return max(0.0, self.keeper.valid_until - time.monotonic())

    def check(self) -> None:
        """Raise SessionLost if the session is lost."""
        if self.state == LOST:
            raise SessionLost(f"session {self.id} lost: {self.keeper.reason}")

    def put(self, key: str, value: Any) -> int:
        """An ephemeral key: deleted when the session ends. Returns the revision."""
        return self.client.put(key, value, lease=self.id)

    def close(self) -> None:
        """Stop keeping the lease alive and revoke it (its keys go at once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self.keeper.state != LOST:
            try:
                self.client.revoke(self.id)
            except PaxosdError as error:  # it ends on its own when its TTL passes
                log.info("session %d: revoke failed (%s); it ends by its TTL", self.id, error)
            self.keeper.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep_alive(self) -> None:
        keeper = self.keeper
        while not self._stop.wait(keeper.wait_s(time.monotonic())):
            sent_at = time.monotonic()
            if keeper.expired(sent_at):
                return
            try:
                call, convert = ops.lease_keepalive(keeper.lease_id)
                self.client._do(call, convert, timeout_s=keeper.time_left_s(sent_at))
            except PaxosdError as error:
                if keeper.failed(error):
                    return
                continue
            keeper.kept(sent_at)


class AsyncSession:
    """`Session` for `AsyncClient` (`await client.session()`), kept alive by a task; its
    callbacks may be coroutine functions (awaited by the keeper)."""

    def __init__(self, client: Any, keeper: SessionKeeper) -> None:
        self.client = client
        self.keeper = keeper
        self.lost_event = asyncio.Event()
        self._task = asyncio.create_task(self._keep_alive())

    @classmethod
    async def start(
        cls,
        client: Any,
        ttl: float = 10.0,
        *,
        on_state: Callable[[str], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
    ) -> AsyncSession:
        sent_at = time.monotonic()
        lease_id = await client.grant(ttl)
        return cls(client, SessionKeeper(lease_id, ttl, sent_at, on_state, on_lost))

    @property
    def id(self) -> int:
        return self.keeper.lease_id

    @property
    def state(self) -> str:
        if self.keeper.expired(time.monotonic()):
            self.lost_event.set()
        return self.keeper.state

    @property
    def lost(self) -> asyncio.Event:
        """Set once the session is lost (an asyncio.Event)."""
        self.state  # noqa: B018 - notices a lapse that the keeper has not seen yet
        return self.lost_event

    def check(self) -> None:
        if self.state == LOST:
            raise SessionLost(f"session {self.id} lost: {self.keeper.reason}")

    async def put(self, key: str, value: Any) -> int:
        result: int = await self.client.put(key, value, lease=self.id)
        return result

    async def close(self) -> None:
        if self._task.done() and self.keeper.state == LOST:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self.keeper.state != LOST:
            try:
                await self.client.revoke(self.id)
            except PaxosdError as error:
                log.info("session %d: revoke failed (%s); it ends by its TTL", self.id, error)
            self.keeper.close()
        self.lost_event.set()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _settle(self) -> None:
        for result in self.keeper.take_pending():
            if inspect.isawaitable(result):
                await result
        if self.keeper.state == LOST:
            self.lost_event.set()

    async def _keep_alive(self) -> None:
        keeper = self.keeper
        while True:
            await asyncio.sleep(keeper.wait_s(time.monotonic()))
            sent_at = time.monotonic()
            if keeper.expired(sent_at):
                await self._settle()
                return
            try:
                call, convert = ops.lease_keepalive(keeper.lease_id)
                await self.client._do(call, convert, timeout_s=keeper.time_left_s(sent_at))
            except PaxosdError as error:
                ended = keeper.failed(error)
                await self._settle()
                if ended:
                    return
                continue
            keeper.kept(sent_at)
            await self._settle()
