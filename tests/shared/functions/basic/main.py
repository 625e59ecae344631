"""A tiny function for the AsyncFunctionApp tests: one route per outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from shared.asgi import AsyncFunctionApp
from shared.entry import http
from shared.errors import Forbidden
from shared.http import Call, Reply
from shared.runtime import prepare

MAX_BODY_BYTES = 1024


async def echo(call: Call) -> Reply:
    inbound = call.inbound()
    return Reply({"data": inbound.data, "event_id": inbound.event_id})


async def refuse(call: Call) -> Reply:
    raise Forbidden("this route refuses everyone")


async def crash(call: Call) -> Reply:
    raise RuntimeError("secret internals")


async def unrenderable(call: Call) -> Reply:
    return Reply({"not json": object()})


async def stream(call: Call) -> Reply:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one\n"
        yield b"two\n"

    return Reply(chunks(), content_type="text/plain")


prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
app = AsyncFunctionApp(
    "basic",
    {
        ("POST", "/"): echo,
        ("GET", "/refuse"): refuse,
        ("GET", "/crash"): crash,
        ("GET", "/unrenderable"): unrenderable,
        ("GET", "/stream"): stream,
    },
    max_body_bytes=MAX_BODY_BYTES,
    health=lambda: {"scenario": "basic"},
)


@http
async def basic(request: Request) -> Response:
    return await app(request)
