"""The HTTP client under the ``mcp`` SDK's client when the orchestrator calls an MCP server:
``httpx2`` (the SDK's own), with the server's headers, the current trace context
(``traceparent``...), the headers of the call being made (``RequestHeaders`` hooks: the
``Idempotency-Key`` and ``x-request-id`` the HTTP agents get, and whatever else goes on every
outbound request), the outbound connection limit, and a bound on every answer's size.

The SDK bounds a server-sent event (``max_sse_event_size``) but reads a JSON answer whole: a
server answering gigabytes would be read into memory before anything could refuse it. Here
the declared ``Content-Length`` is checked before the body is read, and the bytes are counted
as they arrive, so a body past the limit fails the exchange at the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import httpx2

from shared import telemetry
from shared.transport import DEFAULT_LIMIT

CONNECT_TIMEOUT_S = 5.0

RequestHeaders = Callable[[str, str, Mapping[str, str], bytes], Awaitable[Mapping[str, str]]]
"""``(method, url, headers, body) -> headers to add``, run on each request as it is about to be
sent (the shape of ``shared.transport.Auth.headers``, so an ``Auth`` plugs in as is); what it
gives replaces a header of the same name."""


class ResponseTooLarge(httpx2.TransportError):
    """An MCP server's answer passed the orchestrator's limit; not retried by the SDK."""


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._stream:
            size += len(chunk)
            if size > self._limit:
                raise ResponseTooLarge(f"the answer exceeds {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Bounded(httpx2.AsyncBaseTransport):
    def __init__(
        self, inner: httpx2.AsyncBaseTransport, limit: int, hooks: Sequence[RequestHeaders] = ()
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._hooks = tuple(hooks)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._hooks:
            body = await request.aread()
            for hook in self._hooks:
                request.headers.update(
                    await hook(request.method, str(request.url), request.headers, body)
                )
        for name, value in telemetry.inject({}).items():  # the caller's trace goes on (W3C)
            request.headers.setdefault(name, value)
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            await response.aclose()
            raise ResponseTooLarge(f"the answer is {declared} bytes; the limit is {self._limit}")
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Capped(response.stream, self._limit),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client(
    headers: Mapping[str, str],
    max_bytes: int,
    *,
    hooks: Sequence[RequestHeaders] = (),
    limit: int = DEFAULT_LIMIT,
) -> httpx2.AsyncClient:
    """A client for one MCP server: its headers on every request, then each of ``hooks``'s
    (in order: one that signs the request goes last), at most ``limit`` connections open (as
    the orchestrator's other outbound calls), answers cut at ``max_bytes``. The per-call
    timeout is the caller's (``asyncio.timeout``); these bound each read."""
    return httpx2.AsyncClient(
        headers=dict(headers),
        timeout=httpx2.Timeout(300.0, connect=CONNECT_TIMEOUT_S),
        transport=_Bounded(
            httpx2.AsyncHTTPTransport(
                limits=httpx2.Limits(max_connections=limit, max_keepalive_connections=limit)
            ),
            max_bytes,
            hooks,
        ),
    )
