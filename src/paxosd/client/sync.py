"""`paxosd.Client`: the blocking client.

from paxosd import Client

client = Client()                         # the local cluster, or Client("host:7001,...")
client.put("config/mode", {"fast": True})
client.get("config/mode").value           # {'fast': True}
with client.lock("jobs/nightly", ttl=10) as token:
    storage.write(data, fencing_token=token)   # the resource refuses older tokens
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    normalize,
)


class Client(ClientBase):
    """A connection pool to a paxosd cluster. Thread-safe; reuse one per process."""

    def _open(self) -> None:
        self._http = httpx.Client(timeout=httpx.Timeout(self.timeout_s, connect=1.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the book's API and the service ------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        """The key's value and revision, or None if it does not exist (linearizable)."""
        return self._do(*ops.get(key))

    def put(self, key: str, value: Any) -> int:
        """Set a key to any JSON value; returns the new revision."""
        return self._do(*ops.put(key, value))

    def delete(self, key: str) -> bool:
        """Delete a key; True if it existed."""
        return self._do(*ops.delete(key))

    def cas(self, key: str, expected: Any, value: Any) -> CasOutcome:
        """Set `value` if the key holds `expected` (None: if it does not exist)."""
        return self._do(*ops.cas(key, expected, value))

    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        return self._do(*ops.acquire(name, owner, int(ttl_s * 1000)))

    def refresh(self, name: str, owner: str, ttl_s: float) -> LockGrant:
        return self._do(*ops.refresh(name, owner, int(ttl_s * 1000)))

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

    def status(self, endpoint: str | None = None) -> dict[str, Any]:
        call, convert = ops.status()
        if endpoint is None:
            return self._do(call, convert)
        response = self._http.get(normalize([endpoint])[0] + call.path)
        return convert(response.json())

    @contextmanager
    def lock(
        self, name: str, *, ttl: float = 10.0, owner: str | None = None, wait_s: float = 30.0
    ) -> Iterator[int]:
        """Hold a lock for the block and hand out its fencing token. The lease is refreshed
        in the background; pass the token to whatever you protect, and have it refuse older
        tokens - a paused holder whose lease lapsed then cannot do harm."""
        owner = owner or f"{self.client_id}-{threading.get_ident()}"
        deadline = time.monotonic() + wait_s
        while True:
            grant = self.acquire(name, owner, ttl)
            if grant.acquired and grant.fencing_token is not None:
                break
            if time.monotonic() >= deadline:
                raise Unavailable(f"lock {name!r} is held by {grant.owner!r}; gave up waiting")
            time.sleep(min(0.2, ttl / 10) * (0.5 + self._rng.random()))
        stop = threading.Event()
        refresher = threading.Thread(
            target=self._keep_alive, args=(name, owner, ttl, stop), daemon=True
        )
        refresher.start()
        try:
            yield grant.fencing_token
        finally:
            stop.set()
            refresher.join()
            # Expired or unreachable: the lease ends on its own.
            with contextlib.suppress(PaxosdError):
                self.release(name, owner)

    def _keep_alive(self, name: str, owner: str, ttl: float, stop: threading.Event) -> None:
        while not stop.wait(ttl / 3):
            try:
                self.refresh(name, owner, ttl)
            except PaxosdError:
                continue  # try again; if the lease lapses, the fencing token protects

    # -- sending ---------------------------------------------------------------------------

    def _do(self, call: Call, convert: Any) -> Any:
        with self._headers(call) as headers:
            attempts = self._attempts()
            while True:
                endpoint = attempts.next_endpoint()
                exchange: httpx.Response | httpx.HTTPError
                try:
                    exchange = self._http.request(
                        call.method, endpoint + call.path, json=call.body, headers=headers
                    )
                except httpx.HTTPError as error:
                    exchange = error
                done, result = self._settle(call, convert, attempts, endpoint, exchange)
                if done:
                    return result
                time.sleep(attempts.backoff_s())
