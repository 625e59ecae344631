"""Prometheus metrics shared by every function: request counts and latency by route."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "agentorch_http_requests_total",
    "HTTP requests answered, by function, route and status.",
    ["function", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "agentorch_http_request_seconds",
    "Time to answer an HTTP request (to the first byte for streams).",
    ["function", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def render() -> tuple[bytes, str]:
    """The process's metrics in Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
