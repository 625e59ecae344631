"""The gateway's own Prometheus metrics, beside the per-route HTTP ones from ``shared``."""

from __future__ import annotations

from shared.metrics import Counter, Histogram

UPSTREAM_ATTEMPTS = Counter(
    "gateway_upstream_attempts_total",
    "Calls to provider deployments, by deployment and outcome (ok or an error class).",
    ["deployment", "outcome"],
)
FALLBACKS = Counter(
    "gateway_fallbacks_total",
    "Moves from one deployment of a route to the next.",
    ["route"],
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_seconds",
    "Latency of successful provider calls (to the first byte for streams).",
    ["deployment"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
