"""The tavily agent's functions-framework entry point: HTTP in, the agent runs, JSON out."""

import functions_framework
from flask import Request, Response

from functions.agents.tavily.agent import build_spec
from shared.agent import agent_app

_app = agent_app(build_spec())  # reads the settings now: a bad one stops the function at start


@functions_framework.http
def tavily(request: Request) -> Response:
    return _app(request)
