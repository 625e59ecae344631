"""functions-framework entry point of the orchestrator (target ``orchestrator``), on the ASGI
path: a task spends its life waiting on the model and the agents, so one worker holds many."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from functions.orchestrator.service import build_app, build_service

service = build_service()
_app = build_app(service)


@functions_framework.aio.http
async def orchestrator(request: Request) -> Response:
    return await _app(request)
