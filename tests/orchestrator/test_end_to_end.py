"""End to end over real HTTP: the real gateway (offline ``local`` provider, or its anthropic
provider pointed at the fake Anthropic server) and the real agents as functions-framework
processes, the orchestrator served in this process, tasks posted as a user would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from emulator.process import FunctionProcess, serve_functions, start_function
from tests.fakes.anthropic_server import Answer, FakeAnthropic
from tests.orchestrator.serving import AGENTS, SERVER, serve_orchestrator
from tests.served import refused_url

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
ROWS = [
    {"city": "Oslo", "people": 700},
    {"city": "Bergen", "people": 290},
    {"city": "Oslo", "people": 15},
]


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with serve_functions(AGENTS, SERVER) as urls:
        yield urls


@pytest.fixture(scope="module")
def local_gateway() -> Iterator[FunctionProcess]:
    gateway = start_function("gateway", env=SERVER)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
async def orchestrator(
    agents: dict[str, str], local_gateway: FunctionProcess, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    for variable, url in {**agents, "GATEWAY_URL": local_gateway.url}.items():
        monkeypatch.setenv(variable, url)
    monkeypatch.setenv("TAVILY_URL", refused_url())  # nothing there: left out
    async with serve_orchestrator() as url:
        yield url


async def ask(url: str, body: dict[str, Any]) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as client,
        client.post(url, json=body) as response,
    ):
        answer: dict[str, Any] = await response.json()
        assert response.status == 200, answer
        return answer


def agent_steps(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in result["steps"] if s["kind"] == "agent"}


async def test_a_task_for_the_calculator(orchestrator: str) -> None:
    result = await ask(orchestrator, {"task": "What is 17*23?"})
    assert result["status"] == "completed", result
    assert agent_steps(result)["calculator"]["outcome"]["result"]["value"] == 391
    assert "391" in result["answer"]
    assert result["steps"][0]["provider"] == "local"
    assert result["agents"]["tavily"].startswith("left out")


async def test_a_streamed_task_relays_the_gateways_text_as_it_comes(orchestrator: str) -> None:
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as client,
        client.post(orchestrator, json={"task": "What is 17*23?", "stream": True}) as response,
    ):
        raw = (await response.read()).decode()
    events = [block.split("\n", 1) for block in raw.split("\n\n") if block]
    parsed = [(name.removeprefix("event: "), json.loads(data[6:])) for name, data in events]
    result = parsed[-1][1]
    final_step = result["steps"][-1]["index"]
    deltas = [data for name, data in parsed if name == "text_delta"]
    pieces = [d["text"] for d in deltas if d["index"] == final_step]
    assert len(pieces) > 1 and "".join(pieces) == result["answer"]  # the gateway's pieces


async def test_a_task_for_the_search(orchestrator: str) -> None:
    result = await ask(orchestrator, {"task": "search for circuit breaker cooldown"})
    assert result["status"] == "completed", result
    hits = agent_steps(result)["search"]["outcome"]["result"]["hits"]
    assert hits and "circuit" in str(hits).lower()


async def test_a_task_for_the_data_processor(orchestrator: str) -> None:
    result = await ask(orchestrator, {"task": "describe the rows", "data": ROWS})
    assert result["status"] == "completed", result
    described = agent_steps(result)["data_processor"]
    described_result = described["outcome"]["result"]
    assert described_result["row_count"] == 3
    [people] = [c for c in described_result["columns"] if c["name"] == "people"]
    assert (people["min"], people["max"]) == (15, 700)
    assert "700" in result["answer"]


async def test_a_task_that_needs_two_agents(orchestrator: str) -> None:
    result = await ask(orchestrator, {"task": "compute 6*7 and search for retry backoff"})
    assert result["status"] == "completed", result
    steps = agent_steps(result)
    assert set(steps) == {"calculator", "search"}
    assert steps["calculator"]["outcome"]["result"]["value"] == 42
    assert "42" in result["answer"]
    assert result["usage"]["model_calls"] == 2 and result["usage"]["agent_calls"] == 2


@pytest.fixture
async def anthropic_orchestrator(
    agents: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, FakeAnthropic]]:
    with FakeAnthropic() as fake:
        gateway = start_function("gateway", env={**SERVER, **fake.environ()})
        try:
            for variable, url in {**agents, "GATEWAY_URL": gateway.url}.items():
                monkeypatch.setenv(variable, url)
            # Not the config's default (the stack's 8084): a tavily agent there would be offered.
            monkeypatch.setenv("TAVILY_URL", refused_url())
            async with serve_orchestrator() as url:
                yield url, fake
        finally:
            gateway.stop()


async def test_a_planning_model_through_the_anthropic_provider(
    anthropic_orchestrator: tuple[str, FakeAnthropic],
) -> None:
    url, fake = anthropic_orchestrator
    group = {
        "operation": "group_by",
        "dataset": "task_data",
        "group_by": ["city"],
        "aggregates": [{"fn": "sum", "column": "people"}],
    }
    fake.enqueue(
        Answer.tool_use("data_processor", group, preamble="First the totals per city."),
        Answer.tool_use("calculator", {"expression": "715 - 290"}),
        Answer.text("Oslo has 715 people, 425 more than Bergen."),
    )
    result = await ask(url, {"task": "How many more people live in Oslo?", "data": ROWS})

    assert result["status"] == "completed", result
    assert result["answer"] == "Oslo has 715 people, 425 more than Bergen."
    assert [s["provider"] for s in result["steps"] if s["kind"] == "model"] == ["anthropic"] * 3
    steps = agent_steps(result)
    totals = {
        r["city"]: r["sum_people"] for r in steps["data_processor"]["outcome"]["result"]["rows"]
    }
    assert totals == {"Oslo": 715, "Bergen": 290}
    assert steps["calculator"]["outcome"]["result"]["value"] == 425
    sent = [r.body for r in fake.requests if r.path.startswith("/v1/messages")]
    assert {t["name"] for t in sent[0]["tools"]} == {"calculator", "search", "data_processor"}
    [fed_back] = [b for b in sent[1]["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert "715" in str(fed_back["content"]) and not fed_back.get("is_error")


@pytest.fixture
def weather_mcp(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A third-party MCP server (the SDK's ``MCPServer``), named in ``MCP_SERVERS`` before the
    orchestrator starts."""
    from tests.fakes.mcp_server import serve_weather

    served = serve_weather()
    monkeypatch.setenv("MCP_SERVERS", f"weather={served.url}/mcp")
    try:
        yield served.url
    finally:
        served.stop()


async def test_an_mcp_servers_tool_through_the_anthropic_provider(
    weather_mcp: str, anthropic_orchestrator: tuple[str, FakeAnthropic]
) -> None:
    url, fake = anthropic_orchestrator
    fake.enqueue(
        Answer.tool_use("weather__get_forecast", {"city": "Lyon"}),
        Answer.text("Sunny in Lyon, 21 C."),
    )
    result = await ask(url, {"task": "Will it be sunny in Lyon?"})

    assert result["status"] == "completed" and result["answer"] == "Sunny in Lyon, 21 C."
    step = agent_steps(result)["weather__get_forecast"]
    assert step["outcome"] == {"city": "Lyon", "forecast": "sunny", "high_c": 21}
    sent = [r.body for r in fake.requests if r.path.startswith("/v1/messages")]
    offered = {t["name"] for t in sent[0]["tools"]}
    assert {"calculator", "weather__get_forecast", "weather__bad_name_v2"} <= offered
    [fed_back] = [b for b in sent[1]["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert "sunny" in str(fed_back["content"]) and not fed_back.get("is_error")
