"""A fake Anthropic API: real HTTP on 127.0.0.1, the real wire format, scripted answers.

The real ``anthropic`` SDK (or plain httpx) talks to it through ``base_url``::

    fake.enqueue(Answer.tool_use("calculator", {"expression": "2+2"}), Fault(529))
    client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)

``POST /v1/messages`` takes the next scripted item per valid request (an ``Answer``, a
``Fault``, a ``Disconnect`` or a raw ``Reply``); with nothing scripted it answers
``"fake-anthropic answer to: <last user text>"``. Streams (``"stream": true``) are chunked
``text/event-stream`` with the real event sequence, so cutting one short
(``Answer(cut_after_events=N)``, with ``cut_mid_line`` inside a line) is a detectable
incomplete body, as in production, and ``Answer(error_after_events=N)`` sends the
``event: error`` the API sends after a 200 when it is overloaded mid-stream;
``Answer(stall_after_events=N)`` goes silent mid-stream.
``POST /v1/messages/count_tokens`` and ``GET /v1/models`` answer too. Every request is
recorded (``requests``: headers such as ``anthropic-beta``, ``anthropic-version`` and
``user-agent``, and the parsed body) for tests to assert what a client forwarded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.server import Disconnect, Exchange, FakeServer, RecordedRequest, Reply

__all__ = [
    "Answer",
    "Disconnect",
    "FakeAnthropic",
    "Fault",
    "RecordedRequest",
    "Reply",
    "fake_anthropic",
    "last_user_text",
    "stream_events",
]

DEFAULT_API_KEY = "test-key"
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
MODELS_PATH = "/v1/models"
_ROUTES = {("POST", MESSAGES_PATH), ("POST", COUNT_TOKENS_PATH), ("GET", MODELS_PATH)}
MODEL_IDS = ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
"""What ``GET /v1/models`` lists."""
ROLES = ("user", "assistant")
MID_CONVERSATION_SYSTEM = "mid-conversation-system-"
"""The beta (``mid-conversation-system-2026-04-07``) under which a message's role may be system."""

_ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Answer:
    """A scripted successful answer."""

    content: list[dict[str, Any]]
    """Content blocks as the API returns them (``text``, ``tool_use`` ...)."""
    stop_reason: str = "end_turn"
    delay_s: float = 0.0
    """Wait this long before answering (interrupted when the server stops)."""
    cut_after_events: int | None = None
    """Streams only: send this many SSE events (pings included), then drop the connection."""
    cut_mid_line: bool = False
    """With ``cut_after_events``: first send the next event up to the middle of its ``data:``
    line (``data: {..."text":"hal``), as a connection reset mid-write leaves it."""
    error_after_events: int | None = None
    """Streams only: send this many SSE events, then an ``event: error`` and end the stream."""
    stall_after_events: int | None = None
    """Streams only: send this many SSE events, then go silent (until ``stall_s`` has passed
    or the server stops), then drop the connection: an upstream that stalls mid-answer."""
    stall_s: float = 5.0
    error_type: str = "overloaded_error"
    """The type of that error event."""
    error_message: str | None = None
    """Its message (``fake-anthropic scripted <error_type>`` when None)."""
    text_pieces: int = 3
    """Streams only: each text block arrives in up to this many ``text_delta`` events."""
    input_tokens: int | None = None
    """Reported ``usage.input_tokens``; counted from the request's words when None."""
    output_tokens: int | None = None
    """Reported ``usage.output_tokens``; counted from the answer's words when None."""

    @classmethod
    def text(cls, text: str, **options: Any) -> Answer:
        return cls(content=[{"type": "text", "text": text}], **options)

    @classmethod
    def tool_use(
        cls,
        name: str,
        tool_input: dict[str, Any],
        *,
        tool_id: str | None = None,
        preamble: str | None = None,
        **options: Any,
    ) -> Answer:
        """A ``tool_use`` block (after an optional text block), with ``stop_reason="tool_use"``."""
        block = {
            "type": "tool_use",
            "id": tool_id or f"toolu_{uuid.uuid4().hex[:24]}",
            "name": name,
            "input": tool_input,
        }
        content = ([{"type": "text", "text": preamble}] if preamble else []) + [block]
        return cls(content=content, stop_reason="tool_use", **options)


@dataclass(frozen=True)
class Fault:
    """A scripted error in Anthropic's shape: ``Fault(529)``, ``Fault(429, retry_after=1)``."""

    status: int
    message: str | None = None
    error_type: str | None = None
    """Defaults from the status: 429 rate_limit_error, 529 overloaded_error, 500 api_error..."""
    retry_after: float | None = None
    """Sent as the ``retry-after`` header (seconds)."""
    retry_after_ms: float | None = None
    """Sent as the ``retry-after-ms`` header."""
    delay_s: float = 0.0

    def body(self) -> dict[str, Any]:
        error_type = self.error_type or _ERROR_TYPE_BY_STATUS.get(self.status, "api_error")
        message = self.message or f"fake-anthropic scripted {self.status} {error_type}"
        return {"type": "error", "error": {"type": error_type, "message": message}}

    def headers(self) -> dict[str, str]:
        headers = {"request-id": _request_id()}
        if self.retry_after is not None:
            headers["retry-after"] = f"{self.retry_after:g}"
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{self.retry_after_ms:g}"
        return headers

    def reply(self) -> Reply:
        return Reply(self.status, self.body(), self.headers(), self.delay_s)


Scripted = Answer | Fault | Reply | Disconnect


