"""The one base of the fake HTTP servers: a real server on a free loopback port, in a thread.

A fake (``FakeAnthropic``, ``FakeTavily``) subclasses ``FakeServer`` and writes ``answer``: how
one recorded request is answered through an ``Exchange``. The base does the rest: it binds
``127.0.0.1`` on a free port (``url``), records every request (method, path, headers, raw and
parsed body, arrival time), keeps the script of answers (``enqueue``, taken in order with
``next_scripted``), plays the faults every fake shares (``Reply``, ``Disconnect``, a delay that
``stop()`` interrupts), and on ``stop()`` closes the listener and every open connection.

    with FakeTavily() as fake:
        fake.enqueue(Reply(429, headers={"retry-after": "7"}), Disconnect())
        ...
        fake.wait_for_requests(2)
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MAX_DELAY_S = 10.0
"""A scripted delay never holds a server thread longer than this (and stop() ends it at once)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    """With the query string, as sent."""
    headers: dict[str, str]
    """Lower-cased names; a repeated header's values joined with ", "."""
    raw: bytes
    body: Any
    """The parsed JSON body, or None when it was empty or not JSON."""
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request was read (to measure backoff between attempts)."""

    @property
    def api_key(self) -> str | None:
        """The key sent as ``x-api-key`` or as ``authorization: Bearer``."""
        bearer = self.headers.get("authorization", "")
        return self.headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]


@dataclass(frozen=True)
class Reply:
    """A scripted answer as it goes on the wire: a status, a JSON body, headers."""

    status: int
    body: Any = None
    """Sent as JSON; bytes are sent as they are (an HTML page from a proxy); None sends an
    empty body."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before answering (interrupted when the server stops)."""


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without answering (a connection error for the client)."""

    delay_s: float = 0.0


class Exchange:
    """The answering side of one request: JSON, a chunked stream, or a cut connection."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """``payload`` as JSON, or as it is when it is bytes (give its content-type then)."""
        if isinstance(payload, bytes):
            data = payload
        else:
            data = b"" if payload is None else json.dumps(payload).encode()
        self._head(status, {"content-type": "application/json", **(headers or {})}, len(data))
        self._write(data)

    def start_stream(self, status: int, headers: dict[str, str]) -> None:
        """Send the head of a chunked answer; then ``write_chunk`` and ``end_stream``."""
        self._head(status, {**headers, "transfer-encoding": "chunked"}, None)

    def write_chunk(self, data: bytes) -> None:
        self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def start_body(self, status: int, headers: dict[str, str], length: int) -> None:
        """Send the head of an answer of ``length`` bytes; then ``write`` them."""
        self._head(status, headers, length)

    def write(self, data: bytes | memoryview) -> bool:
        """Send a piece of the body; False once the client has gone away."""
        return self._write(data)

    def cut(self) -> None:
        """Drop the connection now, mid-answer or before it."""
        self._handler.close_connection = True
        _drop(self._handler.connection)

    def play(self, item: Reply | Disconnect) -> None:
        """Answer with one of the faults every fake shares."""
        if not self._handler.fake.pause(item.delay_s) or isinstance(item, Disconnect):
            self.cut()
        else:
            self.send_json(item.status, item.body, item.headers)

    def _head(self, status: int, headers: dict[str, str], length: int | None) -> None:
        handler = self._handler
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if length is not None:
                handler.send_header("content-length", str(length))
            handler.end_headers()
        except OSError:
            handler.close_connection = True  # the client went away

    def _write(self, data: bytes | memoryview) -> bool:
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self._handler.close_connection = True  # the client gave up (a timeout test)
            return False
        return True


class FakeServer:
    """A threaded HTTP server on ``127.0.0.1``; subclasses say how a request is answered."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """``host``/``port``: where to listen (a container's fake listens on 0.0.0.0)."""
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._script: deque[Any] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._server = _Server((host, port), self)
        # A short poll interval: shutdown() waits up to one interval, and every test stops one.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers waiting in a scripted delay
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _drop(conn)
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *items: Any) -> None:
        """Script the next answers, one per request that reaches the script, in order."""
        with self._lock:
            self._script.extend(items)

    def next_scripted(self) -> Any | None:
        """The next scripted item, or None when the script is used up."""
        with self._lock:
            return self._script.popleft() if self._script else None

    @property
    def pending(self) -> int:
        """Scripted items not yet used."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, in order."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests arrived (or fail after ``timeout_s``)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout_s):
                got = len(self._requests)
                raise AssertionError(f"expected {count} requests within {timeout_s} s, got {got}")
            return list(self._requests)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (at most ``MAX_DELAY_S``); False when ``stop()`` cut it short."""
        return not (seconds and self._stopping.wait(min(seconds, MAX_DELAY_S)))

    def _record(self, request: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up is no error
            super().handle_error(request, client_address)


def _drop(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a reused connection waits
    # ~40 ms for the delayed ACK between them, which would blur every timing in the tests.
    disable_nagle_algorithm = True
    timeout = 30  # an idle keep-alive connection's thread ends eventually
    server: _Server

    @property
    def fake(self) -> FakeServer:
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        self.fake._track(self.connection, False)
        with contextlib.suppress(OSError):  # the client or a scripted cut closed the socket
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(self.command, self.path, headers, raw, body)
        self.fake._record(request)
        self.fake.answer(request, Exchange(self))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)
