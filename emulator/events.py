"""``agentorch invoke``: a plain JSON POST to a service, or the same data as a CloudEvent.

CloudEvents are built with the ``cloudevents`` SDK: binary mode (``ce-*`` headers, the data as
the body) by default, structured mode (``application/cloudevents+json``) on request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from shared.errors import BadRequest, UpstreamUnavailable

EVENT_SOURCE = "agentorch/cli"


@dataclass
class Invocation:
    """What to send: headers and body bytes."""

    headers: dict[str, str]
    body: bytes


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"--data is not valid JSON: {exc}") from exc


def build(data: Any, cloudevent_type: str | None = None, *, structured: bool = False) -> Invocation:
    if cloudevent_type is None:
        return Invocation({"content-type": "application/json"}, json.dumps(data).encode())
    event = CloudEvent(
        {"type": cloudevent_type, "source": EVENT_SOURCE, "datacontenttype": "application/json"},
        data,
    )
    headers, body = to_structured(event) if structured else to_binary(event)
    return Invocation(dict(headers), body if isinstance(body, bytes) else str(body).encode())


def invoke(
    url: str,
    invocation: Invocation,
    *,
    timeout_s: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Response:
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            return client.post(url, content=invocation.body, headers=invocation.headers)
    except httpx.ConnectError as exc:
        raise UpstreamUnavailable(
            f"cannot reach {url}: is the stack running? (`agentorch up -d`, `agentorch status`)"
        ) from exc
