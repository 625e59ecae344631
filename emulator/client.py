"""The ``agentorch`` client's wire side: tasks to the orchestrator, health of the services.

``ask`` posts ``{"task", "data", "stream": true}`` and reads the server-sent events the
orchestrator answers with (``step_started``, ``step_finished``, then ``result``), handing each
to a callback as it arrives; an orchestrator that answers plain JSON works too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from emulator.errors import KeyRefused
from shared.errors import BadRequest, UpstreamError, UpstreamUnavailable
from shared.http import INSTANCE_HEADER

OnEvent = Callable[[str, dict[str, Any]], None]
START_HINT = "start the stack with `agentorch up -d` (or `make up`), or pass --url"


def iter_sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` for each server-sent event; ``message`` when it names no event."""
    event, data = "", list[str]()
    for line in lines:
        if not line:
            if data or event:
                yield event or "message", "\n".join(data)
            event, data = "", list[str]()
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                event = value
            elif key == "data":
                data.append(value)
    if data or event:
        yield event or "message", "\n".join(data)


def read_data(path: Path) -> Any:
    """A ``--data`` file: JSON is sent parsed, anything else (CSV) as its text."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot read --data {path}: {exc.strerror}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BadRequest(f"--data {path} is not valid JSON: {exc}") from exc
    return text


def ask(
    url: str,
    task: str,
    data: Any = None,
    *,
    on_event: OnEvent | None = None,
    stream: bool = True,
    timeout_s: float = 300.0,
    api_key: str | None = None,
    session_id: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Send ``task`` to the orchestrator at ``url`` (with ``api_key`` when it requires one:
    ``ORCHESTRATOR_API_KEYS``; in the conversation ``session_id`` when given); its final
    result object. Raises ``KeyRefused`` on a 401."""
    body: dict[str, Any] = {"task": task, "stream": stream}
    if session_id:
        body["session_id"] = session_id
    headers = {"accept": "text/event-stream"}
    if api_key:
        headers["x-api-key"] = api_key
    if data is not None:
        body["data"] = data
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    try:
        with (
            httpx.Client(timeout=timeout, transport=transport) as client,
            client.stream("POST", url, json=body, headers=headers) as reply,
        ):
            if reply.status_code == 401:
                reply.read()
                sent = "refused the key sent" if api_key else "requires a key"
                raise KeyRefused(
                    f"the orchestrator at {url} {sent} (401): set ORCHESTRATOR_API_KEY (in .env "
                    "or the environment) to one of its ORCHESTRATOR_API_KEYS"
                )
            if reply.status_code >= 400:
                reply.read()
                raise UpstreamError(f"the orchestrator at {url} answered {error_text(reply)}")
            if not reply.headers.get("content-type", "").startswith("text/event-stream"):
                reply.read()
                return dict(reply.json())
            return _read_stream(reply.iter_lines(), url, on_event)
    except httpx.ConnectError as exc:
        raise UpstreamUnavailable(f"cannot reach the orchestrator at {url}: {START_HINT}") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamError(f"the orchestrator at {url} took longer than {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"talking to the orchestrator at {url} failed: {exc}") from exc


def _read_stream(lines: Iterable[str], url: str, on_event: OnEvent | None) -> dict[str, Any]:
    for event, data in iter_sse(lines):
        try:
            payload = json.loads(data) if data else {}
        except ValueError as exc:
            raise UpstreamError(
                f"the orchestrator at {url} sent a {event} that is not JSON"
            ) from exc
        if event == "error":
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            raise UpstreamError(f"the orchestrator failed: {message or data}")
        if on_event is not None and isinstance(payload, dict):
            on_event(event, payload)
        if event == "result":
            return dict(payload)
    raise UpstreamError(f"the orchestrator at {url} ended its stream without a result")


def error_text(reply: httpx.Response) -> str:
    """``404 not_found_error: ...`` from the JSON error shape, or the start of the body."""
    try:
        error = reply.json().get("error", {})
        return f"{reply.status_code} {error.get('type', 'error')}: {error.get('message', '')}"
    except (ValueError, AttributeError):
        return f"{reply.status_code}: {reply.text[:200]}"


@dataclass
class Health:
    service: str
    url: str
    healthy: bool
    detail: str
    latency_ms: float | None = None


def check_health(
    urls: Mapping[str, str],
    timeout_s: float = 3.0,
    *,
    instances: Mapping[str, str] | None = None,
) -> list[Health]:
    """``GET /health`` of each service; where ``instances`` names the token a service was
    started with, an answer without it comes from another server on its port: unhealthy."""
    instances = instances or {}
    results = []
    with httpx.Client(timeout=timeout_s) as client:
        for name, url in urls.items():
            began = time.monotonic()
            try:
                reply = client.get(f"{url}/health")
            except httpx.HTTPError as exc:
                results.append(Health(name, url, False, f"unreachable ({type(exc).__name__})"))
                continue
            ms = (time.monotonic() - began) * 1000
            expected = instances.get(name)
            if expected is not None and reply.headers.get(INSTANCE_HEADER) != expected:
                detail = f"answers {reply.status_code}, but not from this stack's process"
                results.append(Health(name, url, False, detail, round(ms, 1)))
                continue
            detail = "ok" if reply.is_success else error_text(reply)
            results.append(Health(name, url, reply.is_success, detail, round(ms, 1)))
    return results


def approve(
    url: str,
    run_id: str,
    approved: bool,
    *,
    note: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """A person's answer to a run waiting for approval (``POST /runs/{id}/approval``); the
    run's result once it went on."""
    headers = {"x-api-key": api_key} if api_key else {}
    body: dict[str, Any] = {"approve": approved}
    if note:
        body["note"] = note
    target = f"{url.rstrip('/')}/runs/{run_id}/approval"
    try:
        reply = httpx.post(target, json=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"cannot reach the orchestrator at {url}: {exc}") from exc
    if not reply.is_success:
        raise UpstreamError(f"the orchestrator at {url} answered {error_text(reply)}")
    return dict(reply.json())


def providers(
    gateway_url: str, api_key: str | None = None, timeout_s: float = 3.0
) -> list[dict[str, Any]]:
    """The gateway's ``GET /providers`` deployments (a keyed endpoint when the gateway has
    ``GATEWAY_API_KEYS``). Raises ``KeyRefused`` on a 401."""
    headers = {"x-api-key": api_key} if api_key else {}
    try:
        reply = httpx.get(f"{gateway_url}/providers", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(
            f"cannot reach the gateway at {gateway_url}: {START_HINT}"
        ) from exc
    if reply.status_code == 401:
        sent = "refused the key" if api_key else "wants a key and none was given"
        raise KeyRefused(
            f"the gateway at {gateway_url} {sent} (401): set GATEWAY_API_KEYS (in .env or the "
            "environment) to the gateway's keys, or pass --api-key (or GATEWAY_API_KEY)"
        )
    if not reply.is_success:
        raise UpstreamError(f"the gateway's /providers answered {error_text(reply)}")
    return list(reply.json().get("deployments", []))


__all__ = ["Health", "approve", "ask", "check_health", "iter_sse", "providers", "read_data"]
