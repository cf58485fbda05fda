"""Every way a request can fail, turned into one JSON error shape at one place.

Theory of operation: handlers and the body parser raise `ApiError` for what they refuse; the
node raises `paxosd.runtime.errors` types; the state machine answers `results.Error` values;
aiohttp's router raises 404/405/413 exceptions. The `http` middleware funnels all of them
through the functions here, so every error body is

    {"error": CODE, "message": TEXT, "outcome": "failed" | "unknown", ...details}

`outcome` is the contract with clients: "failed" means the request certainly did not take
effect, "unknown" means a write may still be applied (retry it with the same exactly-once
headers). Only `Unavailable` is unknown: every other failure is decided before the request
reaches the log or after its answer is known.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web

from paxosd.runtime.errors import (
    BadRequest,
    NotLeader,
    Overloaded,
    Unavailable,
)
from paxosd.runtime.errors import ServiceError as NodeError
from paxosd.runtime.service_api import NodeService
from paxosd.service.errors import BadCommand
from paxosd.service.kv import GrpcCode, InvalidRequest, KvError
from paxosd.service.results import BAD_COMMAND as RESULT_BAD_COMMAND
from paxosd.service.results import NOT_HOLDER, REQUEST_MISMATCH, STALE_REQUEST
from paxosd.service.results import Error as ErrorResult

from .schema import (
    BAD_COMMAND,
    BAD_REQUEST,
    INTERNAL,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    TOO_LARGE,
)

log = logging.getLogger(__name__)

# How long a client should wait before retrying a 429 or an unavailable 503, in seconds.
# Elections take a few hundred milliseconds, so one second is rarely too short.
retry_after_s: Final = 1

# HTTP status for the state machine's Error codes; anything unlisted is a 409 (the command was
# well-formed but the current state refused it).
_RESULT_STATUS: Final[dict[str, int]] = {
    NOT_HOLDER: 409,
    STALE_REQUEST: 409,
    REQUEST_MISMATCH: 409,
    RESULT_BAD_COMMAND: 400,
}
# The message of these answers over HTTP, in its terms, instead of the state machine's.
_RESULT_HINTS: Final[dict[str, str]] = {
    REQUEST_MISMATCH: "this Paxosd-Client-Id and Paxosd-Seq were already used for a different "
    "request, so this one was not applied; send every new request with a new Paxosd-Seq "
    "(reuse a pair only to retry the very same request)",
}


class ApiError(Exception):
    """A refusal with its HTTP status; `details` are extra members of the JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        outcome: str = "failed",
        headers: dict[str, str] | None = None,
        close: bool = False,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.outcome = outcome
        self.headers = headers
        self.close = close  # end the connection after this answer
        self.details = details

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "error": self.code,
            "message": self.message,
            "outcome": self.outcome,
        }
        body.update(self.details)
        response = web.json_response(body, status=self.status, headers=self.headers)
        if self.close:
            response.force_close()
        return response


def from_bad_command(exc: BadCommand) -> ApiError:
    """A field refused by `commands.validate`: 400 naming the field ("Put.value" -> "value");
    a key-value request etcd would refuse too also carries etcd's text for it."""
    field = exc.field.rpartition(".")[2]
    if isinstance(exc, InvalidRequest):
        return ApiError(
            400, BAD_COMMAND, exc.error.detail, field=field, etcd_message=exc.error.message
        )
    return ApiError(400, BAD_COMMAND, f"{field}: {exc.reason}", field=field)


# HTTP status for the key-value store's errors, by their gRPC code (as etcd's gateway maps
# them, except that an answer over a server limit is the client's to narrow: 400, not 429).
_GRPC_STATUS: Final[dict[GrpcCode, int]] = {
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.OUT_OF_RANGE: 400,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.FAILED_PRECONDITION: 400,
    GrpcCode.RESOURCE_EXHAUSTED: 400,
}


def from_kv_error(error: KvError) -> ApiError:
    """A key-value answer refusing the request (compacted, future revision, key not found,
    answer too large, ...): paxosd's detail as the message, etcd's text beside it."""
    return ApiError(
        _GRPC_STATUS.get(error.grpc_code, 400),
        error.code,
        error.detail,
        etcd_message=error.message,
    )


def from_result(result: ErrorResult) -> ApiError:
    """A state-machine Error answer (not_holder, stale_request, request_mismatch, ...). Where
    HTTP has its own words for it (the headers' names), they replace the state machine's,
    which say the same in its own terms: the answer says it once."""
    message = _RESULT_HINTS.get(result.code) or result.message
    return ApiError(_RESULT_STATUS.get(result.code, 409), result.code, message)


def from_node_error(exc: NodeError, node: NodeService) -> ApiError:
    """The node's typed operating conditions."""
    message = str(exc) or exc.code
    if isinstance(exc, NotLeader):
        return ApiError(
            503,
            exc.code,
            message,
            outcome=exc.outcome,
            leader=exc.leader,
            leader_http=_http_address(node, exc.leader),
        )
    if isinstance(exc, Unavailable):
        retry = {"Retry-After": str(retry_after_s)}
        return ApiError(503, exc.code, message, outcome=exc.outcome, headers=retry)
    if isinstance(exc, Overloaded):
        retry = {"Retry-After": str(retry_after_s)}
        return ApiError(429, exc.code, message, outcome=exc.outcome, headers=retry)
    if isinstance(exc, BadRequest):
        if isinstance(exc.error, KvError):
            return ApiError(400, exc.error.code, exc.error.detail, etcd_message=exc.error.message)
        return ApiError(400, exc.code, message, outcome=exc.outcome)
    # Damaged, or a condition added later: this node cannot serve, another may.
    return ApiError(503, exc.code, message, outcome=exc.outcome)


def from_http_exception(exc: web.HTTPException, request: web.Request) -> ApiError:
    """aiohttp's own refusals (unknown route, wrong method, body too large) as JSON."""
    status = exc.status
    if status == 404:
        return ApiError(404, NOT_FOUND, f"no route for {request.method} {request.path}")
    if status == 405:
        allow = exc.headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.path} (allowed: {allow})"
        return ApiError(405, METHOD_NOT_ALLOWED, message, headers={"Allow": allow})
    if status == 413:
        return ApiError(413, TOO_LARGE, exc.text or "request body too large")
    if 400 <= status < 500:
        return ApiError(status, BAD_REQUEST, exc.reason)
    log.error("unexpected HTTP exception %s on %s %s", status, request.method, request.path)
    return internal()


def internal() -> ApiError:
    return ApiError(500, INTERNAL, "internal error; see the node's log")


def _http_address(node: NodeService, node_id: int | None) -> str | None:
    """The leader's HTTP address from the member list, if it is known."""
    if node_id is None:
        return None
    try:
        for member in node.members():
            if member.get("id") == node_id:
                address = member.get("http")
                return address if isinstance(address, str) else None
    except Exception:
        # An error answer must not turn into a 500 because the hint failed.
        log.exception("members() failed while answering not_leader")
    return None
