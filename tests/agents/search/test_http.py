"""The search agent through functions-framework, as the orchestrator and a user call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agents import support
from tests.agents.support import FunctionClient, error_of, function_client, invalid_request_message


def make_client(monkeypatch: pytest.MonkeyPatch, corpus: Path) -> FunctionClient:
    # main.py reads its config when loaded, so the variable must be set before the app is built.
    monkeypatch.setenv("SEARCH_CORPUS_DIR", str(corpus))
    return function_client("search")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, corpus_dir: Path) -> FunctionClient:
    return make_client(monkeypatch, corpus_dir)


def event(data: Any) -> CloudEvent:
    return support.event(data, "dev.agentorch.search")


def test_schema_describes_the_tool(client: FunctionClient) -> None:
    response = client.get("/schema")
    assert response.status_code == 200
    schema = response.get_json()
    assert schema["name"] == "search"
    assert "Do NOT use it" in schema["description"]
    properties = schema["input_schema"]["properties"]
    assert schema["input_schema"]["required"] == ["query"]
    assert (properties["top_k"]["default"], properties["top_k"]["minimum"]) == (5, 1)
    assert properties["top_k"]["maximum"] == 20
    assert schema["input_schema"]["examples"][0]["top_k"] == 3


def test_search_answers_hits(client: FunctionClient) -> None:
    response = client.post("/", json={"query": "garden fountain"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["result"]["query"] == "garden fountain"
    first = body["result"]["hits"][0]
    assert first["title"] == "Field Guide › Running water"
    assert first["source"] == "guide.md"
    assert "**fountain**" in first["snippet"]
    assert first["score"] > 0
    assert body["meta"]["terms"] == ["garden", "fountain"]
    assert body["meta"]["sections_indexed"] == 6


def test_top_k_defaults_to_5_and_is_honoured(client: FunctionClient) -> None:
    query = "birds garden water finches winter heron orchestra boxes sun"
    assert len(client.post("/", json={"query": query}).get_json()["result"]["hits"]) == 5
    two = client.post("/", json={"query": query, "top_k": 2}).get_json()["result"]["hits"]
    assert len(two) == 2


def test_no_hits_is_200_with_an_empty_list(client: FunctionClient) -> None:
    response = client.post("/", json={"query": "submarine"})
    assert response.status_code == 200
    assert response.get_json()["result"] == {"query": "submarine", "hits": []}


@pytest.mark.parametrize(
    "query", ['"unbalanced', "heron*", "NEAR(heron finch)", "body:heron", "-heron", "a AND (b"]
)
def test_fts_syntax_in_queries_is_taken_as_words(client: FunctionClient, query: str) -> None:
    response = client.post("/", json={"query": query})
    assert response.status_code == 200
    assert isinstance(response.get_json()["result"]["hits"], list)


@pytest.mark.parametrize(
    ("payload", "expected_message"),
    [
        ({}, "query: Field required"),
        ({"query": ""}, "query: String should have at least 1 character"),
        ({"query": "   "}, "no words to search for"),
        ({"query": "?!*"}, "no words to search for"),
        ({"query": 7}, "query: Input should be a valid string"),
        ({"query": "x" * 501}, "at most 500 characters"),
        ({"query": "heron", "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
        ({"query": "heron", "top_k": 21}, "top_k: Input should be less than or equal to 20"),
        ({"query": "heron", "top_k": "many"}, "top_k: Input should be a valid integer"),
        ({"query": "heron", "limit": 3}, "limit: Extra inputs are not permitted"),
        (["heron"], "must be a JSON object"),
    ],
)
def test_bad_input_is_400_with_the_reason(
    client: FunctionClient, payload: Any, expected_message: str
) -> None:
    response = client.post("/", json=payload)
    assert expected_message in invalid_request_message(response)


def test_body_that_is_not_json_is_400(client: FunctionClient) -> None:
    response = client.post("/", data=b"query=heron", content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in error_of(response)["message"]


def test_missing_corpus_is_503_naming_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted"
    client = make_client(monkeypatch, missing)
    assert client.get("/health").status_code == 200  # health never touches the corpus
    response = client.post("/", json={"query": "heron"})
    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "not_configured"
    assert str(missing) in error["message"]


def test_binary_cloudevent(client: FunctionClient) -> None:
    headers, body = to_binary(event({"query": "heron", "top_k": 1}))
    headers["content-type"] = "application/json"
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"]["hits"][0]["source"] == "deep/herons.md"


def test_structured_cloudevent(client: FunctionClient) -> None:
    headers, body = to_structured(event({"query": "orchestra"}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"]["hits"][0]["source"] == "notes.txt"


def test_cloudevent_with_invalid_data_is_400(client: FunctionClient) -> None:
    headers, body = to_structured(event({"query": "heron", "top_k": 99}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 400
    assert "top_k" in error_of(response)["message"]


def test_health_reports_the_index_without_building_it(client: FunctionClient) -> None:
    before = client.get("/health").get_json()
    assert before["status"] == "ok" and before["function"] == "search"
    assert (before["indexed"], before["sections"]) == (False, 0)
    client.post("/", json={"query": "heron"})
    after = client.get("/health").get_json()
    assert (after["indexed"], after["sections"]) == (True, 6)


def test_unknown_path_is_404(client: FunctionClient) -> None:
    response = client.post("/search", json={"query": "heron"})
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found_error"


def test_wrong_method_is_405(client: FunctionClient) -> None:
    response = client.put("/", json={"query": "heron"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=st.text(min_size=1, max_size=120), top_k=st.integers(-5, 30))
def test_arbitrary_queries_never_cause_a_server_error(
    client: FunctionClient, query: str, top_k: int
) -> None:
    response = client.post("/", json={"query": query, "top_k": top_k})
    assert response.status_code in (200, 400), response.get_json()
