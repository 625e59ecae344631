"""A fake orchestrator speaking the real wire format: a task in, steps as server-sent events."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import Exchange, FakeServer, RecordedRequest

STEPS: list[dict[str, Any]] = [
    {
        "index": 0,
        "kind": "model",
        "name": "default",
        "input": {"messages": 1, "last": {"role": "user", "content": "Task: What is 17 * 23 - 4?"}},
        "outcome": {
            "stop_reason": "tool_use",
            "text": "I will use calculator.",
            "tool_calls": [{"id": "t1", "name": "calculator", "input": {"expression": "17*23-4"}}],
        },
        "error": None,
        "attempts": 1,
        "provider": "local",
        "latency_ms": 5.2,
    },
    {
        "index": 1,
        "kind": "agent",
        "name": "calculator",
        "input": {"expression": "17*23-4"},
        "outcome": {"result": {"value": 387}},
        "error": None,
        "attempts": 1,
        "provider": None,
        "latency_ms": 3.1,
    },
]
RESULT: dict[str, Any] = {
    "run_id": "run_1",
    "status": "completed",
    "answer": "17 * 23 - 4 = 387.",
    "stop_reason": "end_turn",
    "steps": STEPS,
    "usage": {"input_tokens": 40, "output_tokens": 20, "model_calls": 1, "agent_calls": 1},
    "duration_ms": 12.5,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}

NEEDS_APPROVAL = "pay the invoice"
"""A task the fake answers ``WAITING`` (approval needed) until ``POST /runs/run_1/approval``."""
WAITING: dict[str, Any] = {
    **RESULT,
    "status": "waiting_approval",
    "stop_reason": "approval_required",
    "answer": "Waiting: a tool call needs a person's approval.",
    "steps": STEPS[:1],
    "pending_approval": [{"step": 1, "tool": "calculator", "arguments": {"expression": "1+1"}}],
}


class FakeOrchestrator(FakeServer):
    """Answers a ``POST /`` with ``RESULT`` (streamed when asked), a 400 when it has no task;
    with ``key`` set, a 401 to a request without it (``ORCHESTRATOR_API_KEYS``)."""

    key: str | None = None

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        if self.key is not None and request.api_key != self.key:
            error = {"type": "authentication_error", "message": "an API key is required"}
            return exchange.send_json(401, {"type": "error", "error": error})
        body = request.body or {}
        if request.method == "POST" and request.route == "/runs/run_1/approval":
            return exchange.send_json(200, RESULT)
        if request.method != "POST" or not body.get("task"):
            error = {"type": "invalid_request_error", "message": "task: field required"}
            return exchange.send_json(400, {"type": "error", "error": error})
        result = WAITING if body.get("task") == NEEDS_APPROVAL else RESULT
        if not body.get("stream"):
            return exchange.send_json(200, result)
        exchange.start_stream(200, {"content-type": "text/event-stream"})
        for step in STEPS:
            started = {k: step[k] for k in ("index", "kind", "name", "input")}
            exchange.write_chunk(sse("step_started", started))
            exchange.write_chunk(sse("step_finished", step))
        exchange.write_chunk(sse("result", result))
        exchange.end_stream()
        return None


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
