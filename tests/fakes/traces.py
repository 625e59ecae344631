"""Spans recorded in memory by the real SDK: ``spans`` turns tracing on for one test.

The exporter is the SDK's own ``InMemorySpanExporter`` behind a synchronous processor, so a
span is there as soon as it ends; ``tests.fakes.otlp`` is the receiver for what goes over the
wire. Tracing goes back to the environment's choice (off) after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from shared import telemetry
from shared.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    exporter = InMemorySpanExporter()
    telemetry.configure(TelemetrySettings(traces=True, service_name="test"), exporter=exporter)
    yield exporter
    telemetry.reset()


@pytest.fixture
def content_spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """As ``spans``, with message and tool content captured."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    settings = TelemetrySettings(traces=True, capture_content=True, service_name="test")
    telemetry.configure(settings, exporter=exporter)
    yield exporter
    telemetry.reset()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(exporter, name)
    names = [span.name for span in exporter.get_finished_spans()]
    assert len(found) == 1, f"expected one span {name!r}; spans: {names}"
    return found[0]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})
