"""A lean OTLP/HTTP protobuf encoder for spans, and the SDK's exporter sending with it.

The SDK's exporter builds a protobuf message object per span, per attribute and per value,
then serializes them: on the gateway's instant-upstream path that cost more CPU than the
request itself (``bench/tracing.py``), in the batch processor's thread, under the GIL the event
loop needs. This writes the same ``ExportTraceServiceRequest`` straight to its wire bytes
(the resource and scope once per batch, each span's fields in the order of
``opentelemetry/proto/trace/v1/trace.proto``); ``tests/shared/test_otlp.py`` checks that
``opentelemetry-proto`` decodes it to exactly the SDK encoder's message.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags in trace.proto


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag``: its number << 3 | 2)."""
    size = len(payload)
    return bytes((tag, size)) + payload if size < 0x80 else bytes((tag,)) + _varint(size) + payload


def _text(tag: int, value: str) -> bytes:
    return _field(tag, value.encode("utf-8", "surrogatepass"))


def _any_value(value: Any) -> bytes:
    """An ``AnyValue``'s body, as the SDK's ``_encode_value`` chooses the kind."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(0x0A, value)
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join([_field(0x0A, _any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        pairs = [_field(0x0A, _key_value(str(k), v)) for k, v in value.items()]
        return _field(0x32, b"".join(pairs))
    raise TypeError(f"cannot encode an attribute of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _text(0x0A, key) + _field(0x12, _any_value(value))


_SEEN: dict[tuple[str, type, Any], bytes] = {}
"""Attributes already encoded (whole ``KeyValue`` fields): most recur on every span (method,
route, model, provider, status, small counts). Short scalar values only; bounded."""
_SEEN_MOST = 4096
_SCALARS = (str, int, bool, float)


def _attribute(tag: int, key: str, value: Any) -> bytes:
    kind = type(value)
    if kind not in _SCALARS or (kind is str and len(value) > 64):
        return _field(tag, _key_value(key, value))
    found = _SEEN.get((key, kind, value))  # the kind: True == 1, yet each encodes its own way
    if found is None:
        if len(_SEEN) >= _SEEN_MOST:
            _SEEN.clear()
        found = _SEEN[key, kind, value] = _field(tag, _key_value(key, value))
    return found


def _plain(attributes: Any) -> Any:
    """The dict under the SDK's ``BoundedAttributes`` (its ``items()`` goes through the ABC's
    views, a third of the encoding's time), else ``attributes`` as they are."""
    found = getattr(attributes, "_dict", None)
    return found if isinstance(found, dict) else attributes


def _attributes(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    attributes = _plain(attributes)
    if not attributes:
        return b""
    if tag != 0x4A:  # events', links', the resource's and scopes': rarer
        return b"".join([_field(tag, _key_value(k, v)) for k, v in attributes.items()])
    return b"".join([_attribute(tag, k, v) for k, v in attributes.items()])


def _count(tag: int, value: int | None) -> bytes:
    return bytes((tag,)) + _varint(value) if value else b""


def _flags(context: Any) -> bytes:
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if context is not None and context.is_remote else 0)
    return b"\x85\x01" + _FIXED32(flags)  # field 16, fixed32


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message's body."""
    context: Any = span.get_span_context()  # an ended span's: never None
    parent = span.parent
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        parts.append(_text(0x1A, ",".join(f"{k}={v}" for k, v in context.trace_state.items())))
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_text(0x2A, span.name))
    parts.append(bytes((0x30, span.kind.value + 1)))  # SDK kinds from 0, OTLP's from 1
    if span.start_time:
        parts.append(b"\x39" + _FIXED64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _FIXED64(span.end_time))
    parts.append(_attributes(0x4A, getattr(span, "_attributes", None) or span.attributes))
    parts.append(_count(0x50, span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b""
        body += _text(0x12, event.name) if event.name else b""
        body += _attributes(0x1A, event.attributes) + _count(0x20, event.dropped_attributes)
        parts.append(_field(0x5A, body))
    parts.append(_count(0x60, span.dropped_events))
    for link in span.links:
        body = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
        body += _attributes(0x22, link.attributes) + _count(0x28, link.dropped_attributes)
        parts.append(_field(0x6A, body + b"\x35" + _FIXED32(_flags_value(link.context))))
    parts.append(_count(0x70, span.dropped_links))
    status = span.status
    if status is not None:
        body = _text(0x12, status.description) if status.description else b""
        code = status.status_code.value
        parts.append(_field(0x7A, body + (bytes((0x18, code)) if code else b"")))
    parts.append(_flags(parent))
    return b"".join(parts)


def _flags_value(context: Any) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if context.is_remote else 0)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    body = _text(0x0A, scope.name) if scope.name else b""
    body += _text(0x12, scope.version) if scope.version else b""
    return body + _attributes(0x1A, scope.attributes)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``'s bytes: the spans by resource, then by scope."""
    grouped: dict[int, dict[Any, list[bytes]]] = {}
    resources: dict[int, Any] = {}  # by identity: a Resource's hash dumps it to JSON each time
    for span in spans:
        resource = span.resource
        by_scope = grouped.get(id(resource))
        if by_scope is None:
            by_scope = grouped[id(resource)] = {}
            resources[id(resource)] = resource
        by_scope.setdefault(span.instrumentation_scope or None, []).append(encode_span(span))
    out = []
    for key, scopes in grouped.items():
        resource = resources[key]
        body = _field(0x0A, _attributes(0x0A, resource.attributes))
        for scope, encoded in scopes.items():
            inner = _field(0x0A, _scope(scope))
            inner += b"".join([_field(0x12, one) for one in encoded])
            if scope is not None and scope.schema_url:
                inner += _text(0x1A, scope.schema_url)
            body += _field(0x12, inner)
        if resource.schema_url:
            body += _text(0x1A, resource.schema_url)
        out.append(_field(0x0A, body))
    return b"".join(out)


class LeanSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP exporter (endpoint, headers, compression, retries from ``OTEL_*``)
    sending what ``encode_spans`` wrote."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return super().export(spans)  # says so, and fails
        with self._metrics.export_operation(len(spans)) as result:
            try:
                data = encode_spans(spans)
            except Exception as error:  # the SDK's way: the batch dropped, said in its log
                result.error = error
                return SpanExportResult.FAILURE
            if len(data) > self._max_request_size:
                return super().export(spans)  # says why it drops the batch
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
