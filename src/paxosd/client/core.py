"""What the sync and async clients share: requests, answers, retries - without I/O.

Theory of operation. A call becomes a `Call` (method, path, body, whether it writes). A write
gets a sequence number once, and every retry of it carries the same (client id, seq), so the
cluster applies it at most once however often it is sent. `Attempts` decides, after each try,
what to do next: return the answer, raise a typed error, or try again - at the leader the last
node named, else at the next endpoint - after a jittered exponential backoff, until the
call's deadline. A write that may have reached a node and got no definite answer ends in
`OutcomeUnknown`, never in a plain failure: the caller can retry it, or read to find out.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

DEFAULT_ENDPOINTS = ("http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003")
ENDPOINTS_VARIABLE = "PAXOSD_ENDPOINTS"
backoff_s_min = 0.02
backoff_s_max = 0.5


class PaxosdError(Exception):
    """Base class of the client's errors."""


class BadRequest(PaxosdError, ValueError):
    """The request is malformed (refused by the client before sending, or by the cluster):
    nothing was applied; fix it, retrying will not help."""


class RequestMismatch(BadRequest):
    """The cluster has already applied another request under this exactly-once id (client id
    and sequence number): two clients share an id. Nothing was applied; give each process a
    client id of its own."""


class RevisionCompacted(BadRequest):
    """A read (or a compaction) asked for a revision the store has compacted away: read at
    the oldest revision it holds (the message names it) or later."""


class FutureRevision(BadRequest):
    """A read (or a compaction) asked for a revision the store has not reached yet."""


class NotHolder(PaxosdError):
    """A lock operation by an owner that does not hold the lock."""


class LeaseNotFound(PaxosdError):
    """The lease does not exist: never granted, revoked, or ended by the cluster's log time
    (its keys are gone with it)."""


class LockHeld(PaxosdError):
    """The lock stayed held by another owner for as long as the caller would wait (a
    definite no: nothing was applied). `owner` names the holder."""

    def __init__(self, message: str, owner: str | None = None) -> None:
        super().__init__(message)
        self.owner = owner


class LockLost(PaxosdError):
    """A lock held with `Client.lock()` was lost while the block ran: a refresh was refused
    (another owner has it) or none got through before the lease ended. Work done since then
    may have overlapped another holder's; only the fencing token protected it."""


