"""The smallest ASGI function, served as the project's are: the floor under every cold start.

``bench/cold_start.py`` starts it exactly as it starts the project's functions, so the gap
between a function's figure and this one is what the function itself costs at start."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

try:
    from shared.entry import http
except ImportError:  # a checkout from before shared/entry.py (--checkout): its decorator
    from functions_framework.aio import http  # type: ignore[assignment]


@http
async def floor(request: Request) -> Response:
    return JSONResponse({"status": "ok"})
