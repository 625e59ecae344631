"""A tiny function for the Lambda adapter's tests: it echoes what reached it, and answers
binary, cookies, repeated headers and a stream on request."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared.entry import http
from shared.lambda_http import lambda_handler


async def _events() -> AsyncIterator[bytes]:
    for number in range(3):
        yield f"event: tick\ndata: {number}\n\n".encode()


@http
async def echo(request: Request) -> Response:
    body = await request.body()
    path = request.url.path
    if path == "/binary":
        return Response(bytes(range(256)), media_type="application/octet-stream")
    if path == "/cookies":
        response = Response("ok", media_type="text/plain")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        response.headers.append("x-many", "one")
        response.headers.append("x-many", "two")
        return response
    if path == "/stream":
        return StreamingResponse(_events(), media_type="text/event-stream")
    if path == "/crash":
        raise RuntimeError("secret internals")
    return JSONResponse(
        {
            "method": request.method,
            "path": path,
            "root_path": request.scope.get("root_path", ""),
            "query": request.scope["query_string"].decode(),
            "params": sorted(request.query_params.multi_items()),
            "headers": {name: value for name, value in request.headers.items()},
            "body": base64.b64encode(body).decode(),
            "client": request.client.host if request.client else None,
        }
    )


handler = lambda_handler(__name__, "echo")
