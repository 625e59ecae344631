"""The one adapter between functions-framework's Flask request and a function's plain core.

``FunctionApp`` routes by method and path, answers ``GET /health`` and ``GET /metrics`` for
every function, gives each request an ``x-request-id`` (echoed or created), enforces the body
limit, and is the single place that turns exceptions into the JSON error shape.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import flask

from shared import metrics
from shared.errors import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceError,
)
from shared.inbound import Inbound, parse_request
from shared.logs import get_logger

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

log = get_logger("http")


@dataclass
class Call:
    """One HTTP request as a function's routes see it: no Flask in sight."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Case-insensitive request headers."""
    body: bytes
    request_id: str
    query: Mapping[str, str] = field(default_factory=dict)

    def inbound(self) -> Inbound:
        """The JSON payload, from a plain POST or a CloudEvent."""
        return parse_request(self.headers, self.body)


@dataclass
class Reply:
    """What a route answers: a JSON-able value, raw bytes, or an iterator of bytes (a stream)."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


Handler = Callable[[Call], Reply]


def error_reply(exc: ServiceError) -> Reply:
    return Reply(exc.body(), status=exc.status_code, headers=exc.response_headers())


def request_id_of(offered: str | None) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a new one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return uuid.uuid4().hex


def clip(text: str, limit: int = 80) -> str:
    """At most ``limit`` characters of something a client sent, for an error message or log:
    a 31 MB path must not come back in a 404."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class FunctionApp:
    """Routes ``(method, path)`` to handlers and renders every outcome as JSON."""

    def __init__(
        self,
        name: str,
        routes: Mapping[tuple[str, str], Handler],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.max_body_bytes = max_body_bytes
        self._health = health
        self._routes: dict[str, dict[str, Handler]] = {}
        for (method, path), handler in routes.items():
            self._routes.setdefault(path, {})[method.upper()] = handler
        self._routes.setdefault("/health", {})["GET"] = self._health_route
        self._routes.setdefault("/metrics", {})["GET"] = self._metrics_route
        metrics.configure()  # at start-up, before gunicorn forks: see shared/metrics.py

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        request_id = request_id_of(request.headers.get("x-request-id"))
        path = request.path.rstrip("/") or "/"
        route = path if path in self._routes else "unmatched"
        try:
            handler = self._handler_for(request.method, path)
            call = Call(
                method=request.method,
                path=path,
                headers=cast(Mapping[str, str], request.headers),
                body=self._read_body(request),
                request_id=request_id,
                query=request.args,
            )
            reply = handler(call)
        except ServiceError as exc:
            reply = error_reply(exc)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": path})
            reply = error_reply(ServiceError(f"internal error (request id {request_id})"))
        try:
            response = self._render(reply)
        except Exception:  # e.g. a body json.dumps cannot encode: still answer in our shape
            log.exception("cannot render reply", extra={"request_id": request_id, "path": path})
            reply = error_reply(ServiceError(f"internal error (request id {request_id})"))
            response = self._render(reply)
        response.headers["x-request-id"] = request_id
        metrics.HTTP_REQUESTS.labels(self.name, route, str(reply.status)).inc()
        metrics.HTTP_LATENCY.labels(self.name, route).observe(time.perf_counter() - started)
        return response

    def _handler_for(self, method: str, path: str) -> Handler:
        by_method = self._routes.get(path)
        if by_method is None:
            known = ", ".join(sorted(self._routes))
            raise NotFound(f"no route {path}; this function answers {known}")
        handler = by_method.get(method.upper())
        if handler is None:
            allowed = ", ".join(sorted(by_method))
            raise MethodNotAllowed(
                f"{method} is not allowed on {path}; use {allowed}", headers={"allow": allowed}
            )
        return handler

    def _read_body(self, request: flask.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(
                f"request body is {length} bytes; the limit is {self.max_body_bytes} bytes"
            )
        # Without a Content-Length (chunked), read one byte past the limit to detect excess.
        body = (
            request.stream.read(self.max_body_bytes + 1) if length is None else request.get_data()
        )
        if len(body) > self.max_body_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
        return body

    @staticmethod
    def _render(reply: Reply) -> flask.Response:
        body = reply.body
        if isinstance(body, Iterator):
            return flask.Response(
                _closing(body),
                status=reply.status,
                headers=reply.headers,
                content_type=reply.content_type,
            )
        if not isinstance(body, bytes | str):
            body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return flask.Response(
            body, status=reply.status, headers=reply.headers, content_type=reply.content_type
        )

    def _health_route(self, call: Call) -> Reply:
        extra = self._health() if self._health else {}
        return Reply({"status": "ok", "function": self.name, **extra})

    def _metrics_route(self, call: Call) -> Reply:
        payload, content_type = metrics.render()
        return Reply(payload, content_type=content_type)


def _closing(chunks: Iterator[bytes]) -> Iterable[bytes]:
    # Werkzeug calls close() on the iterable when the client goes away; pass that on.
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
