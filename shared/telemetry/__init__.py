"""Traces across functions: W3C trace context in and out, spans, and their ids in every log line.

One home for OpenTelemetry. The rest of the code asks this module for spans (``span``,
``server_span``), puts the current context on what it sends (``inject``), and reads the ids
(``ids``); it never imports ``opentelemetry`` itself.

Off unless the standard variables turn it on (``settings.TelemetrySettings``): then the SDK is
never imported, which keeps a function's cold start as it was (issue 17), and a span costs one
attribute lookup. Off, the trace context still passes through: the ``traceparent``,
``tracestate`` and ``baggage`` a request came with go on every call it makes, so a function
that does not export does not cut its callers' trace in two.

On, the SDK is imported on first use (in the worker that serves, after gunicorn forked), with a
batch span processor and an OTLP/HTTP exporter configured by the SDK from ``OTEL_*``
(``shared.telemetry.sdk``). ``configure`` replaces it in tests (an in-memory exporter).

A CloudEvent carries its producer's context in the distributed-tracing extension
(``ce-traceparent``, binary mode): the edge takes it when the request has no ``traceparent``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError
from shared.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from shared.telemetry.meters import Meters, Record
    from shared.telemetry.sdk import Tracing

__all__ = [
    "Span",
    "TelemetrySettings",
    "capture_content",
    "configure",
    "current_span",
    "enabled",
    "event",
    "ids",
    "inject",
    "resumed",
    "server_span",
    "snapshot",
    "span",
    "trace_id",
]

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
"""The W3C headers a request's context travels in (Trace Context and Baggage)."""

