"""A fake Anthropic Messages API: real HTTP on 127.0.0.1, the real wire format, scripted answers.

The real ``anthropic`` SDK (or plain httpx) talks to it through ``base_url``::

    fake.enqueue(Answer.tool_use("calculator", {"expression": "2+2"}), Fault(529))
    client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)

Each request takes the next scripted item (an ``Answer``, a ``Fault`` or a ``Disconnect``); with
nothing scripted it answers ``"fake-anthropic answer to: <last user text>"``. Streams
(``"stream": true``) are chunked ``text/event-stream`` with the real event sequence, so cutting
one short (``Answer(cut_after_events=N)``) is a detectable incomplete body, as in production.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_API_KEY = "test-key"
MESSAGES_PATH = "/v1/messages"

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
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = f"{self.retry_after:g}"
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{self.retry_after_ms:g}"
        return headers


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without answering (a connection error for the client)."""

    delay_s: float = 0.0


Scripted = Answer | Fault | Disconnect


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: Any
    """The parsed JSON body, or None when it was empty or not JSON."""
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request was read (to measure backoff between attempts)."""

    @property
    def api_key(self) -> str | None:
        """The key sent as ``x-api-key`` or as ``authorization: Bearer`` (what SDK v2 sends)."""
        bearer = self.headers.get("authorization", "")
        return self.headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None


@dataclass
class _State:
    api_key: str
    abort: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)
    script: deque[Scripted] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    connections: set[socket.socket] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)


class FakeAnthropic:
    """The fake server; ``start()`` binds an ephemeral port, ``stop()`` closes everything."""

    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self._state = _State(api_key=api_key)
        self._server = _Server(("127.0.0.1", 0), _Handler, self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def environ(self) -> dict[str, str]:
        """The variables that point the SDK (and the gateway) at this server."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.abort.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._state.lock:
            connections = list(self._state.connections)
        for conn in connections:
            _drop(conn)
        self._thread.join(timeout=5)

    def enqueue(self, *items: Scripted) -> None:
        """Script the next answers, one per request, in order."""
        with self._state.lock:
            self._state.script.extend(items)

    @property
    def pending(self) -> int:
        """Scripted items not yet used."""
        with self._state.lock:
            return len(self._state.script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far."""
        with self._state.lock:
            return list(self._state.requests)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests arrived (or fail after ``timeout_s``)."""
        with self._state.arrived:
            arrived = self._state.arrived.wait_for(
                lambda: len(self._state.requests) >= count, timeout=timeout_s
            )
            if not arrived:
                got = len(self._state.requests)
                raise AssertionError(f"expected {count} requests within {timeout_s} s, got {got}")
            return list(self._state.requests)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running ``FakeAnthropic`` for one test."""
    with FakeAnthropic() as fake:
        yield fake


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], state: _State) -> None:
        self.state = state
        super().__init__(address, handler)


def _drop(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a reused connection waits
    # ~40 ms for the delayed ACK between them, which would blur every timing in the tests.
    disable_nagle_algorithm = True
    server: _Server
    timeout = 30  # an idle keep-alive connection's thread ends eventually

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.state.lock:
            self.server.state.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the client or a scripted cut closed the socket
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._record()
        self._send_json(404, _error("not_found_error", f"no route GET {self.path}"))

    def do_POST(self) -> None:
        recorded = self._record()
        body = recorded.body
        if self.path.split("?")[0] != MESSAGES_PATH:
            self._send_json(404, _error("not_found_error", f"no route POST {self.path}"))
            return
        if not self._authorized(recorded):
            self._send_json(401, _error("authentication_error", "invalid x-api-key"))
            return
        problem = _request_problem(body)
        if problem:
            self._send_json(400, _error("invalid_request_error", problem))
            return
        self._answer(body, self._next_scripted(body))

    def _answer(self, request: dict[str, Any], item: Scripted) -> None:
        if item.delay_s and self.server.state.abort.wait(item.delay_s):
            self._cut()
            return
        if isinstance(item, Disconnect):
            self._cut()
        elif isinstance(item, Fault):
            self._send_json(item.status, item.body(), item.headers())
        elif request.get("stream"):
            self._stream(request, item)
        else:
            self._send_json(200, _message(request, item))

    # -- request side ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self) -> RecordedRequest:
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {key.lower(): value for key, value in self.headers.items()}
        recorded = RecordedRequest(self.command, self.path, headers, body)
        with self.server.state.arrived:
            self.server.state.requests.append(recorded)
            self.server.state.arrived.notify_all()
        return recorded

    def _authorized(self, recorded: RecordedRequest) -> bool:
        return recorded.api_key == self.server.state.api_key

    def _next_scripted(self, request: dict[str, Any]) -> Scripted:
        with self.server.state.lock:
            if self.server.state.script:
                return self.server.state.script.popleft()
        return Answer.text(f"fake-anthropic answer to: {last_user_text(request['messages'])}")

    # -- response side --------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _request_id())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, request: dict[str, Any], answer: Answer) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", _request_id())
        self.end_headers()
        try:
            for sent, data in enumerate(stream_events(request, answer)):
                if answer.cut_after_events is not None and sent >= answer.cut_after_events:
                    self._cut()
                    return
                self._write_chunk(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode())
            self._write_chunk(b"")
        except OSError:
            self.close_connection = True  # the client went away mid-stream

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        self.close_connection = True
        _drop(self.connection)


# -- the wire format ----------------------------------------------------------------------


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required (a positive integer)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
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


def _block_events(index: int, block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    start, deltas = block, []  # other block types arrive whole
    if block.get("type") == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
    elif block.get("type") == "tool_use":
        start = {**block, "input": {}}
        pieces = _pieces(json.dumps(block["input"]))
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    yield {"type": "content_block_start", "index": index, "content_block": start}
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def stream_events(request: dict[str, Any], answer: Answer) -> Iterator[dict[str, Any]]:
    """The SSE events of ``answer`` in the real API's order; each event's name is its type."""
    yield {"type": "message_start", "message": _message(request, answer, streaming=True)}
    yield {"type": "ping"}
    for index, block in enumerate(answer.content):
        yield from _block_events(index, block)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": _usage(request, answer)["output_tokens"]},
    }
    yield {"type": "message_stop"}
