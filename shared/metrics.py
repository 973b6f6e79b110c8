"""Prometheus metrics of the HTTP layer, and the ``/metrics`` exposition.

``http_requests_total{service,method,route,status}`` and
``http_request_duration_seconds{service,method,route}`` are labelled by the route *template*
(``/v1/orders/{order_id}``), never the raw path, and unmatched paths share one ``unmatched``
route, so a scanner cannot blow up the number of series. Methods outside the standard set
are counted as ``OTHER`` for the same reason.

Labelled children are cached in a dict: ``Counter.labels()`` takes a lock and builds a
tuple on every call, which is measurable on a hot endpoint.

With several worker processes set ``PROMETHEUS_MULTIPROC_DIR``; ``/metrics`` then aggregates
every process (prometheus_client multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by route template and status code.",
    ("service", "method", "route", "status"),
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to handle an HTTP request, by route template.",
    ("service", "method", "route"),
    buckets=DURATION_BUCKETS,
)


class HttpMetrics:
    """Records one service's requests; children cached per label set."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in KNOWN_METHODS:
            method = "OTHER"
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = HTTP_REQUESTS.labels(self.service, method, route, str(status))
        counter.inc()
        hkey = (method, route)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = HTTP_DURATION.labels(self.service, method, route)
        histogram.observe(seconds)


def render_metrics() -> tuple[bytes, str]:
    """The exposition body and its content type, for every metric of this process (or all)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
