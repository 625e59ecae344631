"""A tiny function for the FunctionApp tests: one route per outcome."""

from __future__ import annotations

from collections.abc import Iterator

import flask
import functions_framework

from shared.errors import Forbidden
from shared.http import Call, FunctionApp, Reply

MAX_BODY_BYTES = 1024


def echo(call: Call) -> Reply:
    inbound = call.inbound()
    return Reply({"data": inbound.data, "event_id": inbound.event_id})


def refuse(call: Call) -> Reply:
    raise Forbidden("this route refuses everyone")


def crash(call: Call) -> Reply:
    raise RuntimeError("secret internals")


def unrenderable(call: Call) -> Reply:
    return Reply({"not json": object()})


def stream(call: Call) -> Reply:
    def chunks() -> Iterator[bytes]:
        yield b"one\n"
        yield b"two\n"

    return Reply(chunks(), content_type="text/plain")


app = FunctionApp(
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


@functions_framework.http
def basic(request: flask.Request) -> flask.Response:
    return app(request)
