"""A run as server-sent events: ``step_started`` and ``step_finished`` as they happen, the
model's text as it is generated (``text_delta``, inside a model step: its ``index`` and a piece
of ``text``), then ``result`` with the complete final object — also when the run fails after
the stream began.

    event: step_started\\ndata: {"index": 0, "kind": "model", "name": "...", "input": ...}\\n\\n
    event: text_delta\\ndata: {"index": 0, "text": "The answ"}\\n\\n
    event: step_finished\\ndata: <the step, as in the result's "steps">\\n\\n
    event: result\\ndata: <the final result>\\n\\n
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from functions.orchestrator.loop import Progress
from functions.orchestrator.trace import RunResult
from shared import telemetry
from shared.context import bind_request_id, current_request_id
from shared.http import sse_event
from shared.logs import get_logger

log = get_logger("orchestrator.stream")


def event_stream(
    run: Callable[[Progress], Awaitable[RunResult]], run_id: str
) -> AsyncIterator[bytes]:
    """The events of ``run(progress)``; the run starts at once, and is cancelled when the
    reader goes away. Not at the first read: a client gone before the server could send the
    stream's head never starts reading, and a run that never started would never give back
    what it holds (its session, busy until the lease ends, minutes later); unread, it ends
    as a request's run does when its client left."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    request_id = current_request_id()
    trace_context = telemetry.snapshot()

    async def progress(event: str, data: dict[str, Any]) -> None:
        queue.put_nowait(sse_event(event, data))

    async def drive() -> None:
        if request_id:  # the edge resets its context before a stream is read
            bind_request_id(request_id)
        try:
            with telemetry.resumed(trace_context):
                final = (await run(progress)).to_json()
        except Exception as exc:
            log.exception("streamed run failed")
            final = _failed(run_id, str(getattr(exc, "message", exc)))
        queue.put_nowait(sse_event("result", final))
        queue.put_nowait(None)

    driver = asyncio.ensure_future(drive())

    async def events() -> AsyncIterator[bytes]:
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            if not driver.done():
                driver.cancel()

    return events()


def _failed(run_id: str, error: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": "failed",
        "answer": f"Failed: {error}",
        "stop_reason": "internal_error",
        "error": error,
        "steps": [],
        "usage": {"input_tokens": 0, "output_tokens": 0, "model_calls": 0, "agent_calls": 0},
        "duration_ms": 0.0,
        "agents": {},
    }
