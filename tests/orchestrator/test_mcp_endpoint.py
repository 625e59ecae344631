"""The orchestrator as an MCP server: ``run_task`` at ``/mcp``, with the official ``mcp`` client
against the orchestrator's app served on real sockets (a scripted model, fake agents).

The SDK is imported inside the tests, never at collection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService, build_app
from shared.aio import AsyncHttp
from shared.api_keys import ApiKeys
from tests.orchestrator.fakes import (
    CALCULATOR,
    FakeAgents,
    ScriptedModel,
    calculate,
    directory,
    text,
    tool_use,
)
from tests.served import ServedApp

if TYPE_CHECKING:
    from mcp import Client

pytestmark = pytest.mark.anyio
KEY = "orch-key-0123456789"


@asynccontextmanager
async def orchestrator(
    fakes: FakeAgents, model: ScriptedModel, keys: tuple[str, ...] = ()
) -> AsyncIterator[str]:
    """The orchestrator's app over the fakes, served; yields its /mcp URL."""
    fakes.add("calculator", calculate, CALCULATOR.schema())
    settings = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    http = AsyncHttp()
    service = OrchestratorService(
        settings,
        model,
        directory(fakes, http),
        None,
        RunRegistry(60),
        http,
        ApiKeys(keys, "orchestrator"),
    )
    app = build_app(service)

    async def endpoint(request: Request) -> Response:
        return await app(request)

    async def close() -> None:
        await app.aclose()
        await service.aclose()

    routes = [Route("/{path:path}", endpoint, methods=["GET", "POST"])]
    served = ServedApp(Starlette(routes=routes), aclose=close)
    try:
        yield f"{served.url}/mcp"
    finally:
        served.stop()


async def with_client(
    url: str,
    work: Callable[[Client], Awaitable[Any]],
    headers: dict[str, str] | None = None,
    mode: str = "auto",
) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        return await work(client)


async def test_run_task_is_the_one_tool(fake_agents: FakeAgents) -> None:
    async with orchestrator(fake_agents, ScriptedModel()) as url:
        listed = await with_client(url, lambda client: client.list_tools())

    [tool] = listed.tools
    assert tool.name == "run_task"
    assert tool.input_schema["required"] == ["task"]
    assert {"task", "data", "agents", "max_steps", "timeout_s", "max_tokens"} <= set(
        tool.input_schema["properties"]
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_run_task_answers_the_answer_and_the_trace_with_progress(
    fake_agents: FakeAgents, mode: str
) -> None:
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "6*7"})), text("42"))
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async def run(client: Client) -> Any:
        arguments = {"task": "What is 6*7?", "max_steps": 5}
        return await client.call_tool("run_task", arguments, progress_callback=on_progress)

    async with orchestrator(fake_agents, model) as url:
        result = await with_client(url, run, mode=mode)

    assert not result.is_error
    assert result.content[0].text == "42"
    trace = result.structured_content
    assert trace["status"] == "completed" and trace["answer"] == "42"
    assert [step["kind"] for step in trace["steps"]] == ["model", "agent", "model"]
    assert [done for done, _, _ in updates] == [1, 2, 3]
    assert updates[1][1:] == (5, "step 1: agent calculator")


async def test_bad_arguments_are_a_tool_error(fake_agents: FakeAgents) -> None:
    async with orchestrator(fake_agents, ScriptedModel()) as url:
        result = await with_client(
            url, lambda c: c.call_tool("run_task", {"task": "x", "agents": ["oracle"]})
        )

    assert result.is_error
    assert "agents: unknown 'oracle'" in result.content[0].text


async def test_with_keys_configured_mcp_needs_one(fake_agents: FakeAgents) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"accept": "application/json, text/event-stream"}
    async with orchestrator(fake_agents, ScriptedModel(), keys=(KEY,)) as url:
        async with httpx.AsyncClient(timeout=10) as plain:
            refused = await plain.post(url, json=call, headers=accept)
        listed = await with_client(
            url, lambda c: c.list_tools(), headers={"authorization": f"Bearer {KEY}"}
        )

    assert refused.status_code == 401
    assert KEY not in refused.text
    assert [tool.name for tool in listed.tools] == ["run_task"]
