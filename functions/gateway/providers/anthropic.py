"""Anthropic, through the official SDK's low-level client, with its own retries off.

The gateway speaks Anthropic's format on both sides, so the body is passed through as bytes
and the answer returned as bytes: no object model on the hot path. The SDK owns the wire
details — base URL, auth and version headers, the pooled HTTP client, the error classes — and
the gateway sends through that client directly, skipping the SDK's per-request option building
(about a quarter of the gateway's CPU per request when measured).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from shared.errors import (
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    parse_retry_after,
    upstream_error_for_status,
)

if TYPE_CHECKING:
    import anthropic


def preload() -> None:
    """Import the SDK now. Called at start-up when the provider is configured, so the import
    happens once in the server's parent process and its pages are shared by forked workers."""
    import anthropic  # noqa: F401


@dataclass(frozen=True)
class _Wire:
    """What the SDK settles once per client: where to send, with which headers, through which
    pooled HTTP client, and how it names an error status."""

    http: httpx.Client
    transport: httpx.HTTPTransport
    """The connection pool under the SDK's client. Requests go to it directly: they need none
    of the client's redirect, auth-flow or cookie handling, and a gateway serving many callers
    must not keep one upstream's cookies for everyone's later requests anyway."""
    url: str
    headers: dict[str, str]
    status_error: Callable[[httpx.Response], anthropic.APIStatusError]


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, environ: Mapping[str, str] | None = None, base_url: str | None = None
    ) -> None:
        environ = os.environ if environ is None else environ
        self._api_key = environ.get("ANTHROPIC_API_KEY") or ""
        self._base_url = base_url or environ.get("ANTHROPIC_BASE_URL") or None
        self._wire_cache: _Wire | None = None
        self._lock = threading.Lock()

    def configured(self) -> bool:
        return bool(self._api_key)

    def _wire(self) -> _Wire:
        with self._lock:
            if self._wire_cache is None:
                import anthropic  # heavy: only when this provider is actually used

                transport = httpx.HTTPTransport(
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=100)
                )
                sdk = anthropic.Anthropic(
                    api_key=self._api_key,
                    base_url=self._base_url,
                    max_retries=0,
                    http_client=httpx.Client(transport=transport, timeout=600.0),
                )
                # The SDK's own telemetry headers (x-stainless-*) are left out: a dozen headers
                # to build and parse on every request, and they describe the gateway, not the
                # caller.
                headers = {
                    k: v
                    for k, v in sdk.default_headers.items()
                    if isinstance(v, str) and not k.lower().startswith("x-stainless")
                }
                self._wire_cache = _Wire(
                    http=sdk._client,
                    transport=transport,
                    url=str(sdk.base_url).rstrip("/") + "/v1/messages",
                    headers={**headers, "content-type": "application/json"},
                    status_error=sdk._make_status_error_from_response,
                )
            return self._wire_cache

    def _send(
        self, body: dict[str, Any], model: str, timeout_s: float, stream: bool
    ) -> httpx.Response:
        wire = self._wire()
        payload = json.dumps({**body, "model": model, "stream": stream}).encode()
        request = httpx.Request(
            "POST",
            wire.url,
            content=payload,
            headers=wire.headers,
            extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
        )
        try:
            response = wire.transport.handle_request(request)
            response.request = request
            if not stream:
                try:
                    response.read()
                finally:
                    response.close()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"anthropic did not answer within {timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"anthropic is unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                response.read()
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"anthropic error answer broke off: {exc}") from exc
            finally:
                response.close()
            error = wire.status_error(response)
            raise _status_error(response.status_code, _message_of(error), response.headers)
        return response

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        return self._send(body, model, timeout_s, stream=False).content

    def stream(self, body: dict[str, Any], model: str, timeout_s: float) -> Iterator[bytes]:
        response = self._send(body, model, timeout_s, stream=True)
        return _relay(response, timeout_s)

    def close(self) -> None:
        if self._wire_cache is not None:
            self._wire_cache.http.close()


def _status_error(status: int, message: str, headers: Any) -> UpstreamError:
    return upstream_error_for_status(
        status, f"anthropic: {message}", retry_after=parse_retry_after(headers)
    )


def _message_of(exc: anthropic.APIStatusError) -> str:
    """The upstream's own error message; the SDK's ``message`` wraps it in a dict's repr."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else exc.message


def _relay(response: httpx.Response, timeout_s: float) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"anthropic stream stalled for {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"anthropic stream broke: {exc}") from exc
    finally:
        response.close()
