"""The data_processor function over HTTP: schema, health, JSON and CloudEvent input, errors."""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured

from tests.agents.support import (
    FunctionClient,
    error_of,
    event,
    function_client,
    invalid_request_message,
)

CSV = "name,score\nada,90\nbob,75\ncy,82\n"


@pytest.fixture
def client() -> FunctionClient:
    return function_client("data_processor")


def test_schema_is_a_tool_definition(client: FunctionClient) -> None:
    schema = client.get("/schema").get_json()
    assert schema["name"] == "data_processor"
    assert "Do NOT use" in schema["description"]
    input_schema = schema["input_schema"]
    assert input_schema["required"] == ["operation"]
    assert input_schema["properties"]["operation"]["enum"] == [
        "describe",
        "filter",
        "sort",
        "select",
        "group_by",
        "sql",
    ]
    assert input_schema["additionalProperties"] is False
    example = input_schema["examples"][0]
    # The advertised example must itself be accepted.
    assert client.post("/", json=example).status_code == 200


def test_health_is_cheap_and_says_ok(client: FunctionClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["function"], body["max_rows"]) == ("ok", "data_processor", 10000)
    assert response.headers["x-request-id"]


def test_filter_over_csv(client: FunctionClient) -> None:
    response = client.post(
        "/",
        json={
            "operation": "filter",
            "csv": CSV,
            "conditions": [{"column": "score", "op": ">", "value": 80}],
            "order_by": [{"column": "score", "descending": True}],
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["result"] == {
        "columns": ["name", "score"],
        "rows": [{"name": "ada", "score": 90}, {"name": "cy", "score": 82}],
        "row_count": 2,
        "truncated": False,
    }
    assert body["meta"]["operation"] == "filter"


def test_describe_over_rows(client: FunctionClient) -> None:
    response = client.post("/", json={"operation": "describe", "rows": [{"x": 1}, {"x": 3}]})
    assert response.status_code == 200
    assert response.get_json()["result"] == {
        "columns": [
            {"name": "x", "type": "BIGINT", "count": 2, "nulls": 0, "min": 1, "max": 3, "mean": 2.0}
        ],
        "row_count": 2,
    }


def test_sql_over_rows(client: FunctionClient) -> None:
    response = client.post(
        "/", json={"operation": "sql", "csv": CSV, "query": "SELECT avg(score) AS mean FROM data"}
    )
    assert response.status_code == 200
    assert response.get_json()["result"]["rows"] == [{"mean": pytest.approx(82.3333, abs=1e-3)}]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"rows": [{"a": 1}]}, "operation: Field required"),
        ({"operation": "pivot", "rows": [{"a": 1}]}, "operation: Input should be"),
        ({"operation": "describe"}, "send exactly one of rows or csv"),
        (
            {"operation": "describe", "rows": [{"a": 1}], "csv": "a\n1"},
            "exactly one of rows or csv",
        ),
        ({"operation": "describe", "rows": [{"a": 1}], "delimiter": ";"}, "delimiter applies only"),
        ({"operation": "describe", "csv": "a\n1", "delimiter": ";;"}, "delimiter:"),
        ({"operation": "describe", "rows": [1, 2]}, "rows.0: Input should be a valid dictionary"),
        ({"operation": "describe", "rows": "a,b"}, "rows: Input should be a valid list"),
        ({"operation": "describe", "csv": ""}, "csv: String should have at least 1 character"),
        ({"operation": "describe", "rows": [{"a": 1}], "limit": 5}, "describe does not use limit"),
        ({"operation": "filter", "rows": [{"a": 1}]}, "filter needs conditions"),
        ({"operation": "filter", "rows": [{"a": 1}], "conditions": []}, "filter needs conditions"),
        ({"operation": "sort", "rows": [{"a": 1}]}, "sort needs order_by"),
        ({"operation": "select", "rows": [{"a": 1}]}, "select needs columns"),
        ({"operation": "group_by", "rows": [{"a": 1}]}, "group_by needs group_by or aggregates"),
        ({"operation": "sql", "rows": [{"a": 1}]}, "sql needs query"),
        (
            {"operation": "sql", "rows": [{"a": 1}], "query": "SELECT 1", "columns": ["a"]},
            "sql does not use columns",
        ),
        (
            {"operation": "select", "rows": [{"a": 1}], "columns": ["a"], "limit": 0},
            "limit: Input should be greater than or equal to 1",
        ),
        (
            {"operation": "filter", "rows": [{"a": 1}], "conditions": [{"column": "a", "op": "~"}]},
            "conditions.0.op: Input should be",
        ),
        (
            {"operation": "group_by", "rows": [{"a": 1}], "aggregates": [{"fn": "median"}]},
            "aggregates.0.fn: Input should be",
        ),
        ({"operation": "describe", "rows": [{"a": 1}], "table": "x"}, "table: Extra inputs"),
        ({"operation": "describe", "rows": []}, "rows: send at least one row"),
        (
            {"operation": "describe", "csv": "a,b\n1\n"},
            "csv line 2: 1 fields, but the header has 2",
        ),
        (
            {"operation": "select", "rows": [{"a": 1}], "columns": ["b"]},
            "columns[0]: unknown column 'b'",
        ),
        (
            {"operation": "group_by", "csv": CSV, "aggregates": [{"fn": "sum", "column": "name"}]},
            "sum needs a numeric column",
        ),
        (
            {"operation": "sql", "csv": CSV, "query": "SELECT * FROM read_csv('/etc/passwd')"},
            "sandbox forbids",
        ),
        ({"operation": "sql", "csv": CSV, "query": "DROP TABLE data"}, "not DROP"),
    ],
)
def test_bad_input_is_400_naming_the_problem(
    client: FunctionClient, body: dict[str, Any], problem: str
) -> None:
    response = client.post("/", json=body)
    assert problem in invalid_request_message(response)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[]"])
