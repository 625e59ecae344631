"""agent_app: ``GET /schema`` and validated ``POST /`` for every agent."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from shared.agent import AgentResult, AgentSpec, agent_app, parse_input
from shared.errors import BadRequest
from tests.served import ServedApp


def test_schema_is_the_tool_definition(agent_client: TestClient) -> None:
    schema = agent_client.get("/schema").json()

    assert set(schema) == {"name", "description", "input_schema"}
    assert schema["name"] == "repeat"
    assert schema["description"].startswith("Repeats a word")
    input_schema = schema["input_schema"]
    assert input_schema["type"] == "object"
    assert input_schema["required"] == ["word"]
    assert input_schema["properties"]["word"]["description"] == "The word to repeat."
    assert input_schema["properties"]["times"]["maximum"] == 5
    assert input_schema["examples"] == [{"word": "hi", "times": 3}]


def test_valid_input_runs_the_agent(agent_client: TestClient) -> None:
    response = agent_client.post("/", json={"word": "hi", "times": 3})

    assert response.status_code == 200
    assert response.json() == {"result": "hi hi hi", "meta": {"engine": "repeat"}}


def test_cloudevent_input_runs_the_agent(agent_client: TestClient) -> None:
    event = CloudEvent({"type": "agentorch.tool", "source": "tests"}, {"word": "yo"})
    headers, body = to_binary(event)

    response = agent_client.post("/", content=body, headers=headers)

    assert response.json()["result"] == "yo yo"


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        ({"times": 2}, ["word: Field required"]),
        ({"word": "hi", "times": 9}, ["times:", "less than or equal to 5"]),
        ({"word": "", "times": "x"}, ["word:", "times:"]),
    ],
)
def test_invalid_input_names_the_field(
    agent_client: TestClient, payload: dict[str, object], fragments: list[str]
) -> None:
    response = agent_client.post("/", json=payload)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("invalid input: ")
    for fragment in fragments:
        assert fragment in error["message"]


@pytest.mark.parametrize("payload", [[1, 2], "word", 3, None])
def test_non_object_json_is_a_400(agent_client: TestClient, payload: object) -> None:
    body = json.dumps(payload)  # json=None would send no body at all

    response = agent_client.post("/", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["error"]["message"]


def test_schema_is_get_only(agent_client: TestClient) -> None:
    response = agent_client.post("/schema", json={})

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_parse_input_nested_location() -> None:
    class Inner(BaseModel):
        n: int = Field(ge=0)

    class Outer(BaseModel):
        items: list[Inner]

    with pytest.raises(BadRequest, match=r"items\.1\.n: Input should be greater than or equal"):
        parse_input(Outer, {"items": [{"n": 1}, {"n": -1}]})


class Nothing(BaseModel):
    pass


def test_health_answers_while_an_agent_works() -> None:
    # One event loop serves every request (as in a uvicorn worker): a run on the loop would
    # hold /health until it ended.
    started, release = threading.Event(), threading.Event()

    def hold(agent_input: Nothing) -> AgentResult:
        started.set()
        release.wait(10)
        return AgentResult("released")

    app = agent_app(AgentSpec("hold", "Holds until released.", Nothing, hold))

    async def endpoint(request: Request) -> Response:
        return await app(request)

    served = ServedApp(Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])]))
    try:
        with httpx.Client(base_url=served.url, timeout=10) as client, ThreadPoolExecutor(1) as pool:
            working = pool.submit(client.post, "/", json={})
            assert started.wait(10)

            health = client.get("/health", timeout=2)

            assert health.status_code == 200
            assert not working.done()
            release.set()
            assert working.result(timeout=10).json()["result"] == "released"
    finally:
        release.set()
        served.stop()


def test_a_call_sent_again_with_its_idempotency_key_is_answered_not_run_again() -> None:
    runs: list[int] = []

    def count(agent_input: Nothing) -> AgentResult:
        runs.append(1)
        return AgentResult(len(runs))

    app = agent_app(AgentSpec("count", "Counts its runs.", Nothing, count))

    async def endpoint(request: Request) -> Response:
        return await app(request)

    routes = [Route("/{path:path}", endpoint, methods=["POST"])]
    with TestClient(Starlette(routes=routes)) as client:
        key = {"idempotency-key": "run_1:3"}
        first = client.post("/", json={}, headers=key)
        again = client.post("/", json={}, headers=key)
        other = client.post("/", json={}, headers={"idempotency-key": "run_1:4"})
        reused = client.post("/", json={"x": 1}, headers=key)
        unkeyed = client.post("/", json={})

    assert first.json()["result"] == again.json()["result"] == 1
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.json()["result"] == 2 and unkeyed.json()["result"] == 3
    assert reused.status_code == 422 and "another request" in reused.json()["error"]["message"]
