"""The search agent's functions-framework entry point: HTTP in, the agent runs, JSON out."""

import functions_framework
from flask import Request, Response

from functions.agents.search.agent import build_spec
from shared.agent import agent_app

_app = agent_app(build_spec())


@functions_framework.http
def search(request: Request) -> Response:
    return _app(request)
