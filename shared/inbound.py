"""Parse a request body that is plain JSON or a CloudEvent (binary or structured mode).

The event's ``data`` is the same JSON a plain POST carries, so callers see one shape either way.
An event's ``id``, ``source`` and ``type`` must be non-empty strings, as the CloudEvents spec
requires (the SDK takes an empty header or an integer ``id`` as they come). A function may
bound how deeply the payload nests (``max_depth``): Python's own limit on the parser is not
one, as a payload just under it is accepted and then fails deeper in the stack, when it is
encoded again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import BadRequest

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
REQUIRED_STRINGS = ("id", "source", "type")
"""The event attributes the spec says MUST be non-empty strings (``specversion`` is the SDK's)."""
_CONTAINERS = (dict, list)


@dataclass(frozen=True)
class Inbound:
    """What a function was asked: the JSON payload and, when it came as an event, the event."""

    data: Any
    """The JSON payload (a plain POST's body, or the CloudEvent's ``data``)."""
    event_id: str | None = None
    """The CloudEvent's ``id`` (a non-empty string); None for a plain POST."""
    event_type: str | None = None
    """The CloudEvent's ``type``; None for a plain POST."""
    event_source: str | None = None
    """The CloudEvent's ``source`` (a non-empty string); None for a plain POST."""


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    return "ce-specversion" in headers or is_structured(headers)


def is_structured(headers: Mapping[str, str]) -> bool:
    return (headers.get("content-type") or "").lower().startswith(STRUCTURED_CONTENT_TYPE)


def parse_json(body: bytes, max_depth: int | None = None) -> Any:
    if not body or not body.strip():
        raise BadRequest("request body is empty: send a JSON object")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise too_deep(max_depth) from exc
    if max_depth is not None:
        check_depth(value, max_depth, body)
    return value


def check_depth(value: Any, max_depth: int, raw: str | bytes, what: str = "request body") -> None:
    """Refuse ``value`` (decoded from ``raw``) when its arrays and objects nest more than
    ``max_depth`` levels (``[]`` is one level, ``{"a": []}`` two)."""
    if isinstance(raw, str):
        brackets = raw.count("[") + raw.count("{")
    else:
        brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= max_depth:
        return  # it cannot nest deeper than it has brackets: most bodies end here, unwalked
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    # Level by level, not recursively: the point is not to meet Python's recursion limit.
    while level:
        depth += 1
        if depth > max_depth:
            raise too_deep(max_depth, what)
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            below += [item for item in items if type(item) in _CONTAINERS]
        level = below


def too_deep(max_depth: int | None, what: str = "request body") -> BadRequest:
    if max_depth is None:  # only the parser's own recursion limit said so
        return BadRequest(f"{what} is nested too deeply")
    return BadRequest(
        f"{what} is nested too deeply: at most {max_depth} levels of arrays and objects"
    )


def parse_cloudevent(
    headers: Mapping[str, str], body: bytes, max_depth: int | None = None
) -> Inbound:
    if not is_structured(headers):  # the SDK would answer "failed to find specversion"
        for name in REQUIRED_STRINGS:
            if f"ce-{name}" not in headers:
                raise BadRequest(
                    f"invalid CloudEvent: attribute '{name}' (header ce-{name}) is missing"
                )
    event = _read_event(headers, body, max_depth)
    for name in REQUIRED_STRINGS:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            where = "" if is_structured(headers) else f" (header ce-{name})"
            got = "empty" if value == "" else f"a {type(value).__name__}"
            raise BadRequest(
                f"invalid CloudEvent: attribute '{name}'{where} must be a non-empty string, "
                f"got {got}"
            )
    raw = event.data  # as sent: the SDK was told not to decode it
    if raw is None:
        raise BadRequest("CloudEvent has no data: put the request JSON in the event's data")
    data = parse_json(raw.encode() if isinstance(raw, str) else raw, max_depth)
    content_type = str(event.get("datacontenttype") or headers.get("content-type") or "")
    if isinstance(data, str) and "json" not in content_type.lower():
        data = parse_json(data.encode(), max_depth)  # text data that carries the JSON
    if data is None:
        raise BadRequest("CloudEvent has no data: put the request JSON in the event's data")
    return Inbound(
        data=data,
        event_id=event.get("id"),
        event_type=event.get("type"),
        event_source=event.get("source"),
    )


def _read_event(headers: Mapping[str, str], body: bytes, max_depth: int | None) -> CloudEvent:
    """The event, its data left as the text or bytes that carried it: ``parse_json`` decodes
    it, so an event's data is bounded as a plain body is."""
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_http

    try:
        return from_http(dict(headers), body, data_unmarshaller=_undecoded)
    except GenericException as exc:
        if isinstance(exc.__context__, RecursionError):  # the SDK re-encodes a structured
            raise too_deep(max_depth, "invalid CloudEvent: data") from exc  # event's data
        raise BadRequest(f"invalid CloudEvent: {exc}") from exc
    except (ValueError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        # The SDK assumes a structured event's body is a JSON object: for `null` or a list it
        # fails with AttributeError/TypeError from inside.
        raise BadRequest(f"invalid CloudEvent: {exc}") from exc
    except RecursionError as exc:
        raise too_deep(max_depth, "invalid CloudEvent: JSON") from exc


def _undecoded(raw: Any) -> Any:
    return raw


def parse_request(
    headers: Mapping[str, str], body: bytes, *, max_depth: int | None = None
) -> Inbound:
    """Plain JSON or a CloudEvent, in; one ``Inbound``, out. Bad input is a ``BadRequest``;
    so is a payload nested more than ``max_depth`` levels, when given."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if is_cloudevent(lowered):
        return parse_cloudevent(lowered, body, max_depth)
    return Inbound(data=parse_json(body, max_depth))


def require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(data).__name__}")
    return data
