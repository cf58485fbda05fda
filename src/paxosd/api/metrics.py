"""Request latency of the HTTP API, for Prometheus and for the node's status.

Theory of operation: the `http` middleware times every request with `time.perf_counter` and
hands (route, status, seconds) to a `LatencyRecorder`. `HttpMetrics` is the recorder the node
uses: it observes into a Prometheus histogram registered in the node's own CollectorRegistry
(so `node.metrics_text()` exposes it with everything else), and keeps the most recent
latencies in a ring so `status()` can report p50/p99 without scraping anything.

Cost per request is one dict lookup for the cached labelled child, one histogram observe and
one deque append (a few microseconds); percentiles are computed only when asked for, by
sorting the ring (O(ring size · log), about a millisecond at 4096 entries).
"""

from __future__ import annotations

from collections import deque
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Histogram

# Latency buckets in seconds: a coordination request takes from tens of microseconds (a read on
# the leader) to seconds (a write across an election).
latency_buckets_s: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# How many recent request latencies the percentile ring keeps.
recent_latencies_max: Final = 4096


class LatencyRecorder(Protocol):
    """What the middleware calls once per request."""

    def observe(self, route: str, status: int, seconds: float) -> None: ...


class HttpMetrics:
    """Prometheus histogram `paxosd_http_request_duration_seconds{route, code}` plus a ring of
    recent latencies. `route` is the operation name (e.g. "kv_get", "unmatched"), never the raw
    path, so the label set stays bounded however many keys clients use."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            "paxosd_http_request_duration_seconds",
            "HTTP API request latency by route and status code",
            labelnames=("route", "code"),
            buckets=latency_buckets_s,
            registry=registry,
        )
        # Histogram.labels() validates and locks on every call; caching the child skips that.
        self._children: dict[tuple[str, int], Histogram] = {}
        self._recent: deque[float] = deque(maxlen=recent_latencies_max)
        self.requests_total = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = self._histogram.labels(route=route, code=str(status))
            self._children[(route, status)] = child
        child.observe(seconds)
        self._recent.append(seconds)
        self.requests_total += 1

    def latency_ms(self) -> dict[str, float | None]:
        """{"p50", "p99"} of the recent requests in milliseconds (None before any request)."""
        if not self._recent:
            return {"p50": None, "p99": None}
        ordered = sorted(self._recent)
        last = len(ordered) - 1
        return {
            "p50": round(ordered[last * 50 // 100] * 1000, 3),
            "p99": round(ordered[last * 99 // 100] * 1000, 3),
        }
