"""The HTTP/JSON front end every node serves: API, OpenAPI document, metrics, dashboard.

Theory of operation: `make_app` builds an aiohttp application from the route table in
`routes.py` (the same table `openapi.py` documents). Each route is wrapped by a small
endpoint that parses what every route shares (the path's percent-encoding, exactly-once
headers, a JSON body checked against the route's fields) into a `Call`, then runs the
route's handler, which maps the call to one state-machine operation on `node.execute` (see
`paxosd.runtime.service_api`).

One middleware is the only place errors become answers: `ApiError` (our own refusals), the
node's typed errors (`NotLeader` 503, `Unavailable` 503 with outcome unknown, `Overloaded`
429), `BadCommand` 400, aiohttp's 404/405/413, and as a last resort any other exception,
which is logged and answered 500 {"error": "internal"} so no traceback ever reaches a client.
A client that disconnects mid-request is no error of ours: it is logged at debug level. The
same middleware refuses, before any handler runs, requests a browser may have been tricked
into sending (`origins.py`: a Host the cluster does not use, 403 forbidden_host; a state
change from another site's page, 403 cross_origin), and times every request for the optional
`LatencyRecorder` (normally `metrics.HttpMetrics`). There is no per-request logging: at tens
of thousands of requests a second a log line each would cost more than the request.

Limits (`limits.HttpLimits`): bodies by `body_bytes_max` through aiohttp's client_max_size,
which stops reading as soon as the limit is passed (413), so a huge body costs at most the
limit in memory; bodies must arrive within `body_timeout_ms` (408); `serve_http` also caps
connections and closes idle and slow-header ones (`http_connections.py`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from aiohttp import web

from paxosd.runtime.errors import ServiceError as NodeError
from paxosd.runtime.service_api import NodeService
from paxosd.service.errors import BadCommand

from .calls import Call, check_path_encoding, parse_exactly_once, read_body
from .failures import (
    ApiError,
    from_bad_command,
    from_http_exception,
    from_node_error,
    internal,
    retry_after_s,
)
from .handlers import OPENAPI_DOCUMENT
from .http_connections import ConnectionGuard, GuardedSite
from .limits import HttpLimits
from .metrics import LatencyRecorder
from .openapi import document
from .origins import HostPolicy, host_name, same_origin, state_changing
from .routes import ROUTES, Route
from .schema import CROSS_ORIGIN, FORBIDDEN_HOST

__all__ = ["ROUTES", "HttpLimits", "make_app", "serve_http"]

log = logging.getLogger(__name__)

_ROUTE: Final = web.RequestKey("paxosd_route", Route)
_CONNECTIONS: Final = web.AppKey("paxosd_connections", ConnectionGuard)
_UNMATCHED: Final = "unmatched"  # metrics label of requests no route matched
# Status recorded (never sent) for a request whose client went away: nginx's "client closed".
_CLIENT_GONE: Final = 499

_Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    node: NodeService,
    *,
    limits: HttpLimits | None = None,
    metrics: LatencyRecorder | None = None,
    routes: Sequence[Route] = ROUTES,
) -> web.Application:
    """The aiohttp application serving `node`. `metrics` receives every request's latency.

    Of `limits`, the application applies `body_bytes_max`, `body_timeout_ms` and
    `allowed_hosts`; the connection limits need the listener (`serve_http`).
    """
    limits = limits or HttpLimits()
    hosts = HostPolicy(lambda: _member_http_addresses(node), limits.allowed_hosts)
    app = web.Application(
        client_max_size=limits.body_bytes_max,
        middlewares=[_guard_middleware(node, metrics, hosts)],
    )
    for route in routes:
        # add_route (unlike add_get) adds no implicit HEAD route, so the router holds exactly
        # the table, which a test compares with the OpenAPI document.
        app.router.add_route(route.method, route.path, _endpoint(route, node, limits))
    app[OPENAPI_DOCUMENT] = json.dumps(document(routes), indent=1).encode()
    return app


async def serve_http(
    node: NodeService,
    host: str,
    port: int,
    *,
    limits: HttpLimits | None = None,
    metrics: LatencyRecorder | None = None,
) -> web.AppRunner:
    """Serve `node` on host:port (port 0: any free port, see `runner.addresses`), with every
    limit of `limits` (connections, idle and header deadlines included).

    The caller stops it with `await runner.cleanup()`.
    """
    limits = limits or HttpLimits()
    app = make_app(node, limits=limits, metrics=metrics)
    connections = app[_CONNECTIONS] = ConnectionGuard(limits)
    # access_log=None: no per-request logging (see the module docstring).
    # shutdown_timeout: how long cleanup() lets in-flight requests finish, in seconds.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, connections).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _member_http_addresses(node: NodeService) -> list[str]:
    try:
        members = node.members()
    except Exception:
        log.exception("members() failed while checking a Host header")
        return []
    return [m["http"] for m in members if isinstance(m.get("http"), str)]


def _endpoint(route: Route, node: NodeService, limits: HttpLimits) -> _Endpoint:
    handler = route.handler
    fields = route.body
    service = route.service
    has_parameters = "{" in route.path
    body_timeout_s = limits.body_timeout_ms / 1000

    async def endpoint(request: web.Request) -> web.StreamResponse:
        request[_ROUTE] = route
        if has_parameters:
            check_path_encoding(request)
        client_id, seq = parse_exactly_once(request) if service else (None, None)
        body = await read_body(request, fields, body_timeout_s) if fields is not None else {}
        return await handler(Call(request, node, body, client_id, seq, body_timeout_s))

    return endpoint


def _browser_refusal(request: web.Request, hosts: HostPolicy) -> ApiError | None:
    """403 for what only a tricked browser sends (see origins.py), else None."""
    headers = request.headers
    host = headers.get("Host")
    if host is not None and not hosts.allows(host):
        shown = host_name(host) or host[:100]
        return ApiError(
            403,
            FORBIDDEN_HOST,
            f"Host {shown!r} is not a name of this cluster (a web page on another site can "
            "send this through DNS rebinding): use the node's address or a loopback name, "
            "or add the name to the node's http allowed_hosts",
        )
    origin = headers.get("Origin")
    if origin is not None and state_changing(request.method) and not same_origin(origin, host):
        return ApiError(
            403,
            CROSS_ORIGIN,
            f"a web page from {origin[:100]!r} may not change state on this node (cross-site "
            "request); send it from a program, or from a page this node serves",
        )
    return None


def _guard_middleware(
    node: NodeService, recorder: LatencyRecorder | None, hosts: HostPolicy
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: _Endpoint) -> web.StreamResponse:
        started = time.perf_counter()
        connections = request.app.get(_CONNECTIONS)
        if connections is not None:
            connections.request_started(request)
        try:
            refusal = _browser_refusal(request, hosts)
            if refusal is not None:
                raise refusal
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            response = from_http_exception(exc, request).response()
        except NodeError as exc:
            response = from_node_error(exc, node).response()
        except BadCommand as exc:  # the node's own validation, if it disagrees with ours
            response = from_bad_command(exc).response()
        except TimeoutError:
            # The node should raise Unavailable; a bare timeout means the same thing.
            retry = {"Retry-After": str(retry_after_s)}
            response = ApiError(
                503, "unavailable", "timed out", outcome="unknown", headers=retry
            ).response()
        except ConnectionError:
            # The client went away mid-request (reading the body, usually): nothing to answer.
            log.debug("client disconnected during %s %s", request.method, request.path)
            response = web.Response(status=_CLIENT_GONE)
        except Exception:
            log.exception("internal error answering %s %s", request.method, request.path)
            response = internal().response()
        finally:
            last = connections is not None and connections.request_finished(request)
        if last:
            response.force_close()  # a reserved slot serves one request
        route = request.get(_ROUTE)
        if route is not None and route.cors:
            # Let the dashboard served by one node poll every other node's status.
            response.headers["Access-Control-Allow-Origin"] = "*"
        if recorder is not None:
            name = route.name if route is not None else _UNMATCHED
            recorder.observe(name, response.status, time.perf_counter() - started)
        return response

    return guard