def test_body_that_is_not_a_json_object_is_400(client: FunctionClient, raw: bytes) -> None:
    response = client.post("/", data=raw, content_type="application/json")
    assert response.status_code == 400


def test_too_many_rows_is_400(client: FunctionClient) -> None:
    response = client.post("/", json={"operation": "describe", "rows": [{"a": 1}] * 10_001})
    assert response.status_code == 400
    assert "over the limit of 10000" in error_of(response)["message"]


def test_body_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_PROCESSOR_MAX_BODY_BYTES", "100")
    small = function_client("data_processor")
    response = small.post("/", json={"operation": "describe", "csv": "a\n" + "1\n" * 100})
    assert response.status_code == 413
    assert error_of(response)["type"] == "request_too_large"


def test_slow_query_over_http_is_400_with_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_PROCESSOR_QUERY_TIMEOUT_S", "0.2")
    response = function_client("data_processor").post(
        "/",
        json={
            "operation": "sql",
            "rows": [{"a": 1}],
            "query": "SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b",
        },
    )
    assert response.status_code == 400
    assert "exceeded the time limit of 0.2 s" in error_of(response)["message"]


GROUPED = {
    "operation": "group_by",
    "csv": "team,points\nred,3\nblue,1\nred,2\n",
    "group_by": ["team"],
    "aggregates": [{"fn": "sum", "column": "points"}],
}


def test_binary_cloudevent(client: FunctionClient) -> None:
    headers, body = to_binary(event(GROUPED))
    assert "ce-specversion" in headers
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"]["rows"] == [
        {"team": "blue", "sum_points": 1},
        {"team": "red", "sum_points": 5},
    ]


def test_structured_cloudevent(client: FunctionClient) -> None:
    headers, body = to_structured(event(GROUPED))
    assert headers["content-type"].startswith("application/cloudevents+json")
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"]["row_count"] == 2


def test_cloudevent_with_bad_data_is_400(client: FunctionClient) -> None:
    headers, body = to_structured(event({"operation": "sort", "csv": CSV}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 400
    assert "sort needs order_by" in error_of(response)["message"]


def test_get_on_root_is_405(client: FunctionClient) -> None:
    assert client.get("/").status_code == 405
