"""Metrics over OTLP beside ``/metrics``: imported only when ``OTEL_*`` asks for metrics export.

``shared.metrics`` stays the one place metrics are defined and counted; when export is on, each
series it makes also gets an OpenTelemetry instrument (``mirror``), which the SDK aggregates and
a ``PeriodicExportingMetricReader`` sends over OTLP (``OTEL_METRIC_EXPORT_INTERVAL``, 60 s by
default; the endpoint as for traces, ``/v1/metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader

from shared.errors import ConfigError
from shared.telemetry.sdk import INSTRUMENTATION, resource
from shared.telemetry.settings import TelemetrySettings

Record = Callable[[float], None]


def metric_exporter(settings: TelemetrySettings) -> Any:
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise ConfigError(
                "$OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the "
                "opentelemetry-exporter-otlp-proto-grpc package; or use http/protobuf"
            ) from exc
        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


class Meters:
    """OpenTelemetry instruments mirroring ``shared.metrics``' series."""

    def __init__(self, settings: TelemetrySettings, reader: MetricReader | None = None) -> None:
        """``reader``: where the metrics go (tests: the SDK's ``InMemoryMetricReader``);
        default: OTLP, periodically."""
        reader = reader or PeriodicExportingMetricReader(metric_exporter(settings))
        self.provider = MeterProvider(resource=resource(settings), metric_readers=[reader])
        self._meter = self.provider.get_meter(INSTRUMENTATION)
        self._instruments: dict[str, Any] = {}

    def mirror(
        self,
        kind: str,
        name: str,
        description: str,
        unit: str,
        attributes: Mapping[str, str],
        buckets: Sequence[float] | None = None,
    ) -> Record:
        """What records one value of one series: a counter's ``add`` or a histogram's
        ``record``, with the series' attributes."""
        instrument: Any = self._instruments.get(name)
        if instrument is None:
            if kind == "Counter":
                instrument = self._meter.create_counter(name, unit, description)
            else:
                instrument = self._meter.create_histogram(
                    name,
                    unit,
                    description,
                    explicit_bucket_boundaries_advisory=list(buckets) if buckets else None,
                )
            self._instruments[name] = instrument
        record = instrument.add if kind == "Counter" else instrument.record
        fixed = dict(attributes)
        return lambda value: record(value, fixed)

    def flush(self, timeout_ms: int = 5000) -> None:
        self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.provider.shutdown()
