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
# The OpenTelemetry GenAI conventions' client metrics, as Prometheus names them; the buckets are
# the ones the conventions advise. Over OTLP they keep the conventions' names and attributes.
GENAI_ATTRIBUTES = {
    "route": "agentorch.gateway.route",
    "provider": "gen_ai.provider.name",
    "model": "gen_ai.request.model",
    "token_type": "gen_ai.token.type",
    "error_type": "error.type",
}
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Tokens used per model call (gen_ai.client.token.usage), by route, provider, model and type.",
    ["route", "provider", "model", "token_type"],
    otel=("gen_ai.client.token.usage", "{token}", GENAI_ATTRIBUTES),
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304),
)
OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Duration of model calls through the gateway (gen_ai.client.operation.duration), by route, "
    "provider, model and error type (empty when answered).",
    ["route", "provider", "model", "error_type"],
    otel=("gen_ai.client.operation.duration", "s", GENAI_ATTRIBUTES),
    buckets=(
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    ),
)
