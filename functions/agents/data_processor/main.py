"""The data processor's functions-framework entry point (ASGI): HTTP in, agent runs, JSON out."""

from starlette.requests import Request
from starlette.responses import Response

from functions.agents.data_processor.agent import build_spec
from functions.agents.data_processor.limits import QueryLimits
from shared.agent import agent_app
from shared.entry import http
from shared.lambda_http import lambda_handler
from shared.runtime import prepare

prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
_limits = QueryLimits.load()
_app = agent_app(build_spec(_limits), max_body_bytes=_limits.max_body_bytes)


@http
async def data_processor(request: Request) -> Response:
    return await _app(request)


# AWS Lambda's entry point (a Function URL, API Gateway): shared/lambda_http.py
handler = lambda_handler(__name__, "data_processor")
