"""The HTTP/1.1 protocol every function's uvicorn workers speak: httptools, with bounds.

httptools (llhttp, in C) parses a request for a fraction of h11's cost: on the gateway against
an instant upstream it was the largest single saving of the server stack (bench/RESULTS.md).
uvicorn's protocol on it has no bound of its own, though: it buffers a request line and headers
for as long as they keep coming (a 200 MB header grew a worker to 300 MB), and a connection
that sends half a head holds its place forever. This protocol adds the bounds:

- the request head (request line and headers) is at most ``REQUEST_HEAD_MAX_BYTES`` (64 KiB):
  past it the client gets a 431 and the connection is closed, so the parser never holds more
  than that plus one read from the socket;
- a head must be complete within ``REQUEST_HEAD_TIMEOUT_S`` (10 s) of the connection opening or
  of its own first byte: a client trickling one is answered 408 and closed (Slowloris);
- the parser's own refusals (a malformed request) are answered in the JSON error shape every
  function uses, not in uvicorn's plain text.

A body's bounds (its size, and the time it may take) are the edge's: ``shared.asgi``; the
protocol tells it when a body has already arrived whole (``BODY_COMPLETE``).

A worker told to stop (SIGTERM) stops accepting connections, closes its idle ones, and waits
for the requests under way, the work each does after its answer included (``Reply.after``: the
orchestrator's sink deliveries), for at most ``SHUTDOWN_GRACE_S`` (8 s: Cloud Run and
``docker stop`` kill 10 s after the signal). Then uvicorn cancels what is left, so that work can
say what it could not finish before the process ends. (functions-framework's Starlette app has
no lifespan of its own, so the ASGI ``lifespan`` shutdown event never reaches a function's code:
uvicorn's wait for requests under way is the place.)

``install()`` puts it in place; ``shared.runtime.prepare()`` calls it from each function's
``main.py``. ``shared.serve`` (one worker, no gunicorn) passes ``uvicorn_options()`` to uvicorn.
functions-framework starts gunicorn with ``uvicorn_worker.UvicornWorker`` and offers no hook to
pick its protocol; the worker takes its uvicorn settings from the class attribute
``CONFIG_KWARGS`` (overriding it is the documented way to configure the worker), so where
functions-framework serves, ``install()`` sets them there, before gunicorn forks.

gunicorn (>= 25) also opens a control socket at start, in ``$XDG_RUNTIME_DIR`` or else in
``~/.gunicorn``: where the home folder is read-only (Cloud Functions, Lambda, an image's
read-only root) that failed with a plain-text warning, and two functions on one host took each
other's socket. Without ``$XDG_RUNTIME_DIR``, ``install()`` puts it in the temporary folder
(``$TMPDIR``, else ``/tmp``: the one place serverless platforms let a function write), one per
server process.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

from pydantic import Field, field_validator
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared import metrics
from shared.errors import (
    BadRequest,
    HeadersTooLarge,
    RequestTimeout,
    ServiceError,
)
from shared.http import compact_json
from shared.settings import FunctionSettings

DEFAULT_HEAD_MAX_BYTES = 64 * 1024
DEFAULT_HEAD_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_SHUTDOWN_GRACE_S = 8.0
MAX_SHUTDOWN_GRACE_S = 25.0
"""gunicorn kills a worker 30 s after asking it to stop (its ``graceful_timeout``)."""
BODY_COMPLETE = "agentorch.body_complete"
"""Set in a request's scope once its whole body has arrived: the edge then reads it without
arming a timer for a body that can no longer be slow (most requests arrive in one read)."""


class ServerSettings(FunctionSettings):
    """What every function's server reads from its environment (Compose passes them all)."""

    env = {
        "REQUEST_HEAD_MAX_BYTES": "head_max_bytes",
        "REQUEST_HEAD_TIMEOUT_S": "head_timeout_s",
        "REQUEST_BODY_TIMEOUT_S": "body_timeout_s",
        "SHUTDOWN_GRACE_S": "shutdown_grace_s",
        "METRICS_FLUSH_INTERVAL_S": "metrics_flush_interval_s",
    }

    head_max_bytes: int = Field(default=DEFAULT_HEAD_MAX_BYTES, ge=1024)
    """A request line and its headers, at most."""
    head_timeout_s: float = Field(default=DEFAULT_HEAD_TIMEOUT_S, gt=0)
    """How long a request head may take to arrive."""
    body_timeout_s: float = Field(default=DEFAULT_BODY_TIMEOUT_S, gt=0)
    """How long a request body may take to arrive (``shared.asgi``)."""
    shutdown_grace_s: float = Field(default=DEFAULT_SHUTDOWN_GRACE_S, gt=0)
    """How long a stopping worker waits for the requests under way."""
    metrics_flush_interval_s: float = Field(default=metrics.FLUSH_INTERVAL_S, gt=0)
    """How often buffered metrics reach the files every worker's scrape reads."""

    @field_validator("shutdown_grace_s")
    @classmethod
    def _within_gunicorns_wait(cls, grace: float) -> float:
        if grace > MAX_SHUTDOWN_GRACE_S:
            raise ValueError(
                f"at most {MAX_SHUTDOWN_GRACE_S:g} (gunicorn kills a stopping worker after 30 s)"
            )
        return grace


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded, timed request head."""

    head_max_bytes = DEFAULT_HEAD_MAX_BYTES
    head_timeout_s = DEFAULT_HEAD_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a connection's first bytes are a request head
        self._begun = False  # whether a byte of that head has come
        self._head_bytes = 0
        """Bytes received in earlier reads while the current head was incomplete."""
        self._read = b""
        """The read being parsed."""
        self._tail = b""
        """The last bytes of the previous read, while a head was incomplete (a terminator can
        straddle two reads)."""
        self._ended_in_read = False
        """Whether a message ended in the read being parsed (pipelining: the next head starts
        somewhere inside it)."""
        self._refusal: ServiceError | None = None
        self._refusal_after: ServiceError | None = None
        """A pipelined head refused while the request before it is answered: sent after it."""
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._read, self._ended_in_read = data, False
        super().data_received(data)
        if self.transport.is_closing():
            return
        if not self._in_head:
            if self._idle() and self._head_timer is None and self.timeout_keep_alive_task is None:
                # Bytes that begin no request (a CRLF) stopped uvicorn's keep-alive timer.
                self._arm_head_timer()
            return
        # Counted after the parser has seen the bytes: a read that completes the head (and may
        # carry a body behind it) is measured in on_headers_complete instead, and a read in
        # which the previous request ended is not charged to the next. So the parser holds at
        # most the limit plus two reads while a head is incomplete.
        if not self._ended_in_read:
            self._head_bytes += len(data)
        self._tail = data[-3:]
        if self._head_bytes > self.head_max_bytes:
            self._refuse(self._too_large())
        elif self._head_timer is None:
            self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._tail = b""
        self._in_head = self._begun = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        if self._head_bytes + len(self._read) > self.head_max_bytes and self._head_size() > (
            self.head_max_bytes
        ):
            self._refusal = self._too_large()
            raise _Refused  # the parser reports it as its own error: send_400_response
        self._in_head = self._begun = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ended_in_read = True
        self.scope[BODY_COMPLETE] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def on_response_complete(self) -> None:
        refusal, self._refusal_after = self._refusal_after, None
        if refusal is not None and not self.transport.is_closing():
            self.transport.write(render_error(refusal))
            self.transport.close()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        self._refuse(
            refusal or BadRequest(f"not a valid HTTP/1.1 request ({msg.rstrip('.').lower()})")
        )

    def _head_size(self) -> int:
        """The size of the head just parsed, as sent: the bytes before its blank line in this
        read, plus those of earlier reads. When the head began inside this read (after a
        pipelined request), an estimate from its parsed parts."""
        if not self._ended_in_read:
            window = self._tail + self._read
            end = window.find(b"\r\n\r\n")
            if end >= 0:
                return self._head_bytes + end + 4 - len(self._tail)
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(f"the request line and headers exceed {self.head_max_bytes} bytes")

    def _idle(self) -> bool:
        """No request is being answered on this connection."""
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not (self._in_head or self._idle()):
            return  # a request is being answered: its body has a timer of its own
        if not (self._in_head and self._begun):
            self.transport.close()  # no request begun: nothing to answer
            return
        self._refuse(
            RequestTimeout(
                f"the request line and headers did not arrive within {self.head_timeout_s:g} s"
            )
        )

    def _refuse(self, error: ServiceError) -> None:
        """Answer ``error`` and close. While a request before it on this connection is still
        being answered (pipelining), a refused head waits for that answer to go first; a fault
        in the current request's own body closes at once."""
        self._disarm_head_timer()
        if self._idle():
            self.transport.write(render_error(error))
            self.transport.close()
        elif self._in_head:
            self._refusal_after = error
            self.transport.pause_reading()
        else:
            self.transport.close()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the reason is in ``_refusal``."""


def render_error(error: ServiceError) -> bytes:
    """A complete ``connection: close`` HTTP/1.1 response carrying ``error`` as JSON."""
    body = compact_json(error.body()).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in error.response_headers().items())
    head = (
        f"HTTP/1.1 {error.status_code} {_REASONS.get(error.status_code, 'Error')}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"{extra}connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


_installed: ServerSettings | None = None


def install(settings: ServerSettings) -> None:
    """Give ``BoundedHttpToolsProtocol`` the head bounds of ``settings``, and make the server
    that serves this process speak it and stop within the shutdown grace: ``shared.serve``
    reads ``uvicorn_options()``; where functions-framework serves (gunicorn's uvicorn workers),
    the workers' class takes them (imported only there: gunicorn is not loaded otherwise)."""
    global _installed
    _installed = settings
    protocol = BoundedHttpToolsProtocol
    protocol.head_max_bytes = settings.head_max_bytes
    protocol.head_timeout_s = settings.head_timeout_s
    from shared.entry import under_functions_framework

    if under_functions_framework():
        from uvicorn_worker import UvicornWorker

        UvicornWorker.CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, **uvicorn_options()}
        _control_socket_in_temp()


def uvicorn_options() -> dict[str, Any]:
    """What every function's uvicorn server is given beyond its defaults: this protocol, no
    WebSockets, and the shutdown grace of the settings ``install()`` was given (the defaults
    before that)."""
    settings = _installed or ServerSettings()
    return {
        "http": BoundedHttpToolsProtocol,
        "ws": "none",  # no function serves WebSockets; "auto" imports a WebSocket library at start
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
    }


def _control_socket_in_temp() -> None:
    """gunicorn's control socket in the temporary folder unless ``$XDG_RUNTIME_DIR`` names
    its place (see the module's doc). gunicorn reads its settings' defaults when it starts, after
    ``main.py`` is loaded."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    from gunicorn.config import ControlSocket

    ControlSocket.default = os.path.join(tempfile.gettempdir(), f"gunicorn-{os.getpid()}.ctl")
