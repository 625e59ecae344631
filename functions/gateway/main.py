"""functions-framework entry point of the model gateway (target ``gateway``)."""

import functions_framework
from flask import Request, Response

from functions.gateway.service import build_app
from shared.runtime import freeze_heap_for_workers

_app = build_app()
freeze_heap_for_workers()  # before gunicorn forks its workers: see shared/runtime.py


@functions_framework.http
def gateway(request: Request) -> Response:
    return _app(request)
