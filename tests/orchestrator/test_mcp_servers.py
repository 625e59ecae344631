"""MCP servers as agents: a third-party server written with the SDK's ``MCPServer``
(``tests.fakes.mcp_server``) consumed by the orchestrator, its tools offered as
``<server>__<tool>``, its output treated as untrusted data.

The SDK is imported by the fixture server and the orchestrator on first use, never at
collection."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from functions.orchestrator.agents import AgentSet
from functions.orchestrator.budgets import Budget, LoopSettings
from functions.orchestrator.config import (
    AgentCallSettings,
    McpServerEntry,
    load_orchestrator_config,
)
from functions.orchestrator.loop import Task, run_task
from functions.orchestrator.mcp_agents import McpServers
from functions.orchestrator.trace import RunResult, Status, StopReason
from shared.aio import AsyncHttp
from shared.errors import ConfigError
from shared.http import header_map
from shared.resilience import RetrySettings
from tests.fakes.mcp_server import FORECAST, INJECTION, weather_app
from tests.orchestrator.fakes import (
    FakeAgents,
    FakeEndpoint,
    ScriptedModel,
    directory,
    text,
    tool_use,
)
from tests.orchestrator.serving import serve_orchestrator
from tests.served import ServedApp, refused_url

pytestmark = pytest.mark.anyio
TOKEN = "mcp-0123456789abcdef"
BUDGET = Budget(max_steps=6, timeout_s=10, max_tokens=50_000)


class Recorded:
    """The weather server behind a recorder of every request's headers and JSON-RPC method."""

    def __init__(self, stateless: bool = True) -> None:
        app = weather_app(stateless=stateless)
        self.requests: list[tuple[dict[str, str], str]] = []

        async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            body = b""

            async def replay() -> dict[str, Any]:
                nonlocal body
                message: dict[str, Any] = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    method = json.loads(body or b"{}").get("method", "") if body else ""
                    self.requests.append((header_map(scope["headers"]), method))
                return message

            await app(scope, replay, send)

        self.served = ServedApp(recording, lifespan=True)
        self.url = f"{self.served.url}/mcp"

    def methods(self) -> list[str]:
        return [method for _, method in self.requests]


@pytest.fixture(scope="module")
def weather() -> Iterator[Recorded]:
    recorded = Recorded()
    yield recorded
    recorded.served.stop()


def servers(url: str, *, ttl_s: float = 30.0, max_bytes: int = 64 * 1024) -> McpServers:
    settings = AgentCallSettings(
        retry=RetrySettings(max_attempts=2, base_delay_s=0.0, max_delay_s=0.0),
        schema_ttl_s=ttl_s,
        timeout_s=5.0,
    )
    entries = {"weather": McpServerEntry(url=url), "down": McpServerEntry(url=refused_url())}
    return McpServers(entries, settings, max_result_bytes=max_bytes)


@pytest.fixture
async def mcp(weather: Recorded) -> AsyncIterator[McpServers]:
    found = servers(weather.url)
    yield found
    await found.aclose()


async def run(model: ScriptedModel, agents: Any, task: str = "Weather in Paris?") -> RunResult:
    return await run_task(
        Task(task, BUDGET), run_id="run_mcp", model=model, agents=agents, settings=LoopSettings()
    )


# -- configuration ----------------------------------------------------------------------------


