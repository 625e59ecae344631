"""``agentorch traces``: a collector-free trace viewer, an OTLP/HTTP receiver that prints spans.

    agentorch traces                    # listens on 127.0.0.1:4318, OTLP's HTTP port
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 agentorch up

Each span that arrives is one line: its trace (the first 8 hex digits: `agentorch ask` prints
the whole id), service, name, duration, and its error type when it failed. ``POST /v1/traces``
is decoded with the protocol's own classes (``opentelemetry-proto``, installed with the
exporter); ``/v1/metrics`` is taken and dropped. Bodies are bounded before they are read.
``decode_spans`` is the one decoder: the tests' OTLP receiver uses it too.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 16 * 1024 * 1024
"""An export request's largest body here, compressed or not."""
PROTOBUF = "application/x-protobuf"
DEFAULT_PORT = 4318


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    """Empty for a root span."""
    name: str
    kind: str
    """The protocol's name without its prefix: ``SERVER``, ``CLIENT``, ``INTERNAL``..."""
    attributes: dict[str, Any]
    duration_ms: float

    def line(self) -> str:
        error = self.attributes.get("error.type")
        failed = f"  error: {error}" if error else ""
        return (
            f"{self.trace_id[:8]}  {self.service[:16]:<16}  {self.name[:48]:<48}  "
            f"{self.duration_ms:9.1f} ms{failed}"
        )


def decode_spans(raw: bytes) -> list[ReceivedSpan]:
    """The spans of one ``ExportTraceServiceRequest`` (binary protobuf); ``ValueError`` when it
    is not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    export = trace_service_pb2.ExportTraceServiceRequest()
    try:
        export.ParseFromString(raw)
    except DecodeError as exc:
        raise ValueError(f"not an OTLP trace export: {exc}") from exc
    spans = []
    for resource_spans in export.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        attributes=_attributes(span.attributes),
                        duration_ms=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
                    )
                )
    return spans


def body_of(raw: bytes, encoding: str | None) -> bytes:
    """``raw`` as sent, or inflated (gzip, deflate) within ``MAX_BODY_BYTES``."""
    if not encoding or encoding == "identity":
        return raw
    if encoding not in ("gzip", "deflate"):
        raise ValueError(f"content-encoding {encoding[:20]} is not supported")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise ValueError(f"the body is not {encoding}: {exc}") from exc
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"the body inflates past {MAX_BODY_BYTES} bytes")
    return body


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, which) if which else None


def receiver(port: int, show: Callable[[ReceivedSpan], None]) -> ThreadingHTTPServer:
    """An OTLP/HTTP receiver on 127.0.0.1:``port`` (0: a free one) handing each span to
    ``show``; ``serve_forever()`` it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = self.headers.get("content-length") or ""
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return self._answer(413, b"a body of at most 16 MiB, with its content-length")
            raw = self.rfile.read(int(length))
            if self.path == "/v1/metrics":
                return self._answer(200, b"", PROTOBUF)
            if self.path != "/v1/traces":
                return self._answer(404, b"this receiver takes /v1/traces and /v1/metrics")
            if (self.headers.get("content-type") or "") != PROTOBUF:
                return self._answer(415, b"OTLP/HTTP in binary protobuf only")
            try:
                spans = decode_spans(body_of(raw, self.headers.get("content-encoding")))
            except ValueError as exc:
                return self._answer(400, str(exc).encode())
            for span in spans:
                show(span)
            return self._answer(200, b"", PROTOBUF)

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)
