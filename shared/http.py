"""The request model every function's edge shares, with no web framework in it.

``Call`` is one request as a function's routes see it, ``Reply`` what a route answers, and
``error_reply`` the one rendering of a ``ServiceError``. ``shared.asgi.AsyncFunctionApp`` adapts
them to functions-framework's ASGI path (Starlette), where every function is served.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from shared.errors import BadRequest, ServiceError
from shared.inbound import Inbound, parse_request

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` with the encoder made once:
``json.dumps`` with any option makes a new encoder per call, a cost on every call that this
skips (bench/RESULTS.md, "Figures quoted in the code"). What JSON cannot hold raises: a body
that cannot be encoded is a bug, answered as a 500."""
json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
"""``compact_json`` for values from anywhere (a trace, an agent's result, an event): what JSON
cannot hold is written as its ``str()``."""
readable_json = json.JSONEncoder(ensure_ascii=False, default=str).encode
"""``json_text`` spaced as people write it (``{"a": 1, "b": 2}``): agents' results as the
model reads them and a stopped run's answer quotes them."""
SSE_MEDIA_TYPE = "text/event-stream"
SSE_CONTENT_TYPE = SSE_MEDIA_TYPE + "; charset=utf-8"
ANTHROPIC_VERSION = "2023-06-01"
"""The Messages API version this project speaks: the orchestrator to the gateway, the gateway
to Anthropic."""
EXECUTION_ID = "function-execution-id"
"""The header functions-framework puts its execution id in (set by the platform, or made)."""
INSTANCE_VARIABLE = "AGENTORCH_INSTANCE"
INSTANCE_HEADER = "x-agentorch-instance"
"""The emulator gives each process it starts a random token in ``AGENTORCH_INSTANCE``; ``/health``
echoes it in ``x-agentorch-instance``, so a health check proves the answer came from that process
and not from another server that holds the port."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


_ascii_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def json_bytes(value: Any, encode: Callable[[Any], str] = compact_json) -> bytes:
    """``encode(value)`` as UTF-8. A string may hold a lone surrogate (``"\\ud800"`` is
    valid JSON, so a client or an upstream can send one) which UTF-8 cannot encode: such a
    value is written with ASCII escapes instead, as valid JSON as the one it came in."""
    try:
        return encode(value).encode()
    except UnicodeEncodeError:
        return _ascii_json(value).encode()


def sse_event(event: str, data: Any) -> bytes:
    """One server-sent event: its name, its data as compact JSON, and the blank line."""
    return b"event: " + event.encode() + b"\ndata: " + json_bytes(data, json_text) + b"\n\n"


@dataclass(frozen=True)
class Query:
    """A request's query string, read one parameter at a time: a value a route reads that is
    given twice, or is not what the route needs, is a 400 naming the parameter (never a 500
    from ``int()``). Parameters no route reads are never looked at."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes) -> Query:
        """The query string as the ASGI scope holds it; ``%``-escapes decode as UTF-8 (a
        malformed one as U+FFFD), so parsing itself never fails."""
        values: dict[str, tuple[str, ...]] = {}
        if not raw:  # most requests: skip the parser
            return cls(values)
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            values[name] = (*values.get(name, ()), value)
        return cls(values)

    def get(self, name: str) -> str | None:
        """The value of ``name``, None when absent."""
        given = self.values.get(name, ())
        if len(given) > 1:
            raise BadRequest(f"{name}: given {len(given)} times; give it once")
        return given[0] if given else None

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        """``name`` as a decimal integer from ``low`` to ``high``; ``default`` when absent."""
        raw = self.get(name)
        if raw is None:
            return default
        digits = raw.lstrip("0") or "0"
        # ASCII digits only ("²" is a digit to str.isdigit, not to int), and no more of them
        # than ``high`` has: int() refuses 4,300 digits and more, and costs to get there.
        fits = raw.isascii() and raw.isdigit() and len(digits) <= len(str(high))
        if not fits or not low <= int(digits) <= high:
            raise BadRequest(
                f"{name}: must be an integer from {low} to {high}, got {clip(raw, 20)!r}"
            )
        return int(digits)


@dataclass
class Call:
    """One HTTP request as a function's routes see it: no web framework in sight."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Request headers, names in lower case (the first of a repeated header)."""
    body: bytes
    request_id: str
    query: Query = field(default_factory=Query)

    def inbound(self, max_depth: int | None = None) -> Inbound:
        """The JSON payload, from a plain POST or a CloudEvent; nested at most ``max_depth``
        levels of arrays and objects, when given."""
        return parse_request(self.headers, self.body, max_depth=max_depth)


@dataclass
class Reply:
    """What a route answers: a JSON-able value, raw bytes, or an async iterator of bytes
    (a stream)."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    after: Callable[[], Awaitable[None]] | None = None
    """Work the request does once its answer is sent (the orchestrator's sink delivery): a
    stopping worker waits for it as for the request itself (``shared.server``)."""


def error_reply(exc: ServiceError) -> Reply:
    return Reply(exc.body(), status=exc.status_code, headers=exc.response_headers())


def header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """An ASGI scope's headers as a dict with lower-case names: one lookup each, where a
    Starlette ``Headers`` scans and decodes the whole list on every ``get``. A repeated
    header keeps its first value, as ``Headers.get`` does."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


def request_id_of(offered: str | None, execution_id: str | None = None) -> str:
    """The caller's ``x-request-id`` when it is a sane token; else functions-framework's
    execution id for this request (the platform's, or the one functions-framework made);
    else a new one."""
    for candidate in (offered, execution_id):
        if candidate and _REQUEST_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


def clip(text: str, limit: int = 80) -> str:
    """At most ``limit`` characters of something a client sent, for an error message or log:
    a 31 MB path must not come back in a 404."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclass(frozen=True)
class JsonResponse:
    """What an outbound JSON call got back (``shared.aio.AsyncHttp.request_json``)."""

    status: int
    headers: Mapping[str, str]
    """Names in lower case, as every ``shared.transport`` gives them."""
    data: Any
    """The decoded JSON body, or None when the body was empty or not JSON."""
