"""A function on AWS Lambda: ``handler(event, context)`` over the ASGI app functions-framework
serves, so a request behaves on Lambda as it does under the emulator.

Each function's ``main.py`` ends with ``handler = lambda_handler(__name__, "TARGET")``. Nothing
happens then: the first invocation (the container's cold start) builds functions-framework's
app for that target, as ``functions-framework --target TARGET`` does, makes the process's one
event loop and runs the app's lifespan startup (one that fails fails its invocation, and the
next invocation starts again). Every later invocation reuses them, so the
function's outbound connections and its in-memory state live as long as the container, as they
live as long as a worker elsewhere.

An invocation is one HTTP event (``shared.lambda_events``: a Function URL or API Gateway
payload) run through the app, its answer collected whole. Lambda answers a buffered invocation
in one piece, so a streamed answer (server-sent events) is buffered to its end and sent at once:
the client gets every event, all at the end; one larger than Lambda takes (``MAX_ANSWER_BYTES``)
is a 500 naming its size. An invocation ends before Lambda's deadline: with
less than ``DEADLINE_MARGIN_S`` left it is answered 504, never left to be killed mid-answer.
With tracing on, its spans are exported before it returns (bounded: ``FLUSH_MAX_S``), since
Lambda freezes the process between invocations.

A function may take other events too (the orchestrator: SQS, EventBridge): ``events`` is given
every event that is not HTTP, on the same loop. An event no one takes raises ``NotHttpEvent``,
which Lambda reports as the invocation's error, naming what the event was. While ``events``
runs, ``time_left()`` says how long it has before Lambda's deadline (less the margin), so a
batch can answer for what it finished instead of being killed with all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from shared import telemetry
from shared.context import REQUEST_ID
from shared.errors import BadRequest, ServiceError, UpstreamTimeout
from shared.http import compact_json, error_reply
from shared.lambda_events import HttpEvent, NotHttpEvent, answer, decoded_path, read_event

ASGIApp = Callable[..., Awaitable[None]]
EventHandler = Callable[[dict[str, Any]], Awaitable[Any]]
"""Takes a non-HTTP event and answers it; raises ``NotHttpEvent`` for one it does not know."""
DEADLINE_MARGIN_S = 0.5
FLUSH_MAX_S = 2.0
"""The longest an invocation waits, after its answer, for its spans to be exported."""
"""What is kept of Lambda's deadline to send the 504 in."""
LIFESPAN_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 6 * 1024 * 1024
"""Lambda's limit on a buffered invocation's answer (its JSON, body base64 or not): a larger
one is answered 500 naming its size, not failed by Lambda as a bare 502."""
_DEADLINE: ContextVar[float | None] = ContextVar("lambda_deadline", default=None)
"""The loop time by which the event being handled must be answered (``time_left``)."""


