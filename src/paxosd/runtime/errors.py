"""Operating conditions a request can meet, as typed errors. Front ends convert them into
their protocol's answers at one place (HTTP status codes, RESP error replies).

The important distinction is between a request that certainly did NOT take effect and one
whose outcome is UNKNOWN: a write that timed out, or whose leader was deposed while it was in
flight, may still be chosen later. Those are reported as unknown, never as a failure; retrying
under the same client id and sequence number is always safe (exactly-once)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base class of the errors front ends turn into answers."""

    code = "error"
    outcome = "failed"  # "failed": certainly did not happen; "unknown": may have happened


class BadRequest(ServiceError):
    """The request itself is wrong (bad type, missing field, too large). Fix it; do not retry.

    `error`, when set, is how etcd refuses the same request (a `paxosd.service.kv.KvError`:
    gRPC code, etcd's message, paxosd's detail), for the interfaces that answer in etcd's terms.
    """

    code = "bad_request"

    def __init__(self, message: str, error: Any = None) -> None:
        super().__init__(message)
        self.error = error


class NotLeader(ServiceError):
    """This node cannot serve the request and knows no leader to hand it to. Retry elsewhere."""

    code = "not_leader"

    def __init__(self, message: str, leader: int | None = None) -> None:
        super().__init__(message)
        self.leader = leader


class Unavailable(ServiceError):
    """No answer in time (no quorum, leader lost, timeout). The outcome is UNKNOWN for writes:
    retry with the same client id and sequence number."""

    code = "unavailable"
    outcome = "unknown"


class Overloaded(ServiceError):
    """Too many requests in flight on this node; the request was not accepted. Retry later."""

    code = "overloaded"


class Damaged(ServiceError):
    """This node's durable state failed its checks; it refuses to take part until repaired."""

    code = "damaged"
