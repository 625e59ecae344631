"""The orchestrator as functions-framework serves it (its ASGI app under uvicorn, real sockets),
built from a config file as production builds it; the gateway and the agents are fakes over
HTTP. uvicorn runs in the test's own loop, so the app's client can be closed in its loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from functions.orchestrator.config import load_orchestrator_config
from functions.orchestrator.service import REPLAYED_HEADER
from functions.orchestrator.tools import MAX_TASK_DEPTH
from shared.errors import ConfigError
from shared.inbound import STRUCTURED_CONTENT_TYPE
from shared.manifest import load_manifest
from tests.orchestrator.fakes import CALCULATOR, FakeAgents, FakeEndpoint, calculate
from tests.orchestrator.serving import serve_orchestrator

pytestmark = pytest.mark.anyio


def message(*content: dict[str, Any]) -> dict[str, Any]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    usage = {"input_tokens": 5, "output_tokens": 2}
    return {"type": "message", "content": list(content), "stop_reason": stop, "usage": usage}


CALL = {"type": "tool_use", "id": "t1", "name": "calculator", "input": {"expression": "6*7"}}
ANSWER = {"type": "text", "text": "42"}


@pytest.fixture
async def served(
    tmp_path: Path,
    fake_agents: FakeAgents,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, FakeEndpoint]]:
    """The orchestrator on a fake gateway; ``indirect`` parametrisation adds variables."""
    for variable, value in getattr(request, "param", {}).items():
        monkeypatch.setenv(variable, value)
    gateway = await FakeEndpoint("/v1/messages").start()
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    config = {
        "gateway": {"url": "http://unused.invalid", "retry": {"max_attempts": 1}},
        "agents": {"calculator": {"url": "http://unused.invalid"}},
        "max_body_bytes": 4096,
    }
    path = tmp_path / "orchestrator.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("ORCHESTRATOR_CONFIG", str(path))
    monkeypatch.setenv("GATEWAY_URL", gateway.url)  # the variables win over the file
    monkeypatch.setenv("CALCULATOR_URL", fake_agents.url("calculator"))
    async with serve_orchestrator() as url:
        yield url, gateway
    await gateway.close()


async def test_post_a_task_over_http(served: tuple[str, FakeEndpoint]) -> None:
    url, gateway = served
    gateway.enqueue((200, message(CALL), {"x-gateway-provider": "local"}), (200, message(ANSWER)))
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, json={"task": "6*7?"}, headers={"x-request-id": "req-abc"}) as response,
    ):
        body = await response.json()
        assert response.status == 200 and response.headers["x-request-id"] == "req-abc"
    assert body["status"] == "completed" and body["answer"] == "42"
    assert body["steps"][0]["provider"] == "local"
    assert body["steps"][1]["outcome"]["result"]["value"] == 42
    assert {r.headers["x-request-id"] for r in gateway.received} == {"req-abc"}


@pytest.mark.parametrize("served", [{"GATEWAY_API_KEYS": " k-first , k-second"}], indirect=True)
async def test_the_gateway_key_is_the_first_of_gateway_api_keys(
    served: tuple[str, FakeEndpoint],
) -> None:
    # The one setting the README advises (GATEWAY_API_KEYS in .env) gives the gateway its keys
    # and the orchestrator, its client, its key: it used to send none (GATEWAY_API_KEY only).
    url, gateway = served
    gateway.enqueue((200, message(ANSWER)))
    async with aiohttp.ClientSession() as client, client.post(url, json={"task": "hi"}) as reply:
        assert reply.status == 200 and (await reply.json())["status"] == "completed"
    assert [r.headers.get("x-api-key") for r in gateway.received] == ["k-first"]


async def test_stream_over_http(served: tuple[str, FakeEndpoint]) -> None:
    url, gateway = served
    gateway.enqueue((200, message(CALL)), (200, message(ANSWER)))
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, json={"task": "6*7?", "stream": True}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    blocks = [b for b in raw.split("\n\n") if b]
    steps = [b for b in blocks if not b.startswith("event: text_delta")]
    assert [b.split("\n")[0] for b in steps] == (
        ["event: step_started", "event: step_finished"] * 3 + ["event: result"]
    )
    # The gateway answered each turn whole (no stream): its text is passed on whole.
    [delta] = [b for b in blocks if b.startswith("event: text_delta")]
    assert json.loads(delta.split("\n")[1].removeprefix("data: ")) == {"index": 2, "text": "42"}
    assert json.loads(blocks[-1].split("\n")[1].removeprefix("data: "))["answer"] == "42"


async def test_errors_in_the_json_shape(served: tuple[str, FakeEndpoint]) -> None:
    url, gateway = served
    cases: list[tuple[bytes, int, str]] = [
        (b'{"task": ', 400, "not valid JSON"),
        (b'{"max_steps": 2}', 400, "task"),
        (json.dumps({"task": "x" * 5000}).encode(), 413, "limit"),
    ]
    async with aiohttp.ClientSession() as client:
        for body, status, says in cases:
            headers = {"content-type": "application/json"}
            async with client.post(url, data=body, headers=headers) as response:
                error = await response.json()
                assert response.status == status
                assert error["type"] == "error" and says in error["error"]["message"]
        async with client.post(url, json={"task": "hi"}) as response:  # gateway is scripted 200 {}
            assert response.status == 503
            assert (await response.json())["error"]["message"].startswith(
                "the model gateway is unavailable"
            )


async def test_health_and_agents(served: tuple[str, FakeEndpoint]) -> None:
    url, _ = served
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{url}/health") as response:
            health = await response.json()
        async with client.get(f"{url}/agents") as response:
            agents = await response.json()
    assert health["status"] == "ok" and health["function"] == "orchestrator"
    [calculator] = agents["agents"]
    assert calculator["name"] == "calculator" and calculator["reachable"] is True


def test_a_bad_config_names_file_key_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"url": "http://g", "timeout_s": "soon"}}))
    with pytest.raises(ConfigError, match=r"bad.yaml: gateway.timeout_s: Input should be"):
        load_orchestrator_config({"ORCHESTRATOR_CONFIG": str(path)})
    with pytest.raises(ConfigError, match=r"agents.search.url \(from \$SEARCH_URL\)"):
        load_orchestrator_config({"ORCHESTRATOR_CONFIG": str(path), "SEARCH_URL": "nope"})


def test_the_shipped_configs_load() -> None:
    local = load_orchestrator_config({})
    assert local.gateway.url == "http://localhost:8585" and local.gateway.route == "default"
    assert list(local.agents) == [agent.name for agent in load_manifest().agents]
    assert local.agents["calculator"].url == "http://localhost:8081"
    overridden = load_orchestrator_config({"TAVILY_URL": "http://t:1", "K_SINK": "http://s:2"})
    assert overridden.agents["tavily"].url == "http://t:1" and overridden.sink.url == "http://s:2"


async def test_deep_data_and_unnamed_events_are_400s_over_http(
    served: tuple[str, FakeEndpoint],
) -> None:
    # On the server's shallow stack Python's parser takes 990 levels: that answered 200, and
    # failed encoding the run at 950. Now the limit is checked as the task is parsed.
    url, gateway = served
    task = '{"task": "sum", "data": [{"k": ' + "[" * 988 + "]" * 988 + "}]}"
    event = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/t", "ce-type": "t"}
    structured = '{"specversion": "1.0", "id": "e2", "source": "/t", "type": "t", "data": %s}'
    cases: list[tuple[dict[str, str], str, str]] = [
        ({}, task, f"at most {MAX_TASK_DEPTH} levels"),
        (event, task, f"at most {MAX_TASK_DEPTH} levels"),
        ({"content-type": STRUCTURED_CONTENT_TYPE}, structured % task, f"at most {MAX_TASK_DEPTH}"),
        ({**event, "ce-id": ""}, '{"task": "hi"}', "'id' (header ce-id) must be a non-empty"),
    ]
    async with aiohttp.ClientSession() as client:
        for headers, body, says in cases:
            headers = {"content-type": "application/json", **headers}
            async with client.post(url, data=body.encode(), headers=headers) as response:
                error = await response.json()
                assert response.status == 400, error
                assert says in error["error"]["message"]
    assert gateway.received == []  # refused before any work


async def test_a_redelivered_event_is_answered_as_a_replay_over_http(
    served: tuple[str, FakeEndpoint],
) -> None:
    url, gateway = served
    gateway.enqueue((200, message(ANSWER)))
    event = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/t", "ce-type": "t"}
    answers = []
    async with aiohttp.ClientSession() as client:
        for _ in range(2):
            async with client.post(url, json={"task": "6*7?"}, headers=event) as response:
                answers.append((response.headers.get(REPLAYED_HEADER), await response.json()))
    (first_header, first), (second_header, second) = answers
    assert first_header is None and "replayed" not in first
    assert second_header == "true" and second == {**first, "replayed": True}
    assert len(gateway.received) == 1
