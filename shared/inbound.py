"""Parse a request body that is plain JSON or a CloudEvent (binary or structured mode).

The event's ``data`` is the same JSON a plain POST carries, so callers see one shape either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequest

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True)
class Inbound:
    """What a function was asked: the JSON payload and, when it came as an event, the event."""

    data: Any
    """The JSON payload (a plain POST's body, or the CloudEvent's ``data``)."""
    event_id: str | None = None
    """The CloudEvent's ``id``; None for a plain POST."""
    event_type: str | None = None
    """The CloudEvent's ``type``; None for a plain POST."""
    event_source: str | None = None
    """The CloudEvent's ``source``; None for a plain POST."""


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    content_type = (headers.get("content-type") or "").lower()
    return "ce-specversion" in headers or content_type.startswith(STRUCTURED_CONTENT_TYPE)


def parse_json(body: bytes) -> Any:
    if not body or not body.strip():
        raise BadRequest("request body is empty: send a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("request body is not valid JSON: nested too deeply") from exc


def parse_cloudevent(headers: Mapping[str, str], body: bytes) -> Inbound:
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_http

    try:
        event = from_http(dict(headers), body)
    except GenericException as exc:
        raise BadRequest(f"invalid CloudEvent: {exc}") from exc
    except (ValueError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        # The SDK assumes a structured event's body is a JSON object: for `null` or a list it
        # fails with AttributeError/TypeError from inside.
        raise BadRequest(f"invalid CloudEvent: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("invalid CloudEvent: JSON nested too deeply") from exc
    data = event.data
    content_type = str(event.get("datacontenttype") or headers.get("content-type") or "")
    if isinstance(data, bytes) or (isinstance(data, str) and "json" not in content_type.lower()):
        # Without a JSON content type the SDK leaves data undecoded. With one, a str is
        # already the decoded JSON (a string), not text to decode again.
        data = parse_json(data.encode() if isinstance(data, str) else data)
    if data is None:
        raise BadRequest("CloudEvent has no data: put the request JSON in the event's data")
    return Inbound(
        data=data,
        event_id=event.get("id"),
        event_type=event.get("type"),
        event_source=event.get("source"),
    )


def parse_request(headers: Mapping[str, str], body: bytes) -> Inbound:
    """Plain JSON or a CloudEvent, in; one ``Inbound``, out. Bad input is a ``BadRequest``."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if is_cloudevent(lowered):
        return parse_cloudevent(lowered, body)
    return Inbound(data=parse_json(body))


def require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(data).__name__}")
    return data