class Unavailable(PaxosdError):
    """No node could serve the request in time. For a write, nothing was applied.
    `refused` is True when every endpoint refused the connection: nothing is listening
    there (the cluster is not running, or the endpoints are wrong)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class OutcomeUnknown(Unavailable):
    """A write may or may not have been applied (it reached a node, no definite answer came).
    Retrying it with the same client is safe; reading tells you what happened."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key as the store holds it: its value (a JSON value, or `bytes` if it is not JSON
    text), `revision` the revision of its last change (etcd's mod_revision), the revision
    that created it, its version (1 at creation, +1 per change) and its lease (0: none)."""

    key: str
    value: Any
    revision: int
    create_revision: int = 0
    version: int = 0
    lease: int = 0

    @property
    def mod_revision(self) -> int:
        return self.revision


@dataclass(frozen=True, slots=True)
class CasOutcome:
    succeeded: bool
    value: Any
    revision: int


@dataclass(frozen=True, slots=True)
class LockGrant:
    acquired: bool
    owner: str | None
    fencing_token: int | None
    # How much of the lease was left when the cluster answered, in milliseconds of the
    # cluster's log time (None: the lock is free). The cluster states no date: its lease
    # clock is the leader's monotonic clock, not a wall clock.
    expires_in_ms: int | None


@dataclass(frozen=True, slots=True)
class Registration:
    registered: bool
    owner: str


class Sessions:
    """Exactly-once sessions for concurrent requests from one client object.

    The cluster applies requests of one session in sequence order and refuses one older than
    the last it applied, so two requests in flight at once must not share a session. Each
    request borrows a free session and its next sequence number, and gives it back when the
    request is over (answered or given up); a client makes at most as many sessions as it
    ever has requests in flight. Thread-safe (list.pop/append are atomic under the GIL)."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.free: list[list[Any]] = []  # [session id, last seq]
        self.made = 0

    def borrow(self) -> list[Any]:
        try:
            session = self.free.pop()
        except IndexError:
            self.made += 1
            session = [f"{self.client_id}.{self.made}", 0]
        session[1] += 1
        return session

    def give_back(self, session: list[Any]) -> None:
        self.free.append(session)


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None
    write: bool
    ok_statuses: tuple[int, ...] = (200, 201)
    absent_statuses: tuple[int, ...] = ()  # answers that mean "nothing there" (404)
    content: bytes | None = None  # the body as sent; `encode_body` makes it

    def __post_init__(self) -> None:
        if self.body is not None and self.content is None:
            object.__setattr__(self, "content", encode_body(self.body))


def encode_body(body: dict[str, Any]) -> bytes:
    """The JSON a request carries; a value JSON cannot carry (NaN, infinity, a set, an
    object) is the caller's mistake, refused here as BadRequest before anything is sent."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        raise BadRequest(
            "NaN and infinity are not JSON values; send a number or a string"
        ) from None
    except TypeError as error:
        raise BadRequest(f"the value is not JSON: {error}") from None


def key_text(key: str | None) -> str:
    """A single key the caller must have given."""
    if key is None:
        raise BadRequest("give a key (or prefix=... for every key that starts with it)")
    return key


def kv_path(key: str) -> str:
    return "/v1/kv/" + quote(_nonempty(key, "key"), safe="")


def named(prefix: str, name: str, suffix: str = "") -> str:
    what = {"locks": "lock name", "names": "name", "decisions": "decision id"}.get(prefix, "name")
    return f"/v1/{prefix}/{quote(_nonempty(name, what), safe='')}{suffix}"


def _nonempty(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise BadRequest(f"the {what} must be a string, not {type(text).__name__}")
    if not text:
        raise BadRequest(f"the {what} must not be empty")
    return text


def ttl_ms(ttl_s: float) -> int:
    """A lease in seconds, checked against the cluster's limits, in milliseconds."""
    # Imported here: the service package costs tens of milliseconds, every CLI start.
    from paxosd.service.commands import ttl_ms_max, ttl_ms_min

    low, high = ttl_ms_min / 1000, ttl_ms_max / 1000
    if not isinstance(ttl_s, int | float) or not low <= ttl_s <= high:  # also refuses NaN
        raise BadRequest(f"the lock ttl must be between {low:g} and {high:g} seconds, not {ttl_s}")
    return round(ttl_s * 1000)


def normalize(endpoints: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Endpoints as base URLs. None: $PAXOSD_ENDPOINTS, else the local cluster's. Each is
    HOST:PORT or http://HOST:PORT; anything else is a BadRequest naming it."""
    if endpoints is None:
        endpoints = os.environ.get(ENDPOINTS_VARIABLE) or list(DEFAULT_ENDPOINTS)
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",") if e.strip()]
    result = []
    for endpoint in endpoints:
        endpoint = endpoint.strip().rstrip("/")
        if "://" not in endpoint:
            endpoint = "http://" + endpoint
        parts = urlsplit(endpoint)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            shown = endpoint.removeprefix("http://")
            raise BadRequest(f"bad endpoint {shown!r}: expected HOST:PORT, e.g. 127.0.0.1:7001")
        result.append(endpoint)
    if not result:
        raise BadRequest("no endpoints given: expected HOST:PORT,HOST:PORT,...")
    return result


