"""A lean HTTP/1.1 client for the few upstreams a function forwards to, on httptools: the
default ``shared.transport.Transport``.

A general client (aiohttp's, before this one) costs a request object, a payload registry,
header multidicts, tracing hooks, cookie and proxy handling and timers on every call, for a
function that always sends one body to one of a handful of hosts. This client does only that:
keep-alive connections pooled per host, the request written in one piece, the answer parsed by
httptools (the C parser the server side already uses).

- ``WireClient.request()`` answers once the status line and headers are in; the body is then
  read whole (``read()``), as it comes (``chunks()``, for streams, with flow control), or only
  its first bytes (``prefix()``, for an answer nobody needs whole).
- Timeouts are the caller's: ``connect_timeout_s`` for the connection (raised as
  ``ConnectTimeout``), and the caller bounds the rest with ``asyncio.timeout`` or
  ``chunks(idle_timeout_s)``.
- A response read to its end gives its connection back to the pool (unless either side said
  ``connection: close``); ``close()`` (or a cancelled read) drops it, which also tells the
  upstream to stop.
- Failures are ``shared.errors``' ``TransportError`` (connection refused, reset, or an
  answer that is not HTTP), ``AnswerTooLarge``, ``ConnectTimeout``, or ``TimeoutError`` from
  the caller's own bound.

No redirects, cookies, proxies (``shared.transport_httpx`` has them) or content decoding.
TLS uses the system's trust store.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from shared.errors import ConnectTimeout, TransportError
from shared.transport import DEFAULT_LIMIT, MAX_BODY_BYTES, Answer, answer_of, read_limited

HIGH_WATER = 256 * 1024
"""Bytes buffered from an unread answer before the connection stops reading."""
MAX_HEAD_BYTES = 256 * 1024
"""An answer's status line and headers, at most: past it the answer is refused."""
URL_CACHE_SIZE = 256
_WRITTEN_HERE = frozenset({"host", "content-length"})


@dataclass(frozen=True)
class Url:
    """A parsed ``http(s)`` URL, ready to connect to and to put on a request line."""

    scheme: str
    host: str
    port: int
    target: bytes
    """The request line's target: the path and query, as given."""
    authority: str
    """The ``host`` header's value."""

    @classmethod
    def parse(cls, url: str) -> Url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url[:100]!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port, target.encode("ascii"), parts.netloc)


