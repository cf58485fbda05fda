"""How the etcd API refuses a request: etcd's gRPC code and message, in the gateway's shape.

Theory of operation: etcd's clients tell errors apart by the gRPC status message (clientv3's
rpctypes) and the gateway's HTTP status, so every refusal on the etcd API carries etcd's code
and etcd's exact text where etcd has an error for the condition. The body is the gateway's

    {"error": MESSAGE, "message": MESSAGE, "code": GRPC_CODE, "paxosd": {...}}

with the HTTP status the gateway derives from the gRPC code (`http_status`). The `paxosd`
member is paxosd's own, for people: its stable error code, a sentence that names the limit
and the request's count or the oldest revision held, and `outcome` ("failed": certainly not
applied; "unknown": a write that may still be applied). Clients that do not know it ignore
it.

Where the refusal comes from:

* the request does not fit etcd's JSON (`wire.WireError`): InvalidArgument;
* the key-value store refused it (`KvError`, from checks before the log or from the state):
  its etcd code and message;
* the node's operating conditions (`paxosd.runtime.errors`), as etcd names the same
  conditions: no leader, a timeout (outcome unknown), too many requests.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from paxosd.runtime.errors import (
    BadRequest,
    Damaged,
    NotLeader,
    Overloaded,
    ServiceError,
    Unavailable,
)
from paxosd.service.kv.errors import GrpcCode, KvError
from paxosd.service.results import BAD_COMMAND
from paxosd.service.results import Error as ResultError

__all__ = ["EtcdError", "http_status"]

# grpc-gateway's HTTPStatusFromCode.
_HTTP_STATUS: Final[dict[GrpcCode, int]] = {
    GrpcCode.OK: 200,
    GrpcCode.CANCELLED: 408,
    GrpcCode.UNKNOWN: 500,
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.DEADLINE_EXCEEDED: 504,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.ALREADY_EXISTS: 409,
    GrpcCode.PERMISSION_DENIED: 403,
    GrpcCode.UNAUTHENTICATED: 401,
    GrpcCode.RESOURCE_EXHAUSTED: 429,
    GrpcCode.FAILED_PRECONDITION: 412,
    GrpcCode.ABORTED: 409,
    GrpcCode.OUT_OF_RANGE: 400,
    GrpcCode.UNIMPLEMENTED: 501,
    GrpcCode.INTERNAL: 500,
    GrpcCode.UNAVAILABLE: 503,
    GrpcCode.DATA_LOSS: 500,
}

# etcd's messages for the node's operating conditions (rpctypes/error.go).
NO_LEADER: Final = "etcdserver: no leader"
TIMED_OUT: Final = "etcdserver: request timed out"
TOO_MANY_REQUESTS: Final = "etcdserver: too many requests"
STOPPED: Final = "etcdserver: server stopped"


def http_status(code: GrpcCode) -> int:
    return _HTTP_STATUS.get(code, 500)


class EtcdError(Exception):
    """A refusal on the etcd API: `code` and `message` are what an etcd client sees, `error`
    and `detail` paxosd's own (see the module docstring)."""

    def __init__(
        self,
        code: GrpcCode,
        message: str,
        *,
        error: str,
        detail: str | None = None,
        outcome: str = "failed",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error = error
        self.detail = detail or message
        self.outcome = outcome
        self.headers = headers

    def to_json(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "message": self.message,
            "code": int(self.code),
            "paxosd": {"error": self.error, "detail": self.detail, "outcome": self.outcome},
        }

    def response(self) -> web.Response:
        return web.json_response(
            self.to_json(), status=http_status(self.code), headers=self.headers
        )

    @classmethod
    def invalid(cls, detail: str, error: str = "bad_request") -> EtcdError:
        """A request that does not fit etcd's API: InvalidArgument with paxosd's text."""
        return cls(GrpcCode.INVALID_ARGUMENT, f"paxosd: {detail}", error=error, detail=detail)

    @classmethod
    def from_kv(cls, kv_error: KvError) -> EtcdError:
        return cls(
            kv_error.grpc_code, kv_error.message, error=kv_error.code, detail=kv_error.detail
        )

    @classmethod
    def from_result(cls, result: ResultError) -> EtcdError:
        """A state-machine Error answer (not a KvError): a payload the store could not apply."""
        code = GrpcCode.INVALID_ARGUMENT if result.code == BAD_COMMAND else GrpcCode.UNKNOWN
        return cls(code, f"paxosd: {result.message}", error=result.code, detail=result.message)

    @classmethod
    def from_node(cls, exc: ServiceError, retry_after_s: int) -> EtcdError:
        """The node's typed operating conditions, as etcd names the same conditions."""
        detail = str(exc) or exc.code
        retry = {"Retry-After": str(retry_after_s)}
        if isinstance(exc, Unavailable):
            return cls(
                GrpcCode.UNAVAILABLE,
                TIMED_OUT,
                error=exc.code,
                detail=detail,
                outcome=exc.outcome,
                headers=retry,
            )
        if isinstance(exc, NotLeader):
            return cls(GrpcCode.UNAVAILABLE, NO_LEADER, error=exc.code, detail=detail)
        if isinstance(exc, Overloaded):
            return cls(
                GrpcCode.RESOURCE_EXHAUSTED,
                TOO_MANY_REQUESTS,
                error=exc.code,
                detail=detail,
                headers=retry,
            )
        if isinstance(exc, BadRequest):
            return cls(
                GrpcCode.INVALID_ARGUMENT, f"paxosd: {detail}", error=exc.code, detail=detail
            )
        if isinstance(exc, Damaged):
            return cls(GrpcCode.UNAVAILABLE, STOPPED, error=exc.code, detail=detail)
        return cls(GrpcCode.UNAVAILABLE, f"paxosd: {detail}", error=exc.code, detail=detail,
                   outcome=exc.outcome)  # fmt: skip
