"""The tavily function over HTTP: schema, health, JSON and CloudEvent input, error shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured

from functions.agents.tavily import agent as agent_module
from functions.agents.tavily.agent import build_spec
from functions.agents.tavily.client import NOT_CONFIGURED_REASON
from shared.agent import agent_app
from shared.aio import AsyncHttp
from shared.errors import ConfigError
from tests.agents.support import (
    FunctionClient,
    error_of,
    event,
    function_client,
    invalid_request_message,
)
from tests.agents.tavily.conftest import API_KEY
from tests.fakes.tavily_server import FakeTavily
from tests.fakes.transport import FakeTransport


def test_schema_is_a_tool_definition(client: FunctionClient) -> None:
    schema = client.get("/schema").get_json()
    assert schema["name"] == "tavily"
    assert "Do NOT use" in schema["description"]
    properties = schema["input_schema"]["properties"]
    assert schema["input_schema"]["required"] == ["query"]
    assert properties["max_results"]["minimum"] == 1
    assert properties["max_results"]["maximum"] == 20
    assert properties["search_depth"]["enum"] == ["basic", "advanced"]
    assert properties["topic"]["enum"] == ["general", "news"]
    assert schema["input_schema"]["examples"][0]["query"]


def test_search_answers_with_mapped_results(client: FunctionClient, configured: FakeTavily) -> None:
    response = client.post("/", json={"query": "duckdb", "max_results": 2})
    assert response.status_code == 200
    result = response.get_json()["result"]
    assert result == {
        "answer": "A short answer about duckdb.",
        "results": [
            {
                "title": "Result 1 for duckdb",
                "url": "https://example.com/1",
                "content": "Snippet 1 about duckdb.",
                "score": 0.9,
            },
            {
                "title": "Result 2 for duckdb",
                "url": "https://example.org/2",
                "content": "Snippet 2 about duckdb.",
                "score": 0.8,
            },
        ],
        "response_time": 1.67,
    }
    assert configured.requests[0].body["search_depth"] == "basic"  # the defaults were sent
    assert configured.requests[0].body["include_answer"] is True


def test_include_answer_false_gives_null_answer(client: FunctionClient) -> None:
    response = client.post("/", json={"query": "q", "include_answer": False})
    assert response.status_code == 200
    assert response.get_json()["result"]["answer"] is None


def test_without_key_search_is_503_not_configured(unconfigured_client: FunctionClient) -> None:
    response = unconfigured_client.post("/", json={"query": "q"})
    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "not_configured"
    assert "TAVILY_API_KEY" in error["message"]


def test_without_key_the_schema_says_not_configured(
    unconfigured_client: FunctionClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent contract: an orchestrator reading this leaves the agent out of its plan.
    response = unconfigured_client.get("/schema")
    assert response.status_code == 503
    assert error_of(response) == {"type": "not_configured", "message": NOT_CONFIGURED_REASON}
    monkeypatch.setenv("TAVILY_API_KEY", API_KEY)
    assert unconfigured_client.get("/schema").get_json()["name"] == "tavily"


def test_health_says_whether_configured(
    unconfigured_client: FunctionClient, monkeypatch: pytest.MonkeyPatch, tavily_server: FakeTavily
) -> None:
    health = unconfigured_client.get("/health")
    assert health.status_code == 200
    assert health.get_json() == {
        "status": "ok",
        "function": "tavily",
        "configured": False,
        "not_configured": NOT_CONFIGURED_REASON,
        "base_url": "https://api.tavily.com",
    }
    monkeypatch.setenv("TAVILY_API_KEY", API_KEY)  # read per request: no restart needed
    assert unconfigured_client.get("/health").get_json()["configured"] is True
    assert tavily_server.requests == []  # health never calls Tavily


def test_key_set_on_a_running_app_takes_effect(
    monkeypatch: pytest.MonkeyPatch, tavily_server: FakeTavily
) -> None:
    monkeypatch.setenv("TAVILY_BASE_URL", tavily_server.url)  # read once, at start
    unconfigured_client = function_client("tavily")
    monkeypatch.setenv("TAVILY_API_KEY", API_KEY)
    assert unconfigured_client.post("/", json={"query": "q"}).status_code == 200


def test_the_app_closes_the_client_it_made_not_one_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, given = FakeTransport(), FakeTransport()
    monkeypatch.setattr(agent_module, "outbound_transport", lambda environ: made)
    asyncio.run(agent_app(build_spec({})).aclose())
    asyncio.run(agent_app(build_spec({}, http=AsyncHttp(given))).aclose())
    assert made.closed and not given.closed  # whoever gives a client closes it


def test_bad_setting_stops_the_function_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match="TAVILY_TIMEOUT_S"):
        function_client("tavily")


def test_only_the_key_is_read_again_per_request(
    client: FunctionClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVILY_TIMEOUT_S", "soon")
    assert client.get("/health").status_code == 200
    assert client.post("/", json={"query": "q"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 401}, "query"),
        ({"query": 42}, "query"),
        ({"query": "q", "max_results": 0}, "max_results"),
        ({"query": "q", "max_results": 21}, "max_results"),
        ({"query": "q", "search_depth": "deep"}, "search_depth"),
        ({"query": "q", "topic": "sports"}, "topic"),
        ({"query": "q", "include_answer": "maybe"}, "include_answer"),
        ({"query": "q", "include_domains": "python.org"}, "include_domains"),
        ({"query": "q", "include_domains": ["has space.org"]}, "include_domains.0"),
        ({"query": "q", "exclude_domains": ["https://x.org/"]}, "exclude_domains.0"),
        ({"query": "q", "api_key": "mine"}, "api_key"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    client: FunctionClient, configured: FakeTavily, body: dict[str, Any], field: str
) -> None:
    response = client.post("/", json=body)
    assert f"{field}:" in invalid_request_message(response)
    assert configured.requests == []


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]"])
def test_body_that_is_not_a_json_object_is_400(client: FunctionClient, raw: bytes) -> None:
    response = client.post("/", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_rate_limit_is_503_with_retry_after_header(
    client: FunctionClient, configured: FakeTavily
) -> None:
    configured.enqueue(status=429, headers={"retry-after": "12"})
    response = client.post("/", json={"query": "q"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "12"
    assert "rate limit" in error_of(response)["message"]


def test_refused_key_is_502(client: FunctionClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-revoked")
    response = client.post("/", json={"query": "q"})
    assert response.status_code == 502
    assert "TAVILY_API_KEY" in error_of(response)["message"]


def test_upstream_500_is_502(client: FunctionClient, configured: FakeTavily) -> None:
    configured.enqueue(status=500, body={"detail": {"error": "Internal Server Error"}})
    response = client.post("/", json={"query": "q"})
    assert response.status_code == 502
    assert "Internal Server Error" in error_of(response)["message"]


def test_timeout_is_504(configured: FakeTavily, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_TIMEOUT_S", "0.2")  # read once, at start
    client = function_client("tavily")
    configured.enqueue(delay_s=5.0)
    response = client.post("/", json={"query": "q"})
    assert response.status_code == 504
    assert error_of(response)["type"] == "timeout_error"


def test_binary_cloudevent_is_searched(client: FunctionClient, configured: FakeTavily) -> None:
    headers, body = to_binary(event({"query": "from an event", "max_results": 1}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert len(response.get_json()["result"]["results"]) == 1
    assert configured.requests[0].body["query"] == "from an event"


def test_structured_cloudevent_is_searched(client: FunctionClient, configured: FakeTavily) -> None:
    headers, body = to_structured(event({"query": "structured", "topic": "news"}))
    assert headers["content-type"].startswith("application/cloudevents+json")
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert configured.requests[0].body["topic"] == "news"


def test_cloudevent_with_bad_data_is_400(client: FunctionClient) -> None:
    headers, body = to_binary(event({"query": "q", "max_results": 99}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 400
    assert "max_results" in error_of(response)["message"]


def test_request_id_is_echoed(client: FunctionClient) -> None:
    response = client.get("/health", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert json.loads(response.data)["status"] == "ok"
