"""The data processor's functions-framework entry point: HTTP in, the agent runs, JSON out."""

import functions_framework
from flask import Request, Response

from functions.agents.data_processor.agent import build_spec
from functions.agents.data_processor.limits import Limits
from shared.agent import agent_app

_limits = Limits.from_env()
_app = agent_app(build_spec(_limits), max_body_bytes=_limits.max_body_bytes)


@functions_framework.http
def data_processor(request: Request) -> Response:
    return _app(request)
