"""`paxosd.AsyncClient`: the asyncio client, the same operations as `paxosd.Client`.

async with AsyncClient() as client:
    await client.put("x", 1)
    async with client.lock("jobs", ttl=10) as token:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from paxosd.client import operations as ops
from paxosd.client.core import (
    Call,
    CasOutcome,
    ClientBase,
    KeyValue,
    LockGrant,
    PaxosdError,
    Registration,
    Unavailable,
)


class AsyncClient(ClientBase):
    def _open(self) -> None:
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=1.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get(self, key: str) -> KeyValue | None:
        return await self._do(*ops.get(key))

    async def put(self, key: str, value: Any) -> int:
        return await self._do(*ops.put(key, value))

    async def delete(self, key: str) -> bool:
        return await self._do(*ops.delete(key))

    async def cas(self, key: str, expected: Any, value: Any) -> CasOutcome:
        return await self._do(*ops.cas(key, expected, value))

    async def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        return await self._do(*ops.acquire(name, owner, int(ttl_s * 1000)))

    async def refresh(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        return await self._do(*ops.refresh(name, owner, int(ttl_s * 1000)))

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

    async def status(self) -> dict[str, Any]:
        return await self._do(*ops.status())

    @asynccontextmanager
    async def lock(
        self, name: str, *, ttl: float = 10.0, owner: str | None = None, wait_s: float = 30.0
    ) -> AsyncIterator[int]:
        """Hold a lock for the block (refreshed by a background task); yields its token."""
        owner = owner or f"{self.client_id}-{id(asyncio.current_task())}"
        deadline = time.monotonic() + wait_s
        while True:
            grant = await self.acquire(name, owner, ttl)
            if grant.acquired and grant.fencing_token is not None:
                break
            if time.monotonic() >= deadline:
                raise Unavailable(f"lock {name!r} is held by {grant.owner!r}; gave up waiting")
            await asyncio.sleep(min(0.2, ttl / 10) * (0.5 + self._rng.random()))
        refresher = asyncio.create_task(self._keep_alive(name, owner, ttl))
        try:
            yield grant.fencing_token
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            with contextlib.suppress(PaxosdError):
                await self.release(name, owner)

    async def _keep_alive(self, name: str, owner: str, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            with contextlib.suppress(PaxosdError):
                await self.refresh(name, owner, ttl)

    async def _do(self, call: Call, convert: Any) -> Any:
        with self._headers(call) as headers:
            attempts = self._attempts()
            while True:
                endpoint = attempts.next_endpoint()
                exchange: httpx.Response | httpx.HTTPError
                try:
                    exchange = await self._http.request(
                        call.method, endpoint + call.path, json=call.body, headers=headers
                    )
                except httpx.HTTPError as error:
                    exchange = error
                done, result = self._settle(call, convert, attempts, endpoint, exchange)
                if done:
                    return result
                await asyncio.sleep(attempts.backoff_s())
