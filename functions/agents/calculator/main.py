"""The calculator's functions-framework entry point: HTTP in, ``agent.SPEC`` runs, JSON out."""

import functions_framework
from flask import Request, Response

from functions.agents.calculator.agent import SPEC
from shared.agent import agent_app

_app = agent_app(SPEC)


@functions_framework.http
def calculator(request: Request) -> Response:
    return _app(request)
