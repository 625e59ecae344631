"""Anthropic, spoken on the wire: ``POST {base}/v1/messages`` through the outbound transport
(``shared.transport``: ``shared.wire``'s pool unless configured otherwise).

The gateway speaks Anthropic's format on both sides, so the body is passed through as bytes
and the answer returned as bytes: no object model on the hot path, and no dependency on the
SDK's internals (which pinned the SDK's version for everyone before). Configuration follows
the SDK's own conventions: ``ANTHROPIC_API_KEY`` (sent as ``x-api-key``) or
``ANTHROPIC_AUTH_TOKEN`` (sent as a bearer token), and ``ANTHROPIC_BASE_URL``.

The caller's ``anthropic-beta`` and ``anthropic-version`` reach the upstream, and its
``user-agent`` stays visible there with the gateway's own appended. The upstream's
``request-id`` and ``anthropic-ratelimit-*`` come back, on answers and on errors alike.

A timeout is told apart by when it struck: connecting may take at most half of an attempt's
time, so a timeout after that is one where the request was sent (``SentTimeout``: the upstream
may still finish and bill it). ``shared.transport.upstream_failure`` names every failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from functions.gateway.providers.base import USER_AGENT, ProviderCall, checked_message, json_object
from shared.context import current_request_id
from shared.errors import BadGateway, UpstreamError, error_for_status, parse_retry_after
from shared.http import ANTHROPIC_VERSION
from shared.transport import (
    FAILURES,
    Response,
    Transport,
    outbound_transport,
    upstream_failure,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
FORWARDED = ("anthropic-beta", "anthropic-version")


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        base_url: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self._api_key = environ.get("ANTHROPIC_API_KEY") or ""
        self._auth_token = environ.get("ANTHROPIC_AUTH_TOKEN") or ""
        base = base_url or environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
        self.url = base.rstrip("/") + "/v1/messages"
        self.count_url = self.url + "/count_tokens"
        self._transport = transport or outbound_transport(environ)
        credentials = (
            {"x-api-key": self._api_key}
            if self._api_key
            else {"authorization": f"Bearer {self._auth_token}"}
        )
        self._headers = {**credentials, "content-type": "application/json"}

    def configured(self) -> bool:
        return bool(self._api_key or self._auth_token)

    def headers_for(self, call: ProviderCall) -> dict[str, str]:
        headers = {**self._headers, "anthropic-version": ANTHROPIC_VERSION}
        for name in FORWARDED:
            if call.headers.get(name):
                headers[name] = call.headers[name]
        agent = call.headers.get("user-agent")
        headers["user-agent"] = f"{agent} {USER_AGENT}" if agent else USER_AGENT
        request_id = current_request_id()
        if request_id:
            headers["x-request-id"] = request_id
        return headers

    async def _send(self, call: ProviderCall, url: str, body: dict[str, Any]) -> Response:
        """The answer's head; a refusal raised as its error. The caller bounds the time."""
        connect = min(10.0, call.timeout_s / 2)
        payload = json.dumps(body).encode()
        response = await self._transport.request(
            "POST", url, self.headers_for(call), payload, connect_timeout_s=connect
        )
        if response.status >= 400:
            raise await _status_error(response)
        call.received.update(upstream_headers(response.headers))
        return response

    async def _read(self, call: ProviderCall, url: str, body: dict[str, Any]) -> bytes:
        try:
            async with asyncio.timeout(call.timeout_s):
                response = await self._send(call, url, body)
                try:
                    return await response.read()
                finally:
                    response.close()  # a no-op once read() gave the connection back
        except FAILURES as exc:
            raise upstream_failure(self.name, exc, call.timeout_s) from exc

    async def complete(self, call: ProviderCall) -> bytes:
        body = {**call.body, "model": call.model, "stream": False}
        return checked_message(await self._read(call, self.url, body), self.name)

    async def count_tokens(self, call: ProviderCall) -> dict[str, Any]:
        raw = await self._read(call, self.count_url, {**call.body, "model": call.model})
        counted = json_object(raw)
        if counted is None or not isinstance(counted.get("input_tokens"), int):
            raise BadGateway(f"anthropic answered count_tokens with {len(raw)} bytes of nonsense")
        return counted

    async def stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        body = {**call.body, "model": call.model, "stream": True}
        try:
            async with asyncio.timeout(call.timeout_s):  # to the answer's head
                response = await self._send(call, self.url, body)
        except FAILURES as exc:
            raise upstream_failure(self.name, exc, call.timeout_s) from exc
        return _relay(response, call.timeout_s)

    async def close(self) -> None:
        await self._transport.close()


async def _status_error(response: Response) -> UpstreamError:
    """The error the upstream's error answer says (its read failing raises as transport's)."""
    try:
        raw = await response.read()
    finally:
        response.close()  # a no-op once read() gave the connection back
    message = _message_of(raw, response.status)
    if response.status == 401:
        # A 403 (permission_error) is about the request: a beta or a model this key may not
        # use. Only a 401 says the key itself is refused, for every request.
        message = f"refused the gateway's own credentials (HTTP 401): {message}"
    error = error_for_status(
        response.status, f"anthropic: {message}", retry_after=parse_retry_after(response.headers)
    )
    # Passed back to the caller as they came (the SDKs read them).
    error.headers.update(upstream_headers(response.headers))
    return error


def upstream_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's headers worth passing back: its request id and rate-limit state."""
    kept = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower().startswith("anthropic-ratelimit-")
    }
    for name in ("request-id", "retry-after"):
        if name in headers:
            kept[name] = headers[name]
    return kept


def _message_of(raw: bytes, status: int) -> str:
    """The upstream's own error message from Anthropic's error shape, else a short stand-in."""
    try:
        body: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return message
    text = raw[:200].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {text}" if text else "")


async def _relay(response: Response, timeout_s: float) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.chunks(idle_timeout_s=timeout_s):
            yield chunk
    except FAILURES as exc:
        raise upstream_failure("anthropic", exc, timeout_s, streaming=True) from exc
    finally:
        # A stream read to its end has given its connection back to the pool; one the client
        # abandoned (or that broke) is closed, which also stops the upstream generating.
        response.close()
