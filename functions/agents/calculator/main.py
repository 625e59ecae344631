"""The calculator's functions-framework entry point (ASGI): HTTP in, agent.SPEC runs, JSON out."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from functions.agents.calculator.agent import SPEC
from shared.agent import agent_app

_app = agent_app(SPEC)


@functions_framework.aio.http
async def calculator(request: Request) -> Response:
    return await _app(request)
