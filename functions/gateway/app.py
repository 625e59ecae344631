"""The gateway's app: ``shared.asgi.AsyncFunctionApp`` with what only it needs.

- A path parameter: ``GET /v1/models/{id}`` is routed to one handler, which reads the id from
  ``call.path``.
- OpenAI's error shape on the OpenAI-compatible routes (``functions.gateway.openai``).
- Optional CORS for browser clients (``cors_origins`` in the config; off when empty): an
  allowed origin's ``OPTIONS`` preflight is answered 204, and every answer to it (errors
  included) carries ``access-control-allow-origin`` and exposes the headers SDKs read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import Response

from functions.gateway.openai import OPENAI_ROUTES
from functions.gateway.openai.errors import openai_error_reply
from shared.asgi import AsyncFunctionApp, AsyncHandler
from shared.errors import ServiceError
from shared.http import Call, Reply

MODEL_PREFIX = "/v1/models/"
MODEL_ROUTE = MODEL_PREFIX + "{id}"
EXPOSED = (
    "request-id, x-request-id, retry-after, x-should-retry, x-gateway-route, "
    "x-gateway-provider, x-gateway-deployment, x-gateway-attempts, x-gateway-fallbacks, "
    "anthropic-ratelimit-requests-remaining, anthropic-ratelimit-tokens-remaining"
)
PREFLIGHT_MAX_AGE_S = 600


def path_id(call: Call) -> str:
    """The ``{id}`` of a ``/v1/models/{id}`` call."""
    return call.path.removeprefix(MODEL_PREFIX)


class Cors:
    """Which browser origins may call, and the headers that tell the browser so."""

    def __init__(self, origins: Sequence[str]) -> None:
        self._origins = frozenset(origins)

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def allowed(self, origin: str | None) -> bool:
        return bool(origin) and ("*" in self._origins or origin in self._origins)

    def headers(self, origin: str) -> dict[str, str]:
        return {
            "access-control-allow-origin": "*" if "*" in self._origins else origin,
            "access-control-expose-headers": EXPOSED,
            "vary": "origin",
        }

    async def preflight(self, call: Call) -> Reply:
        origin = call.headers.get("origin")
        if not self.allowed(origin):
            return Reply(b"", status=204)  # without allow-origin: the browser refuses
        requested = call.headers.get("access-control-request-headers") or ""
        return Reply(
            b"",
            status=204,
            headers={
                "access-control-allow-methods": "GET, POST, OPTIONS",
                "access-control-allow-headers": requested[:2000] or "content-type, x-api-key",
                "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
            },
        )


class GatewayApp(AsyncFunctionApp):
    def __init__(
        self,
        name: str,
        routes: Mapping[tuple[str, str], AsyncHandler],
        *,
        cors: Cors,
        **options: Any,
    ) -> None:
        if cors.enabled:
            paths = {path for _, path in routes} | {"/health"}
            routes = {**routes, **{("OPTIONS", path): cors.preflight for path in paths}}
        super().__init__(name, routes, **options)
        self.cors = cors

    def route_of(self, path: str) -> str:
        return MODEL_ROUTE if path.startswith(MODEL_PREFIX) else path

    def error_reply(self, exc: ServiceError, route: str) -> Reply:
        if route in OPENAI_ROUTES:
            return openai_error_reply(exc)
        return super().error_reply(exc, route)

    def decorate(self, response: Response, headers: Mapping[str, str]) -> None:
        if self.cors.enabled:
            origin = headers.get("origin") or ""
            if self.cors.allowed(origin):
                response.headers.update(self.cors.headers(origin))