@dataclass(slots=True)
class Attempts:
    """The retry state of one call."""

    endpoints: list[str]
    deadline: float
    rng: random.Random
    start: int = 0
    tries: int = 0
    reached: bool = False  # some node may have received this write
    preferred: str | None = None
    errors: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # endpoints that refused the connection
    answered: bool = False  # some endpoint took the connection (or sent an answer)
    just_refused: bool = False  # the last try's connection was refused

    def next_endpoint(self) -> str:
        if self.preferred is not None:
            endpoint, self.preferred = self.preferred, None
            return endpoint
        endpoint = self.endpoints[(self.start + self.tries) % len(self.endpoints)]
        return endpoint

    def backoff_s(self) -> float:
        if self.just_refused and len(self.refused) < len(self.endpoints):
            return 0.0  # nothing listens there; the next endpoint costs nobody anything
        base = min(backoff_s_max, backoff_s_min * (2 ** min(self.tries, 8)))
        return base * (0.5 + self.rng.random())

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.deadline - now)

    def failed(self, call: Call, why: str, maybe_applied: bool) -> None:
        self.tries += 1
        self.just_refused = False
        self.errors.append(why)
        if call.write and maybe_applied:
            self.reached = True

    def refused_by(self, call: Call, endpoint: str, why: str) -> None:
        """The endpoint refused the connection: nothing listens there, so it saw nothing."""
        self.failed(call, f"{endpoint}: {why}", maybe_applied=False)
        self.refused.add(endpoint)
        self.just_refused = True

    def refused_everywhere(self) -> bool:
        """Every endpoint refused the connection and none ever took one: nothing is
        listening, and waiting out the deadline would only make the caller wait."""
        return not self.answered and self.refused >= set(self.endpoints)

    def give_up(self, call: Call) -> PaxosdError:
        if self.refused_everywhere():
            where = ", ".join(e.removeprefix("http://") for e in self.endpoints)
            message = f"every endpoint refused the connection ({where})"
            if call.write and self.reached:
                return OutcomeUnknown(message)
            return Unavailable(message, refused=True)
        detail = "; ".join(self.errors[-3:])
        if call.write and self.reached:
            return OutcomeUnknown(f"no definite answer from the cluster ({detail})")
        return Unavailable(f"no node could serve the request ({detail})")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one HTTP answer."""

    done: bool
    data: Any = None
    error: PaxosdError | None = None
    retry_at: str | None = None  # a leader's address to try next
    maybe_applied: bool = False
    why: str = ""


# The store's refusals that have a type of their own.
_REFUSALS: dict[str, type[BadRequest]] = {
    "compacted": RevisionCompacted,
    "future_revision": FutureRevision,
}


def judge(call: Call, status: int, body: bytes) -> Verdict:
    """Interpret one HTTP answer."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {"error": "bad_response", "message": body[:200].decode(errors="replace")}
    if status in call.ok_statuses:
        return Verdict(True, data)
    if status in call.absent_statuses:
        return Verdict(True, None)
    code = data.get("error") if isinstance(data, dict) else None
    message = data.get("message", "") if isinstance(data, dict) else ""
    if status == 409 and code == "not_holder":
        return Verdict(True, error=NotHolder(message))
    if code == "lease_not_found":
        return Verdict(True, error=LeaseNotFound(message or code))
    if code == "request_mismatch":
        return Verdict(True, error=RequestMismatch(f"{code}: {message}"))
    if code == "stale_request":  # a session used by two requests at once: our bug
        return Verdict(True, error=PaxosdError(f"session reused concurrently: {message}"))
    if status == 409:
        return Verdict(True, data)
    if code in _REFUSALS:
        return Verdict(True, error=_REFUSALS[code](f"{code}: {message}"))
    if 400 <= status < 500 and status != 429:
        return Verdict(True, error=BadRequest(f"{code}: {message}"))
    if code == "not_leader":
        leader = data.get("leader_http")
        hint = normalize([leader])[0] if isinstance(leader, str) and leader else None
        return Verdict(False, retry_at=hint, why=f"not leader ({message})")
    outcome = data.get("outcome") if isinstance(data, dict) else None
    return Verdict(False, maybe_applied=outcome != "failed", why=f"{status} {code}: {message}")


# -- turning answers into values ------------------------------------------------------------


def stored_value(data: dict[str, Any]) -> Any:
    """An answer's value: its JSON `value`, or the bytes of its `value_base64`."""
    if "value_base64" in data:
        return base64.b64decode(data["value_base64"])
    return data.get("value")


def to_kv(data: Any) -> KeyValue | None:
    if data is None:
        return None
    return KeyValue(
        data["key"],
        stored_value(data),
        int(data.get("revision", 0)),
        create_revision=int(data.get("create_revision", 0)),
        version=int(data.get("version", 0)),
        lease=int(data.get("lease", 0)),
    )


def to_cas(data: Any) -> CasOutcome:
    return CasOutcome(bool(data["succeeded"]), stored_value(data), int(data.get("revision", 0)))