def time_left() -> float | None:
    """Seconds before the Lambda event being handled must be answered (at least 0); None when
    there is no deadline (not on Lambda, or no context)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return max(deadline - asyncio.get_running_loop().time(), 0.0)


class LambdaHandler:
    """``handler(event, context)`` for one functions-framework target (one per process)."""

    def __init__(
        self,
        module: str,
        target: str,
        *,
        events: EventHandler | None = None,
        app: ASGIApp | None = None,
    ) -> None:
        """``module`` is the name of the ``main.py`` that defines ``target`` (``__name__``);
        ``app`` replaces functions-framework's app (tests)."""
        self.module = module
        self.target = target
        self.events = events
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifespan: _Lifespan | None = None

    def __call__(self, event: Any, context: Any = None) -> Any:
        loop = self._start()
        request_id = getattr(context, "aws_request_id", None)
        try:
            return loop.run_until_complete(self.invoke(event, _time_left(context), request_id))
        finally:
            _flush_telemetry(_time_left(context))

    async def invoke(
        self, event: Any, time_left_s: float | None = None, request_id: str | None = None
    ) -> Any:
        """``request_id`` (Lambda's, for this invocation) is the request's execution id when
        the caller sent none, so that the function's log lines carry it."""
        try:
            request = read_event(event, execution_id=request_id)
        except NotHttpEvent:
            if self.events is None:
                raise
            token = REQUEST_ID.set(request_id) if request_id else None
            deadline = None
            if time_left_s is not None:
                left = max(time_left_s - DEADLINE_MARGIN_S, 0.0)
                deadline = _DEADLINE.set(asyncio.get_running_loop().time() + left)
            try:  # the event's log lines (and calls out) carry Lambda's request id
                return await self.events(event)
            finally:
                if deadline is not None:
                    _DEADLINE.reset(deadline)
                if token is not None:
                    REQUEST_ID.reset(token)
        except BadRequest as exc:
            return _error_answer(_version_of(event), exc)
        app = self.app()
        if time_left_s is None:
            return await run_asgi(app, request)
        try:
            async with asyncio.timeout(max(time_left_s - DEADLINE_MARGIN_S, 0.01)):
                return await run_asgi(app, request)
        except TimeoutError:
            problem = UpstreamTimeout("the function did not answer before Lambda's deadline")
            return _error_answer(request.version, problem)

    def app(self) -> ASGIApp:
        if self._app is None:
            self._app = functions_framework_app(self.module, self.target)
        return self._app

    def _start(self) -> asyncio.AbstractEventLoop:
        """The cold start, once: the process's event loop and the app's lifespan startup."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            lifespan = _Lifespan(self.app())
            try:
                loop.run_until_complete(lifespan.startup())
            except BaseException:
                # Not started: this invocation fails, and the next one is a cold start again,
                # never served by an app whose startup did not finish.
                loop.run_until_complete(lifespan.abandon())
                loop.close()
                raise
            self._loop, self._lifespan = loop, lifespan
        return self._loop

    def close(self) -> None:
        """The lifespan shutdown and the loop's end (tests; Lambda freezes and drops a
        container without telling a function that has no extension)."""
        if self._loop is None:
            return
        if self._lifespan is not None:
            self._loop.run_until_complete(self._lifespan.shutdown())
        self._loop.close()
        self._loop = None


def lambda_handler(
    module: str, target: str, *, events: EventHandler | None = None
) -> LambdaHandler:
    """The Lambda entry point for ``target`` in ``module`` (a ``main.py``'s ``__name__``)."""
    return LambdaHandler(module, target, events=events)


def functions_framework_app(module: str, target: str) -> ASGIApp:
    """The Starlette app ``functions-framework --target TARGET`` serves for ``module``, built
    without loading Flask (``shared.entry``)."""
    from shared.entry import asgi_app, target_of

    loaded = sys.modules.get(module) or importlib.import_module(module)
    return asgi_app(target_of(loaded, target))


async def run_asgi(app: ASGIApp, request: HttpEvent) -> dict[str, Any]:
    """One request through ``app``; its answer, whole, in the event's shape."""
    done = asyncio.Event()
    started: dict[str, Any] = {}
    chunks: list[bytes] = []
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await done.wait()  # the client stays until the answer is whole (streams read on)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(_scope(request), receive, send)
    finally:
        done.set()
    if not started:
        problem = ServiceError("the function ended without an answer")
        return _error_answer(request.version, problem)
    headers = [(bytes(name), bytes(value)) for name, value in started.get("headers", [])]
    result = answer(request.version, started["status"], headers, b"".join(chunks))
    if len(result["body"]) < MAX_ANSWER_BYTES // 2:  # the common case, not serialised twice
        return result
    size = len(compact_json(result).encode("utf-8", "surrogatepass"))
    if size > MAX_ANSWER_BYTES:
        problem = ServiceError(
            f"the function's answer is {size} bytes as Lambda sends it: more than Lambda's "
            f"{MAX_ANSWER_BYTES} (a buffered invocation's limit)"
        )
        return _error_answer(request.version, problem)
    return result


def _scope(request: HttpEvent) -> dict[str, Any]:
    headers = request.headers
    host = next((value for name, value in headers if name == b"host"), b"lambda")
    scheme = next((value for name, value in headers if name == b"x-forwarded-proto"), b"https")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": scheme.decode("latin-1"),
        "path": decoded_path(request.path),
        "raw_path": request.path.encode("utf-8"),
        "root_path": request.root_path,
        "query_string": request.query,
        "headers": headers,
        "client": (request.source_ip, 0) if request.source_ip else None,
        "server": (host.decode("latin-1").split(":")[0], 443),
    }


class _Lifespan:
    """The ASGI lifespan of one app: started at cold start, stopped by ``close``."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._task = asyncio.ensure_future(self._run(scope))
        await self._step("startup")

    async def shutdown(self) -> None:
        if self._task is not None and not self._task.done():
            await self._step("shutdown")
            await asyncio.wait_for(self._task, LIFESPAN_TIMEOUT_S)

    async def abandon(self) -> None:
        """The lifespan task of a failed startup, stopped."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self, scope: dict[str, Any]) -> None:
        # An app without lifespan support raises: it is served without one (uvicorn's "auto").
        with contextlib.suppress(Exception):
            await self._app(scope, self._inbox.get, self._outbox.put)
        await self._outbox.put({"type": "lifespan.ended"})  # whoever still waits, goes on

    async def _step(self, phase: str) -> None:
        await self._inbox.put({"type": f"lifespan.{phase}"})
        reply = await asyncio.wait_for(self._outbox.get(), LIFESPAN_TIMEOUT_S)
        if reply["type"] == f"lifespan.{phase}.failed":
            raise RuntimeError(f"the app's lifespan {phase} failed: {reply.get('message', '')}")


def _flush_telemetry(time_left_s: float | None) -> None:
    """The invocation's spans (and metrics) exported before it returns: Lambda freezes the
    process then, and a batch processor's thread would wait for the next invocation, or
    forever. Bounded: at most ``FLUSH_MAX_S``, and never into the deadline's margin."""
    budget = FLUSH_MAX_S if time_left_s is None else min(FLUSH_MAX_S, time_left_s - 0.1)
    if budget > 0:
        telemetry.flush(int(budget * 1000))


def _time_left(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else None


def _version_of(event: Any) -> str:
    return "2.0" if isinstance(event, dict) and event.get("version") == "2.0" else "1.0"


def _error_answer(version: str, problem: ServiceError) -> dict[str, Any]:
    reply = error_reply(problem)
    headers = [(b"content-type", b"application/json")]
    headers += [(name.encode(), value.encode()) for name, value in reply.headers.items()]
    return answer(version, reply.status, headers, compact_json(reply.body).encode())
