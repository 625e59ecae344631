"""A stand-in for the AWS Lambda Runtime API, speaking its documented wire protocol, so that the
real runtime interface client (``awslambdaric``) can run a function's ``handler`` here.

The runtime polls ``GET /2018-06-01/runtime/invocation/next`` (a long poll: it is answered when
an event is invoked) and gets the event as the body with the invocation's headers:
``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms``,
``Lambda-Runtime-Invoked-Function-Arn``, ``Lambda-Runtime-Trace-Id``. It answers with
``POST …/invocation/{id}/response`` or ``…/{id}/error``; a failed start is
``POST /2018-06-01/runtime/init/error``.

    with FakeLambdaRuntime() as runtime:   # then AWS_LAMBDA_RUNTIME_API=runtime.address
        answer = runtime.invoke({"version": "2.0", ...})
        assert answer.ok, answer.payload
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import Exchange, FakeServer, RecordedRequest

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:agentorch-test"
POLL_S = 0.05


@dataclass(frozen=True)
class Invocation:
    """What the function answered to one invoked event."""

    request_id: str
    ok: bool
    """True for ``/response``, False for ``/error``."""
    payload: Any
    """The response (or the error object: ``errorMessage``, ``errorType``, ``stackTrace``)."""
    error_type: str | None = None
    """The ``Lambda-Runtime-Function-Error-Type`` header of an error."""


class FakeLambdaRuntime(FakeServer):
    """The Runtime API for one function's runtime process."""

    def __init__(self) -> None:
        super().__init__()
        self._events: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self._answers: dict[str, Invocation] = {}
        self._answered = threading.Condition()
        self.init_errors: list[Any] = []
        """The bodies of ``/init/error`` calls: the function could not start."""

    @property
    def address(self) -> str:
        """``host:port``, as ``AWS_LAMBDA_RUNTIME_API`` holds it."""
        return self.url.removeprefix("http://")

    def invoke(self, event: Any, *, timeout_s: float = 20.0) -> Invocation:
        """Hand ``event`` to the runtime's next poll; its answer (fails after ``timeout_s``, or
        at once when the function reported an init error)."""
        request_id = str(uuid.uuid4())
        deadline = time.time() + timeout_s
        self._events.put((request_id, json.dumps(event).encode(), int(deadline * 1000)))
        with self._answered:
            while request_id not in self._answers:
                if self.init_errors:
                    raise AssertionError(f"the function failed to start: {self.init_errors}")
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no answer to invocation {request_id}")
                self._answered.wait(min(POLL_S * 4, left))
            return self._answers.pop(request_id)

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        route = request.route
        if request.method == "GET" and route == f"{PREFIX}/invocation/next":
            self._next(exchange)
        elif request.method == "POST" and route == f"{PREFIX}/init/error":
            self._keep_init_error(request)
            exchange.send_json(202, {"status": "OK"})
        elif request.method == "POST" and route.startswith(f"{PREFIX}/invocation/"):
            request_id, _, kind = route.removeprefix(f"{PREFIX}/invocation/").partition("/")
            if kind not in ("response", "error"):
                exchange.send_json(404, {"errorMessage": f"no route {route}"})
                return
            self._keep_answer(request, request_id, ok=kind == "response")
            exchange.send_json(202, {"status": "OK"})
        else:
            exchange.send_json(404, {"errorMessage": f"no route {request.method} {route}"})

    def _next(self, exchange: Exchange) -> None:
        while not self._stopping.is_set():
            try:
                request_id, body, deadline_ms = self._events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            headers = {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            }
            exchange.send_json(200, body, headers)
            return
        exchange.cut()

    def _keep_answer(self, request: RecordedRequest, request_id: str, *, ok: bool) -> None:
        payload = request.body if request.body is not None else request.raw
        error_type = request.headers.get("lambda-runtime-function-error-type")
        with self._answered:
            self._answers[request_id] = Invocation(request_id, ok, payload, error_type)
            self._answered.notify_all()

    def _keep_init_error(self, request: RecordedRequest) -> None:
        with self._answered:
            self.init_errors.append(request.body if request.body is not None else request.raw)
            self._answered.notify_all()
