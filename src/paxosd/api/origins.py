"""Which requests a browser may have sent on someone else's behalf, and must be refused.

Two attacks reach an HTTP API on a trusted network through a user's browser, and both leave
a mark in the request headers:

* **Cross-site requests (CSRF).** Any web page can make the browser POST to
  `http://127.0.0.1:7001/v1/kv/x/cas` (a `text/plain` body needs no CORS preflight). The
  browser then sends an `Origin` header naming the page's site, which is not the node. So a
  state-changing request (any method but GET, HEAD and OPTIONS) whose `Origin` does not match
  its `Host` is refused. Non-browser clients (curl, the Python client, redis tools) send no
  `Origin`, and the dashboard only reads.
* **DNS rebinding.** A page on `evil.example` makes its name resolve to 127.0.0.1; the browser
  then treats the node as the same site as the page, and sends `Host: evil.example:7001`.
  So a request whose `Host` is a name the cluster does not use is refused. Allowed: IP
  literals (rebinding needs a name the attacker controls), loopback names (`localhost`,
  `*.localhost`), the host names in the members' advertised HTTP addresses, and the
  operator's `allowed_hosts`. A request without `Host` (HTTP/1.0) is no browser's.

`HostPolicy` decides per Host header and remembers its answers (bounded); `same_origin` is a
pure function. `http.py` calls both from its middleware and answers 403 for a refusal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

__all__ = ["HostPolicy", "host_name", "is_loopback_name", "same_origin", "state_changing"]

# How many distinct Host headers the policy remembers its answer for; past it, it forgets all
# (the headers are the client's to choose, so the memory must be bounded).
remembered_hosts_max: Final = 1024

_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def state_changing(method: str) -> bool:
    """Whether a request with this method may change state (all but GET, HEAD, OPTIONS)."""
    return method.upper() not in _SAFE_METHODS


def host_name(authority: str) -> str | None:
    """The host of a `Host` header or address (`name`, `name:port`, `[v6]:port`), lowercased
    and without a trailing dot; None if it is not one."""
    parsed = _authority(authority)
    return None if parsed is None else parsed[0]


def _authority(authority: str) -> tuple[str, int | None] | None:
    """(host, port or None) of `name`, `name:port`, `[v6]`, `[v6]:port` or a bare IPv6."""
    authority = authority.strip()
    port: int | None = None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        rest = authority[end + 1 :]
        if rest:
            if not (rest.startswith(":") and rest[1:].isdigit()):
                return None
            port = int(rest[1:])
        host = authority[1:end]
    else:
        name, colon, digits = authority.rpartition(":")
        if colon and ":" not in name:  # name:port (a bare IPv6 address has several colons)
            if not digits.isdigit():
                return None
            port = int(digits)
            authority = name
        host = authority
    host = host.lower().rstrip(".")
    return (host, port) if host else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback_name(host: str) -> bool:
    """`localhost` and its subdomains (RFC 6761 reserves them for the loopback)."""
    return host == "localhost" or host.endswith(".localhost")


class HostPolicy:
    """Decides which `Host` headers a node accepts (see the module docstring).

    `member_hosts` returns the host parts of the members' advertised HTTP addresses; it is
    asked again when a Host is not known yet, so members added later are found.
    """

    def __init__(self, member_hosts: Callable[[], Iterable[str]], allowed: Iterable[str] = ()):
        self._member_hosts = member_hosts
        self._allowed = frozenset(h for h in (host_name(a) for a in allowed) if h)
        self._answers: dict[str, bool] = {}

    def allows(self, header: str) -> bool:
        known = self._answers.get(header)
        if known is not None:
            return known
        answer = self._decide(header)
        if len(self._answers) >= remembered_hosts_max:
            self._answers.clear()
        if answer:  # a refusal is asked again: the member list may grow
            self._answers[header] = True
        return answer

    def _decide(self, header: str) -> bool:
        host = host_name(header)
        if host is None:
            return False
        if _is_ip(host) or is_loopback_name(host) or host in self._allowed:
            return True
        members = {name for name in (host_name(a) for a in self._member_hosts()) if name}
        return host in members


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether an `Origin` header names the site of `Host` (scheme default ports allowed)."""
    if host_header is None:
        return False
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port
    except ValueError:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.hostname:
        return False  # "null" (sandboxed pages, file:), or not a web origin at all
    target = _authority(host_header)
    if target is None:
        return False
    host, port = target
    return parts.hostname.rstrip(".") == host and (origin_port or default) == (port or default)
