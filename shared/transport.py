"""The one seam for outbound HTTP: a ``Transport`` sends a request and answers a ``Response``.

Every outbound call (the gateway's providers, the orchestrator's calls to the gateway, its
agents and its sink, the Tavily agent) goes through a ``Transport``, passed in by whoever builds
the caller, so a test can hand over its own. Two implementations:

- ``wire`` (``shared.wire.WireClient``, the default): a lean keep-alive HTTP/1.1 client on
  httptools, the fast path (bench/RESULTS.md). No proxies, no HTTP/2.
- ``httpx`` (``shared.transport_httpx.HttpxTransport``): honours ``HTTPS_PROXY``,
  ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` and speaks HTTP/2 when the ``h2`` package is
  installed, for networks that allow no direct connection out.

``OUTBOUND_TRANSPORT`` picks one (``wire`` or ``httpx``); unset, a proxy variable in the
environment picks ``httpx`` (wire would ignore the proxy), and otherwise ``wire``.

Both raise the same exceptions, all in ``shared.errors``: ``ConnectTimeout`` (no connection
in time: never sent), ``TransportError`` (refused, DNS, TLS, reset, not HTTP) and its
``AnswerTooLarge``; the caller bounds the rest with ``asyncio.timeout`` (``TimeoutError``).
``upstream_failure`` is the one place that turns those into what a caller answers, naming
the service.

``Authenticated`` wraps either with an ``Auth``: the headers that prove who calls, added to
each request (the orchestrator's platform identity, ``shared.outbound_auth``).

``Traced`` wraps every transport ``outbound_transport`` makes: each request carries the current
trace context (``traceparent``, ``tracestate``, ``baggage``: ``shared.telemetry``), so a task
is one trace across every function it reaches.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from shared import telemetry
from shared.errors import (
    AnswerTooLarge,
    ConfigError,
    ConnectTimeout,
    SentTimeout,
    TransportError,
    UpstreamError,
    UpstreamTimeout,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
"""What ``read()`` holds of one answer's body, at most (a stream is not held: no bound)."""
DEFAULT_LIMIT = 4096
"""Connections open at once, at most, per transport."""
VARIABLE = "OUTBOUND_TRANSPORT"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
"""Any of these (or its lower-case form) set: ``httpx`` unless ``OUTBOUND_TRANSPORT`` says."""
Kind = Literal["wire", "httpx"]


@dataclass(frozen=True)
class Answer:
    """An answer read whole (``Transport.exchange``)."""

    status: int
    headers: Mapping[str, str]
    """Header names in lower case; a repeated header's values joined with ``, ``."""
    body: bytes


class Response(Protocol):
    """An answer whose status and headers are in; its body is read through this."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Header names in lower case; a repeated header's values joined with ``, ``."""
        ...

    async def read(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole body, at most ``limit`` bytes (else ``AnswerTooLarge``); the connection
        then goes back to the pool."""
        ...

    async def prefix(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (for an error message); the rest is never read."""
        ...

    def chunks(self, idle_timeout_s: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; ``TimeoutError`` after ``idle_timeout_s`` without a byte.
        Read to its end, the connection goes back to the pool; otherwise call ``close()``."""
        ...

    def close(self) -> None:
        """Drop the connection, read or not (a no-op once the body was read to its end)."""
        ...


class Transport(Protocol):
    """Keep-alive connections to a few hosts. No redirects, cookies or content decoding:
    a gateway must not follow a redirect with its credentials, keep one caller's cookies for
    the next, or decode a body it passes through (none is asked for: no ``accept-encoding``)."""

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
    ) -> Response:
        """Send one request and answer once the status and headers are in. ``host`` and
        ``content-length`` are the transport's to write."""
        ...

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
        limit: int = MAX_BODY_BYTES,
    ) -> Answer:
        """``request()`` and ``read()`` in one."""
        ...

    async def close(self) -> None:
        """Close idle connections; those in use close as their answers end."""
        ...


class Auth(Protocol):
    """Who calls: the headers to add to one request (a token, a signature), given the request
    as it will be sent. A request ``Auth`` does not cover gets nothing added."""

    async def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Mapping[str, str]: ...

    async def close(self) -> None:
        """Release what it holds (its own connections)."""
        ...


class Authenticated:
    """A ``Transport`` that adds ``auth``'s headers to every request ``transport`` sends; they
    replace the caller's headers of the same name."""

    def __init__(self, transport: Transport, auth: Auth) -> None:
        self._transport = transport
        self._auth = auth

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
    ) -> Response:
        sent = await self._with_auth(method, url, headers, body)
        return await self._transport.request(
            method, url, sent, body, connect_timeout_s=connect_timeout_s
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
        limit: int = MAX_BODY_BYTES,
    ) -> Answer:
        sent = await self._with_auth(method, url, headers, body)
        return await self._transport.exchange(
            method, url, sent, body, connect_timeout_s=connect_timeout_s, limit=limit
        )

    async def close(self) -> None:
        await self._transport.close()
        await self._auth.close()

    async def _with_auth(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Mapping[str, str]:
        added = await self._auth.headers(method, url, headers, body)
        if not added:
            return headers
        names = {name.lower() for name in added}
        kept = {k: v for k, v in headers.items() if k.lower() not in names}
        return {**kept, **added}


class Traced:
    """A ``Transport`` whose requests carry the current trace context (W3C headers)."""

    def __init__(self, transport: Transport) -> None:
        self.inner = transport
        """The transport that sends."""

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
    ) -> Response:
        sent = telemetry.inject(dict(headers))
        return await self.inner.request(
            method, url, sent, body, connect_timeout_s=connect_timeout_s
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
        limit: int = MAX_BODY_BYTES,
    ) -> Answer:
        sent = telemetry.inject(dict(headers))
        return await self.inner.exchange(
            method, url, sent, body, connect_timeout_s=connect_timeout_s, limit=limit
        )

    async def close(self) -> None:
        await self.inner.close()


