"""What every agent function shares: ``GET /schema``, ``POST /`` with validated input.

An agent is a pydantic input model plus a plain ``run(input) -> AgentResult`` function; this
module turns the pair into an ``AsyncFunctionApp`` (every function is served on the ASGI edge).
The model's JSON Schema is the tool definition the orchestrator hands to the model, so field
descriptions and limits matter.

An agent that cannot work in this deployment (a missing key) says so through the contract rather
than failing each call: while ``AgentSpec.not_configured`` gives a reason, ``GET /schema`` and
``POST /`` answer 503 ``not_configured`` with it (so an orchestrator leaves the agent out of
its plan and never retries it) and ``GET /health`` stays 200 with ``"configured": false``.

``run`` is plain, usually CPU-bound, code: it runs (with the parsing of its input) on a worker
thread, off the event loop, so ``/health`` and other requests are answered while it works. An
agent that waits on the network instead (Tavily) gives a coroutine function: its input is still
parsed on the thread, and the coroutine then runs on the loop.

Every agent is also an MCP server (``POST /mcp``, streamable HTTP, stateless): ``tools/list``
gives the same spec as ``GET /schema``, ``tools/call`` runs it as ``POST /`` does, on the same
edge with the same bounds (``shared.mcp_server``; the SDK loads on the first ``/mcp`` call).

``POST /`` honours ``Idempotency-Key`` (``shared.idempotency``): the same call again gets the
first answer (with ``idempotent-replayed: true``), not a second run.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.asgi import AsyncFunctionApp
from shared.errors import BadRequest, NotConfigured, ServiceError, validation_message
from shared.http import DEFAULT_MAX_BODY_BYTES, Call, Reply
from shared.idempotency import HEADER as IDEMPOTENCY_KEY
from shared.idempotency import IdempotentCalls
from shared.inbound import require_object
from shared.logs import get_logger
from shared.mcp_server import MCP_PATH, McpEndpoint, McpOutcome, McpTool, Progress

InputT = TypeVar("InputT", bound=BaseModel)
log = get_logger("agent")


@dataclass
class AgentResult:
    """An agent's answer: ``result`` for the caller, ``meta`` for how it was produced."""

    result: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentSpec(Generic[InputT]):
    """One agent: its name, when to use it, its input model, and the function that runs it."""

    name: str
    description: str
    """Tells a model when to use this agent and when not to."""
    input_model: type[InputT]
    run: Callable[[InputT], AgentResult | Awaitable[AgentResult]]
    example: dict[str, Any] | None = None
    """One valid input, shown in the schema."""
    health: Callable[[], dict[str, Any]] | None = None
    """Extra fields for ``GET /health``; must not touch dependencies."""
    not_configured: Callable[[], str | None] | None = None
    """Why the agent cannot work now (e.g. "set TAVILY_API_KEY"), or None when it can. Asked on
    every request, so it must be cheap and must not touch dependencies."""
    close: Callable[[], Awaitable[None]] | None = None
    """Releases what the agent holds open (its outbound connections); the app's ``aclose``."""

    def check_configured(self) -> None:
        """Raises ``NotConfigured`` (503 ``not_configured``) with the reason, if there is one."""
        reason = self.not_configured() if self.not_configured is not None else None
        if reason is not None:
            raise NotConfigured(reason)

    def health_fields(self) -> dict[str, Any]:
        fields = self.health() if self.health is not None else {}
        if self.not_configured is not None:
            reason = self.not_configured()
            fields = {**fields, "configured": reason is None}
            if reason is not None:
                fields["not_configured"] = reason
        return fields

    def schema(self) -> dict[str, Any]:
        input_schema = self.input_model.model_json_schema()
        if self.example is not None:
            input_schema["examples"] = [self.example]
        return {"name": self.name, "description": self.description, "input_schema": input_schema}


def parse_input(model: type[InputT], data: Any) -> InputT:
    try:
        return model.model_validate(require_object(data))
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc


def agent_app(
    spec: AgentSpec[Any], *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> AsyncFunctionApp:
    schema = spec.schema()

    async def describe(call: Call) -> Reply:
        spec.check_configured()
        return Reply(schema)

    def answer(call: Call) -> AgentResult | Awaitable[AgentResult]:
        spec.check_configured()
        return spec.run(parse_input(spec.input_model, call.inbound().data))

    calls = IdempotentCalls()

    async def invoke(call: Call) -> Reply:
        async def run() -> dict[str, Any]:
            # Parsing a body of megabytes is work too: all of it runs off the event loop.
            outcome = await asyncio.to_thread(answer, call)
            if inspect.isawaitable(outcome):  # an agent that waits on I/O: on the loop
                outcome = await outcome
            return {"result": outcome.result, "meta": outcome.meta}

        body, kept = await calls.once(call.headers.get(IDEMPOTENCY_KEY), call.body, run)
        return Reply(body, headers={"idempotent-replayed": "true"} if kept else {})

    mcp = agent_mcp(spec, schema, max_body_bytes)

    async def close() -> None:
        await mcp.aclose()
        if spec.close is not None:
            await spec.close()

    return AsyncFunctionApp(
        spec.name,
        {("GET", "/schema"): describe, ("POST", "/"): invoke, ("POST", MCP_PATH): mcp.handle},
        max_body_bytes=max_body_bytes,
        health=spec.health_fields,
        on_close=close,
    )


def agent_mcp(spec: AgentSpec[Any], schema: dict[str, Any], max_body_bytes: int) -> McpEndpoint:
    """The agent as an MCP server (``POST /mcp``): its one tool, the spec ``GET /schema``
    gives; a call runs as ``POST /`` does, and what ``POST /`` would refuse (invalid input,
    the agent's own error, not configured) comes back as a tool error the model can read."""
    tool = McpTool(spec.name, spec.description, schema["input_schema"])

    async def list_tools() -> list[McpTool]:
        return [tool]  # a call says when the agent is not configured, in its words

    async def call_tool(name: str, arguments: dict[str, Any], progress: Progress) -> McpOutcome:
        if name != spec.name:
            return McpOutcome(error=f"unknown tool {name[:100]!r}; this server has {spec.name!r}")
        try:
            outcome = await asyncio.to_thread(answer, arguments)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except ServiceError as exc:
            return McpOutcome(error=f"{exc.error_type}: {exc.message}")
        except Exception:  # as POST / answers it: logged, and no internals to the caller
            log.exception("agent failed", extra={"agent": spec.name})
            return McpOutcome(error="api_error: the agent failed (see its log)")
        return McpOutcome(outcome.result)

    def answer(arguments: dict[str, Any]) -> AgentResult | Awaitable[AgentResult]:
        spec.check_configured()
        return spec.run(parse_input(spec.input_model, arguments))

    def input_schema(name: str) -> dict[str, Any] | None:
        return tool.input_schema if name == spec.name else None

    return McpEndpoint(
        spec.name, list_tools, call_tool, max_body_bytes=max_body_bytes, input_schema=input_schema
    )
