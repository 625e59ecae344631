"""What the offline stack answers, end to end: the real orchestrator loop, the gateway's real
local rule-based model, the real agents (data processor, search, calculator as processes; the
tavily agent in process, pointed at the fake Tavily), over HTTP, as a user asks.

Questions over a table get the operation that answers them and a sentence stating the result;
a question no tool can answer gets an honest "I can't answer that offline"; tavily without a
key is shown as not configured and never offered to the model.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from emulator.process import serve_functions
from functions.agents.tavily.client import NOT_CONFIGURED_REASON
from shared.entry import function_app
from tests.fakes.tavily_server import FakeTavily
from tests.orchestrator.serving import AGENTS, REPO_ROOT, SERVER, serve_orchestrator
from tests.served import ServedApp

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
TAVILY_KEY = "tvly-offline-test"
SALES = (
    "region,product,units\n"
    "North,tea,70\n"
    "South,tea,80\n"
    "North,coffee,50\n"
    "East,coffee,30\n"
    "South,cake,5\n"
)


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    """The agents and the gateway (offline: no provider keys) as processes."""
    with serve_functions({**AGENTS, "GATEWAY_URL": "gateway"}, SERVER) as urls:
        yield urls


@pytest.fixture(scope="module")
def tavily() -> Iterator[tuple[str, FakeTavily]]:
    """The real tavily agent served in this process (it reads TAVILY_API_KEY per request, so
    a test sets the key or not) in front of the fake Tavily API."""
    with FakeTavily(api_key=TAVILY_KEY) as api, pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAVILY_BASE_URL", api.url)  # read once, when the app is built
        source = str(REPO_ROOT / "functions/agents/tavily/main.py")
        app = function_app(source, "tavily")
        # Its keep-alive connections to the fake are closed in the loop that made them.
        served = ServedApp(app, aclose=sys.modules["main"]._app.aclose)
        try:
            yield served.url, api
        finally:
            served.stop()


@pytest.fixture
async def orchestrator(
    stack: dict[str, str], tavily: tuple[str, FakeTavily], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    for variable, url in {**stack, "TAVILY_URL": tavily[0]}.items():
        monkeypatch.setenv(variable, url)
    async with serve_orchestrator() as url:
        yield url


async def call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        method = client.post(url, json=body) if body is not None else client.get(url)
        async with method as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == 200, answer
            return answer


def agent_steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in result["steps"] if s["kind"] == "agent"]


def offered(result: dict[str, Any]) -> list[str]:
    """The tools the first model call was given."""
    tools: list[str] = result["steps"][0]["input"]["tools"]
    return tools


# -- tavily without a key ----------------------------------------------------------------------


async def test_agents_shows_tavily_not_configured_without_a_key_and_available_with_one(
    orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = {a["name"]: a for a in (await call(f"{orchestrator}/agents"))["agents"]}
    assert listed["tavily"]["status"] == "not_configured"
    assert listed["tavily"]["reason"] == NOT_CONFIGURED_REASON and not listed["tavily"]["reachable"]
    assert listed["search"]["status"] == "available"

    monkeypatch.setenv("TAVILY_API_KEY", TAVILY_KEY)  # /agents fetches every schema afresh
    listed = {a["name"]: a for a in (await call(f"{orchestrator}/agents"))["agents"]}
    assert listed["tavily"]["status"] == "available" and listed["tavily"]["reachable"]


async def test_a_web_question_without_a_key_is_answered_honestly(
    orchestrator: str, tavily: tuple[str, FakeTavily]
) -> None:
    result = await call(orchestrator, {"task": "What is the latest news about Python?"})

    assert result["status"] == "completed", result
    assert "tavily" not in offered(result)
    assert result["agents"]["tavily"] == f"left out: not configured: {NOT_CONFIGURED_REASON}"
    assert [s["name"] for s in agent_steps(result)] == ["search"]
    assert "can't answer that offline" in result["answer"]
    assert "503" not in result["answer"] and tavily[1].requests == []


async def test_a_web_question_with_a_key_goes_to_tavily(
    orchestrator: str, tavily: tuple[str, FakeTavily], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", TAVILY_KEY)
    result = await call(orchestrator, {"task": "What is the latest news about Python?"})

    assert result["status"] == "completed", result
    [step] = agent_steps(result)
    assert step["name"] == "tavily" and step["attempts"] == 1
    assert step["input"]["query"] == "the latest news about Python"
    assert "The web says: " in result["answer"]


# -- questions no tool answers, and the orchestrator's scaffolding -----------------------------


async def test_a_question_no_tool_can_answer_gets_an_honest_answer(orchestrator: str) -> None:
    result = await call(orchestrator, {"task": "What is the capital of France?"})

    assert result["status"] == "completed", result
    [search] = agent_steps(result)
    assert search["input"] == {"query": "the capital of France"}
    assert "can't answer that offline" in result["answer"]
    assert "**" not in result["answer"]  # no snippets of unrelated documents


async def test_search_queries_leave_out_the_task_label(orchestrator: str) -> None:
    result = await call(orchestrator, {"task": "search for circuit breaker cooldown"})

    [search] = agent_steps(result)
    assert search["input"] == {"query": "circuit breaker cooldown"}
    hits = search["outcome"]["result"]["hits"]
    assert hits and "**task**" not in str(hits).lower()
    assert "Circuit breaker" in result["answer"]


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("How do retries work?", "The model gateway › Retries, fallback, deadline"),
        ("What agents are available?", "The agents"),
        ("How does the circuit breaker work?", "The model gateway › Circuit breaker"),
    ],
)
async def test_a_question_the_knowledge_base_covers_is_answered_from_it(
    orchestrator: str, question: str, section: str
) -> None:
    # "work" and "available" are in no section that answers these: they do not count against it.
    result = await call(orchestrator, {"task": question})

    assert result["status"] == "completed", result
    [search] = agent_steps(result)
    assert section in [hit["title"] for hit in search["outcome"]["result"]["hits"][:3]]
    assert f"{section} (" in result["answer"]
    assert "can't answer that offline" not in result["answer"]


# -- questions over a table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "operation", "sentence"),
    [
        (
            "What are the total units per region?",
            {
                "operation": "group_by",
                "group_by": ["region"],
                "aggregates": [{"fn": "sum", "column": "units"}],
            },
            "Total units per region: North 120, South 85, East 30.",
        ),
        (
            "What is the average units by product?",
            {"group_by": ["product"], "aggregates": [{"fn": "mean", "column": "units"}]},
            "Average units per product: tea 75, coffee 40, cake 5.",
        ),
        (
            "How many rows per region?",
            {"group_by": ["region"], "aggregates": [{"fn": "count"}]},
            "Number of rows per region: North 2, South 2, East 1.",
        ),
        (
            "How many rows are there?",
            {"operation": "group_by", "aggregates": [{"fn": "count"}]},
            "There are 5 rows.",
        ),
        (
            "Show the top 3 by units",
            {"operation": "sort", "limit": 3},
            "Top 3 by units: 1. region South, product tea, units 80; "
            "2. region North, product tea, units 70; 3. region North, product coffee, units 50.",
        ),
        (
            "bottom 1 by units",
            {"operation": "sort", "order_by": [{"column": "units", "descending": False}]},
            "Bottom 1 by units: 1. region South, product cake, units 5.",
        ),
        (
            "Show the rows where region is north",
            {
                "operation": "filter",
                "conditions": [{"column": "region", "op": "==", "value": "North"}],
            },
            "2 rows where region is North: region North, product tea, units 70; "
            "region North, product coffee, units 50.",
        ),
        (
            "What are the total units where product is coffee?",
            {
                "operation": "group_by",
                "conditions": [{"column": "product", "op": "==", "value": "coffee"}],
            },
            "Total units where product is coffee: 80.",
        ),
        (
            "Which product sold the most units?",
            {"group_by": ["product"], "limit": 1},
            "Total units per product: tea 150.",
        ),
    ],
    ids=[
        "total",
        "average",
        "count-per",
        "row-count",
        "top",
        "bottom",
        "filter",
        "total-where",
        "most",
    ],
)
async def test_a_question_over_a_table_gets_its_operation_and_a_sentence(
    orchestrator: str, question: str, operation: dict[str, Any], sentence: str
) -> None:
    result = await call(orchestrator, {"task": question, "data": SALES})

    assert result["status"] == "completed", result
    [step] = agent_steps(result)
    assert step["name"] == "data_processor" and step["error"] is None
    assert operation.items() <= step["input"].items()
    assert step["input"]["dataset"] == "task_data"
    assert result["answer"] == f"[local rule-based model] {sentence}"


async def test_a_large_table_is_still_read_by_its_column_summary(orchestrator: str) -> None:
    # Too large to show in the prompt: the model sees only its columns and first row.
    rows = [{"city": f"c{i % 7}", "people": i} for i in range(2_000)]
    result = await call(orchestrator, {"task": "What are the total people per city?", "data": rows})

    [step] = agent_steps(result)
    assert step["input"]["group_by"] == ["city"] and step["input"]["dataset"] == "task_data"
    totals = {row["city"]: row["sum_people"] for row in step["outcome"]["result"]["rows"]}
    assert sum(totals.values()) == sum(range(2_000)) and len(totals) == 7
    assert result["answer"].startswith("[local rule-based model] Total people per city: ")


# A question naming a region, or asking "how many" of a number column, over this table:
# North 70 + 50, South 80, East 30.
REGIONS = "region,product,units\nNorth,a,70\nNorth,b,50\nSouth,a,80\nEast,c,30\n"


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("total units for North", "Total units where region is North: 120."),
        ("How many rows have region North?", "There are 2 rows where region is North."),
        ("How many units were sold in total?", "Total units: 230."),
        (
            "How many units for north and east?",
            "Total units per region where region is one of North, East: North 120, East 30.",
        ),
    ],
)
async def test_a_question_naming_cells_or_counting_a_number_gets_the_right_number(
    orchestrator: str, question: str, sentence: str
) -> None:
    result = await call(orchestrator, {"task": question, "data": REGIONS})

    assert result["status"] == "completed", result
    [step] = agent_steps(result)
    assert step["name"] == "data_processor" and step["error"] is None
    assert result["answer"] == f"[local rule-based model] {sentence}"


async def test_an_mcp_servers_tool_is_picked_by_the_tasks_words(
    stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, a third-party MCP server's tool is chosen by its name and description, and
    its required argument filled from the task."""
    from tests.fakes.mcp_server import serve_weather

    weather = serve_weather()
    for variable, url in stack.items():
        monkeypatch.setenv(variable, url)
    monkeypatch.setenv("MCP_SERVERS", f"weather={weather.url}/mcp")
    try:
        async with serve_orchestrator() as url:
            result = await call(url, {"task": "What is the weather forecast for Paris?"})
    finally:
        weather.stop()

    [step] = [s for s in result["steps"] if s["kind"] == "agent"]
    assert (step["name"], step["input"]) == ("weather__get_forecast", {"city": "Paris"})
    assert step["outcome"]["forecast"] == "sunny"
    assert result["status"] == "completed" and "sunny" in result["answer"]
