"""The smallest ASGI function functions-framework serves: the floor under every cold start.

``bench/cold_start.py`` starts it exactly as it starts the project's functions, so the gap
between a function's figure and this one is what the function itself costs at start."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@functions_framework.aio.http
async def floor(request: Request) -> Response:
    return JSONResponse({"status": "ok"})
