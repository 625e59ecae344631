"""functions-framework entry point of the model gateway (target ``gateway``), on the ASGI path."""

from starlette.requests import Request
from starlette.responses import Response

from shared.entry import http
from shared.lambda_http import lambda_handler
from shared.runtime import collector_paused, freeze_heap_for_workers, prepare

with collector_paused():  # while the function loads: see shared/runtime.py
    from functions.gateway.service import build_app

    prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
    _app = build_app()
freeze_heap_for_workers()  # before gunicorn forks its workers: see shared/runtime.py


@http
async def gateway(request: Request) -> Response:
    return await _app(request)


# AWS Lambda's entry point (a Function URL, API Gateway): shared/lambda_http.py
handler = lambda_handler(__name__, "gateway")
