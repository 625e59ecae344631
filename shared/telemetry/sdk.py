"""The OpenTelemetry SDK behind ``shared.telemetry``: imported only when tracing is on.

A ``TracerProvider`` of our own (not the global one, which can be set once per process: tests
configure several), its resource from the SDK's environment detectors (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``) with the platform's service name as the fallback, its sampler
from ``OTEL_TRACES_SAMPLER``, and a batch processor in front of the exporter, so a request
never waits on an export. The propagator is the SDK's global one: ``OTEL_PROPAGATORS``, by
default W3C Trace Context and Baggage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.errors import ConfigError
from shared.telemetry import Span
from shared.telemetry.settings import TelemetrySettings

KINDS = {
    "internal": SpanKind.INTERNAL,
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
INSTRUMENTATION = "agentorch"


def span_exporter(settings: TelemetrySettings) -> SpanExporter:
    """The exporter ``OTEL_TRACES_EXPORTER`` and ``OTEL_EXPORTER_OTLP_*`` ask for; the OTLP
    exporters read their endpoint, headers, timeout and compression from the environment."""
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise ConfigError(
                "$OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the "
                "opentelemetry-exporter-otlp-proto-grpc package; or use http/protobuf"
            ) from exc
        return GrpcExporter()  # type: ignore[no-any-return]
    from shared.telemetry.otlp import LeanSpanExporter  # the SDK's, with a cheaper encoder

    return LeanSpanExporter()


def batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """The SDK's, sized by ``OTEL_BSP_*`` (batches four times its default showed no gain in the
    gateway's CPU per request, within this machine's noise, 2026-12-08)."""
    try:
        return BatchSpanProcessor(exporter)
    except ValueError as exc:  # e.g. a batch larger than the queue: tracing off, said once
        raise ConfigError(f"$OTEL_BSP_*: {exc}") from exc


def resource(settings: TelemetrySettings) -> Resource:
    found = Resource.create()
    name = str(found.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: settings.service_name}))
    return found


class Tracing:
    """Spans, propagation and ids over one ``TracerProvider``."""

    def __init__(self, settings: TelemetrySettings, provider: TracerProvider) -> None:
        self.settings = settings
        self.provider = provider
        self.tracer = provider.get_tracer(INSTRUMENTATION)
        self.propagator = propagate.get_global_textmap()

    @classmethod
    def start(cls, settings: TelemetrySettings, exporter: Any = None) -> Tracing:
        """``exporter`` given (tests): spans go to it synchronously, as each ends."""
        provider = TracerProvider(resource=resource(settings))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(batch_processor(span_exporter(settings)))
        return cls(settings, provider)

    @contextmanager
    def span(
        self, name: str, kind: str, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Span]:
        # start_span and attach by hand: a fifth cheaper than start_as_current_span's layers of
        # context managers, and no exception event (its message may quote content).
        current = self.tracer.start_span(name, kind=KINDS[kind], attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(current))
        try:
            yield Span(current)
        except BaseException as exc:
            said = getattr(current, "attributes", None) or {}
            if current.is_recording() and "error.type" not in said:
                self.fail(current, type(exc).__name__, None)
            raise
        finally:
            otel_context.detach(token)
            current.end()

    @contextmanager
    def server_span(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any] | None
    ) -> Iterator[Span]:
        if not headers:  # a new trace: nothing to extract (most requests from outside)
            with self.span(name, "server", attributes) as current:
                yield current
            return
        token = otel_context.attach(self.propagator.extract(headers))
        try:
            with self.span(name, "server", attributes) as current:
                yield current
        finally:
            otel_context.detach(token)

    @staticmethod
    def snapshot() -> Any:
        return otel_context.get_current()

    @contextmanager
    def resumed(self, context: Any) -> Iterator[None]:
        token = otel_context.attach(context)
        try:
            yield
        finally:
            otel_context.detach(token)

    @staticmethod
    def current_span() -> Span:
        current = trace.get_current_span()
        return Span(current) if current.is_recording() else Span()

    @staticmethod
    def event(name: str, attributes: Mapping[str, Any]) -> None:
        trace.get_current_span().add_event(name, dict(attributes))

    def inject(self, headers: dict[str, str]) -> None:
        self.propagator.inject(headers)

    def ids(self) -> tuple[str, str | None] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    @staticmethod
    def fail(span: Any, error_type: str, description: str | None) -> None:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, description))

    def flush(self, timeout_ms: int = 5000) -> bool:
        return bool(self.provider.force_flush(timeout_ms))

    def shutdown(self) -> None:
        self.provider.shutdown()
