"""JSON calls over the outbound transport (``shared.transport``), for the async functions.

``request_json`` (the orchestrator's calls to the gateway and the agents) and ``send`` (a
CloudEvent to a sink) go through one ``Transport``: ``shared.wire`` by default, keep-alive
connections pooled per host, at most 4,096 open (far above the 1,000 calls in flight a worker
is sized for); ``OUTBOUND_TRANSPORT=httpx`` for proxies. Nothing is decoded: no
``accept-encoding`` is asked for, and a ``content-encoding`` in an answer is ignored, so an
answer costs at most the bytes the caller agreed to read.

Connections are made on first use inside the running loop, not at import (a connection belongs
to the loop it was made in). Tests pass their own ``transport`` instead of patching a global.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from shared.context import current_request_id
from shared.http import JsonResponse, compact_json
from shared.transport import (
    FAILURES,
    Answer,
    Response,
    Transport,
    outbound_transport,
    upstream_failure,
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
    """Calls to the services a function talks to, over ``transport`` (default: the one the
    environment chooses, ``shared.transport.outbound_transport``); ``close()`` on shutdown."""

    def __init__(self, transport: Transport | None = None) -> None:
        self._transport = transport or outbound_transport()

    async def close(self) -> None:
        await self._transport.close()

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
        ``UpstreamUnavailable`` (``shared.transport.upstream_failure``) naming ``service``;
        error statuses are returned for the caller to interpret. Answer headers have
        lower-case names."""
        sent = outbound_headers(headers)
        payload = b""
        if body is not None:
            payload = compact_json(body).encode()
            if not any(name.lower() == "content-type" for name in sent):
                sent["content-type"] = "application/json"
        answer = await self._exchange(method, url, sent, payload, timeout_s, service, None)
        try:
            data = json.loads(answer.body) if answer.body else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        return JsonResponse(status=answer.status, headers=answer.headers, data=data)

    async def open_stream(
        self,
        method: str,
        url: str,
        *,
        body: Any,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        service: str = "upstream",
    ) -> Response:
        """Send JSON; the answer as soon as its status and headers are in, its body to read
        as it arrives (``Response.chunks``; the caller reads it to its end or closes it).
        Failures before the answer as in ``request_json``."""
        sent = outbound_headers(headers)
        sent.setdefault("content-type", "application/json")
        payload = compact_json(body).encode()
        try:
            async with asyncio.timeout(timeout_s):
                return await self._transport.request(
                    method, url, sent, payload, connect_timeout_s=timeout_s
                )
        except FAILURES as exc:
            raise upstream_failure(service, exc, timeout_s) from exc

    async def send(
        self,
        method: str,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        service: str = "upstream",
        keep_bytes: int = 4096,
    ) -> Answer:
        """Send ``body`` as it is, for an answer whose status is what matters: of its body,
        at most ``keep_bytes`` are read (enough for an error message); the rest is never read
        and the connection is dropped. Failures as in ``request_json``."""
        sent = outbound_headers(headers)
        return await self._exchange(method, url, sent, body, timeout_s, service, keep_bytes)

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
        service: str,
        keep_bytes: int | None,
    ) -> Answer:
        """The answer within ``timeout_s`` (all of it, or ``keep_bytes`` of its body)."""
        transport = self._transport
        try:
            async with asyncio.timeout(timeout_s):
                if keep_bytes is None:
                    return await transport.exchange(
                        method, url, headers, body, connect_timeout_s=timeout_s
                    )
                response = await transport.request(
                    method, url, headers, body, connect_timeout_s=timeout_s
                )
                kept = await response.prefix(keep_bytes)
                return Answer(response.status, response.headers, kept)
        except FAILURES as exc:
            raise upstream_failure(service, exc, timeout_s) from exc
