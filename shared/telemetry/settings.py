"""What the standard ``OTEL_*`` variables ask for; read without importing OpenTelemetry.

Tracing is on when a traces exporter is named (``OTEL_TRACES_EXPORTER``, other than ``none``)
or an OTLP endpoint is given (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and ``OTEL_SDK_DISABLED`` is not ``true``. Metrics go
out over OTLP likewise (``OTEL_METRICS_EXPORTER``, ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, or
the shared endpoint unless ``OTEL_METRICS_EXPORTER=none``). Everything else (service name,
resource attributes, sampler, headers, timeouts) the SDK reads itself, as it documents.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import ConfigError

PROTOCOLS = ("http/protobuf", "grpc")
EXPORTERS = ("otlp", "console", "none")
CAPTURE_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
SERVICE_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "K_SERVICE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "FUNCTION_TARGET",
)
"""Where the service name comes from, first found: OpenTelemetry's, then the platform's."""


@dataclass(frozen=True)
class TelemetrySettings:
    traces: bool = False
    """Spans are made and exported."""
    metrics: bool = False
    """Metrics are exported over OTLP too (``/metrics`` serves them either way)."""
    exporter: str = "otlp"
    """``OTEL_TRACES_EXPORTER``: ``otlp`` or ``console`` (stdout, for a look by hand)."""
    protocol: str = "http/protobuf"
    """``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``: ``http/protobuf``, or ``grpc`` when the
    ``opentelemetry-exporter-otlp-proto-grpc`` package is installed."""
    capture_content: bool = False
    """``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``: messages and tool content
    on the spans."""
    service_name: str = "agentorch"
    """``service.name`` unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` says."""

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> TelemetrySettings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return (env.get(name) or "").strip()

        if get("OTEL_SDK_DISABLED").lower() == "true":
            return cls()
        exporter = get("OTEL_TRACES_EXPORTER").lower() or "otlp"
        if exporter not in EXPORTERS:
            raise ConfigError(
                f"$OTEL_TRACES_EXPORTER={exporter[:40]}: use one of {', '.join(EXPORTERS)}"
            )
        endpoint = bool(get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        named = bool(get("OTEL_TRACES_EXPORTER")) and exporter != "none"
        traces = exporter != "none" and (named or endpoint or bool(get(_TRACES_ENDPOINT)))
        metrics_exporter = get("OTEL_METRICS_EXPORTER").lower()
        metrics = metrics_exporter != "none" and (
            bool(metrics_exporter) or endpoint or bool(get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
        )
        protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or get("OTEL_EXPORTER_OTLP_PROTOCOL")
        protocol = protocol.lower() or PROTOCOLS[0]
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"$OTEL_EXPORTER_OTLP_PROTOCOL={protocol[:40]}: use one of {', '.join(PROTOCOLS)}"
            )
        service = next((get(name) for name in SERVICE_VARIABLES if get(name)), "agentorch")
        return cls(
            traces=traces,
            metrics=metrics,
            exporter=exporter,
            protocol=protocol,
            capture_content=get(CAPTURE_VARIABLE).lower() == "true",
            service_name=service,
        )


_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
