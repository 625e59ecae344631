"""functions-framework entry point of the model gateway (target ``gateway``)."""

import functions_framework
from flask import Request, Response

from functions.gateway.service import build_app

_app = build_app()


@functions_framework.http
def gateway(request: Request) -> Response:
    return _app(request)