TRACEPARENT = re.compile(r"[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
"""W3C Trace Context's ``traceparent`` (its start: a later version may append fields)."""
LIMITS = {"tracestate": 512, "baggage": 8192}
"""The longest value passed on (the W3C specifications' own limits); longer ones are dropped."""

_CARRIED: ContextVar[dict[str, str] | None] = ContextVar("trace_headers", default=None)
"""Tracing off: the trace headers the request being served came with, passed on as they came."""


class Span:
    """A span being recorded, or nothing (``NOOP``) when tracing is off or not sampled: callers
    set attributes without asking which."""

    __slots__ = ("_span",)

    def __init__(self, span: Any = None) -> None:
        self._span = span

    @property
    def recording(self) -> bool:
        """Whether attributes set now are kept: build costly ones only when they are."""
        return self._span is not None and bool(self._span.is_recording())

    def set(self, key: str, value: Any) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def update(self, attributes: Mapping[str, Any]) -> None:
        if self._span is not None:
            self._span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        if self._span is not None:
            self._span.add_event(name, dict(attributes or {}))

    def fail(self, error_type: str, description: str | None = None) -> None:
        """The operation failed: ``error.type`` (a class name or status, low cardinality) and
        the span's status; ``description`` must hold no content or secret."""
        if self._span is not None:
            from shared.telemetry.sdk import Tracing  # loaded already: this span is the SDK's

            Tracing.fail(self._span, error_type, description)


NOOP = Span()


class _Off:
    """``with`` for a span when tracing is off: nothing but ``NOOP``."""

    def __enter__(self) -> Span:
        return NOOP

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()
_state: dict[str, Any] = {}
"""``"tracing"``: the SDK's tracing once resolved (None: off); ``"meters"``: its metrics export
likewise. Empty until first use."""


def _tracing() -> Tracing | None:
    try:
        tracing: Tracing | None = _state["tracing"]
    except KeyError:
        return configure()
    return tracing


def _meters() -> Meters | None:
    try:
        meters: Meters | None = _state["meters"]
    except KeyError:
        return configure_metrics()
    return meters


def configure_metrics(
    settings: TelemetrySettings | None = None, *, reader: Any = None
) -> Meters | None:
    """Resolve metrics export from ``settings`` (default: the environment's): None when off;
    a test passes ``reader`` (an SDK ``MetricReader``). Series made before keep their choice."""
    meters: Meters | None = None
    problem = None
    try:
        settings = settings or TelemetrySettings.load()
        if reader is not None or settings.metrics:
            from shared.telemetry.meters import Meters

            meters = Meters(settings, reader)
    except ConfigError as exc:
        problem = exc
    previous = _state.get("meters")
    if previous is not None and previous is not meters:
        previous.shutdown()
    _state["meters"] = meters
    if problem is not None:
        _unusable(problem, "metrics export")
    return meters


def mirror(
    kind: str,
    name: str,
    description: str,
    unit: str,
    attributes: Mapping[str, str],
    buckets: Any = None,
) -> Record | None:
    """With metrics export on, what records one series' values in OpenTelemetry too
    (``shared.metrics`` calls it as it makes a series); None when off."""
    meters = _meters()
    if meters is None:
        return None
    return meters.mirror(kind, name, description, unit, attributes, buckets)


def configure(settings: TelemetrySettings | None = None, *, exporter: Any = None) -> Tracing | None:
    """Resolve tracing from ``settings`` (default: the environment's): None when off. A
    test passes ``exporter`` (an SDK ``SpanExporter``, exported synchronously) to turn it on
    with that; ``reset()`` goes back to the environment's choice."""
    tracing: Tracing | None = None
    problem = None
    try:
        settings = settings or TelemetrySettings.load()
        if exporter is not None or settings.traces:
            from shared.telemetry.sdk import Tracing

            tracing = Tracing.start(settings, exporter)
    except ConfigError as exc:
        problem = exc
    previous = _state.get("tracing")
    if previous is not None and previous is not tracing:
        previous.shutdown()
    _state["tracing"] = tracing
    if problem is not None:  # said once resolved: the log line asks for the trace ids
        _unusable(problem, "tracing")
    return tracing


def _unusable(problem: ConfigError, what: str) -> None:
    """A bad ``OTEL_*`` setting turns ``what`` off, said once: it is met on a request, not
    at start-up, and a typo in a telemetry setting must not take the function down."""
    from shared.logs import get_logger

    get_logger("telemetry").warning(f"{problem.message}; {what} is off")


def reset() -> None:
    """Forget the tracing and metrics export chosen (what they hold flushed): the next use
    resolves them again."""
    for key in ("tracing", "meters"):
        previous = _state.pop(key, None)
        if previous is not None:
            previous.shutdown()


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans ended so far now, waiting at most about ``timeout_ms`` for each of
    traces and metrics (tests; a Lambda invocation before it returns, when the process is
    frozen; elsewhere the batch processor does it on its schedule, and at exit). Nothing to do
    when neither was ever used: the SDK is not imported for it."""
    for key in ("tracing", "meters"):
        if (held := _state.get(key)) is not None:
            held.flush(timeout_ms)


def enabled() -> bool:
    """Spans are made and exported."""
    return _tracing() is not None


def capture_content() -> bool:
    """``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``: messages and tool content
    go on the spans (scrubbed of credentials); off by default."""
    tracing = _tracing()
    return tracing is not None and tracing.settings.capture_content


def span(name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None) -> Any:
    """A context manager: a child of the current span, current within it, ended on leaving
    (an exception leaving it sets ``error.type``). ``kind``: internal, client, server,
    producer or consumer. Yields a ``Span``."""
    tracing = _tracing()
    if tracing is None:
        return _OFF
    return tracing.span(name, kind, attributes)


@contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A request being served: its context taken from ``headers`` (W3C, or a binary-mode
    CloudEvent's ``ce-traceparent``), current while it is served."""
    tracing = _tracing()
    if tracing is None:
        carried = _trace_headers(headers)
        token = _CARRIED.set(carried) if carried else None
        try:
            yield NOOP
        finally:
            if token is not None:
                _CARRIED.reset(token)
        return
    with tracing.server_span(name, _trace_headers(headers) or {}, attributes) as current:
        yield current


def current_span() -> Span:
    """The span being recorded now (``NOOP`` when none is or tracing is off)."""
    tracing = _tracing()
    return NOOP if tracing is None else tracing.current_span()


def event(name: str, attributes: Mapping[str, Any]) -> None:
    """An event on the current span (e.g. a deployment skipped for its open circuit)."""
    tracing = _tracing()
    if tracing is not None:
        tracing.event(name, attributes)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current trace context added (a caller's own are kept)."""
    tracing = _tracing()
    if tracing is not None:
        tracing.inject(headers)
    elif carried := _CARRIED.get():
        for name, value in carried.items():
            headers.setdefault(name, value)
    return headers


def snapshot() -> Any:
    """The current trace context, for work that goes on after the edge left its request (a
    stream's body): ``resumed(snapshot)`` there."""
    tracing = _tracing()
    return tracing.snapshot() if tracing is not None else _CARRIED.get()


@contextmanager
def resumed(context: Any) -> Iterator[None]:
    """Within it, ``context`` (from ``snapshot``) is current again."""
    tracing = _tracing()
    if tracing is not None:
        with tracing.resumed(context):
            yield
        return
    token = _CARRIED.set(context)
    try:
        yield
    finally:
        _CARRIED.reset(token)


def ids() -> tuple[str, str | None] | None:
    """The current trace id and span id (hex) for a log line; off, the trace id a request
    came with (no span of ours); None outside a trace."""
    tracing = _tracing()
    if tracing is not None:
        return tracing.ids()
    carried = _CARRIED.get()
    if carried is None:
        return None
    return carried["traceparent"][3:35], None


def trace_id() -> str | None:
    """The current trace's id (hex), or None."""
    current = ids()
    return current[0] if current else None


def _trace_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The trace headers among ``headers`` (lower-case names), or None when there is no valid
    ``traceparent`` (then the rest is not passed on either, as W3C Trace Context says)."""
    prefix = "" if "traceparent" in headers else "ce-"  # the CloudEvents tracing extension
    parent = headers.get(prefix + "traceparent")
    if parent is None or not TRACEPARENT.match(parent.strip().lower()):
        return None
    found = {"traceparent": parent.strip().lower()}
    for name in TRACE_HEADERS[1:]:
        value = headers.get(prefix + name)
        if value and len(value) <= LIMITS[name]:
            found[name] = value
    return found