class FakeAnthropic(FakeServer):
    """The fake API; ``start()`` binds a free loopback port, ``stop()`` closes everything."""

    def __init__(
        self, api_key: str = DEFAULT_API_KEY, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return self.url

    def environ(self) -> dict[str, str]:
        """The variables that point the SDK (and the gateway) at this server."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    def enqueue(self, *items: Scripted) -> None:
        """Script the next answers, one per valid messages request, in order."""
        super().enqueue(*items)

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        route = (request.method, request.route)
        if route not in _ROUTES:
            return _send(exchange, 404, _error("not_found_error", f"no route {' '.join(route)}"))
        if request.api_key != self.api_key:
            return _send(exchange, 401, _error("authentication_error", "invalid x-api-key"))
        if route == ("GET", MODELS_PATH):
            return _send(exchange, 200, models_page())
        problem = _request_problem(
            request.body,
            needs_max_tokens=route[1] == MESSAGES_PATH,
            betas=request.headers.get("anthropic-beta", ""),
        )
        if problem:
            return _send(exchange, 400, _error("invalid_request_error", problem))
        if route[1] == COUNT_TOKENS_PATH:
            return _send(exchange, 200, {"input_tokens": _count_tokens(request.body["messages"])})
        item = self.next_scripted() or _default_answer(request.body)
        if isinstance(item, Fault):
            item = item.reply()
        if isinstance(item, Answer) and not self.pause(item.delay_s):
            exchange.cut()
        elif isinstance(item, Answer) and request.body.get("stream"):
            _stream(exchange, request.body, item, self.pause)
        elif isinstance(item, Answer):
            _send(exchange, 200, _message(request.body, item))
        else:
            exchange.play(item)


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running ``FakeAnthropic`` for one test."""
    with FakeAnthropic() as fake:
        yield fake


def _send(exchange: Exchange, status: int, payload: Any) -> None:
    exchange.send_json(status, payload, {"request-id": _request_id()})


def _default_answer(request: dict[str, Any]) -> Answer:
    return Answer.text(f"fake-anthropic answer to: {last_user_text(request['messages'])}")


def _stream(
    exchange: Exchange,
    request: dict[str, Any],
    answer: Answer,
    pause: Callable[[float], bool],
) -> None:
    exchange.start_stream(
        200,
        {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "request-id": _request_id(),
        },
    )
    for sent, data in enumerate(stream_events(request, answer)):
        if sent == answer.error_after_events:
            message = answer.error_message or f"fake-anthropic scripted {answer.error_type}"
            data = _error(answer.error_type, message)
        event = f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
        if sent == answer.stall_after_events:
            pause(answer.stall_s)
            exchange.cut()
            return
        if sent == answer.cut_after_events:
            if answer.cut_mid_line:
                line = event.index(b"data: ")
                exchange.write_chunk(event[: line + (len(event) - line) // 2])
            exchange.cut()
            return
        exchange.write_chunk(event)
        if data["type"] == "error":
            break
    exchange.end_stream()


# -- the wire format ----------------------------------------------------------------------


def models_page() -> dict[str, Any]:
    """``GET /v1/models``: one page listing ``MODEL_IDS``."""
    models = [
        {"type": "model", "id": model, "display_name": model, "created_at": "2025-09-29T00:00:00Z"}
        for model in MODEL_IDS
    ]
    return {"data": models, "has_more": False, "first_id": MODEL_IDS[0], "last_id": MODEL_IDS[-1]}


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _request_problem(body: Any, *, needs_max_tokens: bool = True, betas: str = "") -> str | None:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    valid = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 1
    if needs_max_tokens and not valid:
        return "max_tokens: Field required (a positive integer)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    # As the real API: a ``system`` turn mid-conversation only under its beta.
    roles = ("user", "assistant", "system") if MID_CONVERSATION_SYSTEM in betas else ROLES
    if not all(isinstance(m, dict) and m.get("role") in roles for m in messages):
        return "messages: each message needs a role of user or assistant"
    return None


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        content = block.get("content", "")
        parts = content if isinstance(content, list) else [content]
        return " ".join(_block_text(part) for part in parts)
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (text blocks and tool results)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", "")
            blocks = content if isinstance(content, list) else [content]
            return " ".join(t for t in (_block_text(b) for b in blocks) if t)
    return ""


def _count_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value).split()))


def _usage(request: dict[str, Any], answer: Answer) -> dict[str, int]:
    return {
        "input_tokens": answer.input_tokens or _count_tokens(request["messages"]),
        "output_tokens": answer.output_tokens or _count_tokens(answer.content),
    }


def _message(request: dict[str, Any], answer: Answer, *, streaming: bool = False) -> dict[str, Any]:
    usage = _usage(request, answer)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": [] if streaming else answer.content,
        "stop_reason": None if streaming else answer.stop_reason,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1} if streaming else usage,
    }


def _pieces(text: str, count: int = 3) -> list[str]:
    """``text`` in up to ``count`` consecutive pieces, so clients must join deltas."""
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: dict[str, Any], pieces: int) -> Iterator[dict[str, Any]]:
    start, deltas = block, []  # other block types arrive whole
    if block.get("type") == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], pieces)]
    elif block.get("type") == "tool_use":
        start = {**block, "input": {}}
        parts = _pieces(json.dumps(block["input"]))
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
    yield {"type": "content_block_start", "index": index, "content_block": start}
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def stream_events(request: dict[str, Any], answer: Answer) -> Iterator[dict[str, Any]]:
    """The SSE events of ``answer`` in the real API's order; each event's name is its type."""
    yield {"type": "message_start", "message": _message(request, answer, streaming=True)}
    yield {"type": "ping"}
    for index, block in enumerate(answer.content):
        yield from _block_events(index, block, answer.text_pieces)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": _usage(request, answer)["output_tokens"]},
    }
    yield {"type": "message_stop"}
