"""The live dashboard page every node serves at `/`.

Theory of operation: the page is one self-contained file, `dashboard.html` (inline CSS and
JavaScript, no external requests), shipped as package data and read once with
importlib.resources. All the work happens in the browser: every second it fetches
`/v1/status` from the node that served it, learns the members and their HTTP addresses from
that status, and fetches every member's `/v1/status` directly (the status and health routes
send `Access-Control-Allow-Origin: *` for this). Because it remembers the members it has
seen, the page keeps showing the cluster when the node that served it dies, and says so.

Status fields it renders (all optional except node_id/role/leader/members): node_id,
cluster_id, version, role, leader, ballot, commit (or chosen_slot), applied (or applied_slot),
members [{id, http, resp, connected}], ops_total, latency_ms {p50, p99}, uptime_s, disk_bytes,
leader_changes [{at, leader, ballot}], recent_events. See docs/http-api.md. The page carries
the serving node's package version, shown where a status has no `version`.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

from .version import VERSION

_VERSION_SLOT = b"{{PAXOSD_VERSION}}"


@functools.cache
def page() -> bytes:
    """The dashboard HTML, read from the package once, with this package's version in it."""
    template = resources.files(__package__).joinpath("dashboard.html").read_bytes()
    return template.replace(_VERSION_SLOT, html.escape(VERSION).encode())
