"""Outbound HTTP for the async functions: one aiohttp session per client, injectable.

aiohttp was chosen over ``httpx.AsyncClient`` by measurement (bench/RESULTS.md): with 256 calls
in flight against a 1 s upstream, httpx's pool became the limit (100 req/s), aiohttp's did not
(234 req/s, the ideal being 256). The connector holds ``limit`` connections at once (default
4,096 per process, far above the 1,000 calls in flight a worker is sized for).

A session belongs to the event loop it was made in, so it is made on first use inside the loop,
not at import. Tests pass their own ``session_factory`` (for example one whose connector points
at a fake server) instead of patching a module global.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from shared.context import current_request_id
from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.http import JsonResponse

DEFAULT_LIMIT = 4096

SessionFactory = Callable[[], aiohttp.ClientSession]


def default_session(limit: int = DEFAULT_LIMIT) -> aiohttp.ClientSession:
    """A session with a large pool, no cookie jar (a server must never keep one caller's
    cookies for the next), and no default timeout (every call passes its own)."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=60)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
    )


def outbound_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus the current request's ``x-request-id``, so a call can be traced
    across functions."""
    merged = dict(headers or {})
    request_id = current_request_id()
    if request_id and "x-request-id" not in {k.lower() for k in merged}:
        merged["x-request-id"] = request_id
    return merged


class AsyncHttp:
    """A lazily made aiohttp session with JSON helpers; ``close()`` on shutdown."""

    def __init__(self, session_factory: SessionFactory | None = None) -> None:
        self._factory = session_factory or default_session
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A session cannot move between loops (tests run one loop per test).
            self._session = self._factory()
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        service: str = "upstream",
    ) -> JsonResponse:
        """Send JSON, get JSON. Transport failures raise ``UpstreamTimeout`` or
        ``UpstreamUnavailable`` naming ``service``; error statuses are returned for the caller
        to interpret."""
        sent = outbound_headers(headers)
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            sent.setdefault("content-type", "application/json")
        try:
            async with self.session().request(
                method,
                url,
                data=payload,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status, answer_headers = response.status, response.headers
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{service} did not answer within {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{service} is unreachable: {exc}") from exc
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        return JsonResponse(status=status, headers=answer_headers, data=data)
