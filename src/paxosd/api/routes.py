"""The route table: every operation of the HTTP API, once.

`http.make_app` registers these in order and `openapi.document` describes them; a test
compares the application's router with the document. Order matters in one way: aiohttp tries
resources in registration order and falls through on a method mismatch, so the `/cas`,
`/acquire`, ... sub-resources come before the bare `{key:.+}` ones that would also match them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from aiohttp import web

from . import backup_handlers as backup
from . import election_handlers as election
from . import handlers as h
from . import kv_handlers as kv
from . import lease_handlers as lease
from . import member_handlers as members
from . import sql_handlers as sql
from . import sql_schema as _sql_schema  # noqa: F401  (adds the SQL schemas to SCHEMAS)
from . import watch_handlers as watch
from .calls import Call
from .etcd import gateway as etcd
from .etcd import lease as etcd_lease
from .etcd import watch as etcd_watch
from .schema import EVENT_STREAM_TYPE, HTML_TYPE, JSON_TYPE, METRICS_TYPE, Field, Reply

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
    # The schema (a key of schema.SCHEMAS) of a body the handler reads itself (body None).
    request_schema: str | None = None
    # Query parameters the handler reads (all optional; documented, not parsed generically).
    query: tuple[Field, ...] = ()
    # An example for the document: {"query": {...}, "body": {...}, "response": {...}}.
    example: dict[str, Any] | None = None


_OWNER = Field("owner", "string", "who takes, holds or releases the lock (1-256 UTF-8 bytes)")
_TTL = Field("ttl_ms", "integer", "lease length in milliseconds of log time (100-3600000)")
_NO_KEY = Reply(404, "Error", "error not_found: the key does not exist")
_VALUE = Field("value", "json", "the new value: any JSON value, stored as its JSON text", False)
_VALUE_BASE64 = Field("value_base64", "string", "or: the new value's bytes, base64", False)
_NOT_HOLDER = Reply(409, "Error", "error not_holder: the owner does not hold the lock")
_LEASE = Field("lease", "integer", "a live lease's id: the key ends with it (0: none)", False)
_NO_LEASE = Reply(404, "KvError", "lease_not_found: never granted, revoked, or expired")

_SELECT_QUERY: Final = (
    Field("key", "string", "one key", False),
    Field("prefix", "string", 'every key that starts with it ("": every key)', False),
    Field("start", "string", "the first key of [start, end)", False),
    Field("end", "string", "the end of [start, end), not included (absent: no end)", False),
)
_RANGE_QUERY: Final = (
    *_SELECT_QUERY,
    Field("limit", "integer", "at most this many keys (0: no limit)", False),
    Field("revision", "integer", "read the store as it was then (0: now)", False),
    Field("sort", "string", "key (default), version, create, mod or value", False),
    Field("order", "string", "ascend or descend (a sort other than key alone: ascend)", False),
    Field("keys_only", "string", "true: no values", False),
    Field("count_only", "string", "true: only the count", False),
    Field("serializable", "string", "true: this node's own state, without a quorum", False),
    Field("min_mod_revision", "integer", "only keys last changed at or after it", False),
    Field("max_mod_revision", "integer", "only keys last changed at or before it", False),
    Field("min_create_revision", "integer", "only keys created at or after it", False),
    Field("max_create_revision", "integer", "only keys created at or before it", False),
)
_ETCD_ERRORS: Final = (
    Reply(400, "EtcdError", "code 3 (InvalidArgument) or 11 (OutOfRange: a compacted or "
          "future revision), with etcd's message"),
    Reply(404, "EtcdError", "code 5 (NotFound): a lease that does not exist"),
    Reply(429, "EtcdError", "code 8 (ResourceExhausted): too many requests, or an answer "
          "over the node's range limits"),
    Reply(503, "EtcdError", "code 14 (Unavailable): no leader, or no answer in time (a "
          "write's outcome is then unknown: paxosd.outcome says so)"),
)  # fmt: skip
_ETCD_DOC: Final = (
    "The body and the answer are etcd 3.4's, as its JSON gateway reads and writes them: keys "
    "and values in base64, int64 as strings, enums by name, fields at their default left "
    "out. Errors are {error, message, code} with etcd's gRPC code and message, and a "
    "paxosd member with paxosd's own code and explanation."
)

_RQLITE_DOC: Final = (
    "rqlite's API: the body is a JSON array of statements; the answer has one result per "
    "statement, a failed statement's SQLite message as its error, with HTTP 200 (as rqlite)."
)
_RQLITE_WRITE: Final = (
    Field("transaction", "string", "present: all or nothing (else each statement alone)", False),
    Field("timings", "string", "present: the request's time at the node, in seconds", False),
)
_RQLITE_READ: Final = (
    Field("level", "string", "none, weak, linearizable (default), strong (docs/sql.md)", False),
    Field("associative", "string", "present: rows as objects", False),
    Field("timings", "string", "present: the request's time at the node, in seconds", False),
)

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
        body=(_VALUE, _VALUE_BASE64, _LEASE),
        description="Give `value` (any JSON value, stored as its JSON text) or "
        "`value_base64` (any bytes, at most 1 MiB); `lease` attaches the key to a lease "
        "(POST /v1/leases): the key is deleted when the lease ends.",
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
    Route(
        "kv_range",
        "GET",
        "/v1/kv",
        kv.range_,
        "Read a range of keys: a prefix, or [start, end) (linearizable unless serializable)",
        "kv",
        (
            Reply(200, "KvRange", "the keys, count (all that passed the filters) and more"),
            Reply(
                400,
                "KvError",
                "compacted, future_revision (the revision asked is gone or "
                "not there yet), answer_too_large, bad_request (a malformed parameter)",
            ),
        ),
        query=_RANGE_QUERY,
        description="Give one of key, prefix and start (with an optional end: without it, "
        "every key from start on). The store filters (min/max_*_revision), then sorts, then "
        "cuts at limit. To page through a large range consistently, read page after page at "
        "the first page's revision, each starting after the last key of the one before.",
        example={
            "query": {"prefix": "config/", "limit": "2"},
            "response": {
                "revision": 7,
                "count": 3,
                "more": True,
                "kvs": [
                    {
                        "key": "config/a",
                        "value": {"on": True},
                        "create_revision": 2,
                        "mod_revision": 5,
                        "version": 2,
                        "lease": 0,
                    },
                    {
                        "key": "config/b",
                        "value": 3,
                        "create_revision": 3,
                        "mod_revision": 3,
                        "version": 1,
                        "lease": 0,
                    },
                ],
            },
        },
    ),
    Route(
        "kv_delete_range",
        "DELETE",
        "/v1/kv",
        kv.delete_range,
        "Delete a range of keys (a prefix, or [start, end)) in one revision",
        "kv",
        (Reply(200, "KvDeleted", "deleted counts the keys; prev_kvs if prev_kv was asked"),),
        query=(*_SELECT_QUERY, Field("prev_kv", "string", "true: answer the deleted keys", False)),
        example={
            "query": {"prefix": "tmp/", "prev_kv": "true"},
            "response": {
                "revision": 9,
                "deleted": 1,
                "prev_kvs": [
                    {
                        "key": "tmp/x",
                        "value": "y",
                        "create_revision": 8,
                        "mod_revision": 8,
                        "version": 1,
                        "lease": 0,
                    }
                ],
            },
        },
    ),
    Route(
        "txn",
        "POST",
        "/v1/txn",
        kv.txn,
        "A transaction: if every compare holds, the success ops, else the failure ops, at one "
        "revision",
        "kv",
        (
            Reply(200, "KvTxn", "succeeded says which list ran; responses are its answers"),
            Reply(
                400,
                "KvError",
                "too_many_ops, duplicate_key, request_too_large, compacted, "
                "future_revision, empty_key",
            ),
        ),
        body=(
            Field(
                "compare",
                "json",
                "[{key|prefix|start+end, target (value, version, create, "
                "mod, lease), result (=, !=, <, >), and the operand: value (JSON), "
                "value_base64, version, create_revision, mod_revision or lease}]",
                False,
            ),
            Field(
                "success",
                "json",
                "[{put|range|delete|txn: {...}}]: run if every compare holds",
                False,
            ),
            Field("failure", "json", "the same, run otherwise", False),
        ),
        description="Compares read the state before the transaction; each op sees the writes "
        "before it; a transaction that writes is one revision. A key may be written once per "
        "list. At most 128 compares, and 128 ops per list (a nested transaction gets what its "
        "parent left).",
        example={
            "body": {
                "compare": [
                    {"key": "jobs/7", "target": "create", "result": "=", "create_revision": 0}
                ],
                "success": [{"put": {"key": "jobs/7", "value": {"owner": "w1"}}}],
                "failure": [{"range": {"key": "jobs/7"}}],
            },
            "response": {
                "revision": 12,
                "succeeded": True,
                "responses": [{"put": {"revision": 12}}],
            },
        },
    ),
    Route(
        "compact",
        "POST",
        "/v1/compact",
        kv.compact,
        "Forget the history before a revision (reads below it are refused from then on)",
        "kv",
        (
            Reply(200, "KvCompacted", "the store's revision and the new compacted revision"),
            Reply(400, "KvError", "compacted (already at or past it), future_revision"),
        ),
        body=(Field("revision", "integer", "the oldest revision to keep readable"),),
        example={"body": {"revision": 10}, "response": {"revision": 12, "compact_revision": 10}},
    ),
    Route(
        "watch",
        "GET",
        "/v1/watch",
        watch.watch,
        "Watch a key, a prefix or a range: Server-Sent Events (EventSource, curl -N)",
        "kv",
        (
            Reply(
                200,
                "WatchEvent",
                "text/event-stream: created, one message per revision "
                "(id: the revision), progress, cancelled",
            ),
            Reply(
                204,
                "Error",
                "a reconnect (Last-Event-ID) whose revision is compacted: "
                "stop, re-list, watch again",
            ),
            Reply(400, "Error", "bad_request: the keys, a revision or a filter is malformed"),
            Reply(503, "Error", "damaged: this node serves no watches"),
        ),
        service=False,
        content_type=EVENT_STREAM_TYPE,
        query=(
            *_SELECT_QUERY,
            Field(
                "start_revision",
                "integer",
                "the first revision to deliver (0 or absent: "
                "the next one; a past one replays history; a future one waits)",
                False,
            ),
            Field("prev_kv", "string", "true: each change carries the key before it (prev)", False),
            Field(
                "filters",
                "string",
                "noput, nodelete or both (comma-separated): changes not to send",
                False,
            ),
            Field(
                "progress_notify",
                "string",
                "true: a progress event after each quiet "
                "interval (the node's watch.progress_interval_ms)",
                False,
            ),
            Field(
                "last_event_id",
                "string",
                "the last revision seen (as the Last-Event-ID "
                "header an EventSource sends): resume after it",
                False,
            ),
        ),
        description="Every change of the keys from start_revision on, in revision order, "
        "each revision whole in one message whose id is that revision; progress messages' "
        "ids are revisions too, so Last-Event-ID resumes exactly. docs/http-api.md.",
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
    # Leases (docs/leases.md)
    Route(
        "lease_grant",
        "POST",
        "/v1/leases",
        lease.grant,
        "Grant a lease of ttl_ms of log time; keys put with it are deleted when it ends",
        "leases",
        (
            Reply(200, "LeaseGranted", "the lease's id and TTL"),
            Reply(400, "Error", "ttl_out_of_range (the node's minimum is named), lease_exist"),
        ),
        body=(
            Field("ttl_ms", "integer", "the lease's length in milliseconds of log time"),
            Field("id", "integer", "the id wanted (absent or 0: the store chooses)", False),
        ),
        example={"body": {"ttl_ms": 10000}, "response": {"id": 1, "ttl_ms": 10000, "revision": 4}},
    ),
    Route(
        "lease_list",
        "GET",
        "/v1/leases",
        lease.leases,
        "Every live lease's id (linearizable)",
        "leases",
        (Reply(200, "LeaseList", "ids in increasing order"),),
    ),
    Route(
        "lease_keepalive",
        "POST",
        "/v1/leases/{id}/keepalive",
        lease.keepalive,
        "Renew a lease to its full TTL from now",
        "leases",
        (Reply(200, "LeaseGranted", "the TTL it has again"), _NO_LEASE),
    ),
    Route(
        "lease_time_to_live",
        "GET",
        "/v1/leases/{id}",
        lease.time_to_live,
        "How long a lease has left (linearizable), and its keys",
        "leases",
        (Reply(200, "LeaseTimeToLive", "ttl_ms left, granted_ttl_ms, keys if asked"), _NO_LEASE),
        query=(Field("keys", "string", "true: list the keys attached to it", False),),
    ),
    Route(
        "lease_revoke",
        "DELETE",
        "/v1/leases/{id}",
        lease.revoke,
        "End a lease now: its keys are deleted, in one revision",
        "leases",
        (Reply(200, "LeaseRevoked", "the revision that deleted its keys"), _NO_LEASE),
    ),
    # Elections (docs/leases.md)
    Route(
        "election_leader",
        "GET",
        "/v1/elections/{name:.+}/leader",
        election.leader,
        "Who leads an election: its key, value and fencing token (linearizable)",
        "elections",
        (
            Reply(200, "ElectionLeader", "the leader"),
            Reply(404, "Error", "not_found: nobody campaigns"),
        ),
    ),
    Route(
        "election_campaign",
        "POST",
        "/v1/elections/{name:.+}/campaign",
        election.campaign,
        "Stand with a lease and wait (up to wait_ms) until this candidate leads",
        "elections",
        (
            Reply(200, "ElectionLeader", "this candidate leads: its fencing token"),
            Reply(409, "Error", "not_leader: not leading when the wait ran out (the key stays)"),
            _NO_LEASE,
        ),
        body=(
            Field("value", "string", "the candidate's value"),
            Field("lease", "integer", "the candidate's lease (its session)"),
            Field("wait_ms", "integer", "how long to wait to lead (default 30000)", False),
        ),
        description="etcd's election recipe: the key NAME/<lease in hex>, created if absent "
        "with the lease; the key with the lowest create revision under NAME/ leads.",
    ),
    Route(
        "election_proclaim",
        "POST",
        "/v1/elections/{name:.+}/proclaim",
        election.proclaim,
        "Change the leader's value, if this leadership still leads",
        "elections",
        (
            Reply(200, "ElectionDone", "proclaimed"),
            Reply(409, "Error", "not_leader: the leadership ended (fenced)"),
        ),
        body=(
            Field("value", "string", "the new value"),
            Field("lease", "integer", "the leadership's lease"),
            Field("token", "integer", "the leadership's fencing token"),
        ),
    ),
    Route(
        "election_resign",
        "POST",
        "/v1/elections/{name:.+}/resign",
        election.resign,
        "Stop leading (the key is deleted if it is still this leadership's)",
        "elections",
        (Reply(200, "ElectionDone", "resigned says whether the key was deleted"),),
        body=(
            Field("lease", "integer", "the leadership's lease"),
            Field("token", "integer", "the leadership's fencing token"),
        ),
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
    # The SQL database: rqlite's HTTP API, and /v1/sql with interactive transactions (docs/sql.md)
    *(
        Route(
            name,
            method,
            path,
            handler,
            summary,
            "sql",
            (
                Reply(200, answer, "one result per statement (rqlite: a failed one's error)"),
                Reply(
                    400,
                    "Error",
                    "bad_request (not a list of statements), sql_error (syntax, "
                    "no such table, parameter count), sql_refused (random(), the clock, "
                    "ATTACH, PRAGMA, BEGIN), not_read_only, result_too_large; on /db/ only "
                    "the first",
                ),
                Reply(
                    404,
                    "Error",
                    "no_transaction: committed, rolled back, timed out, or begun on another node",
                ),
                Reply(
                    409,
                    "Error",
                    "sql_constraint (a constraint failed), sql_conflict (the "
                    "transaction read or wrote a table changed since it began): nothing "
                    "applied",
                ),
            ),
            request_schema=request,
            query=query,
            description=description,
        )
        for name, method, path, handler, summary, request, answer, query, description in (
            (
                "db_execute",
                "POST",
                "/db/execute",
                sql.db_execute,
                "rqlite: run writes through the log",
                "RqliteStatements",
                "RqliteResults",
                _RQLITE_WRITE,
                _RQLITE_DOC,
            ),
            (
                "db_query_get",
                "GET",
                "/db/query",
                sql.db_query,
                "rqlite: run a query (?q=SELECT ...)",
                None,
                "RqliteResults",
                (Field("q", "string", "the query"), *_RQLITE_READ),
                _RQLITE_DOC,
            ),
            (
                "db_query",
                "POST",
                "/db/query",
                sql.db_query,
                "rqlite: run queries",
                "RqliteStatements",
                "RqliteResults",
                _RQLITE_READ,
                _RQLITE_DOC,
            ),
            (
                "db_request",
                "POST",
                "/db/request",
                sql.db_request,
                "rqlite: reads and writes in one body",
                "RqliteStatements",
                "RqliteResults",
                (*_RQLITE_WRITE, *_RQLITE_READ),
                "Reads alone run as a query at `level`; any write sends the whole body through "
                "the log. " + _RQLITE_DOC,
            ),
            (
                "sql_execute",
                "POST",
                "/v1/sql/execute",
                sql.sql_execute,
                "Run writes as one transaction through the log (or add them to txn)",
                "SqlRequest",
                "SqlResults",
                (),
                "All or nothing: a failing statement answers 4xx naming it and applies nothing. "
                "With txn, the writes run now on the transaction's view (to answer them) and are "
                "applied at its commit.",
            ),
            (
                "sql_query",
                "POST",
                "/v1/sql/query",
                sql.sql_query,
                "Run queries (read level: none, weak, linearizable (default), strong)",
                "SqlRequest",
                "SqlResults",
                (),
                "A query that would write is not_read_only.",
            ),
            (
                "sql_begin",
                "POST",
                "/v1/sql/begin",
                sql.sql_begin,
                "Begin an interactive transaction (optimistic, checked at commit)",
                "SqlTxn",
                "SqlBegun",
                (),
                "Holds nothing in the cluster; forgotten after idle_timeout_ms.",
            ),
            (
                "sql_commit",
                "POST",
                "/v1/sql/commit",
                sql.sql_commit,
                "Commit a transaction: applied only if nothing it touched changed",
                "SqlTxn",
                "SqlResults",
                (),
                "409 sql_conflict when a table it read or wrote changed.",
            ),
            (
                "sql_rollback",
                "POST",
                "/v1/sql/rollback",
                sql.sql_rollback,
                "Forget a transaction",
                "SqlTxn",
                "SqlRolledBack",
                (),
                "",
            ),
        )
    ),
    # etcd's v3 API, as its JSON gateway serves it (docs/etcd-api.md)
    *(
        Route(
            f"etcd_{name}",
            "POST",
            f"/v3/{path}",
            handler,
            summary,
            "etcd",
            (Reply(200, answer, "etcd's answer, with the answering node's header"), *_ETCD_ERRORS),
            service=False,
            request_schema=request,
            description=_ETCD_DOC,
        )
        for name, path, handler, summary, request, answer in (
            (
                "range",
                "kv/range",
                etcd.range_,
                "KV.Range: read a key or a range",
                "EtcdRangeRequest",
                "EtcdRangeResponse",
            ),
            ("put", "kv/put", etcd.put, "KV.Put: write a key", "EtcdPutRequest", "EtcdPutResponse"),
            (
                "deleterange",
                "kv/deleterange",
                etcd.delete_range,
                "KV.DeleteRange: delete a key or a range",
                "EtcdDeleteRangeRequest",
                "EtcdDeleteRangeResponse",
            ),
            (
                "txn",
                "kv/txn",
                etcd.txn,
                "KV.Txn: compares, then one of two lists of requests",
                "EtcdTxnRequest",
                "EtcdTxnResponse",
            ),
            (
                "compaction",
                "kv/compaction",
                etcd.compaction,
                "KV.Compact: forget the history before a revision",
                "EtcdCompactionRequest",
                "EtcdCompactionResponse",
            ),
            *(
                (name, path, handler, summary, request, f"Etcd{answer}")
                for name, path, handler, summary, request, answer in (
                    (
                        "lease_grant",
                        "lease/grant",
                        etcd_lease.grant,
                        "Lease.LeaseGrant: a lease of TTL seconds (raised to the minimum)",
                        "EtcdLeaseGrantRequest",
                        "LeaseGrantResponse",
                    ),
                    (
                        "lease_revoke",
                        "lease/revoke",
                        etcd_lease.revoke,
                        "Lease.LeaseRevoke: end a lease, deleting its keys",
                        "EtcdLeaseRequest",
                        "LeaseRevokeResponse",
                    ),
                    (
                        "kv_lease_revoke",
                        "kv/lease/revoke",
                        etcd_lease.revoke,
                        "Lease.LeaseRevoke (the path gateway clients use)",
                        "EtcdLeaseRequest",
                        "LeaseRevokeResponse",
                    ),
                    (
                        "lease_timetolive",
                        "lease/timetolive",
                        etcd_lease.time_to_live,
                        "Lease.LeaseTimeToLive: seconds left (-1: no such lease), keys",
                        "EtcdLeaseTimeToLiveRequest",
                        "LeaseTimeToLiveResponse",
                    ),
                    (
                        "kv_lease_timetolive",
                        "kv/lease/timetolive",
                        etcd_lease.time_to_live,
                        "Lease.LeaseTimeToLive (the path gateway clients use)",
                        "EtcdLeaseTimeToLiveRequest",
                        "LeaseTimeToLiveResponse",
                    ),
                    (
                        "lease_leases",
                        "lease/leases",
                        etcd_lease.leases,
                        "Lease.LeaseLeases: every live lease",
                        "EtcdEmptyRequest",
                        "LeaseLeasesResponse",
                    ),
                    (
                        "lease_keepalive",
                        "lease/keepalive",
                        etcd_lease.keepalive,
                        "Lease.LeaseKeepAlive: renew leases; one result line per request",
                        "EtcdLeaseRequest",
                        "LeaseKeepAliveResponse",
                    ),
                )
            ),
            (
                "status",
                "maintenance/status",
                etcd.status,
                "Maintenance.Status: this member's status",
                "EtcdEmptyRequest",
                "EtcdStatusResponse",
            ),
            (
                "member_list",
                "cluster/member/list",
                etcd.member_list,
                "Cluster.MemberList: every member",
                "EtcdEmptyRequest",
                "EtcdMemberListResponse",
            ),
        )
    ),
    Route(
        "etcd_watch",
        "POST",
        "/v3/watch",
        etcd_watch.watch,
        "Watch.Watch: a stream of changes (newline-delimited JSON, as etcd's gateway)",
        "etcd",
        (
            Reply(200, "EtcdWatchResponse", 'one {"result": WatchResponse} per line, as made'),
            *_ETCD_ERRORS,
        ),
        service=False,
        request_schema="EtcdWatchRequest",
        description="The body holds WatchRequests (create, cancel, progress), one after the "
        "other; the answer streams created, events (whole revisions), progress notifications "
        "and cancellations (with compact_revision and cancel_reason). docs/etcd-api.md.",
    ),
    Route(
        "etcd_watch_websocket",
        "GET",
        "/v3/watch",
        etcd_watch.watch_websocket,
        "Watch.Watch over a WebSocket (as etcd's gateway serves it)",
        "etcd",
        (
            Reply(101, "EtcdWatchResponse", 'each message one {"result": WatchResponse}'),
            Reply(400, "EtcdError", "not a WebSocket upgrade"),
        ),
        service=False,
        description="Upgrade to a WebSocket; each text message sent is a WatchRequest, each "
        'message received a WatchResponse in the gateway\'s {"result": ...}.',
    ),
    Route(
        "etcd_unimplemented",
        "POST",
        "/v3/{path:.+}",
        etcd.unimplemented,
        "Any other path of etcd's API: Unimplemented",
        "etcd",
        (Reply(501, "EtcdError", "code 12: paxosd does not serve this part of etcd's API"),),
        service=False,
        description="Auth, the other Maintenance and Cluster calls and the lock and "
        "election services are not served (yet); each answers etcd's Unimplemented.",
    ),
    Route(
        "etcd_version",
        "GET",
        "/version",
        etcd.version,
        "The etcd API version this node serves (etcd 3.4's), and paxosd's own",
        "etcd",
        (Reply(200, "EtcdVersion", "etcdserver and etcdcluster as etcd 3.4 answers, and paxosd"),),
        service=False,
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
        "members",
        "GET",
        "/v1/members",
        members.members,
        "The members as this node knows them: voter or learner, addresses, connected",
        "ops",
        (Reply(200, "Members", "cluster_id, leader, epoch, protocol, members"),),
        service=False,
        cors=True,
        description="A member that refuses this node's peer connection carries `refused`, "
        "the reason it gave (a protocol version too old or too new). `paxosd member list` "
        "adds each member's own role and applied slot.",
    ),
    Route(
        "change_members",
        "POST",
        "/v1/members",
        members.change_members,
        "Change the members through the log (sent to the leader): voters and learners",
        "ops",
        (
            Reply(202, "MembersChange", "the change is under way: epoch, voters, learners"),
            Reply(400, "Error", "voters or learners is not a list of node ids"),
            Reply(
                409,
                "Error",
                "busy (ask again): this node does not lead, or a change or a handover is "
                "under way; refused: a new voter was no learner, or too few new voters "
                "answer for a quorum",
            ),
        ),
        body=(
            Field("voters", "json", "the node ids that vote once the change is done"),
            Field("learners", "json", "the node ids that only learn", False),
            Field(
                "join",
                "json",
                "a new node joining as a learner: {id, incarnation (hex), "
                "contact ('peer=H:P http=H:P resp=H:P')}",
                False,
            ),
        ),
        service=False,
        description="One change at a time: the leader waits until nothing is in flight, "
        "proposes the change, and proposes nothing after it; once chosen every member adopts "
        "the new epoch and its voters elect a leader. A node joins as a learner first and is "
        "promoted by a second change; the leader hands leadership over before it is removed.",
    ),
    Route(
        "transfer_leader",
        "POST",
        "/v1/leader/transfer",
        members.transfer_leader,
        "Hand leadership to another voter (sent to the leader): no write fails meanwhile",
        "ops",
        (
            Reply(202, "Transfer", "the handover has begun: from, to"),
            Reply(
                409,
                "Error",
                "busy (ask again): this node does not lead, or a handover or a change is "
                "under way; refused: `to` is not a voter",
            ),
        ),
        body=(Field("to", "integer", "the node id of the voter that is to lead"),),
        service=False,
        description="The leader stops forming new batches, waits until `to` has applied "
        "everything chosen, then tells it to campaign at once; queued writes go to the new "
        "leader. Abandoned after an election timeout if `to` does not take over.",
    ),
    Route(
        "snapshot_save",
        "GET",
        "/v1/snapshot",
        backup.snapshot_save,
        "A backup of the cluster's state at one revision (what `paxosd snapshot save` keeps)",
        "ops",
        (
            Reply(200, "Backup", "the backup file, streamed; it holds every acknowledged write"),
            Reply(503, "Error", "no leader confirms the read the backup starts from"),
        ),
        service=False,
        content_type=backup.BACKUP_TYPE,
        description="Taken without stopping writes: after a linearizable read, the state "
        "machine's snapshot at one slot, checksummed. `paxosd snapshot status` tells what a "
        "file holds; `paxosd snapshot restore` seeds a new cluster from it.",
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
