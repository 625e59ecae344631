"""The edge: functions-framework's ASGI path (Starlette) to a function's plain core.

"The edge" names this layer (with ``shared.server``, the uvicorn worker under it) and nothing
else: where every request enters a function, is bounded, and where errors are rendered.

Every function is served here (the gateway, the orchestrator, the agents): one request model
(``Call``/``Reply`` from ``shared.http``), ``/health`` and ``/metrics`` for all, and the single
place that turns exceptions into the JSON error shape. Handlers are coroutines and a stream is
an async iterator, so a worker holds thousands of requests in flight instead of one per
thread; CPU-bound work (an agent's run) goes to a thread, off the event loop.

Bodies are bounded while they are read: ``Content-Length`` is checked before a byte is read, a
chunked body stops at the limit, and the whole body must arrive within ``body_timeout_s`` (a
client trickling a body cannot hold a request open). A client that goes away mid-stream
cancels the stream's iterator, which closes whatever it was reading from upstream.

Building an app changes nothing outside it: the process it is served from (metrics shared by the
workers, their bounded protocol) is set up by ``shared.runtime.prepare()``, which each function's
``main.py`` calls first.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive

from shared import metrics, server, telemetry
from shared.context import REQUEST_ID
from shared.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
)
from shared.http import (
    DEFAULT_MAX_BODY_BYTES,
    EXECUTION_ID,
    INSTANCE_HEADER,
    INSTANCE_VARIABLE,
    Call,
    Query,
    Reply,
    clip,
    error_reply,
    header_map,
    json_bytes,
    request_id_of,
)
from shared.logs import get_logger

AsyncHandler = Callable[[Call], Awaitable[Reply]]

log = get_logger("asgi")


class AsyncFunctionApp:
    """Routes ``(method, path)`` to coroutine handlers and renders every outcome as JSON."""

    def __init__(
        self,
        name: str,
        routes: Mapping[tuple[str, str], AsyncHandler],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_timeout_s: float | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
        guard: Callable[[Call], None] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``guard`` runs before ``/metrics`` is answered (e.g. the gateway's key check);
        ``body_timeout_s`` defaults to ``$REQUEST_BODY_TIMEOUT_S`` or 30 s; ``on_close``
        releases what the handlers hold open (their outbound connections), run by ``aclose``."""
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s or server.ServerSettings.load().body_timeout_s
        self._health = health
        self._on_close = on_close
        self._guard = guard
        instance = os.environ.get(INSTANCE_VARIABLE, "")
        self._health_headers = {INSTANCE_HEADER: instance} if instance else {}
        self._routes: dict[str, dict[str, AsyncHandler]] = {}
        for (method, path), handler in routes.items():
            self._routes.setdefault(path, {})[method.upper()] = handler
        self._routes.setdefault("/health", {})["GET"] = self._health_route
        self._routes.setdefault("/metrics", {})["GET"] = self._metrics_route

    async def aclose(self) -> None:
        """Release what the handlers hold (tests, or a server that embeds the app; under
        functions-framework no shutdown event reaches the app, see ``shared.server``)."""
        if self._on_close is not None:
            await self._on_close()

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        scope = request.scope
        headers = header_map(scope["headers"])
        request_id = request_id_of(headers.get("x-request-id"), headers.get(EXECUTION_ID))
        token = REQUEST_ID.set(request_id)
        path = scope["path"].rstrip("/") or "/"
        template = self.route_of(path)
        route = template if template in self._routes else "unmatched"
        method = scope["method"]
        try:
            with telemetry.server_span(f"{method} {route}", headers) as span:
                try:
                    reply = await self._dispatch(request, headers, path, template, request_id)
                    reply.headers["x-request-id"] = request_id
                    response = self._render(reply)
                except Exception:  # e.g. a body json.dumps cannot encode: answer in our shape
                    log.exception("cannot render reply", extra={"path": clip(path)})
                    error = ServiceError(f"internal error (request id {request_id})")
                    reply = error_reply(error)
                    reply.headers["x-request-id"] = request_id
                    response = self._render(reply)
                if span.recording:
                    _describe(span, method, path, route, reply.status)
        finally:
            REQUEST_ID.reset(token)
        self.decorate(response, headers)
        metrics.HTTP_REQUESTS.labels(self.name, route, str(reply.status)).inc()
        metrics.HTTP_LATENCY.labels(self.name, route).observe(time.perf_counter() - started)
        return response

    async def _dispatch(
        self,
        request: Request,
        headers: dict[str, str],
        path: str,
        template: str,
        request_id: str,
    ) -> Reply:
        try:
            method = request.scope["method"]
            handler = self._handler_for(method, path, template)
            call = Call(
                method=method,
                path=path,
                headers=headers,
                body=await self._read_body(request, method, headers),
                request_id=request_id,
                query=Query.parse(request.scope.get("query_string", b"")),
            )
            return await handler(call)
        except ServiceError as exc:
            return self.error_reply(exc, template)
        except Exception:
            log.exception("unhandled error", extra={"path": clip(path)})
            error = ServiceError(f"internal error (request id {request_id})")
            return self.error_reply(error, template)

    def error_reply(self, exc: ServiceError, route: str) -> Reply:
        """The answer to ``exc`` raised on ``route``: the one JSON error shape here. A function
        that also serves another API's routes renders that API's shape there (the gateway's
        OpenAI-compatible routes answer in OpenAI's)."""
        return error_reply(exc)

    def decorate(self, response: Response, headers: Mapping[str, str]) -> None:
        """Last touches to every answer, given the request's headers (e.g. CORS); none here."""

    def route_of(self, path: str) -> str:
        """The route a request path belongs to: the path itself here. A function with path
        parameters (``/v1/models/{id}``) maps its paths to their template, which then names
        the handler and the metrics label; the handler reads the parameter from ``call.path``."""
        return path

    def _handler_for(self, method: str, path: str, template: str) -> AsyncHandler:
        by_method = self._routes.get(template)
        if by_method is None:
            known = ", ".join(sorted(self._routes))
            raise NotFound(f"no route {clip(path)}; this function answers {known}")
        handler = by_method.get(method.upper())
        if handler is None:
            allowed = ", ".join(sorted(by_method))
            raise MethodNotAllowed(
                f"{clip(method)} is not allowed on {path}; use {allowed}",
                headers={"allow": allowed},
            )
        return handler

    async def _read_body(self, request: Request, method: str, headers: dict[str, str]) -> bytes:
        if method in ("GET", "HEAD", "OPTIONS"):
            return b""
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest("content-length is not a number")
            if int(declared) > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"request body is {declared} bytes; the limit is {self.max_body_bytes} bytes"
                )
        if request.scope.get(server.BODY_COMPLETE):
            return await self._collect(request.receive)  # all here: nothing left to wait for
        try:
            async with asyncio.timeout(self.body_timeout_s):
                return await self._collect(request.receive)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s"
            ) from exc

    async def _collect(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                raise BadRequest("the request body ended before it was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"request body exceeds the limit of {self.max_body_bytes} bytes"
                )
            if not message.get("more_body", False):
                return b"".join((*chunks, chunk)) if chunks else chunk
            chunks.append(chunk)

    @staticmethod
    def _render(reply: Reply) -> Response:
        body = reply.body
        after = BackgroundTask(reply.after) if reply.after is not None else None
        if isinstance(body, AsyncIterator):
            return StreamingResponse(
                body,
                status_code=reply.status,
                headers=reply.headers,
                media_type=reply.content_type,
                background=after,
            )
        if not isinstance(body, bytes | str):
            body = json_bytes(body)
        return Response(
            body,
            status_code=reply.status,
            headers=reply.headers,
            media_type=reply.content_type,
            background=after,
        )

    async def _health_route(self, call: Call) -> Reply:
        extra = self._health() if self._health else {}
        reply = Reply({"status": "ok", "function": self.name, **extra})
        reply.headers.update(self._health_headers)
        return reply

    async def _metrics_route(self, call: Call) -> Reply:
        if self._guard is not None:
            self._guard(call)
        payload, content_type = metrics.render()
        return Reply(payload, content_type=content_type)


def _describe(span: telemetry.Span, method: str, path: str, route: str, status: int) -> None:
    """The HTTP semantic conventions' server attributes (no query: it may hold content)."""
    span.update(
        {
            "http.request.method": method,
            "url.path": clip(path),
            "http.route": route,
            "http.response.status_code": status,
        }
    )
    if status >= 500:
        span.fail(str(status))