def to_grant(data: Any) -> LockGrant:
    return LockGrant(
        bool(data.get("acquired")),
        data.get("owner"),
        data.get("fencing_token"),
        data.get("expires_in_ms"),
    )


def to_registration(data: Any) -> Registration:
    return Registration(bool(data.get("registered")), data.get("owner"))


class ClientBase:
    """What `Client` and `AsyncClient` share: endpoints, exactly-once sessions, the leader
    last seen, and how one HTTP exchange (or its failure) settles a call. Only the waiting
    differs between them - blocking or awaiting - so only the sending loop is theirs."""

    def __init__(
        self,
        endpoints: str | list[str] | None = None,
        *,
        timeout_s: float = 10.0,
        client_id: str | None = None,
    ) -> None:
        self.endpoints = normalize(endpoints)
        self.timeout_s = timeout_s
        self.client_id = client_id or uuid.uuid4().hex
        self._sessions = Sessions(self.client_id)
        self._rng = random.Random()
        self._leader: str | None = None
        self._open()

    def _open(self) -> None:
        """Make the HTTP connection pool (blocking or asyncio: the subclass's)."""
        raise NotImplementedError

    def _verify(self) -> bool:
        """Whether the pool needs certificates: only for https endpoints (loading them costs
        about 0.2 s, which a command-line call would pay every time)."""
        return any(e.startswith("https://") for e in self.endpoints)

    @contextmanager
    def _headers(self, call: Call) -> Iterator[dict[str, str]]:
        """The exactly-once headers of a write (a session borrowed for its whole life, retries
        included); none for a read."""
        if not call.write:
            yield {}
            return
        session = self._sessions.borrow()
        try:
            yield {"Paxosd-Client-Id": session[0], "Paxosd-Seq": str(session[1])}
        finally:
            self._sessions.give_back(session)

    def _attempts(self, timeout_s: float | None = None) -> Attempts:
        return Attempts(
            self.endpoints,
            time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s),
            self._rng,
            start=self._rng.randrange(len(self.endpoints)),
            preferred=self._leader,
        )

    def _request(self, call: Call, attempts: Attempts, headers: dict[str, str]) -> dict[str, Any]:
        """The keyword arguments of one try's HTTP request: its body, and a timeout that ends
        with the call's deadline (a slow node cannot hold the call past it)."""
        remaining = max(0.001, attempts.remaining_s(time.monotonic()))
        if call.content is not None:
            headers = {**headers, "Content-Type": "application/json"}
        return {
            "content": call.content,
            "headers": headers,
            "timeout": httpx.Timeout(remaining, connect=min(1.0, remaining)),
        }

    def _settle(
        self,
        call: Call,
        convert: Any,
        attempts: Attempts,
        endpoint: str,
        exchange: httpx.Response | httpx.HTTPError,
    ) -> tuple[bool, Any]:
        """(True, result) when the call is answered; raises its definite error; otherwise
        records the failed attempt and returns (False, None): try again after a backoff."""
        if isinstance(exchange, httpx.ConnectError):
            attempts.refused_by(call, endpoint, str(exchange))
            if attempts.refused_everywhere():
                raise attempts.give_up(call)
        elif isinstance(exchange, httpx.ConnectTimeout):  # no connection: nothing was sent
            attempts.failed(call, f"{endpoint}: connect timeout", maybe_applied=False)
        elif isinstance(exchange, httpx.HTTPError):
            attempts.answered = True
            why = str(exchange) or type(exchange).__name__
            attempts.failed(call, f"{endpoint}: {why}", maybe_applied=True)
        else:
            attempts.answered = True
            verdict = judge(call, exchange.status_code, exchange.content)
            if verdict.done:
                self._leader = endpoint if call.write else self._leader
                if verdict.error is not None:
                    raise verdict.error
                return True, convert(verdict.data)
            attempts.failed(call, f"{endpoint}: {verdict.why}", verdict.maybe_applied)
            attempts.preferred = verdict.retry_at
            self._leader = verdict.retry_at
        if time.monotonic() >= attempts.deadline:
            raise attempts.give_up(call)
        return False, None