async def read_limited(response: Response, limit: int) -> bytes:
    """``response``'s whole body, of at most ``limit`` bytes (else ``AnswerTooLarge``, the
    connection dropped): what every transport's ``read`` does over its own ``chunks``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.chunks():
        size += len(chunk)
        if size > limit:
            response.close()
            raise AnswerTooLarge(f"the upstream's answer exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def answer_of(response: Response, limit: int) -> Answer:
    """``response`` read whole (``Transport.exchange``): its connection back in the pool, or
    closed when the read failed."""
    try:
        return Answer(response.status, response.headers, await response.read(limit))
    finally:
        response.close()  # a no-op once read() gave the connection back


def chosen(environ: Mapping[str, str] | None = None) -> Kind:
    """The transport ``environ`` asks for: ``OUTBOUND_TRANSPORT``, else ``httpx`` when a proxy
    variable is set, else ``wire``."""
    env = os.environ if environ is None else environ
    raw = (env.get(VARIABLE) or "").strip().lower()
    if raw in ("wire", "httpx"):
        return "httpx" if raw == "httpx" else "wire"
    if raw:
        raise ConfigError(f"${VARIABLE}: expected wire or httpx, got {raw[:40]!r}")
    proxied = any(env.get(name) or env.get(name.lower()) for name in PROXY_VARIABLES)
    return "httpx" if proxied else "wire"


def outbound_transport(
    environ: Mapping[str, str] | None = None, *, limit: int = DEFAULT_LIMIT
) -> Transport:
    """A new transport of the kind ``environ`` (default ``os.environ``) chooses, ``Traced``. It
    connects on first use, inside the running loop: building one at start-up costs nothing."""
    if chosen(environ) == "httpx":
        try:
            from shared.transport_httpx import HttpxTransport
        except ImportError as exc:  # httpx is in the extras of the functions that call out
            raise ConfigError(f"${VARIABLE}=httpx needs the httpx package: {exc}") from exc
        return Traced(HttpxTransport(limit=limit))
    from shared.wire import WireClient

    return Traced(WireClient(limit=limit))


def upstream_failure(
    service: str, error: BaseException, timeout_s: float, *, streaming: bool = False
) -> UpstreamError:
    """What a transport failure (or the caller's ``timeout_s`` running out) means, naming
    ``service``: ``ConnectTimeout`` (never sent), ``SentTimeout`` (sent, no answer in time),
    ``UpstreamTimeout`` (a stream went silent), ``AnswerTooLarge``, else ``TransportError``.
    ``streaming``: the failure struck while a stream's body was being relayed."""
    if isinstance(error, ConnectTimeout):
        return ConnectTimeout(f"{service} did not accept a connection: {error}")
    if isinstance(error, TimeoutError):
        if streaming:
            return UpstreamTimeout(f"{service} stream stalled for {timeout_s:g} s")
        return SentTimeout(f"{service} did not answer within {timeout_s:g} s")
    if isinstance(error, AnswerTooLarge):
        return AnswerTooLarge(f"{service}: {error}")
    if streaming:
        return TransportError(f"{service} stream broke: {error}")
    return TransportError(f"{service} is unreachable: {error}")


FAILURES = (TimeoutError, TransportError, ConnectTimeout, OSError)
"""What a call through a transport can raise besides the caller's own errors: catch these and
pass them to ``upstream_failure``."""
