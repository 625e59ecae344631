"""Anthropic server-sent events: rendering a complete Message as a stream, and guarding a
passed-through stream so that a break is reported as an ``error`` event, never truncation.

A passed-through stream goes to the client a whole event at a time (``WholeEvents``): an SSE
client dispatches an event at its blank line, joining every ``data:`` line before it, so an
event cut short upstream (``data: {..."text":"hal`` then a reset) must never reach it: with
the gateway's ``error`` event after it, the client would parse the two as one and fail on the
JSON (the SDKs raise ``JSONDecodeError``) instead of reporting the error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from shared.errors import BadGateway, Overloaded, ServiceError, UpstreamError
from shared.http import compact_json, sse_event
from shared.logs import get_logger

log = get_logger("gateway.stream")

_TEXT_CHUNK = 24  # characters per text_delta: small enough that a client sees it stream
MAX_HELD_BYTES = 1 << 20
"""An event longer than this is passed on as it comes (no Anthropic event is near it)."""
_BLANK_LINES = (b"\n\n", b"\n\r\n", b"\r\r")
"""How an event ends: a blank line after LF, CRLF or CR line endings."""
_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":")
"""How the first line of an event stream begins (``:`` starts a comment, a keep-alive)."""


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
        partial = compact_json(block.get("input", {}))
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


class EventNames:
    """Reads the names of server-sent events out of a byte stream as it passes, line by line.

    The end of a stream is known from parsed events, not by matching bytes: a text delta that
    contains ``event: message_stop`` sits inside a JSON string on a ``data:`` line, so it can
    never start a line of its own."""

    def __init__(self) -> None:
        self._partial = b""
        self.first: str | None = None
        self.ended = False
        """A ``message_stop`` or an ``error`` event was seen: the client knows how it ended."""
        self.errored = False
        """An ``error`` event was seen (its text is the upstream's: it may quote a key)."""

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > 1 << 20:  # no line of an SSE stream is a megabyte long
            self._partial = b""
        for line in lines:
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
                self.first = self.first or name
                if name in ("message_stop", "error"):
                    self.ended = True
                    self.errored = self.errored or name == "error"


class WholeEvents:
    """Holds back the bytes after a stream's last blank line until their event is complete, so
    that what was passed on always ends between events. Held pieces are joined once, when
    their event completes: a long event in small reads costs no copy per read."""

    def __init__(self) -> None:
        self._held: list[bytes] = []
        self._held_size = 0
        self._tail = b""  # the last bytes seen: a blank line may begin there
        self._open_line = False

    def feed(self, chunk: bytes) -> bytes:
        """What of what was held and of ``chunk`` may go to the client now."""
        window = self._tail + chunk
        self._tail = window[-2:]  # the longest blank line is 3 bytes
        cut = _past_last_blank_line(window) - (len(window) - len(chunk))
        if cut <= 0 and self._held_size + len(chunk) <= MAX_HELD_BYTES:
            self._held.append(chunk)
            self._held_size += len(chunk)
            return b""
        if cut <= 0:
            cut = len(chunk)  # give up holding an event this long: pass it on as it comes
        ready = b"".join((*self._held, chunk[:cut]))
        rest = chunk[cut:]
        self._held, self._held_size = ([rest], len(rest)) if rest else ([], 0)
        self._open_line = ready[-1:] not in (b"\n", b"\r")
        return ready

    def complete(self) -> bytes:
        """The held bytes, for a stream that ended as it should (they are the upstream's
        business then, passed on as they came)."""
        held = b"".join(self._held)
        self._held, self._held_size = [], 0
        return held

    def before_error(self) -> bytes:
        """What to send before an ``error`` event that replaces the held, incomplete event:
        nothing, or a line ending where an over-long event was passed on mid-line (the client
        then sees one event named ``error``, though its data is not only JSON)."""
        self._held, self._held_size = [], 0
        return b"\n" if self._open_line else b""


def _past_last_blank_line(data: bytes) -> int:
    """The offset just past the last blank line in ``data``; 0 when there is none."""
    end = 0
    for blank in _BLANK_LINES:
        at = data.rfind(blank)
        if at >= 0:
            end = max(end, at + len(blank))
    return end


def stream_refusal(first: bytes, source: str) -> UpstreamError | None:
    """The error to fail over with when a stream's first chunk is no answer at all: nothing,
    a body that is no event stream (a proxy's HTML page, a JSON body after a 200), or an
    ``error`` event (Anthropic reports overload this way after a 200)."""
    start = first.lstrip()
    if not start:
        return BadGateway(f"the {source} stream ended before it began")
    if not any(start.startswith(f) or f.startswith(start) for f in _SSE_FIELDS):
        return BadGateway(f"{source} answered 200 with a body that is not an event stream")
    names = EventNames()
    names.feed(first + b"\n")
    if names.first != "error":
        return None
    if b"overloaded_error" in first:
        return Overloaded(f"the {source} stream began with an overloaded error")
    return BadGateway(f"the {source} stream began with an error event")


Scrubber = Callable[[str], str]


def _clean(data: bytes, scrub: Scrubber) -> bytes:
    return scrub(data.decode("utf-8", "replace")).encode()


async def guarded(
    first: bytes, rest: AsyncIterator[bytes], source: str, scrub: Scrubber | None = None
) -> AsyncIterator[bytes]:
    """Yield ``first`` then ``rest``; if ``rest`` fails, or ends without ``message_stop``,
    finish with an ``error`` event so the client knows the answer is incomplete. An upstream
    ``error`` event is passed on with ``scrub`` applied (its text may quote a credential):
    once one was seen, what is released after it is scrubbed, whole events at a time; the
    text deltas before it pass untouched."""
    names, whole = EventNames(), WholeEvents()
    names.feed(first)
    if ready := whole.feed(first):
        yield _clean(ready, scrub) if scrub and names.errored else ready
    try:
        async for chunk in rest:
            names.feed(chunk)
            if ready := whole.feed(chunk):
                yield _clean(ready, scrub) if scrub and names.errored else ready
        names.feed(b"\n")
    except Exception as exc:  # any failure mid-stream must reach the client as an event
        reason = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        reason = scrub(reason) if scrub else reason
        log.warning("stream broke", extra={"provider": source, "error": reason})
        error = ServiceError(f"the {source} stream broke after it began: {reason}")
        yield whole.before_error() + error_event(error)
        return
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()
    if names.ended:
        if held := whole.complete():
            yield _clean(held, scrub) if scrub and names.errored else held
        return
    log.warning("stream ended early", extra={"provider": source})
    error = ServiceError(f"the {source} stream ended before message_stop")
    yield whole.before_error() + error_event(error)


async def events_of(message: dict[str, Any]) -> AsyncIterator[bytes]:
    """``message_to_events`` as an async iterator, for providers that answer whole messages."""
    for event in message_to_events(message):
        yield event
