"""Anthropic, through the official SDK's low-level client, with its own retries off.

The gateway speaks Anthropic's format on both sides, so the body is passed through as bytes
and the answer returned as bytes: no object model on the hot path. The SDK still owns the
wire details (auth headers, version header, base URL, connection pool, error classes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import (
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    parse_retry_after,
    upstream_error_for_status,
)

if TYPE_CHECKING:
    import anthropic


def _transport() -> Any:
    """The HTTP library the installed SDK is built on (``httpx``, or ``httpx2`` from 2.x on):
    its ``Response`` is what the low-level ``post`` returns raw, its errors what a body read
    raises."""
    from anthropic import _base_client

    return getattr(_base_client, "httpx2", None) or getattr(_base_client, "httpx")  # noqa: B009


def preload() -> None:
    """Import the SDK now. Called at start-up when the provider is configured, so the import
    happens once in the server's parent process and its pages are shared by forked workers."""
    _transport()


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, environ: Mapping[str, str] | None = None, base_url: str | None = None
    ) -> None:
        environ = os.environ if environ is None else environ
        self._api_key = environ.get("ANTHROPIC_API_KEY") or ""
        self._base_url = base_url or environ.get("ANTHROPIC_BASE_URL") or None
        self._client: anthropic.Anthropic | None = None
        self._lock = threading.Lock()

    def configured(self) -> bool:
        return bool(self._api_key)

    def _sdk(self) -> anthropic.Anthropic:
        with self._lock:
            if self._client is None:
                import anthropic  # heavy: only when this provider is actually used

                self._client = anthropic.Anthropic(
                    api_key=self._api_key, base_url=self._base_url, max_retries=0
                )
            return self._client

    def _send(self, body: dict[str, Any], model: str, timeout_s: float, stream: bool) -> Any:
        import anthropic

        try:
            return self._sdk().post(
                "/v1/messages",
                cast_to=_transport().Response,
                body={**body, "model": model, "stream": stream},
                options={"timeout": timeout_s},
                stream=stream,
            )
        except anthropic.APIStatusError as exc:
            raise _status_error(exc.status_code, _message_of(exc), exc.response.headers) from exc
        except anthropic.APITimeoutError as exc:
            raise UpstreamTimeout(f"anthropic did not answer within {timeout_s:g} s") from exc
        except anthropic.APIConnectionError as exc:
            raise UpstreamUnavailable(f"anthropic is unreachable: {exc}") from exc

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        transport = _transport()
        response = self._send(body, model, timeout_s, stream=False)
        try:
            return bytes(response.content)
        except transport.TimeoutException as exc:
            raise UpstreamTimeout(f"anthropic did not finish within {timeout_s:g} s") from exc
        except transport.HTTPError as exc:
            raise UpstreamUnavailable(f"anthropic answer broke off: {exc}") from exc

    def stream(self, body: dict[str, Any], model: str, timeout_s: float) -> Iterator[bytes]:
        response = self._send(body, model, timeout_s, stream=True)
        return _relay(response, timeout_s)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _status_error(status: int, message: str, headers: Any) -> UpstreamError:
    return upstream_error_for_status(
        status, f"anthropic: {message}", retry_after=parse_retry_after(headers)
    )


def _message_of(exc: anthropic.APIStatusError) -> str:
    """The upstream's own error message; the SDK's ``message`` wraps it in a dict's repr."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else exc.message


def _relay(response: Any, timeout_s: float) -> Iterator[bytes]:
    transport = _transport()
    try:
        yield from response.iter_bytes()
    except transport.TimeoutException as exc:
        raise UpstreamTimeout(f"anthropic stream stalled for {timeout_s:g} s") from exc
    except transport.HTTPError as exc:
        raise UpstreamUnavailable(f"anthropic stream broke: {exc}") from exc
    finally:
        response.close()
