"""`paxosd.AsyncClient`: the asyncio client, the same operations as `paxosd.Client`.

async with AsyncClient() as client:
    await client.put("x", 1)
    async with client.lock("jobs", ttl=10, on_lost=stop_the_job) as token:
        ...                                    # token.lost: is the lease gone?
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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
from paxosd.client.election import AsyncElection
from paxosd.client.kv import DeleteResult, RangeResult, TxnResult
from paxosd.client.lease import Acquisition, Lease, LeaseKeeper, OnLost
from paxosd.client.session import AsyncSession, ttl_ms_of
from paxosd.client.watch import (
    EventParser,
    WatchEvent,
    WatchState,
    read_timeout_s,
    retries_max_default,
)


class AsyncClient(ClientBase):
    def _open(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s, connect=1.0), verify=self._verify()
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def put(self, key: str, value: Any, *, lease: int = 0) -> int:
        """As `Client.put`: with `lease`, the key ends with that lease."""
        return await self._do(*ops.put(key, value, lease))

    # -- leases, sessions, elections (docs/leases.md) ---------------------------------------

    async def grant(self, ttl: float, *, lease_id: int = 0) -> int:
        return await self._do(*ops.lease_grant(ttl_ms_of(ttl), lease_id))

    async def keep_alive(self, lease_id: int) -> int:
        return await self._do(*ops.lease_keepalive(lease_id))

    async def revoke(self, lease_id: int) -> bool:
        return await self._do(*ops.lease_revoke(lease_id))

    async def time_to_live(self, lease_id: int, *, keys: bool = False) -> dict[str, Any] | None:
        return await self._do(*ops.lease_ttl(lease_id, keys))

    async def leases(self) -> list[int]:
        return await self._do(*ops.lease_list())

    async def session(
        self,
        ttl: float = 10.0,
        *,
        on_state: Callable[[str], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
    ) -> AsyncSession:
        """As `Client.session`, kept alive by a task: `async with await client.session()`."""
        return await AsyncSession.start(self, ttl, on_state=on_state, on_lost=on_lost)

    def election(self, name: str) -> AsyncElection:
        return AsyncElection(self, name)

    async def cas(self, key: str, expected: Any, value: Any) -> CasOutcome:
        return await self._do(*ops.cas(key, expected, value))

    async def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        return await self._do(*ops.acquire(name, owner, ttl_ms(ttl_s)))

    async def refresh(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        return await self._do(*ops.refresh(name, owner, ttl_ms(ttl_s)))

    async def release(self, name: str, owner: str) -> bool:
        return await self._do(*ops.release(name, owner))

    async def lock_status(self, name: str) -> LockGrant:
        return await self._do(*ops.lock_status(name))

    async def register(self, name: str, owner: str) -> Registration:
        return await self._do(*ops.register(name, owner))

    async def lookup(self, name: str) -> str | None:
        return await self._do(*ops.lookup(name))

    async def propose(self, decision: str, value: Any) -> Any:
        return await self._do(*ops.propose(decision, value))

    async def query(self, decision: str) -> Any:
        return await self._do(*ops.query(decision))

    # -- many keys: ranges, transactions, compaction ------------------------------------------

    @overload
    async def get(
        self, key: str, *, revision: int = 0, serializable: bool = False
    ) -> KeyValue | None: ...
    @overload
    async def get(
        self, key: None = None, *, prefix: str, revision: int = 0, serializable: bool = False
    ) -> list[KeyValue]: ...
    async def get(
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
            return await self._do(*ops.get(_key(key)))
        keys = kv.selector(key, prefix=prefix)
        options = kv.range_query(revision=revision, serializable=serializable)
        found = await self._do(*ops.range_(keys, options))
        return found.kvs if prefix is not None else (found.kvs[0] if found.kvs else None)

    async def range(
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
        return await self._do(*ops.range_(keys, kv.range_query(**options)))

    @overload
    async def delete(self, key: str) -> bool: ...
    @overload
    async def delete(
        self,
        key: None = None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        prev_kv: bool = False,
    ) -> DeleteResult: ...
    async def delete(
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
            return await self._do(*ops.delete(key))
        keys = kv.selector(key, prefix=prefix, start=start, end=end)
        return await self._do(*ops.delete_range(keys, prev_kv))

    def txn(self) -> kv.BoundTxn[TxnResult]:
        """A transaction to build and `.commit()`: see paxosd.client.kv."""
        return kv.BoundTxn(lambda body: self._do(*ops.txn(body)))

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
    ) -> AsyncWatch:
        """`Client.watch`, for `async for event in client.watch(prefix=...)`."""
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
        return AsyncWatch(self._http, state)

    async def compact(self, revision: int) -> int:
        """Forget the history before `revision` (reads below it are refused from then on);
        returns the store's revision."""
        return await self._do(*ops.compact(revision))

    async def status(
        self, endpoint: str | None = None, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        if endpoint is None:
            return await self._do(*ops.status(), timeout_s=timeout_s)
        return await self._at(endpoint, *ops.status(), timeout_s=timeout_s)

    async def health(self, endpoint: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        return await self._at(endpoint, *ops.health(), timeout_s=timeout_s)

    async def _at(self, endpoint: str, call: Call, convert: Any, timeout_s: float | None) -> Any:
        url = normalize([endpoint])[0]
        attempts = self._attempts(timeout_s)
        attempts.endpoints = [url]
        try:
            exchange: httpx.Response | httpx.HTTPError = await self._http.request(
                call.method, url + call.path, **self._request(call, attempts, {})
            )
        except httpx.HTTPError as error:
            exchange = error
        attempts.deadline = 0.0  # one try: a failure settles the call
        return self._settle(call, convert, attempts, url, exchange)[1]

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        *,
        ttl: float = 10.0,
        owner: str | None = None,
        wait_s: float = 30.0,
        on_lost: OnLost | None = None,
    ) -> AsyncIterator[Lease]:
        """Hold a lock for the block (refreshed by a background task); yields its fencing
        token, a `Lease`. As `Client.lock()`: `on_lost` (a function or a coroutine function)
        is called when the lease is lost, `token.lost` turns True, and the block raises
        LockLost at its end."""
        attempt = Acquisition(
            name, owner or f"{self.client_id}-{id(asyncio.current_task())}", ttl, wait_s, self._rng
        )
        while True:
            attempt.sending()
            lease = attempt.settle(await self.acquire(name, attempt.owner, ttl))
            if lease is not None:
                break
            await asyncio.sleep(attempt.pause_s())
        keeper = LeaseKeeper(lease, on_lost)
        refresher = asyncio.create_task(self._keep_alive(keeper))
        try:
            yield lease
        except BaseException:
            await self._end_lock(keeper, refresher)
            raise  # the block's own error comes first
        await self._end_lock(keeper, refresher)
        if lease.lost:
            raise lease.error()

    async def _end_lock(self, keeper: LeaseKeeper, refresher: asyncio.Task[None]) -> None:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        keeper.expired(time.monotonic())  # a block that ran past the lease lost it
        await _settled(keeper.take_pending())
        with contextlib.suppress(PaxosdError):
            await self.release(keeper.lease.name, keeper.lease.owner)

    async def _keep_alive(self, keeper: LeaseKeeper) -> None:
        lease = keeper.lease
        while True:
            await asyncio.sleep(keeper.wait_s())
            sent_at = time.monotonic()
            if keeper.expired(sent_at):
                await _settled(keeper.take_pending())
                return
            try:
                call, convert = ops.refresh(lease.name, lease.owner, ttl_ms(lease.ttl_s))
                await self._do(call, convert, timeout_s=keeper.time_left_s(sent_at))
            except PaxosdError as error:
                if keeper.failed(error):
                    await _settled(keeper.take_pending())
                    return
                continue
            keeper.refreshed(sent_at)

    async def _do(self, call: Call, convert: Any, timeout_s: float | None = None) -> Any:
        with self._headers(call) as headers:
            attempts = self._attempts(timeout_s)
            while True:
                endpoint = attempts.next_endpoint()
                exchange: httpx.Response | httpx.HTTPError
                try:
                    exchange = await self._http.request(
                        call.method, endpoint + call.path, **self._request(call, attempts, headers)
                    )
                except httpx.HTTPError as error:
                    exchange = error
                done, result = self._settle(call, convert, attempts, endpoint, exchange)
                if done:
                    return result
                await asyncio.sleep(attempts.backoff_s())


async def _settled(result: Any) -> None:
    """Await what an `on_lost` coroutine function returned; a plain function's result is
    ignored."""
    if inspect.isawaitable(result):
        try:
            await result
        except Exception:
            logging.getLogger("paxosd.client").exception("on_lost callback failed")


class AsyncWatch:
    """A watch being read (`AsyncClient.watch`): `async for` over its WatchEvents;
    `revision` is the revision up to which everything was delivered; `aclose()` (or leaving
    an `async with` block) ends it."""

    def __init__(self, http: httpx.AsyncClient, state: WatchState) -> None:
        self._http = http
        self.state = state
        self._closed = False
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._parser = EventParser()
        self._pending: collections.deque[WatchEvent] = collections.deque()

    @property
    def revision(self) -> int:
        return self.state.revision

    async def aclose(self) -> None:
        self._closed = True
        await self._drop()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        state = self.state
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._closed:
                raise StopAsyncIteration
            try:
                if self._lines is None:
                    delay = await self._connect()
                    if delay is not None:
                        await asyncio.sleep(delay)
                    continue
                line = await self._lines.__anext__()
            except StopAsyncIteration:
                await self._drop()
                if self._closed:
                    raise
                await asyncio.sleep(state.failed(f"{state.node}: the stream ended"))
                continue
            except httpx.HTTPError as error:
                await self._drop()
                if self._closed:
                    raise StopAsyncIteration from None
                await asyncio.sleep(state.failed(f"{state.node}: {error or type(error).__name__}"))
                continue
            message = self._parser.line(line)
            if message is not None:
                self._pending.extend(state.message(*message))

    async def _connect(self) -> float | None:
        """Open the next connection; None if it streams, else how long to wait."""
        state = self.state
        timeout = httpx.Timeout(10.0, connect=1.0, read=read_timeout_s)
        request = self._http.build_request("GET", state.url(), timeout=timeout)
        response = await self._http.send(request, stream=True)
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            return state.refused(response.status_code, body)
        self._response = response
        self._lines = response.aiter_lines()
        self._parser = EventParser()
        return None

    async def _drop(self) -> None:
        response, self._response, self._lines = self._response, None, None
        if response is not None:
            with contextlib.suppress(Exception):
                await response.aclose()
