"""Outbound HTTP: one pooled client per process, JSON in and out, failures mapped to the tree."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.http import JsonResponse

_client: httpx.Client | None = None
_lock = threading.Lock()


def client() -> httpx.Client:
    """The process-wide pooled client (created on first use, so importing costs nothing)."""
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                follow_redirects=False,
            )
        return _client


def close() -> None:
    """Close the pooled client and its idle connections; the next request opens a new one."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
            _client = None


def request_json(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    service: str = "upstream",
) -> JsonResponse:
    """Send JSON, get JSON. Transport failures raise ``UpstreamTimeout``/``UpstreamUnavailable``
    naming ``service``; HTTP error statuses are returned for the caller to interpret."""
    try:
        response = client().request(
            method,
            url,
            json=body,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
        )
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{service} did not answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"{service} is unreachable: {exc}") from exc
    try:
        data = response.json() if response.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    return JsonResponse(status=response.status_code, headers=response.headers, data=data)
