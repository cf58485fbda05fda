"""The route table: every operation of the HTTP API, once.

`http.make_app` registers these in order and `openapi.document` describes them; a test
compares the application's router with the document. Order matters in one way: aiohttp tries
resources in registration order and falls through on a method mismatch, so the `/cas`,
`/acquire`, ... sub-resources come before the bare `{key:.+}` ones that would also match them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from aiohttp import web

from . import handlers as h
from .calls import Call
from .schema import HTML_TYPE, JSON_TYPE, METRICS_TYPE, Field, Reply

__all__ = ["ROUTES", "Handler", "Route"]

Handler: TypeAlias = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the API.

    `path` is an aiohttp pattern; `{key:.+}` lets keys and names contain "/" (OpenAPI shows it
    as `{key}`). `body` None means the request body is never read. `service` routes call the
    node's `execute`: they take the exactly-once headers and can meet 429/503.
    """

    name: str
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    replies: tuple[Reply, ...]
    body: tuple[Field, ...] | None = None
    service: bool = True
    cors: bool = False
    content_type: str = JSON_TYPE
    description: str = ""


_OWNER = Field("owner", "string", "who takes, holds or releases the lock (1-256 UTF-8 bytes)")
_TTL = Field("ttl_ms", "integer", "lease length in milliseconds of log time (100-3600000)")
_NO_KEY = Reply(404, "Error", "error not_found: the key does not exist")
_VALUE = Field("value", "json", "the new value: any JSON value, stored as its JSON text", False)
_VALUE_BASE64 = Field("value_base64", "string", "or: the new value's bytes, base64", False)
_NOT_HOLDER = Reply(409, "Error", "error not_holder: the owner does not hold the lock")

ROUTES: Final[tuple[Route, ...]] = (
    # Key-value store
    Route(
        "kv_cas",
        "POST",
        "/v1/kv/{key:.+}/cas",
        h.kv_cas,
        "Compare-and-swap a key",
        "kv",
        (Reply(200, "CasResult", "the comparison ran; succeeded says whether it matched"),),
        body=(
            Field(
                "expected",
                "json",
                "the value the key must hold now, compared as JSON text (null: must not exist)",
                required=False,
            ),
            Field("expected_base64", "string", "or: the bytes it must hold", required=False),
            _VALUE,
            _VALUE_BASE64,
        ),
        description="A transaction: if the key holds `expected`, put `value`. On a mismatch "
        "the answer is still 200 (as in etcd), with succeeded false and the key's current "
        "value and revision (null and 0 if it does not exist). Values compare as their JSON "
        "text (object members sorted): true is not 1, and 1 is not 1.0.",
    ),
    Route(
        "kv_get",
        "GET",
        "/v1/kv/{key:.+}",
        h.kv_get,
        "Read a key (linearizable)",
        "kv",
        (Reply(200, "Value", "the key's value, revisions and version"), _NO_KEY),
    ),
    Route(
        "kv_put",
        "PUT",
        "/v1/kv/{key:.+}",
        h.kv_put,
        "Write a key",
        "kv",
        (Reply(200, "Written", "the new store revision and the key's revisions"),),
        body=(_VALUE, _VALUE_BASE64),
        description="Give `value` (any JSON value, stored as its JSON text) or "
        "`value_base64` (any bytes, at most 1 MiB).",
    ),
    Route(
        "kv_delete",
        "DELETE",
        "/v1/kv/{key:.+}",
        h.kv_delete,
        "Delete a key",
        "kv",
        (Reply(200, "Deleted", "existed is false if there was nothing to delete"),),
    ),
    # Locks
    Route(
        "lock_acquire",
        "POST",
        "/v1/locks/{name:.+}/acquire",
        h.lock_acquire,
        "Take a lock for ttl_ms (or extend it if the owner holds it)",
        "locks",
        (Reply(200, "LockResult", "acquired true with a fencing token, or false and the holder"),),
        body=(_OWNER, _TTL),
    ),
    Route(
        "lock_release",
        "POST",
        "/v1/locks/{name:.+}/release",
        h.lock_release,
        "Release a held lock",
        "locks",
        (Reply(200, "Released", "released is false if it was already free"), _NOT_HOLDER),
        body=(_OWNER,),
    ),
    Route(
        "lock_refresh",
        "POST",
        "/v1/locks/{name:.+}/refresh",
        h.lock_refresh,
        "Extend a held lock to now + ttl_ms",
        "locks",
        (Reply(200, "LockResult", "the new expiry; the token is unchanged"), _NOT_HOLDER),
        body=(_OWNER, _TTL),
    ),
    Route(
        "lock_status",
        "GET",
        "/v1/locks/{name:.+}",
        h.lock_status,
        "Who holds a lock now (linearizable)",
        "locks",
        (Reply(200, "LockResult", "acquired says whether anyone holds it"),),
    ),
    # Names
    Route(
        "name_register",
        "POST",
        "/v1/names/{name:.+}",
        h.name_register,
        "Claim a name forever (the first owner wins; repeating the claim is fine)",
        "names",
        (
            Reply(201, "NameResult", "the name is (now) the owner's"),
            Reply(409, "NameTaken", "error name_taken: another owner holds it"),
        ),
        body=(Field("owner", "string", "the claimant (1-256 UTF-8 bytes)"),),
    ),
    Route(
        "name_lookup",
        "GET",
        "/v1/names/{name:.+}",
        h.name_lookup,
        "Who owns a name (linearizable)",
        "names",
        (
            Reply(200, "NameResult", "the owner"),
            Reply(404, "Error", "error not_found: nobody registered it"),
        ),
    ),
    # Decisions
    Route(
        "decision_propose",
        "POST",
        "/v1/decisions/{id:.+}",
        h.decision_propose,
        "Propose a value for a write-once decision; answers the chosen one",
        "decisions",
        (Reply(200, "DecisionResult", "chosen is the first value ever proposed"),),
        body=(Field("value", "json", "any JSON value except null"),),
    ),
    Route(
        "decision_get",
        "GET",
        "/v1/decisions/{id:.+}",
        h.decision_get,
        "Read a decision (linearizable)",
        "decisions",
        (Reply(200, "DecisionResult", "chosen is null while undecided"),),
    ),
    # Operations
    Route(
        "status",
        "GET",
        "/v1/status",
        h.status,
        "This node's view of the cluster (what the dashboard polls)",
        "ops",
        (Reply(200, "Status", "node.status()"),),
        service=False,
        cors=True,
    ),
    Route(
        "healthz",
        "GET",
        "/healthz",
        h.healthz,
        "Health: 200 while this node knows a leader",
        "ops",
        (
            Reply(200, "Health", "ok: a leader is known"),
            Reply(503, "Health", "ok false: no known leader (election, partition)"),
        ),
        service=False,
        cors=True,
    ),
    Route(
        "metrics",
        "GET",
        "/metrics",
        h.metrics,
        "Prometheus metrics of this node",
        "ops",
        (Reply(200, "Metrics", "text exposition format 0.0.4"),),
        service=False,
        content_type=METRICS_TYPE,
    ),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        h.openapi,
        "This OpenAPI document",
        "ops",
        (Reply(200, "OpenApi", "OpenAPI 3.1"),),
        service=False,
    ),
    Route(
        "dashboard",
        "GET",
        "/",
        h.dashboard_page,
        "The live cluster dashboard (HTML)",
        "ops",
        (Reply(200, "Html", "a self-contained page polling every member's status"),),
        service=False,
        content_type=HTML_TYPE,
    ),
)
