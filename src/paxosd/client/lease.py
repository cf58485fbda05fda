"""What a holder of `Client.lock()` knows about its lease, and how the refresher keeps it.

Theory of operation. The cluster measures a lease from when its leader applies the grant (or
the last refresh), which is after the client sent that request. So the earliest the lease can
end, on the client's own monotonic clock, is the send time of the last request that got
through, plus the TTL: `Lease.valid_until`. Until then the holder knows it holds the lock;
after it, it does not know, even if no refresh was refused, and `Lease.lost` says so. A refresh
the cluster refuses (`NotHolder`: the lease ended and maybe another owner has it) ends the
lease at once. Either way the lease is lost for good: a later refresh that gets through proves
nothing about the gap, when another owner may have held the lock.

A paused process (GC, SIGSTOP, a slow disk) can wake after `valid_until` and run some code
before its refresher notices, which is why the fencing token is the real protection: the
resource refuses tokens older than the newest it has seen.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from paxosd.client.core import LockGrant, LockHeld, LockLost, NotHolder, PaxosdError, ttl_ms

__all__ = ["Acquisition", "Lease", "LeaseKeeper", "OnLost"]

log = logging.getLogger("paxosd.client")

OnLost = Callable[[LockLost], Any]
# The client's clock and the leader's may run at slightly different rates: the lease is taken
# to end this fraction of the TTL early.
lease_margin_fraction = 0.01


class Lease(int):
    """The fencing token of a lock held with `Client.lock()` (it is that int: pass it to the
    resource you protect), which also tells whether the lease is still known to be held."""

    name: str
    owner: str
    ttl_s: float

    def __new__(cls, token: int, *, name: str, owner: str, ttl_s: float, sent_at: float) -> Lease:
        lease = super().__new__(cls, token)
        lease.name = name
        lease.owner = owner
        lease.ttl_s = ttl_s
        lease._valid_until = sent_at + ttl_s * (1 - lease_margin_fraction)
        lease._lost = threading.Event()
        lease._reason = None
        return lease

    _valid_until: float
    _lost: threading.Event
    _reason: str | None

    @property
    def token(self) -> int:
        return int(self)

    @property
    def valid_until(self) -> float:
        """`time.monotonic()` before which the lease is certainly still held (unless lost)."""
        return self._valid_until

    @property
    def valid_for_s(self) -> float:
        """Seconds the holder may still count on, 0 once the lease is lost."""
        return 0.0 if self.lost else max(0.0, self._valid_until - time.monotonic())

    @property
    def lost(self) -> bool:
        """True once the lease is lost, or may have ended (no refresh got through in time)."""
        return self._lost.is_set() or time.monotonic() >= self._valid_until

    @property
    def reason(self) -> str | None:
        if self._reason is not None:
            return self._reason
        if time.monotonic() >= self._valid_until:
            return "no refresh got through before the lease could have ended"
        return None

    def check(self) -> None:
        """Raise LockLost if the lease is lost: call it before an action the token does not
        protect."""
        if self.lost:
            raise self.error()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the refresher finds the lease lost (True) or `timeout` passes (False)."""
        return self._lost.wait(timeout)

    def error(self) -> LockLost:
        return LockLost(
            f"lost lock {self.name!r} (owner {self.owner!r}, fencing token {int(self)}): "
            f"{self.reason or 'lost'}"
        )

    # -- for the refresher ----------------------------------------------------------------

    def _renewed(self, sent_at: float) -> None:
        self._valid_until = max(
            self._valid_until, sent_at + self.ttl_s * (1 - lease_margin_fraction)
        )

    def _mark_lost(self, reason: str) -> bool:
        """Record the loss; True the first time."""
        if self._lost.is_set():
            return False
        self._reason = reason
        self._lost.set()
        return True


class LeaseKeeper:
    """The refresher's decisions, without its waiting (a thread for `Client`, a task for
    `AsyncClient`): when to refresh next, and what each outcome means for the lease."""

    def __init__(self, lease: Lease, on_lost: OnLost | None) -> None:
        self.lease = lease
        self.on_lost = on_lost
        self.last_error: str | None = None
        self.pending: Any = None

    def wait_s(self) -> float:
        """Refresh every third of the TTL; after a failure, sooner, while time is left."""
        ttl = self.lease.ttl_s
        interval = ttl / 3 if self.last_error is None else max(0.05, ttl / 10)
        left = self.lease.valid_until - time.monotonic()
        return max(0.0, min(interval, left))

    def time_left_s(self, now: float) -> float:
        """How long a refresh sent now may take: until the lease could end."""
        return max(0.01, self.lease.valid_until - now)

    def expired(self, now: float) -> bool:
        """True (and the lease marked lost) once it could have ended without a refresh."""
        if now < self.lease.valid_until:
            return False
        why = "no refresh got through before the lease could have ended"
        self.lose(f"{why} (last error: {self.last_error})" if self.last_error else why)
        return True

    def refreshed(self, sent_at: float) -> None:
        self.last_error = None
        self.lease._renewed(sent_at)

    def failed(self, error: PaxosdError) -> bool:
        """A refresh failed; True if that ends the lease (the cluster refused it)."""
        if isinstance(error, NotHolder):
            self.lose(f"the cluster refused a refresh: {error}")
            return True
        self.last_error = str(error)
        return False

    def lose(self, reason: str) -> None:
        """Mark the lease lost; the first time, call `on_lost`. What it returns is kept in
        `pending` so that an async caller can await a coroutine function's result."""
        if not self.lease._mark_lost(reason) or self.on_lost is None:
            return
        try:
            self.pending = self.on_lost(self.lease.error())
        except Exception:  # the holder's callback must not kill the refresher silently
            log.exception("on_lost callback of lock %r failed", self.lease.name)

    def take_pending(self) -> Any:
        pending, self.pending = self.pending, None
        return pending


class Acquisition:
    """`lock()`'s wait for a lock, without its waiting: the lease when a grant comes, a pause
    while another owner holds it, LockHeld when the wait is over."""

    def __init__(
        self, name: str, owner: str, ttl_s: float, wait_s: float, rng: random.Random
    ) -> None:
        ttl_ms(ttl_s)  # a bad TTL fails before anything is sent
        self.name, self.owner, self.ttl_s, self.wait_s = name, owner, ttl_s, wait_s
        self.deadline = time.monotonic() + wait_s
        self.rng = rng
        self.sent_at = 0.0

    def sending(self) -> None:
        """Call just before each acquire: the lease is measured from the last one sent."""
        self.sent_at = time.monotonic()

    def settle(self, grant: LockGrant) -> Lease | None:
        """The lease if `grant` is one; None: pause, then try again; LockHeld: give up."""
        if grant.acquired and grant.fencing_token is not None:
            return Lease(
                grant.fencing_token,
                name=self.name,
                owner=self.owner,
                ttl_s=self.ttl_s,
                sent_at=self.sent_at,
            )
        if time.monotonic() >= self.deadline:
            raise LockHeld(
                f"lock {self.name!r} is held by {grant.owner!r}; "
                f"gave up waiting after {self.wait_s:g} s",
                owner=grant.owner,
            )
        return None

    def pause_s(self) -> float:
        base = min(0.2, self.ttl_s / 10) * (0.5 + self.rng.random())
        return max(0.0, min(base, self.deadline - time.monotonic()))
