"""`paxosd.Client`: the blocking client.

from paxosd import Client

client = Client()                         # the local cluster, or Client("host:7001,...")
client.put("config/mode", {"fast": True})
client.get("config/mode").value           # {'fast': True}
with client.lock("jobs/nightly", ttl=10) as token:
    storage.write(data, fencing_token=token)   # the resource refuses older tokens
    token.check()                              # raises LockLost if the lease is gone
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, overload

import httpx

from paxosd.client import kv
from paxosd.client import operations as ops
from paxosd.client.core import (
    Call,
    CasOutcome,
    ClientBase,
    KeyValue,
    LockGrant,
    PaxosdError,
    Registration,
    normalize,
    ttl_ms,
)
from paxosd.client.core import (
    key_text as _key,
)
from paxosd.client.election import Election
from paxosd.client.kv import DeleteResult, RangeResult, TxnResult
from paxosd.client.lease import Acquisition, Lease, LeaseKeeper, OnLost
from paxosd.client.session import Session, ttl_ms_of
from paxosd.client.watch import (
    EventParser,
    WatchEvent,
    WatchState,
    read_timeout_s,
    retries_max_default,
)


class Client(ClientBase):
    """A connection pool to a paxosd cluster. Thread-safe; reuse one per process."""

    def _open(self) -> None:
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s, connect=1.0), verify=self._verify()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the book's API and the service ------------------------------------------------------

    def put(self, key: str, value: Any, *, lease: int = 0) -> int:
        """Set a key to any JSON value; returns the new revision. With `lease`, the key is
        attached to that lease and deleted when it ends."""
        return self._do(*ops.put(key, value, lease))

    # -- leases, sessions, elections (docs/leases.md) ---------------------------------------

    def grant(self, ttl: float, *, lease_id: int = 0) -> int:
        """A lease of `ttl` seconds of the cluster's log time; its id."""
        return self._do(*ops.lease_grant(ttl_ms_of(ttl), lease_id))

    def keep_alive(self, lease_id: int) -> int:
        """Renew a lease to its full TTL; the TTL in ms. LeaseNotFound if it ended."""
        return self._do(*ops.lease_keepalive(lease_id))

    def revoke(self, lease_id: int) -> bool:
        """End a lease now, deleting its keys; False if it did not exist."""
        return self._do(*ops.lease_revoke(lease_id))

    def time_to_live(self, lease_id: int, *, keys: bool = False) -> dict[str, Any] | None:
        """{id, ttl_ms, granted_ttl_ms, revision, keys?} of a lease; None if it ended."""
        return self._do(*ops.lease_ttl(lease_id, keys))

    def leases(self) -> list[int]:
        """Every live lease's id."""
        return self._do(*ops.lease_list())

    def session(
        self,
        ttl: float = 10.0,
        *,
        on_state: Callable[[str], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
    ) -> Session:
        """A lease kept alive by a background thread until closed (paxosd.client.session):
        `with client.session(ttl=5) as s: s.put("workers/a", "up")`."""
        return Session(self, ttl, on_state=on_state, on_lost=on_lost)

    def election(self, name: str) -> Election:
        """The election NAME (paxosd.client.election): campaign, leader, observe."""
        return Election(self, name)

    def cas(self, key: str, expected: Any, value: Any) -> CasOutcome:
        """Set `value` if the key holds `expected` (None: if it does not exist)."""
        return self._do(*ops.cas(key, expected, value))

    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        """Take the lock for `ttl_s` seconds if it is free (or already `owner`'s)."""
        return self._do(*ops.acquire(name, owner, ttl_ms(ttl_s)))

    def refresh(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        """Extend `owner`'s lease to `ttl_s` from now; NotHolder if it no longer holds it."""
        return self._do(*ops.refresh(name, owner, ttl_ms(ttl_s)))

    def release(self, name: str, owner: str) -> bool:
        return self._do(*ops.release(name, owner))

    def lock_status(self, name: str) -> LockGrant:
        return self._do(*ops.lock_status(name))

    def register(self, name: str, owner: str) -> Registration:
        """Claim a name forever; the first owner wins and every answer names the winner."""
        return self._do(*ops.register(name, owner))

    def lookup(self, name: str) -> str | None:
        return self._do(*ops.lookup(name))

    def propose(self, decision: str, value: Any) -> Any:
        """The book's propose(): offer a value; returns the value chosen (maybe another)."""
        return self._do(*ops.propose(decision, value))

    def query(self, decision: str) -> Any:
        """The book's query(): the chosen value, or None if nothing was proposed yet."""
        return self._do(*ops.query(decision))

    # -- many keys: ranges, transactions, compaction ------------------------------------------

    @overload
    def get(
        self, key: str, *, revision: int = 0, serializable: bool = False
    ) -> KeyValue | None: ...
    @overload
    def get(
        self, key: None = None, *, prefix: str, revision: int = 0, serializable: bool = False
    ) -> list[KeyValue]: ...
    def get(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        revision: int = 0,
        serializable: bool = False,
    ) -> KeyValue | list[KeyValue] | None:
        """A key's value (None if it does not exist), or with `prefix` every key that starts
        with it, in key order; as of `revision` if given (linearizable unless
        `serializable`)."""
        if prefix is None and not revision and not serializable:
            return self._do(*ops.get(_key(key)))
        keys = kv.selector(key, prefix=prefix)
        options = kv.range_query(revision=revision, serializable=serializable)
        found = self._do(*ops.range_(keys, options))
        return found.kvs if prefix is not None else (found.kvs[0] if found.kvs else None)

    def range(
        self,
        start: str | None = None,
        end: str | None = None,
        *,
        prefix: str | None = None,
        key: str | None = None,
        **options: Any,
    ) -> RangeResult:
        """The keys of a `prefix`, or in [start, end) (without `end`: every key from `start`
        on; without either: every key). Options: limit, revision, sort_by (key, version,
        create, mod, value), order (ascend, descend), keys_only, count_only, serializable,
        min_mod_revision, max_mod_revision, min_create_revision, max_create_revision. The
        filters apply first, then the sort, then the limit. `key`: that key alone."""
        if key is not None or prefix is not None:
            keys = kv.selector(key, prefix=prefix)
        else:
            keys = kv.selector(start=start if start is not None else "", end=end)
        return self._do(*ops.range_(keys, kv.range_query(**options)))

    @overload
    def delete(self, key: str) -> bool: ...
    @overload
    def delete(
        self,
        key: None = None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        prev_kv: bool = False,
    ) -> DeleteResult: ...
    def delete(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        prev_kv: bool = False,
    ) -> bool | DeleteResult:
        """Delete a key (True if it existed), or every key of a `prefix` or of [start, end)
        in one revision (a DeleteResult: how many, and with `prev_kv` which)."""
        if key is not None and prefix is None and start is None and not prev_kv:
            return self._do(*ops.delete(key))
        keys = kv.selector(key, prefix=prefix, start=start, end=end)
        return self._do(*ops.delete_range(keys, prev_kv))

    def txn(self, request: dict[str, Any] | None = None) -> kv.BoundTxn[TxnResult]:
        """A transaction to build and `.commit()` (see paxosd.client.kv), or `request` as
        /v1/txn's JSON."""
        return kv.BoundTxn(lambda body: self._do(*ops.txn(body)), request)

    def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        retries_max: int = retries_max_default,
    ) -> Watch:
        """Every change of a key, a `prefix`, or the keys in [start, end), from
        `start_revision` on (0: the next one; a past revision replays the history still
        held), in revision order: `for event in client.watch(prefix="config/"): ...`.

        The watch moves to another node when its node fails and resumes from the last
        revision it delivered, nothing lost or repeated; `retries_max` failed connections in
        a row end it with Unavailable, and a history compacted away with WatchCompacted
        (re-list at its compact_revision, then watch from the revision after)."""
        state = WatchState.make(
            self.endpoints,
            key,
            prefix=prefix,
            start=start,
            end=end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            no_put=no_put,
            no_delete=no_delete,
            progress_notify=progress_notify,
            retries_max=retries_max,
        )
        return Watch(self._http, state)

    def compact(self, revision: int) -> int:
        """Forget the history before `revision` (reads below it are refused from then on);
        returns the store's revision."""
        return self._do(*ops.compact(revision))

    def status(
        self, endpoint: str | None = None, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """A node's view of the cluster (`endpoint`'s, else any node's); Unavailable if it
        does not answer within `timeout_s`."""
        if endpoint is None:
            return self._do(*ops.status(), timeout_s=timeout_s)
        return self._at(endpoint, *ops.status(), timeout_s=timeout_s)

    def health(self, endpoint: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """`endpoint`'s health check: {"ok": bool, "node_id", "leader", ...}."""
        return self._at(endpoint, *ops.health(), timeout_s=timeout_s)

    def _at(self, endpoint: str, call: Call, convert: Any, timeout_s: float | None) -> Any:
        """One request to one node, no retries (a question about that node)."""
        url = normalize([endpoint])[0]
        attempts = self._attempts(timeout_s)
        attempts.endpoints = [url]
        try:
            exchange: httpx.Response | httpx.HTTPError = self._http.request(
                call.method, url + call.path, **self._request(call, attempts, {})
            )
        except httpx.HTTPError as error:
            exchange = error
        attempts.deadline = 0.0  # one try: a failure settles the call
        return self._settle(call, convert, attempts, url, exchange)[1]

    @contextmanager
    def lock(
        self,
        name: str,
        *,
        ttl: float = 10.0,
        owner: str | None = None,
        wait_s: float = 30.0,
        on_lost: OnLost | None = None,
    ) -> Iterator[Lease]:
        """Hold a lock for the block and hand out its fencing token (a `Lease`, an int).

        The lease is refreshed in the background every ttl/3. Pass the token to whatever you
        protect and have it refuse older tokens: a paused holder whose lease lapsed then
        cannot do harm. If the lease is lost (a refresh refused, or none got through before
        it could end), `on_lost(LockLost)` is called at once from the refresher's thread,
        `token.lost` turns True (`token.check()` raises), and the block, if it ends normally,
        raises LockLost. Waits up to `wait_s` for a held lock, then raises LockHeld."""
        attempt = Acquisition(
            name, owner or f"{self.client_id}-{threading.get_ident()}", ttl, wait_s, self._rng
        )
        while True:
            attempt.sending()
            lease = attempt.settle(self.acquire(name, attempt.owner, ttl))
            if lease is not None:
                break
            time.sleep(attempt.pause_s())
        keeper = LeaseKeeper(lease, on_lost)
        stop = threading.Event()
        refresher = threading.Thread(
            target=self._keep_alive, args=(keeper, stop), daemon=True, name=f"lock-{name}"
        )
        refresher.start()
        try:
            yield lease
        except BaseException:
            self._end_lock(keeper, stop, refresher)
            raise  # the block's own error comes first
        self._end_lock(keeper, stop, refresher)
        if lease.lost:
            raise lease.error()

    def _end_lock(
        self, keeper: LeaseKeeper, stop: threading.Event, refresher: threading.Thread
    ) -> None:
        stop.set()
        refresher.join()
        lease = keeper.lease
        keeper.expired(time.monotonic())  # a block that ran past the lease lost it
        # Expired or unreachable: the lease ends on its own.
        with contextlib.suppress(PaxosdError):
            self.release(lease.name, lease.owner)

    def _keep_alive(self, keeper: LeaseKeeper, stop: threading.Event) -> None:
        lease = keeper.lease
        while not stop.wait(keeper.wait_s()):
            sent_at = time.monotonic()
            if keeper.expired(sent_at):
                return
            try:
                call, convert = ops.refresh(lease.name, lease.owner, ttl_ms(lease.ttl_s))
                self._do(call, convert, timeout_s=keeper.time_left_s(sent_at))
            except PaxosdError as error:
                if keeper.failed(error):
                    return
                continue
            keeper.refreshed(sent_at)

    # -- sending ---------------------------------------------------------------------------

    def _do(self, call: Call, convert: Any, timeout_s: float | None = None) -> Any:
        with self._headers(call) as headers:
            attempts = self._attempts(timeout_s)
            while True:
                endpoint = attempts.next_endpoint()
                exchange: httpx.Response | httpx.HTTPError
                try:
                    exchange = self._http.request(
                        call.method, endpoint + call.path, **self._request(call, attempts, headers)
                    )
                except httpx.HTTPError as error:
                    exchange = error
                done, result = self._settle(call, convert, attempts, endpoint, exchange)
                if done:
                    return result
                time.sleep(attempts.backoff_s())


class Watch:
    """A watch being read (`Client.watch`): iterate over its WatchEvents; `revision` is the
    revision up to which everything was delivered; `close()` (or leaving a `with` block)
    ends it, from any thread."""

    def __init__(self, http: httpx.Client, state: WatchState) -> None:
        self._http = http
        self.state = state
        self._closed = False
        self._response: httpx.Response | None = None

    @property
    def revision(self) -> int:
        return self.state.revision

    def close(self) -> None:
        self._closed = True
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[WatchEvent]:
        state = self.state
        timeout = httpx.Timeout(10.0, connect=1.0, read=read_timeout_s)
        while not self._closed:
            url = state.url()
            try:
                with self._http.stream("GET", url, timeout=timeout) as response:
                    self._response = response
                    if response.status_code != 200:
                        delay = state.refused(response.status_code, response.read())
                    else:
                        parser = EventParser()
                        for line in response.iter_lines():
                            message = parser.line(line)
                            if message is not None:
                                yield from state.message(*message)
                        if self._closed:
                            return
                        delay = state.failed(f"{state.node}: the stream ended")
            except httpx.HTTPError as error:
                if self._closed:
                    return
                delay = state.failed(f"{state.node}: {error or type(error).__name__}")
            finally:
                self._response = None
            time.sleep(delay)