def test_mcp_servers_names_servers_by_url() -> None:
    environ = {"MCP_SERVERS": "github=https://mcp.example.com/mcp, files=http://localhost:9/mcp"}

    config = load_orchestrator_config(environ)

    assert {name: e.url for name, e in config.mcp_servers.items()} == {
        "github": "https://mcp.example.com/mcp",
        "files": "http://localhost:9/mcp",
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("github", "write it as name=http(s)://host[:port]"),
        ("git__hub=http://a", "without '__'"),
        ("calculator=http://a", "has an agent's name"),
        ("a=ftp://x", "is not an http(s) URL"),
        ("a=http://x,a=http://y", "server 'a' is named twice"),
    ],
)
def test_a_bad_mcp_servers_entry_stops_start_up(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_orchestrator_config({"MCP_SERVERS": value})


# -- listing ----------------------------------------------------------------------------------


async def test_tools_are_listed_namespaced_and_a_down_server_says_why(mcp: McpServers) -> None:
    statuses = await mcp.statuses()

    offered = {name for name, status in statuses.items() if status.reachable}
    assert offered == {
        "weather__get_forecast",
        "weather__alerts",
        "weather__notes",
        "weather__dump",
        "weather__bad_name_v2",  # bad.name/v2, in the characters model APIs accept
    }
    forecast = statuses["weather__get_forecast"].spec
    assert forecast is not None and forecast.input_schema["required"] == ["city"]
    assert "Get the weather forecast for a city" in forecast.description
    assert statuses["down"].state.value == "unavailable"
    assert "tools/list failed" in (statuses["down"].reason or "")
    assert all(status.kind == "mcp" for status in statuses.values())


async def test_the_tool_list_is_cached_then_listed_again(weather: Recorded) -> None:
    now = [0.0]
    found = servers(weather.url, ttl_s=10)
    found._clock = lambda: now[0]  # the TTL on a clock the test drives
    before = weather.methods().count("tools/list")
    try:
        await found.statuses(["weather"])
        await found.statuses(["weather__get_forecast"])
        assert weather.methods().count("tools/list") == before + 1
        now[0] = 11.0
        await found.statuses(["weather"])
    finally:
        await found.aclose()
    assert weather.methods().count("tools/list") == before + 2


async def test_a_server_of_the_earlier_revision_with_sessions_works() -> None:
    legacy = Recorded(stateless=False)
    found = servers(legacy.url)
    try:
        await found.statuses(["weather"])
        answer = await found.call("weather__get_forecast", {"city": "Oslo"}, timeout_s=5)
    finally:
        await found.aclose()
        legacy.served.stop()
    assert answer.result == {**FORECAST, "city": "Oslo"}


# -- calls through the loop ---------------------------------------------------------------


async def test_a_tool_is_called_and_its_result_reaches_the_model(
    mcp: McpServers, weather: Recorded
) -> None:
    model = ScriptedModel().enqueue(
        tool_use(("weather__get_forecast", {"city": "Paris"})), text("Sunny, 21 C.")
    )

    result = await run(model, mcp)

    assert result.status is Status.COMPLETED and result.answer == "Sunny, 21 C."
    [step] = [s for s in result.steps if s.kind == "agent"]
    assert step.name == "weather__get_forecast" and step.outcome == FORECAST
    [returned] = model.tool_results(1)
    assert json.loads(returned["content"]) == FORECAST and "is_error" not in returned


async def test_a_tool_call_carries_the_steps_idempotency_key_as_an_agent_call_does(
    weather: Recorded,
) -> None:
    found = servers(weather.url)
    seen = len(weather.requests)
    model = ScriptedModel().enqueue(
        tool_use(("weather__get_forecast", {"city": "Paris"})), text("Sunny, 21 C.")
    )
    try:
        result = await run(model, found)
    finally:
        await found.aclose()

    assert result.status is Status.COMPLETED
    [step] = [s for s in result.steps if s.kind == "agent"]
    sent = weather.requests[seen:]
    [key] = [h.get("idempotency-key") for h, method in sent if method == "tools/call"]
    assert key == f"run_mcp:{step.index}"
    others = [h.get("idempotency-key") for h, method in sent if method != "tools/call"]
    assert others and not any(others)  # a listing (or a handshake) is no step to repeat


async def test_invalid_arguments_never_reach_the_server(mcp: McpServers, weather: Recorded) -> None:
    model = ScriptedModel().enqueue(
        tool_use(("weather__get_forecast", {"town": "Paris"})), text("Sorry.")
    )
    await mcp.statuses()
    calls = weather.methods().count("tools/call")

    await run(model, mcp)

    [returned] = model.tool_results(1)
    assert returned["is_error"] and "'city' is a required property" in returned["content"]
    assert weather.methods().count("tools/call") == calls


async def test_a_tool_error_goes_back_to_the_model_as_an_error(mcp: McpServers) -> None:
    model = ScriptedModel().enqueue(tool_use(("weather__alerts", {"region": "x"})), text("None."))

    await run(model, mcp)

    [returned] = model.tool_results(1)
    assert returned["is_error"]
    assert "weather__alerts answered an error" in returned["content"]


async def test_an_answer_past_the_limit_is_refused_once(mcp: McpServers) -> None:
    model = ScriptedModel().enqueue(tool_use(("weather__dump", {})), text("Too big."))

    result = await run(model, mcp)

    [returned] = model.tool_results(1)
    assert returned["is_error"] and "the limit is 65536" in returned["content"]
    [step] = [s for s in result.steps if s.kind == "agent"]
    assert step.attempts == 1  # not retried: the same server gives the same answer


async def test_tool_output_cannot_widen_the_tools_or_the_budget(mcp: McpServers) -> None:
    """Prompt injection through an MCP tool: its text reaches the model only as a tool result;
    the next model call offers the same tools, and the run keeps its own budget."""
    model = ScriptedModel().enqueue(
        tool_use(("weather__notes", {"topic": "today"})),
        tool_use(("admin__delete_everything", {})),  # the model fell for it
        *[tool_use(("weather__notes", {"topic": "again"})) for _ in range(10)],
    )

    result = await run(model, mcp)

    first, second = model.requests[0], model.requests[1]
    assert [t["name"] for t in second["tools"]] == [t["name"] for t in first["tools"]]
    assert "admin__delete_everything" not in [t["name"] for t in first["tools"]]
    assert INJECTION in model.tool_results(1)[0]["content"]  # as data, in a tool_result
    assert INJECTION not in second["system"]
    [refused] = model.tool_results(2)
    assert (
        refused["is_error"]
        and "there is no tool named 'admin__delete_everything'" in (refused["content"])
    )
    assert result.stop_reason is StopReason.MAX_STEPS and len(result.steps) <= BUDGET.max_steps


async def test_http_agents_and_mcp_tools_are_offered_together(
    mcp: McpServers, fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    fake_agents.add("calculator", lambda a: (200, {"result": 42}))
    agents = AgentSet(directory(fake_agents, http), mcp)
    model = ScriptedModel().enqueue(text("Nothing to do."))

    await run(model, agents)

    offered = [t["name"] for t in model.requests[0]["tools"]]
    assert "calculator" in offered and "weather__get_forecast" in offered
    assert agents.knows("weather__get_forecast") and agents.knows("weather")
    assert not agents.knows("elsewhere__tool")


# -- end to end: the orchestrator served, the model behind a fake gateway ------------------


def message(*content: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "fake",
        "content": list(content),
        "stop_reason": "tool_use" if content[0]["type"] == "tool_use" else "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


async def test_the_served_orchestrator_uses_an_mcp_server_with_its_headers(
    weather: Recorded, monkeypatch: pytest.MonkeyPatch, logged: Any
) -> None:
    gateway = await FakeEndpoint("/v1/messages").start()
    call = {
        "type": "tool_use",
        "id": "t1",
        "name": "weather__get_forecast",
        "input": {"city": "Paris"},
    }
    gateway.enqueue((200, message(call)), (200, message({"type": "text", "text": "Sunny."})))
    monkeypatch.setenv("GATEWAY_URL", gateway.url)
    monkeypatch.setenv("MCP_SERVERS", f"weather={weather.url},down={refused_url()}/mcp")
    monkeypatch.setenv("MCP_WEATHER_HEADERS", f"authorization=Bearer {TOKEN}")
    seen = len(weather.requests)
    try:
        async with serve_orchestrator() as url, aiohttp.ClientSession() as client:
            task = {"task": "Weather in Paris?", "agents": ["weather"]}
            async with client.post(url, json=task) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
                request_id = r.headers["x-request-id"]
            async with client.get(f"{url}/agents") as r:
                listed = await r.text()
    finally:
        await gateway.close()
    assert body["status"] == "completed" and body["answer"] == "Sunny."
    [step] = [s for s in body["steps"] if s["kind"] == "agent"]
    assert step["outcome"] == FORECAST
    offered = [tool["name"] for tool in gateway.received[0].body["tools"]]
    assert "weather__get_forecast" in offered and "calculator" not in offered
    sent = weather.requests[seen:]
    assert sent and all(h.get("authorization") == f"Bearer {TOKEN}" for h, _ in sent)
    [called] = [h for h, method in sent if method == "tools/call"]
    assert called["x-request-id"] == request_id and called["idempotency-key"].endswith(":1")
    agents = {a["name"]: a for a in json.loads(listed)["agents"]}
    assert agents["weather__get_forecast"]["kind"] == "mcp"
    assert agents["weather__get_forecast"]["source"] == "$MCP_SERVERS"
    assert (
        agents["down"]["status"] == "unavailable"
        and "tools/list failed" in agents["down"]["reason"]
    )
    for shown in (json.dumps(body), listed, str(logged())):
        assert TOKEN not in shown


def test_the_orchestrator_starts_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cold-start budget: MCP servers configured or not, the SDK loads on first use."""
    import sys

    from functions.orchestrator.service import build_app, build_service

    for name in [n for n in sys.modules if n == "mcp" or n.startswith(("mcp.", "mcp_types"))]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "mcp", None)
    environ = {"GATEWAY_URL": refused_url(), "MCP_SERVERS": f"weather={refused_url()}/mcp"}

    app = build_app(build_service(environ))

    assert app.name == "orchestrator"


async def test_a_tool_never_listed_is_a_call_error(weather: Recorded) -> None:
    from functions.orchestrator.agent_types import AgentCallError

    found = servers(weather.url)
    try:
        with pytest.raises(AgentCallError, match="has no tool 'weather__nothing' listed"):
            await found.call("weather__nothing", {}, timeout_s=5)
    finally:
        await found.aclose()


async def test_an_mcp_call_carries_the_callers_trace_context(
    mcp: McpServers, weather: Recorded
) -> None:
    """W3C ``traceparent`` (and ``tracestate``) on the requests to the MCP server: the task's
    trace goes on into the tool (tracing off here: the context is passed on as it came)."""
    from shared import telemetry

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    came = {"traceparent": parent, "tracestate": "vendor=v1"}
    await mcp.statuses(["weather"])
    before = len(weather.requests)
    with telemetry.server_span("POST /tasks", came):
        await mcp.call("weather__get_forecast", {"city": "Oslo"}, timeout_s=5)
    sent = [headers for headers, method in weather.requests[before:] if method == "tools/call"]
    assert sent and sent[0]["traceparent"] == parent
    assert sent[0]["tracestate"] == "vendor=v1"
