"""Anthropic server-sent events: rendering a complete Message as a stream, and guarding a
passed-through stream so that a break is reported as an ``error`` event, never truncation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from shared.errors import Overloaded, ServiceError, UpstreamError, bad_gateway
from shared.logs import get_logger

log = get_logger("gateway.stream")

_TEXT_CHUNK = 24  # characters per text_delta: small enough that a client sees it stream


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_event(exc: ServiceError) -> bytes:
    return sse_event("error", exc.body())


def _block_events(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text", "")
        start = {"type": "text", "text": ""}
        yield sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for offset in range(0, len(text), _TEXT_CHUNK):
            delta = {"type": "text_delta", "text": text[offset : offset + _TEXT_CHUNK]}
            yield sse_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
    elif kind == "tool_use":
        tool_start: dict[str, Any] = {
            "type": "tool_use",
            "id": block["id"],
            "name": block["name"],
            "input": {},
        }
        yield sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": tool_start},
        )
        partial = json.dumps(block.get("input", {}), separators=(",", ":"))
        delta = {"type": "input_json_delta", "partial_json": partial}
        yield sse_event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )
    else:
        yield sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})


def message_to_events(message: dict[str, Any]) -> Iterator[bytes]:
    """The event sequence Anthropic would have streamed for ``message``."""
    usage = message.get("usage") or {}
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": usage.get("input_tokens", 0), "output_tokens": 0},
    }
    yield sse_event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(message.get("content") or []):
        yield from _block_events(index, block)
    delta = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    yield sse_event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": delta,
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        },
    )
    yield sse_event("message_stop", {"type": "message_stop"})


def stream_refusal(first: bytes, source: str) -> UpstreamError | None:
    """The error to fail over with when a stream's first chunk is no answer at all: nothing,
    or an ``error`` event (Anthropic reports overload this way after a 200)."""
    if not first.strip():
        return bad_gateway(f"the {source} stream ended before it began")
    if not first.lstrip().startswith(b"event: error"):
        return None
    if b"overloaded_error" in first:
        return Overloaded(f"the {source} stream began with an overloaded error")
    return bad_gateway(f"the {source} stream began with an error event")


def guarded(first: bytes, rest: Iterator[bytes], source: str) -> Iterator[bytes]:
    """Yield ``first`` then ``rest``; if ``rest`` fails, or ends without ``message_stop``,
    finish with an ``error`` event so the client knows the answer is incomplete."""
    tail = first[-64:]
    # An upstream `error` event already tells the client the answer is incomplete.
    seen_end = b"event: message_stop" in first or b"event: error" in first
    yield first
    try:
        for chunk in rest:
            window = tail + chunk
            seen_end = seen_end or b"event: message_stop" in window or b"event: error" in window
            tail = chunk[-64:]
            yield chunk
    except Exception as exc:  # any failure mid-stream must reach the client as an event
        reason = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        log.warning("stream broke", extra={"provider": source, "error": reason})
        yield error_event(ServiceError(f"the {source} stream broke after it began: {reason}"))
        return
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()
    if not seen_end:
        log.warning("stream ended early", extra={"provider": source})
        yield error_event(ServiceError(f"the {source} stream ended before message_stop"))
