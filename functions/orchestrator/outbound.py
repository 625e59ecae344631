"""The orchestrator's outbound HTTP: JSON to the gateway and the agents, CloudEvents to the sink,
over ``shared.wire``'s keep-alive pool (httptools), as the gateway sends to its providers.

A task makes three calls (model, agent, model) and aiohttp's client was, after the garbage
collector, the largest cost of one: a request object, a payload, header multidicts, a timer
and a URL parse per call (bench/RESULTS.md, "Orchestrator"). The orchestrator sends small
bodies to a few hosts named in its config and needs none of that; URLs are parsed once.

Transport failures raise ``UpstreamTimeout`` or ``UpstreamUnavailable`` naming the service;
an error status is returned for the caller to read. Every call carries the request's
``x-request-id``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from shared.context import current_request_id
from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.http import JsonResponse
from shared.wire import Url, WireClient, WireError

_BODY = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_URLS_KEPT = 1024
"""Parsed URLs kept: the gateway's and each agent's two (the config names them all)."""


class OutboundHttp:
    """One pool of keep-alive connections for all of the orchestrator's calls; ``close()``
    on shutdown. Tests and benchmarks may pass their own ``WireClient``."""

    def __init__(self, wire: WireClient | None = None) -> None:
        self._wire = wire or WireClient()
        self._urls: dict[str, Url] = {}

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
        """Send JSON (``body``, when given), get JSON: ``data`` is None for an empty body or
        one that is not JSON."""
        sent = dict(headers or {})
        payload = b""
        if body is not None:
            payload = _BODY.encode(body).encode()
            sent.setdefault("content-type", "application/json")
        status, answer_headers, raw = await self.send(
            method, url, payload, sent, timeout_s=timeout_s, service=service
        )
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        return JsonResponse(status=status, headers=answer_headers, data=data)

    async def send(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        service: str,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, its answer read whole within ``timeout_s`` (connecting included):
        the status, the headers (names in lower case) and the body."""
        sent = dict(headers)
        request_id = current_request_id()
        if request_id and "x-request-id" not in sent:
            sent["x-request-id"] = request_id
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._wire.request(
                    method, self._url(url), sent, body, connect_timeout_s=timeout_s
                )
                try:
                    raw = await answer.read()
                finally:
                    answer.close()  # a no-op once read() gave the connection back
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{service} did not answer within {timeout_s:g} s") from exc
        except (WireError, OSError) as exc:
            raise UpstreamUnavailable(f"{service} is unreachable: {exc}") from exc
        return answer.status, answer.headers, raw

    async def close(self) -> None:
        await self._wire.close()

    def _url(self, url: str) -> Url:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            parsed = self._urls[url] = Url.parse(url)
        return parsed
