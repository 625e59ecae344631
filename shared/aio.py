"""Outbound HTTP for the async functions: JSON calls on ``shared.wire``, and an aiohttp session.

``request_json`` (the orchestrator's calls to the gateway and the agents) goes through
``shared.wire.WireClient``: keep-alive connections pooled per host, at most ``limit`` open
(4,096 by default, far above the 1,000 calls in flight a worker is sized for), and a fraction
of aiohttp's CPU per call (bench/RESULTS.md). aiohttp stays for the rest (posting a CloudEvent
to a sink), which is why ``session()`` remains: aiohttp was chosen over ``httpx.AsyncClient``
by measurement, httpx's pool being the limit at 256 calls in flight.

Both are made on first use inside the running loop, not at import (a session or a connection
belongs to the loop it was made in). Tests pass their own ``wire`` or ``session_factory``
instead of patching a module global.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from shared.context import current_request_id
from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.http import JsonResponse, compact_json
from shared.wire import WireClient, WireError

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
    """JSON calls to the functions this one talks to (``shared.wire``'s pool), and a lazily
    made aiohttp session for anything else (a CloudEvent sink); ``close()`` on shutdown."""

    def __init__(
        self, session_factory: SessionFactory | None = None, wire: WireClient | None = None
    ) -> None:
        self._factory = session_factory or default_session
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wire = wire or WireClient()

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
        await self._wire.close()

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
        to interpret. Answer headers have lower-case names."""
        sent = outbound_headers(headers)
        payload = b""
        if body is not None:
            payload = compact_json(body).encode()
            if not any(name.lower() == "content-type" for name in sent):
                sent["content-type"] = "application/json"
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._wire.exchange(
                    method, url, sent, payload, connect_timeout_s=timeout_s
                )
        except TimeoutError as exc:  # ConnectTimeout included
            raise UpstreamTimeout(f"{service} did not answer within {timeout_s:g} s") from exc
        except (WireError, OSError) as exc:
            raise UpstreamUnavailable(f"{service} is unreachable: {exc}") from exc
        try:
            data = json.loads(answer.body) if answer.body else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        return JsonResponse(status=answer.status, headers=answer.headers, data=data)
