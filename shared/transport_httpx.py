"""The ``httpx`` implementation of ``shared.transport.Transport``: proxies and HTTP/2.

For networks where ``shared.wire`` cannot go: it honours ``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY`` and ``NO_PROXY`` (httpx's ``trust_env``, which also reads ``SSL_CERT_FILE``) and
offers HTTP/2 when the ``h2`` package is installed (``pip install 'httpx[http2]'``; the images
do not include it). The loopback and every host name without a dot (a Compose service such as
``model-gateway``, a new agent's included) are always reached directly, whatever ``NO_PROXY``
says. It behaves as wire does otherwise: no redirects, no cookies kept, no ``accept-encoding`` asked
for and nothing decoded (the raw bytes are passed on), the caller bounds time with
``asyncio.timeout`` past the connection's own ``connect_timeout_s``, and failures are the same
``shared.errors`` classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncGenerator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.errors import ConnectTimeout, TransportError
from shared.transport import DEFAULT_LIMIT, MAX_BODY_BYTES, Answer, answer_of, read_limited

_WRITTEN_HERE = frozenset({"host", "content-length"})
_NOT_ASKED = ("accept-encoding", "accept", "user-agent")
"""httpx's default headers that wire does not send either: the caller's own are sent."""


def _direct(host: str) -> bool:
    """Whether ``host`` is reached without a proxy: the loopback, or a name without a dot (a
    Compose service or a ``/etc/hosts`` name, which no outside proxy could resolve)."""
    return host in ("localhost", "127.0.0.1", "::1") or ("." not in host and ":" not in host)


def http2_available() -> bool:
    """Whether the ``h2`` package that httpx needs for HTTP/2 is installed."""
    return importlib.util.find_spec("h2") is not None


class HttpxResponse:
    """An answer from ``HttpxTransport.request``: status and headers in, the body to read."""

    def __init__(self, response: httpx.Response, transport: HttpxTransport) -> None:
        self._response = response
        self._transport = transport
        self.status = response.status_code
        self.headers: dict[str, str] = _joined(response.headers)
        self._done = False

    async def read(self, limit: int = MAX_BODY_BYTES) -> bytes:
        return await read_limited(self, limit)

    async def prefix(self, limit: int) -> bytes:
        kept = bytearray()
        async with contextlib.aclosing(self.chunks()) as body:
            async for chunk in body:
                kept += chunk[: limit - len(kept)]
                if len(kept) >= limit:
                    break
        return bytes(kept)

    async def chunks(self, idle_timeout_s: float | None = None) -> AsyncGenerator[bytes]:
        raw = self._response.aiter_raw()
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        chunk = await anext(raw)
                except StopAsyncIteration:
                    break
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            self.close()
            raise _translated(exc, self._response.request.url.netloc.decode()) from exc
        except BaseException:
            self.close()
            raise
        self._done = True  # read to its end: httpx gives the connection back to its pool
        await self._response.aclose()

    def close(self) -> None:
        """Drop the connection unless the body was read to its end (httpx closes a response
        asynchronously: the close runs as a task on the loop)."""
        if self._done:
            return
        self._done = True
        self._transport._close_later(self._response)


class HttpxTransport:
    """``httpx.AsyncClient`` behind the ``Transport`` seam; one client per event loop (a
    connection belongs to the loop it was made in, and tests run one loop per test)."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        http2: bool | None = None,
        trust_env: bool = True,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``http2``: None speaks it when ``h2`` is installed. ``client_options``: more
        ``httpx.AsyncClient`` keywords (a test's ``transport=httpx.MockTransport(...)``)."""
        self.http2 = http2_available() if http2 is None else http2
        """Whether HTTP/2 is offered (ALPN over TLS); HTTP/1.1 otherwise."""
        self._options: dict[str, Any] = {
            "http2": self.http2,
            "trust_env": trust_env,
            "follow_redirects": False,
            "limits": httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            "timeout": httpx.Timeout(None),
            **(client_options or {}),
        }
        self._client: httpx.AsyncClient | None = None
        self._direct_client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout_s: float = 10.0,
    ) -> HttpxResponse:
        client = self._current(urlsplit(url).hostname or "")
        sent = {k: v for k, v in headers.items() if k.lower() not in _WRITTEN_HERE}
        try:
            request = client.build_request(
                method,
                url,
                headers=sent,
                content=body,
                timeout=httpx.Timeout(None, connect=connect_timeout_s),
            )
            response = await client.send(request, stream=True)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not an http(s) URL: {url[:100]!r}") from exc
        except httpx.HTTPError as exc:
            raise _translated(exc, urlsplit(url).netloc) from exc
        return HttpxResponse(response, self)

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
        response = await self.request(
            method, url, headers, body, connect_timeout_s=connect_timeout_s
        )
        return await answer_of(response, limit)

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        clients = [c for c in (self._client, self._direct_client) if c is not None]
        self._client = self._direct_client = None
        if self._loop is asyncio.get_running_loop():
            for client in clients:
                await client.aclose()

    def _current(self, host: str) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._drop_clients()
            self._loop = loop
        if _direct(host):
            if self._direct_client is None:
                self._direct_client = self._new_client(self._direct_options())
            return self._direct_client
        if self._client is None:
            self._client = self._new_client(self._options)
        return self._client

    def _new_client(self, options: Mapping[str, Any]) -> httpx.AsyncClient:
        client = httpx.AsyncClient(**options)
        for name in _NOT_ASKED:
            client.headers.pop(name, None)
        return client

    def _direct_options(self) -> dict[str, Any]:
        """The options without the environment's proxies (httpx has no per-host switch for
        them), keeping what else ``trust_env`` reads: ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``."""
        options = {**self._options, "trust_env": False}
        if self._options["trust_env"] and "verify" not in options:
            options["verify"] = httpx.create_ssl_context(trust_env=True)
        return options

    def _drop_clients(self) -> None:
        """Close the clients of the previous event loop. Their connections belong to that loop:
        when it still runs (another thread), the close runs there; when it has ended (a test's
        ``asyncio.run``), nothing can await on it any more, and its sockets close as the loop's
        transports are collected."""
        old, loop = [c for c in (self._client, self._direct_client) if c], self._loop
        self._client = self._direct_client = None
        if loop is not None and loop.is_running() and not loop.is_closed():
            for client in old:
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)

    def _close_later(self, response: httpx.Response) -> None:
        task = asyncio.get_running_loop().create_task(response.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _joined(headers: httpx.Headers) -> dict[str, str]:
    """Lower-case names, a repeated header's values joined with ``, `` (as wire gives them)."""
    joined: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _translated(error: httpx.HTTPError, authority: str) -> Exception:
    """httpx's exception as the ``shared.errors`` class wire raises for the same failure."""
    if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ConnectTimeout(f"no connection to {authority} in time: {error}")
    if isinstance(error, httpx.TimeoutException):
        return TimeoutError(f"{authority}: {error}")
    if isinstance(error, httpx.ProxyError):
        return TransportError(f"the proxy refused the connection to {authority}: {error}")
    if isinstance(error, httpx.ConnectError):
        return TransportError(f"cannot connect to {authority}: {error}")
    if isinstance(error, httpx.RemoteProtocolError):
        return TransportError(f"the upstream's answer is not valid HTTP or broke off: {error}")
    return TransportError(f"{authority}: {error or type(error).__name__}")
