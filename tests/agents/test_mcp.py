"""Every agent is an MCP server at ``/mcp``: the official ``mcp`` client against the calculator
as production builds it, served on real sockets, and a probe agent whose run fails.

The SDK is imported inside the tests (1.8 s of imports), never at collection."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from shared.agent import AgentResult, AgentSpec, agent_app
from shared.entry import function_app
from tests.agents.support import AGENTS_DIR
from tests.served import ServedApp

if TYPE_CHECKING:
    from mcp import Client

HUGE = 2 * 1024 * 1024
CALCULATOR_MAIN = AGENTS_DIR / "calculator/main.py"


@pytest.fixture(scope="module")
def calculator() -> Iterator[str]:
    """The calculator's functions-framework app (its main.py), served; yields its /mcp URL."""
    app = function_app(str(AGENTS_DIR / "calculator/main.py"), "calculator")
    served = ServedApp(app)
    yield f"{served.url}/mcp"
    served.stop()


class Probe(BaseModel):
    word: str


def _fail(probe: Probe) -> AgentResult:
    raise RuntimeError(f"secret internals {probe.word}")


@pytest.fixture(scope="module")
def failing() -> Iterator[str]:
    app = agent_app(AgentSpec("probe", "Fails.", Probe, _fail))

    async def endpoint(request: Request) -> Response:
        return await app(request)

    routes = [Route("/{path:path}", endpoint, methods=["GET", "POST"])]
    served = ServedApp(Starlette(routes=routes), aclose=app.aclose)
    yield f"{served.url}/mcp"
    served.stop()


def with_client(url: str, work: Callable[[Client], Awaitable[Any]], **options: Any) -> Any:
    from mcp import Client

    async def main() -> Any:
        async with Client(url, **options) as client:
            return await work(client)

    return asyncio.run(main())


def test_tools_list_gives_the_schema_the_agent_serves(calculator: str) -> None:
    schema = httpx.get(calculator.removesuffix("/mcp") + "/schema").json()

    listed = with_client(calculator, lambda client: client.list_tools())

    [tool] = listed.tools
    assert tool.name == "calculator"
    assert tool.description == schema["description"]
    assert tool.input_schema == schema["input_schema"]


def test_tools_call_answers_text_and_structured_content(calculator: str) -> None:
    result = with_client(calculator, lambda c: c.call_tool("calculator", {"expression": "2^10"}))

    assert not result.is_error
    assert result.structured_content == {"expression": "2^10", "value": 1024}
    assert result.content[0].text == '{"expression":"2^10","value":1024}'


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_clients_of_either_revision_are_served(calculator: str, mode: str) -> None:
    result = with_client(
        calculator, lambda c: c.call_tool("calculator", {"expression": "6*7"}), mode=mode
    )

    assert result.structured_content["value"] == 42


def test_a_bad_argument_is_a_tool_error(calculator: str) -> None:
    result = with_client(calculator, lambda c: c.call_tool("calculator", {"expr": "1"}))

    assert result.is_error
    assert "expression: Field required" in result.content[0].text


def test_an_unknown_tool_is_a_tool_error(calculator: str) -> None:
    result = with_client(calculator, lambda c: c.call_tool("search", {"query": "x"}))

    assert result.is_error
    assert "this server has 'calculator'" in result.content[0].text


def test_the_agents_own_error_is_a_tool_error(calculator: str) -> None:
    result = with_client(calculator, lambda c: c.call_tool("calculator", {"expression": "1/0"}))

    assert result.is_error
    assert "division by zero" in result.content[0].text
    assert result.structured_content is None


def test_a_failing_run_is_a_tool_error_without_internals(failing: str) -> None:
    result = with_client(failing, lambda c: c.call_tool("probe", {"word": "x"}))

    assert result.is_error
    assert "secret internals" not in result.content[0].text
    assert "the agent failed" in result.content[0].text


def test_a_huge_argument_is_refused_before_it_is_read(calculator: str) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "calculator", "arguments": {"expression": "1" * HUGE}},
    }
    headers = {"accept": "application/json, text/event-stream"}

    response = httpx.post(calculator, json=call, headers=headers, timeout=10)

    assert response.status_code == 413
    assert "the limit is 1048576 bytes" in response.json()["error"]["message"]


def test_a_huge_argument_through_the_client_fails_clearly(calculator: str) -> None:
    from mcp.shared.exceptions import MCPError

    async def call(client: Client) -> Any:
        return await client.call_tool("calculator", {"expression": "1" * HUGE})

    with pytest.raises((MCPError, httpx.HTTPError, ExceptionGroup)):
        with_client(calculator, call, read_timeout_seconds=10)


def test_many_concurrent_calls_all_answer(calculator: str) -> None:
    async def calls(client: Client) -> list[Any]:
        return await asyncio.gather(
            *(client.call_tool("calculator", {"expression": f"{n}+1"}) for n in range(100))
        )

    results = with_client(calculator, calls)

    assert [r.structured_content["value"] for r in results] == [n + 1 for n in range(100)]
    assert not any(r.is_error for r in results)


def test_only_post_is_served(calculator: str) -> None:
    response = httpx.get(calculator, headers={"accept": "text/event-stream"}, timeout=5)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_an_agent_starts_and_answers_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cold-start budget: the SDK loads on the first /mcp request, not with the app."""
    for name in [n for n in sys.modules if n == "mcp" or n.startswith(("mcp.", "mcp_types"))]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "mcp", None)
    client = TestClient(function_app(str(CALCULATOR_MAIN), "calculator"))

    assert client.get("/schema").status_code == 200
    assert client.post("/", json={"expression": "1+1"}).json()["result"]["value"] == 2


def test_without_the_sdk_mcp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "mcp" or n.startswith(("mcp.", "mcp_types"))]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "mcp", None)
    client = TestClient(function_app(str(CALCULATOR_MAIN), "calculator"))

    response = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})

    assert response.status_code == 503
    assert "add the 'mcp' extra" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "Parse error"),
        (b"[" * 100_000 + b"]" * 100_000, "Parse error"),  # nesting: refused, not a crash
        (b'"a string"', "Validation error"),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]', "Validation error"),
    ],
)
def test_hostile_bodies_get_a_json_rpc_400(calculator: str, body: bytes, says: str) -> None:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

    response = httpx.post(calculator, content=body, headers=headers, timeout=10)

    assert response.status_code == 400
    assert says in response.json()["error"]["message"]
    assert httpx.get(calculator.removesuffix("/mcp") + "/health").status_code == 200


def test_mcp_answers_in_process_from_one_loop_after_another() -> None:
    """starlette's TestClient runs each request in a loop of its own: the SDK starts again in
    each rather than waiting on a loop that is gone."""
    client = TestClient(function_app(str(CALCULATOR_MAIN), "calculator"))
    headers = {"accept": "application/json, text/event-stream"}
    values = []
    for n in range(2):
        params = {"name": "calculator", "arguments": {"expression": f"{n}+1"}}
        call = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params}
        answer = client.post("/mcp", json=call, headers=headers).json()
        values.append(answer["result"]["structuredContent"]["value"])

    assert values == [1, 2]
