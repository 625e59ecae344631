"""An OTLP/HTTP receiver: what a collector (Jaeger, Tempo, the OpenTelemetry Collector) gets.

``FakeOtlp`` answers ``POST /v1/traces`` and ``POST /v1/metrics`` as the OTLP specification
says (binary protobuf in, ``Export...ServiceResponse`` out) and decodes each request with the
protocol's own classes (``opentelemetry-proto``), so a test sees exactly what went over the
wire: ``spans()`` flattens every span received, with its resource's ``service.name``
(``emulator.traces.decode_spans``, the decoder ``agentorch traces`` shows them with).
"""

from __future__ import annotations

import gzip
from typing import Any

from emulator.traces import ReceivedSpan, body_of, decode_spans
from tests.fakes.server import Exchange, FakeServer, RecordedRequest

PROTOBUF = "application/x-protobuf"


class FakeOtlp(FakeServer):
    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        answers: dict[str, Any] = {
            "/v1/traces": trace_service_pb2.ExportTraceServiceResponse,
            "/v1/metrics": metrics_service_pb2.ExportMetricsServiceResponse,
        }
        if request.method != "POST" or request.route not in answers:
            exchange.send_json(404, {"error": f"no route {request.route}"})
            return
        if request.headers.get("content-type") != PROTOBUF:
            exchange.send_json(415, {"error": "expected binary protobuf"})
            return
        self._decode(request)  # a request that does not decode fails here, loudly
        data = answers[request.route]().SerializeToString()
        exchange.start_body(200, {"content-type": PROTOBUF}, len(data))
        exchange.write(data)

    def spans(self) -> list[ReceivedSpan]:
        received = []
        for request in self.requests:
            if request.route == "/v1/traces":
                raw = body_of(request.raw, request.headers.get("content-encoding"))
                received += decode_spans(raw)
        return received

    def metric_names(self) -> set[str]:
        names: set[str] = set()
        for request in self.requests:
            if request.route == "/v1/metrics":
                for resource in self._decode(request).resource_metrics:
                    for scope in resource.scope_metrics:
                        names.update(metric.name for metric in scope.metrics)
        return names

    @staticmethod
    def _decode(request: RecordedRequest) -> Any:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        raw = request.raw
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        kind = (
            trace_service_pb2.ExportTraceServiceRequest
            if request.route == "/v1/traces"
            else metrics_service_pb2.ExportMetricsServiceRequest
        )
        message = kind()
        message.ParseFromString(raw)
        return message
