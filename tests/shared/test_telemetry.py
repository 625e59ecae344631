"""shared.telemetry: trace context in and out, with tracing off and on, and in log lines."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest

from shared import logs, metrics, telemetry
from shared.errors import ConfigError
from shared.telemetry.settings import TelemetrySettings
from tests.fakes.traces import attributes, one, spans  # noqa: F401  (a fixture)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def off_by_default() -> None:
    telemetry.reset()


def test_off_unless_a_standard_variable_asks() -> None:
    assert TelemetrySettings.load({}).traces is False
    assert TelemetrySettings.load({"OTEL_SERVICE_NAME": "gateway"}).traces is False
    on = TelemetrySettings.load({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert on.traces and on.metrics and on.protocol == "http/protobuf"
    assert TelemetrySettings.load({"OTEL_TRACES_EXPORTER": "console"}).traces
    assert not TelemetrySettings.load(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    ).traces
    assert not TelemetrySettings.load(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}
    ).traces


def test_a_bad_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        TelemetrySettings.load({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        TelemetrySettings.load({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_off_the_context_passes_through_as_it_came() -> None:
    assert telemetry.configure(TelemetrySettings()) is None
    came = {"traceparent": PARENT, "tracestate": "a=1", "baggage": "tenant=7", "x-other": "1"}
    with telemetry.server_span("POST /", came) as span:
        assert not span.recording
        with telemetry.span("inner") as inner:
            inner.set("ignored", 1)
        sent = telemetry.inject({"x-request-id": "r1"})
        assert telemetry.ids() == (TRACE, None)
    assert sent == {
        "x-request-id": "r1",
        "traceparent": PARENT,
        "tracestate": "a=1",
        "baggage": "tenant=7",
    }
    assert telemetry.inject({}) == {}  # outside the request: nothing


@pytest.mark.parametrize(
    "traceparent",
    ["garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{TRACE}-{'0' * 16}-01", ""],
)
def test_an_invalid_traceparent_is_not_passed_on(traceparent: str) -> None:
    telemetry.configure(TelemetrySettings())
    with telemetry.server_span("POST /", {"traceparent": traceparent, "tracestate": "a=1"}):
        assert telemetry.inject({}) == {}
        assert telemetry.ids() is None


def test_a_cloudevent_carries_its_context_in_the_tracing_extension() -> None:
    telemetry.configure(TelemetrySettings())
    with telemetry.server_span("POST /", {"ce-traceparent": PARENT, "ce-tracestate": "b=2"}):
        assert telemetry.inject({}) == {"traceparent": PARENT, "tracestate": "b=2"}


def test_on_a_request_continues_its_callers_trace(spans: InMemorySpanExporter) -> None:  # noqa: F811
    came = {"traceparent": PARENT, "baggage": "tenant=7"}
    with telemetry.server_span("POST /", came), telemetry.span("chat m", kind="client") as span:
        assert span.recording
        sent = telemetry.inject({})
        trace_id, span_id = telemetry.ids() or ("", "")
    server, chat = one(spans, "POST /"), one(spans, "chat m")
    assert format(server.context.trace_id, "032x") == TRACE == trace_id
    assert server.parent is not None and chat.parent is not None
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert chat.parent.span_id == server.context.span_id
    assert sent["traceparent"] == f"00-{TRACE}-{span_id}-01"
    assert sent["baggage"] == "tenant=7"


def test_on_an_exception_leaving_a_span_sets_its_error_type(spans: InMemorySpanExporter) -> None:  # noqa: F811
    with pytest.raises(KeyError), telemetry.span("execute_tool calculator"):
        raise KeyError("secret-looking content")
    span = one(spans, "execute_tool calculator")
    assert attributes(span)["error.type"] == "KeyError"
    assert not span.events  # no exception event: its message could quote content


def test_each_log_line_carries_the_trace_and_span(spans: InMemorySpanExporter) -> None:  # noqa: F811
    stream = io.StringIO()
    logs.configure({}, stream)
    try:
        with telemetry.server_span("POST /", {"traceparent": PARENT}):
            logs.get_logger("test").info("inside")
            _, span_id = telemetry.ids() or ("", "")
        logs.get_logger("test").info("outside")
    finally:
        logs.configure({})
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == TRACE and inside["span_id"] == span_id
    assert "trace_id" not in outside


def test_a_bad_setting_met_on_a_request_turns_tracing_off_not_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    stream = io.StringIO()
    logs.configure({}, stream)
    try:
        with telemetry.server_span("POST /", {"traceparent": PARENT}) as span:
            assert not span.recording  # off: served all the same, the context passed on
            assert telemetry.inject({})["traceparent"] == PARENT
    finally:
        logs.configure({})
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in stream.getvalue()


def test_metrics_go_out_over_otlp_with_the_conventions_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.fakes.otlp import FakeOtlp

    usage = metrics.Histogram(
        "test_token_usage",
        "Tokens.",
        ["token_type"],
        otel=("gen_ai.client.token.usage", "{token}", {"token_type": "gen_ai.token.type"}),
        buckets=(1, 4, 16),
    )
    with FakeOtlp() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        telemetry.reset()
        try:
            usage.labels("input").observe(3)
            telemetry.flush()
            assert receiver.metric_names() == {"gen_ai.client.token.usage"}
            [request] = receiver.requests
            assert request.route == "/v1/metrics"
        finally:
            telemetry.reset()


def test_batch_sizes_that_do_not_fit_turn_tracing_off_not_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")  # the batch (512) cannot fit
    telemetry.reset()
    try:
        assert not telemetry.enabled()
        with telemetry.span("work") as span:
            assert not span.recording
    finally:
        telemetry.reset()