class WireResponse:
    """An answer whose status and headers are in; its body is read through this."""

    def __init__(self, connection: _Connection, client: WireClient, key: tuple[str, str, int]):
        self._connection = connection
        self._client = client
        self._key = key
        self.status = connection.status
        self.headers: dict[str, str] = connection.headers
        """Header names in lower case; a repeated header's values joined with ``, ``."""
        self._done = False

    async def read(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole body, of at most ``limit`` bytes (else ``AnswerTooLarge``); then the
        connection goes back to the pool."""
        return await read_limited(self, limit)

    async def prefix(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (for an error message), the rest never read: the
        connection goes back to the pool when the answer ended within them, else is dropped."""
        kept = bytearray()
        async with contextlib.aclosing(self.chunks()) as body:
            async for chunk in body:
                kept += chunk[: limit - len(kept)]
                if len(kept) >= limit:
                    break  # aclosing() closes chunks(), which drops the connection
        return bytes(kept)

    async def chunks(self, idle_timeout_s: float | None = None) -> AsyncGenerator[bytes]:
        """The body as it arrives; ``TimeoutError`` after ``idle_timeout_s`` without a byte.
        Read to its end, the connection goes back to the pool; otherwise call ``close()``."""
        connection = self._connection
        try:
            while True:
                chunk = await connection.next_chunk(idle_timeout_s)
                if chunk is None:
                    self.release()
                    return
                yield chunk
        except BaseException:  # cancelled, timed out, broken, or abandoned (GeneratorExit)
            self.close()
            raise

    def release(self) -> None:
        """Back to the pool when the whole answer has been read, else closed."""
        if self._done:
            return
        self._done = True
        self._client._release(self._key, self._connection)

    def close(self) -> None:
        """Drop the connection, read or not."""
        if self._done:
            return
        self._done = True
        self._connection.drop()
        self._client._forget()


class WireClient:
    """Keep-alive connections to a few hosts, at most ``limit`` of them open at once; a request
    past the limit waits for a connection to come back or to close."""

    def __init__(
        self, *, limit: int = DEFAULT_LIMIT, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._limit = limit
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open = 0
        """Connections that exist: in use or idle."""
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, Url] = {}

    async def request(
        self,
        method: str,
        url: Url | str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
    ) -> WireResponse:
        """Send one request and wait for the answer's head. ``host`` and ``content-length``
        are the client's to write: given in ``headers``, they are not sent twice."""
        if isinstance(url, str):
            url = self._parsed(url)
        head = _request_head(method, url, headers, len(body))
        key = (url.scheme, url.host, url.port)
        connection = await self._connection(key, url, connect_timeout_s)
        try:
            connection.send(head, body)
            await connection.response_head()
        except BaseException:
            connection.drop()
            self._forget()
            raise
        return WireResponse(connection, self, key)

    async def exchange(
        self,
        method: str,
        url: Url | str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
        limit: int = MAX_BODY_BYTES,
    ) -> Answer:
        """``request()`` and ``read()`` in one: the whole answer, its connection back in the
        pool (or closed when the read failed)."""
        response = await self.request(
            method, url, headers, body, connect_timeout_s=connect_timeout_s
        )
        return await answer_of(response, limit)

    def _parsed(self, url: str) -> Url:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = Url.parse(url)
            if len(self._urls) < URL_CACHE_SIZE:  # a function talks to a few: parse each once
                self._urls[url] = parsed
        return parsed

    async def close(self) -> None:
        """Close every idle connection; connections in use close as their answers end."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().drop()
                self._open -= 1
        self._idle.clear()

    async def _connection(
        self, key: tuple[str, str, int], url: Url, timeout_s: float
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # connections belong to a loop (tests run one per test)
            self._idle, self._open, self._waiters = {}, 0, deque()
            self._loop, self._closed = loop, False
        while True:
            idle = self._idle.get(key)
            while idle:
                connection = idle.pop()
                if connection.reusable() and not connection.readable():
                    connection.reset()
                    return connection
                connection.drop()
                self._open -= 1
            if self._open >= self._limit:
                self._drop_an_idle_connection()  # one kept for another host gives way
            if self._open < self._limit:
                self._open += 1
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # a connection came back to the pool, or one closed
            finally:
                if not waiter.done():  # cancelled while waiting
                    self._waiters.remove(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                _, connection = await loop.create_connection(
                    _Connection,
                    url.host,
                    url.port,
                    ssl=self._tls() if url.scheme == "https" else None,
                    server_hostname=url.host if url.scheme == "https" else None,
                )
        except TimeoutError as exc:
            self._forget()
            message = f"no connection to {url.authority} within {timeout_s:g} s"
            raise ConnectTimeout(message) from exc
        except OSError as exc:
            self._forget()
            raise TransportError(f"cannot connect to {url.authority}: {exc}") from exc
        except BaseException:
            self._forget()
            raise
        return connection

    def _release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        if not self._closed and connection.reusable():
            self._idle.setdefault(key, deque()).append(connection)
            self._wake_one()
            return
        connection.drop()
        self._forget()

    def _drop_an_idle_connection(self) -> None:
        for idle in self._idle.values():
            if idle:
                idle.popleft().drop()
                self._open -= 1
                return

    def _forget(self) -> None:
        """A connection has gone: its place is free."""
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context


def _request_head(method: str, url: Url, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"{method} {url.target.decode('ascii')} HTTP/1.1", f"host: {url.authority}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name[:40]!r} cannot be sent: it holds a line break")
        if name.lower() not in _WRITTEN_HERE:
            lines.append(f"{name}: {value}")
    lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, parses its answer with httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._paused = False
        self.reset()

    def reset(self) -> None:
        """Ready for the next request on this connection."""
        if self._paused and self.transport is not None:
            self.transport.resume_reading()
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self.keep_alive = True
        self.error: Exception | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._framed = False  # content-length or chunked: the end is in the message itself
        self._head_bytes = 0
        self._informational = False  # parsing a 1xx answer, which precedes the real one
        self._stray = False  # bytes came after the answer: the connection is not reused

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after a whole answer: the answer stands
                self._stray = True
            else:
                self._fail(TransportError(f"the upstream's answer is not valid HTTP: {exc}"))
            self.drop()
            return
        if not self.status:  # still in the head: bounded like the server's
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                too_long = f"the upstream's answer head exceeds {MAX_HEAD_BYTES} bytes"
                self._fail(TransportError(too_long))
                self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is None and self.status and not self.complete and not self._framed:
            self.complete, self.keep_alive = True, False  # an answer that ends with the connection
            self._wake()
        elif not self.complete:
            reason = f": {exc}" if exc else ""
            self._fail(TransportError(f"the upstream closed the connection mid-answer{reason}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:  # a second answer nobody asked for: never joined to the first
            self._stray = True
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        if self.complete:
            self._stray = True
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints: not the answer
            self._informational = True
            self.headers = {}
            return
        self.status = status
        self._framed = "content-length" in self.headers or "transfer-encoding" in self.headers
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self._stray = True
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self.headers = {}
            return
        if self.complete:
            self._stray = True
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # used by the client
    def send(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if len(body) < 65536:
            self.transport.write(head + body)  # one write, one segment
        else:  # a large body is not copied onto its head
            self.transport.write(head)
            self.transport.write(body)

    async def response_head(self) -> None:
        if self.error is not None:
            raise self.error
        if not self.status:
            self._head = asyncio.get_running_loop().create_future()
            await self._head

    async def next_chunk(self, idle_timeout_s: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            if idle_timeout_s is None:
                await self._waiter
            else:
                async with asyncio.timeout(idle_timeout_s):
                    await self._waiter
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < HIGH_WATER // 4 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return (
            self.complete
            and self.keep_alive
            and not self.lost
            and self.error is None
            and not self._stray
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def readable(self) -> bool:
        """Whether the idle socket has something to read: the upstream's close (or bytes it
        was not asked for) that the loop has not yet seen. Such a connection is not reused."""
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is None:
            return False
        poll = select.poll()  # not select.select: it cannot watch a descriptor past 1023
        try:
            poll.register(sock.fileno(), select.POLLIN)
            return bool(poll.poll(0))
        except (OSError, ValueError):
            return True

    def drop(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
