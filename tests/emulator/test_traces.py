"""``agentorch traces``: the collector-free viewer takes what the SDK's OTLP/HTTP exporter sends,
prints a line per span, and refuses what is not an OTLP export with a clear 4xx."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from emulator.traces import ReceivedSpan, receiver
from tests.served import client_tls


@pytest.fixture
def viewer() -> Iterator[tuple[str, list[ReceivedSpan]]]:
    shown: list[ReceivedSpan] = []
    server = receiver(0, shown.append)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", shown
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_it_shows_each_span_the_sdk_exports(viewer: tuple[str, list[ReceivedSpan]]) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    url, shown = viewer
    provider = TracerProvider(resource=Resource({"service.name": "gateway"}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("chat claude") as span:
        span.set_attribute("error.type", "Overloaded")
    provider.shutdown()

    [received] = shown
    assert (received.service, received.name, received.kind) == (
        "gateway",
        "chat claude",
        "INTERNAL",
    )
    line = received.line()
    assert line.startswith(received.trace_id[:8]) and "error: Overloaded" in line


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/v1/traces", {"content-type": "application/x-protobuf"}, b"\xff\xff\xff", 400),
        ("/v1/traces", {"content-type": "application/json"}, b"{}", 415),
        ("/v1/logs", {"content-type": "application/x-protobuf"}, b"", 404),
        (
            "/v1/traces",
            {"content-type": "application/x-protobuf", "content-encoding": "gzip"},
            b"not gzip",
            400,
        ),
    ],
)
def test_what_is_not_an_export_gets_a_clear_4xx(
    viewer: tuple[str, list[ReceivedSpan]],
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    url, shown = viewer
    with httpx.Client(timeout=5, verify=client_tls()) as client:
        answer = client.post(url + path, content=body, headers=headers)
    assert answer.status_code == status and answer.text
    assert shown == []
