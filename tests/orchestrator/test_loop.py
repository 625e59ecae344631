"""The agent loop against the scripted model and fake agents over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from functions.orchestrator.budgets import Budget, LoopSettings
from functions.orchestrator.loop import Task, run_task
from functions.orchestrator.tools import parse_task_data
from functions.orchestrator.trace import RunResult, Status, StopReason
from shared.aio import AsyncHttp
from shared.errors import BadRequest, UpstreamUnavailable
from tests.orchestrator.fakes import (
    CALCULATOR,
    DATA_SCHEMA,
    SEARCH_SCHEMA,
    FakeAgents,
    ScriptedModel,
    calculate,
    closed_port_url,
    directory,
    failure,
    text,
    tool_use,
)

pytestmark = pytest.mark.anyio
BUDGET = Budget(max_steps=8, timeout_s=10, max_tokens=50_000)


async def run(
    model: ScriptedModel,
    fakes: FakeAgents,
    http: AsyncHttp,
    task: str = "what is 6*7?",
    *,
    budget: Budget = BUDGET,
    data: Any = None,
    extra: dict[str, str] | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
) -> RunResult:
    async def progress(event: str, payload: dict[str, Any]) -> None:
        if events is not None:
            events.append((event, payload))

    return await run_task(
        Task(task, budget, parse_task_data(data)),
        run_id="run_test",
        model=model,
        agents=directory(fakes, http, extra=extra),
        settings=LoopSettings(),
        progress=progress,
    )


def with_calculator(fakes: FakeAgents) -> None:
    fakes.add("calculator", calculate, CALCULATOR.schema())


async def test_single_tool_answer_with_trace(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "6*7"})), text("6*7 is 42.")
    )
    result = await run(model, fake_agents, http)

    assert result.status is Status.COMPLETED and result.stop_reason is StopReason.END_TURN
    assert result.answer == "6*7 is 42."
    assert [(s.kind, s.name) for s in result.steps] == [
        ("model", "default"),
        ("agent", "calculator"),
        ("model", "default"),
    ]
    agent_step = result.steps[1]
    assert agent_step.outcome["result"] == {"expression": "6*7", "value": 42}
    assert agent_step.attempts == 1 and agent_step.error is None
    assert result.steps[0].provider == "fake"
    assert result.usage.to_json() == {
        "input_tokens": 20,
        "output_tokens": 10,
        "model_calls": 2,
        "agent_calls": 1,
    }
    [fed_back] = model.tool_results(1)
    assert fed_back["tool_use_id"] == "call_0" and "42" in fed_back["content"]
    assert "is_error" not in fed_back
    assert model.requests[0]["tools"][0]["name"] == "calculator"


async def test_parallel_tool_calls_run_at_once(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    both_arrived = asyncio.Event()
    arrived: list[str] = []

    def waiting(name: str) -> Any:
        async def respond(arguments: dict[str, Any]) -> tuple[int, Any]:
            arrived.append(name)
            if len(arrived) == 2:
                both_arrived.set()
            # Each call answers only once both are in flight: sequential calls would time out.
            async with asyncio.timeout(5):
                await both_arrived.wait()
            return 200, {"result": f"{name} done"}

        return respond

    fake_agents.add("calculator", waiting("calculator"), CALCULATOR.schema())
    fake_agents.add("search", waiting("search"), SEARCH_SCHEMA)
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "1+1"}), ("search", {"query": "circuits"})),
        text("both done"),
    )
    result = await run(model, fake_agents, http)

    assert result.status is Status.COMPLETED
    assert sorted(arrived) == ["calculator", "search"]
    results = model.tool_results(1)
    assert [r["tool_use_id"] for r in results] == ["call_0", "call_1"]
    assert "calculator done" in results[0]["content"] and "search done" in results[1]["content"]


async def test_tool_error_goes_back_and_the_model_corrects(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "6*/7"})),
        tool_use(("calculator", {"expression": "6*7"})),
        text("42"),
    )
    result = await run(model, fake_agents, http)

    assert result.status is Status.COMPLETED and result.answer == "42"
    [error] = model.tool_results(1)
    assert error["is_error"] is True and "agent calculator answered 400" in error["content"]
    assert result.steps[1].error is not None and result.steps[1].attempts == 1  # 4xx: no retry
    assert result.steps[3].outcome["result"]["value"] == 42


async def test_invalid_arguments_never_reach_the_agent(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expr": "6*7"}), ("nope", {})), text("sorry")
    )
    result = await run(model, fake_agents, http)

    assert fake_agents.calls("calculator") == []
    invalid, unknown = model.tool_results(1)
    assert invalid["is_error"] and "invalid input" in invalid["content"]
    assert "expression" in invalid["content"]
    assert unknown["is_error"] and "no tool named 'nope'" in unknown["content"]
    assert result.usage.agent_calls == 0
    assert "invalid input" in (result.steps[1].error or "")


async def test_step_budget_stops_with_what_is_known(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(
        *[tool_use(("calculator", {"expression": f"{n}+1"})) for n in range(5)]
    )
    result = await run(model, fake_agents, http, budget=Budget(4, 10, 50_000))

    assert result.status is Status.STOPPED and result.stop_reason is StopReason.MAX_STEPS
    assert len(result.steps) == 4  # model, agent, model, agent: no room for another model call
    assert "step budget (4)" in result.answer
    assert "'value': 1" in result.answer.replace('"', "'") or '"value": 1' in result.answer


async def test_step_budget_refuses_a_turn_that_does_not_fit(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with_calculator(fake_agents)
    calls = [("calculator", {"expression": f"{n}+1"}) for n in range(3)]
    model = ScriptedModel().enqueue(tool_use(*calls))
    result = await run(model, fake_agents, http, budget=Budget(3, 10, 50_000))

    assert result.stop_reason is StopReason.MAX_STEPS and len(result.steps) == 1
    assert fake_agents.calls("calculator") == []


async def test_token_budget_stops_before_the_next_model_call(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "2*3"}), input_tokens=900, output_tokens=200)
    )
    result = await run(model, fake_agents, http, budget=Budget(8, 10, 1000))

    assert result.status is Status.STOPPED and result.stop_reason is StopReason.MAX_TOKENS
    assert result.usage.tokens == 1100
    assert len(result.steps) == 2 and result.steps[1].ok  # the tool's work is kept
    assert "6" in result.answer and "token budget (1000)" in result.answer
    assert model.requests[0]["max_tokens"] == 1000  # never more than the budget


async def test_time_budget_cancels_what_is_in_flight(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    never = asyncio.Event()

    async def hangs(arguments: dict[str, Any]) -> tuple[int, Any]:
        await never.wait()
        return 200, {}

    fake_agents.add("search", hangs, SEARCH_SCHEMA)
    model = ScriptedModel().enqueue(tool_use(("search", {"query": "slow"})))
    events: list[tuple[str, dict[str, Any]]] = []
    started = asyncio.get_running_loop().time()
    result = await run(model, fake_agents, http, budget=Budget(8, 0.3, 50_000), events=events)
    never.set()  # let the fake's handler end, so the server closes at once

    assert asyncio.get_running_loop().time() - started < 3
    assert result.status is Status.STOPPED and result.stop_reason is StopReason.TIMEOUT
    assert "not finished" in (result.steps[1].error or "")
    assert [e for e, _ in events].count("step_finished") == 2  # the cut step is reported too


async def test_gateway_down_before_the_run(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    with_calculator(fake_agents)
    down = failure(UpstreamUnavailable("the model gateway is unreachable: refused"), attempts=2)
    result = await run(ScriptedModel().enqueue(down), fake_agents, http)

    assert result.status is Status.FAILED and result.stop_reason is StopReason.GATEWAY_ERROR
    assert result.unavailable and result.nothing_done
    assert result.steps[0].attempts == 2 and "unreachable" in (result.error or "")


async def test_gateway_dies_during_the_run(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(
        tool_use(("calculator", {"expression": "6*7"})),
        failure(UpstreamUnavailable("the model gateway answered 503")),
    )
    result = await run(model, fake_agents, http)

    assert result.status is Status.FAILED and not result.nothing_done
    assert [s.ok for s in result.steps] == [True, True, False]
    assert "42" in result.answer and "503" in result.answer


async def test_agents_down_or_not_configured_are_left_out(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    with_calculator(fake_agents)
    fake_agents.add("tavily", calculate, schema_status=503)
    model = ScriptedModel().enqueue(text("no web today"))
    result = await run(model, fake_agents, http, extra={"search": closed_port_url()})

    assert [t["name"] for t in model.requests[0]["tools"]] == ["calculator"]
    assert result.agents["calculator"] == "offered"
    assert result.agents["tavily"] == "left out: not configured: no key"
    assert "unreachable" in result.agents["search"]
    assert "tavily" in model.requests[0]["system"] and "search" in model.requests[0]["system"]


async def test_data_reaches_the_agent_by_name(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    agent = fake_agents.add("data_processor", lambda a: (200, {"result": "ok"}), DATA_SCHEMA)
    rows = [{"city": f"c{i}", "people": i} for i in range(500)]
    model = ScriptedModel().enqueue(
        tool_use(("data_processor", {"operation": "describe", "dataset": "task_data"})),
        text("described"),
    )
    result = await run(model, fake_agents, http, "describe the data", data=rows)

    assert result.status is Status.COMPLETED
    assert agent.calls == [{"operation": "describe", "rows": rows}]
    prompt = model.requests[0]["messages"][0]["content"]
    assert "500 rows" in prompt and "city | people" in prompt and "c499" not in prompt
    assert len(str(result.steps[1].input)) < 200  # the trace holds the name, not the rows
    assert "dataset" in model.requests[0]["tools"][0]["input_schema"]["properties"]


async def test_events_announce_each_step(fake_agents: FakeAgents, http: AsyncHttp) -> None:
    with_calculator(fake_agents)
    model = ScriptedModel().enqueue(tool_use(("calculator", {"expression": "1+2"})), text("3"))
    events: list[tuple[str, dict[str, Any]]] = []
    result = await run(model, fake_agents, http, events=events)

    assert [(e, d["index"]) for e, d in events] == [
        ("step_started", 0),
        ("step_finished", 0),
        ("step_started", 1),
        ("step_finished", 1),
        ("step_started", 2),
        ("step_finished", 2),
    ]
    assert events[2][1] == {
        "index": 1,
        "kind": "agent",
        "name": "calculator",
        "input": {"expression": "1+2"},
    }
    assert [d for e, d in events if e == "step_finished"] == [s.to_json() for s in result.steps]


def test_bad_data_is_refused() -> None:
    for bad in ("", "one line", "[not json", [1, 2], [], 7):
        with pytest.raises(BadRequest, match="data"):
            parse_task_data(bad)
    assert parse_task_data("a,b\n1,2").csv == "a,b\n1,2"  # type: ignore[union-attr]
    assert parse_task_data('[{"a": 1}]').rows == [{"a": 1}]  # type: ignore[union-attr]
