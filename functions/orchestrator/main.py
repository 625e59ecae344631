"""functions-framework entry point of the orchestrator (target ``orchestrator``), on the ASGI
path: a task spends its life waiting on the model and the agents, so one worker holds many."""

import gc

from starlette.requests import Request
from starlette.responses import Response

from shared.entry import http
from shared.lambda_http import lambda_handler
from shared.runtime import collector_paused, freeze_heap_for_workers, prepare

# A worker holds ~500 runs at once, each with hundreds of live objects (its coroutines, futures,
# the requests in flight): at CPython's default (a collection every 700 new objects) the
# collector runs so often, full collections of everything alive among them, that it took over
# a quarter of a task's CPU (bench/RESULTS.md, Orchestrator, "What was cut").
GC_YOUNG_THRESHOLD = 50_000

with collector_paused():  # while the function loads: see shared/runtime.py
    from functions.orchestrator.platform_events import AwsEvents
    from functions.orchestrator.service import build_app, build_service

    prepare()  # before the app is built and gunicorn forks: see shared/runtime.py
    service = build_service()
    _app = build_app(service)
freeze_heap_for_workers()  # before gunicorn forks its workers: see shared/runtime.py
gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@http
async def orchestrator(request: Request) -> Response:
    return await _app(request)


# AWS Lambda's entry point: HTTP (a Function URL, API Gateway) as above (shared/lambda_http.py);
# an SQS batch or an EventBridge event as tasks (platform_events.py).
handler = lambda_handler(__name__, "orchestrator", events=AwsEvents(service))
