"""The search agent's functions-framework entry point (ASGI): HTTP in, the agent runs, JSON out."""

from starlette.requests import Request
from starlette.responses import Response

from functions.agents.search.agent import build_spec
from shared.agent import agent_app
from shared.entry import http
from shared.lambda_http import lambda_handler
from shared.runtime import prepare

prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
_app = agent_app(build_spec())


@http
async def search(request: Request) -> Response:
    return await _app(request)


# AWS Lambda's entry point (a Function URL, API Gateway): shared/lambda_http.py
handler = lambda_handler(__name__, "search")
