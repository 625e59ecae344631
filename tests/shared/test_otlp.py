"""The lean OTLP encoder (``shared.telemetry.otlp``) writes what the SDK's encoder writes: the
bytes decode, with ``opentelemetry-proto``, to the very message the SDK builds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.otlp import FakeOtlp

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PARENT = 0xB7AD6B7169203331


def _spans() -> list[Any]:
    """Spans of every shape: remote and local parents, events, links, errors, trace state,
    attribute values of each kind (negative, large, float, bool, arrays, long strings)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import (
        Link,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "gateway", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agentorch", "1.2", schema_url="https://x/1")
    other = provider.get_tracer("other")
    state = TraceState([("vendor", "v1")])
    remote = SpanContext(TRACE, PARENT, True, TraceFlags(1), state)
    values: dict[str, Any] = {
        "s": "ü" * 200,
        "i": -7,
        "big": 2**62,
        "f": 0.25,
        "b": False,
        "t": True,
        "strings": ("a", "b"),
        "ints": (1, -2),
        "empty": "",
    }
    with tracer.start_as_current_span(
        "POST /v1/messages",
        context=trace.set_span_in_context(trace.NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes=values,
        links=[Link(remote, {"why": "retry"})],
    ) as server:
        server.add_event("fallback", {"deployment": "b"})
        server.add_event("bare")
        with other.start_as_current_span("chat m", kind=SpanKind.CLIENT) as client:
            client.set_status(Status(StatusCode.ERROR, "upstream 503"))
        with tracer.start_as_current_span("ok") as done:
            done.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("root", kind=SpanKind.PRODUCER):
        pass
    spans = list(exporter.get_finished_spans())
    assert len(spans) == 4
    return spans


def test_the_lean_encoder_writes_the_sdks_message() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from shared.telemetry.otlp import encode_spans

    spans = _spans()
    decoded = ExportTraceServiceRequest()
    decoded.ParseFromString(encode_spans(spans))
    assert decoded == sdk(spans)
    scopes = [scope.scope.name for one in decoded.resource_spans for scope in one.scope_spans]
    assert sorted(scopes) == ["agentorch", "other"]  # both scopes kept apart


def test_the_lean_exporter_posts_otlp_http_protobuf() -> None:
    from shared.telemetry.otlp import LeanSpanExporter

    spans = _spans()
    with FakeOtlp() as receiver:
        exporter = LeanSpanExporter(endpoint=f"{receiver.url}/v1/traces", timeout=5)
        try:
            assert exporter.export(spans).name == "SUCCESS"
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]
        names = sorted(span.name for span in receiver.spans())
    assert names == sorted(span.name for span in spans)


def test_an_attribute_it_cannot_encode_fails_the_batch_not_the_thread() -> None:
    from shared.telemetry.otlp import _any_value

    with pytest.raises(TypeError, match="object"):
        _any_value(object())
