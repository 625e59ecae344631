"""A run's spans after the GenAI conventions: invoke_agent, chat per model call, execute_tool per
agent call; content only when asked for, credentials never."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from functions.orchestrator.budgets import Budget, LoopSettings
from functions.orchestrator.loop import Task, run_task
from functions.orchestrator.trace import RunResult
from shared import metrics
from shared.aio import AsyncHttp
from shared.errors import UpstreamUnavailable
from tests.fakes.traces import attributes, content_spans, one, spans  # noqa: F401 (fixtures)
from tests.orchestrator.fakes import (
    CALCULATOR,
    FakeAgents,
    ScriptedModel,
    calculate,
    directory,
    failure,
    text,
    tool_use,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.anyio
SECRET = "sk-ant-api03-" + "x" * 40


async def run(model: ScriptedModel, fakes: FakeAgents, http: AsyncHttp, task: str) -> RunResult:
    fakes.add("calculator", calculate, CALCULATOR.schema())
    return await run_task(
        Task(task, Budget(max_steps=8, timeout_s=10, max_tokens=50_000)),
        run_id="run_spans",
        model=model,
        agents=directory(fakes, http),
        settings=LoopSettings(),
    )


async def test_a_run_is_one_trace_of_genai_spans(
    spans: InMemorySpanExporter,  # noqa: F811
    fake_agents: FakeAgents,
    http: AsyncHttp,
) -> None:
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "6*7"})), text("42", input_tokens=30)
    )
    result = await run(model, fake_agents, http, f"what is 6*7? my key is {SECRET}")

    root = one(spans, "invoke_agent orchestrator")
    assert root.parent is None
    assert result.trace_id == format(root.context.trace_id, "032x")
    assert result.to_json()["trace_id"] == result.trace_id
    assert attributes(root) | {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "orchestrator",
        "gen_ai.usage.input_tokens": 40,
        "gen_ai.usage.output_tokens": 10,
        "agentorch.status": "completed",
    } == attributes(root)
    chats = [s for s in spans.get_finished_spans() if s.name == "chat default"]
    assert len(chats) == 2
    first = attributes(chats[0])
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.request.model"] == "default"
    assert first["gen_ai.provider.name"] == "fake"
    assert first["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert first["gen_ai.usage.input_tokens"] == 10
    tool = one(spans, "execute_tool calculator")
    assert attributes(tool) | {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "calculator",
        "gen_ai.tool.call.id": "call_0",
    } == attributes(tool)
    for child in (*chats, tool):
        assert child.parent is not None and child.parent.span_id == root.context.span_id
    # The agent's request carried the trace: its server would continue it.
    call = fake_agents.agents["calculator"].headers[-1]
    assert call["traceparent"].split("-")[1:3] == [result.trace_id, f"{tool.context.span_id:016x}"]
    # Content is off by default: no message, argument or result on any span.
    content = ("messages", "arguments", "result", "instructions")
    for span in spans.get_finished_spans():
        assert not [key for key in attributes(span) if key.endswith(content)], span.name


async def test_content_is_captured_when_asked_without_credentials(
    content_spans: InMemorySpanExporter,  # noqa: F811
    fake_agents: FakeAgents,
    http: AsyncHttp,
) -> None:
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "6*7"})), text("42"))
    await run(model, fake_agents, http, f"what is 6*7? my key is {SECRET}")

    root = attributes(one(content_spans, "invoke_agent orchestrator"))
    assert "what is 6*7?" in root["gen_ai.input.messages"]
    assert root["gen_ai.output.messages"] == "42"
    tool = attributes(one(content_spans, "execute_tool calculator"))
    assert "6*7" in tool["gen_ai.tool.call.arguments"] and "42" in tool["gen_ai.tool.call.result"]
    chat = attributes(content_spans.get_finished_spans()[0])
    assert "what is 6*7?" in chat["gen_ai.input.messages"]
    assert "calculator" in chat["gen_ai.output.messages"]
    for span in content_spans.get_finished_spans():
        for value in attributes(span).values():
            assert SECRET not in str(value), span.name


async def test_a_failed_model_call_marks_its_spans(
    spans: InMemorySpanExporter,  # noqa: F811
    fake_agents: FakeAgents,
    http: AsyncHttp,
) -> None:
    model = ScriptedModel().enqueue(failure(UpstreamUnavailable("gateway down"), attempts=3))
    result = await run(model, fake_agents, http, "what is 6*7?")

    assert result.status.value == "failed"
    chat = attributes(one(spans, "chat default"))
    assert chat["error.type"] == "UpstreamUnavailable"
    assert attributes(one(spans, "invoke_agent orchestrator"))["error.type"] == "gateway_error"


async def test_runs_and_agent_calls_are_counted_in_metrics(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "6*7"}), ("made_up", {})), text("42")
    )
    await run(model, fake_agents, http, "what is 6*7?")
    metrics.flush()
    text_format = metrics.render()[0].decode()
    assert 'orchestrator_tasks_total{status="completed",stop_reason="end_turn"}' in text_format
    assert 'orchestrator_agent_calls_total{agent="calculator",outcome="ok"}' in text_format
    assert 'orchestrator_agent_calls_total{agent="unknown",outcome="ToolNotAvailable"}' in (
        text_format
    )
    assert 'orchestrator_task_tokens_count{token_type="output"}' in text_format
    assert "orchestrator_task_duration_seconds_count" in text_format
    assert "orchestrator_task_steps_count" in text_format
