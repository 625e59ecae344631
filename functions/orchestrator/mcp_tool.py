"""The orchestrator as an MCP server (``POST /mcp``): one tool, ``run_task``, that runs a task
as ``POST /`` does and answers the final answer as text and the whole run (status, steps,
usage) as structured content. A client that asks for progress (a progress token) gets one
``notifications/progress`` per finished step, on the answer's event stream.

So the whole orchestrator is one line for an MCP client:

    claude mcp add --transport http orchestrator http://localhost:8080/mcp
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from functions.orchestrator.trace import Status
from shared.errors import ServiceError
from shared.inbound import Inbound
from shared.mcp_server import McpEndpoint, McpOutcome, McpTool, Progress

if TYPE_CHECKING:
    from functions.orchestrator.service import OrchestratorService

TOOL = "run_task"
DESCRIPTION = (
    "Runs a task with Agent Orchestrator: a model plans it and calls the orchestrator's agents "
    "(calculator, search, data processing, web search, and any configured MCP servers' tools), "
    "within budgets of steps, time and tokens. Answers the final answer as text; the whole run "
    "(status, each step with its input and outcome, usage) is the structured content. "
    "Give the task in plain language; attach a table as data (rows or CSV text) rather than "
    "in the task."
)
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "minLength": 1,
            "maxLength": 20_000,
            "description": "What to do, in plain language.",
        },
        "data": {
            "description": "A table the task is about: a list of row objects, or CSV text.",
            "anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "string"}],
        },
        "agents": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "maxItems": 64,
            "description": "Only these agents (or MCP servers, or server__tool) may be used.",
        },
        "max_steps": {"type": "integer", "minimum": 1, "description": "Step budget."},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "description": "Time budget."},
        "max_tokens": {"type": "integer", "minimum": 1, "description": "Token budget."},
    },
    "required": ["task"],
    "additionalProperties": False,
}


def orchestrator_mcp(service: OrchestratorService) -> McpEndpoint:
    tool = McpTool(TOOL, DESCRIPTION, INPUT_SCHEMA)

    async def list_tools() -> list[McpTool]:
        return [tool]

    async def call_tool(name: str, arguments: dict[str, Any], progress: Progress) -> McpOutcome:
        if name != TOOL:
            return McpOutcome(error=f"unknown tool {name[:100]!r}; this server has {TOOL!r}")
        try:
            task, _ = service.parse({k: v for k, v in arguments.items() if k != "stream"})
        except ServiceError as exc:
            return McpOutcome(error=f"{exc.error_type}: {exc.message}")
        finished = 0

        async def on_step(event: str, payload: dict[str, Any]) -> None:
            nonlocal finished
            if event == "step_finished":
                finished += 1
                what = f"step {payload['index']}: {payload['kind']} {payload['name']}"
                failed = " failed" if payload.get("error") else ""
                await progress(finished, task.budget.max_steps, what + failed)

        run_id = f"run_{os.urandom(12).hex()}"
        result = await service.run(task, run_id, Inbound(arguments), on_step)
        trace = result.to_json()
        if result.status is Status.FAILED:
            return McpOutcome(result=trace, error=result.answer or str(result.error))
        return McpOutcome(result=trace, text=result.answer)

    return McpEndpoint(
        "orchestrator",
        list_tools,
        call_tool,
        json_response=False,
        max_body_bytes=service.config.max_body_bytes,
        input_schema=lambda name: INPUT_SCHEMA if name == TOOL else None,
    )
