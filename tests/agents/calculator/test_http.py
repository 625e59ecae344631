"""The calculator through functions-framework, as the orchestrator and a user call it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agents import support
from tests.agents.support import FunctionClient, error_of, function_client, invalid_request_message


@pytest.fixture(scope="module")
def client() -> FunctionClient:
    return function_client("calculator")


def event(data: Any) -> CloudEvent:
    return support.event(data, "dev.agentorch.calculate")


def test_schema_describes_the_tool(client: FunctionClient) -> None:
    response = client.get("/schema")
    assert response.status_code == 200
    schema = response.get_json()
    assert schema["name"] == "calculator"
    assert "Do NOT use it" in schema["description"]
    assert "^ means power" in schema["description"]
    input_schema = schema["input_schema"]
    assert input_schema["required"] == ["expression"]
    assert input_schema["properties"]["expression"]["maxLength"] == 1000
    assert input_schema["examples"] == [{"expression": "15% of 80 + sqrt(16) * 2^3"}]


def test_schema_example_is_a_valid_input(client: FunctionClient) -> None:
    example = client.get("/schema").get_json()["input_schema"]["examples"][0]
    response = client.post("/", json=example)
    assert response.status_code == 200
    assert response.get_json()["result"]["value"] == 44


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", 14),
        ("2^10", 1024),
        ("7 / 2", 3.5),
        ("15% of 80", 12),
        ("2 ** 100", 2**100),
        ("sqrt(2) ** 2", 2.0),
    ],
)
def test_evaluates(client: FunctionClient, expression: str, value: int | float) -> None:
    response = client.post("/", json={"expression": expression})
    assert response.status_code == 200
    body = response.get_json()
    assert body["result"] == {"expression": expression, "value": value}
    assert body["meta"]["nodes"] >= 1
    assert body["meta"]["elapsed_ms"] >= 0


def test_big_integers_are_sent_exactly(client: FunctionClient) -> None:
    response = client.post("/", json={"expression": "2 ** 200 + 1"})
    # Parse the raw text: the number must not have been rounded through a float.
    assert json.loads(response.data)["result"]["value"] == 2**200 + 1
    assert str(2**200 + 1).encode() in response.data


def test_meta_shows_the_rewritten_expression_only_when_rewritten(client: FunctionClient) -> None:
    rewritten = client.post("/", json={"expression": "2^10"}).get_json()
    plain = client.post("/", json={"expression": "2 ** 10"}).get_json()
    assert rewritten["meta"]["interpreted_as"] == "2 ** 10"
    assert "interpreted_as" not in plain["meta"]


def test_request_id_is_echoed(client: FunctionClient) -> None:
    response = client.post("/", json={"expression": "1"}, headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    ("kwargs", "expected_message"),
    [
        ({"json": {}}, "expression: Field required"),
        ({"json": {"expression": 42}}, "expression: Input should be a valid string"),
        ({"json": {"expression": ""}}, "expression: String should have at least 1 character"),
        ({"json": {"expression": "1" * 1001}}, "at most 1000 characters"),
        ({"json": {"expression": "1", "mode": "x"}}, "mode: Extra inputs are not permitted"),
        ({"json": ["1 + 1"]}, "must be a JSON object"),
        ({"data": b"", "content_type": "application/json"}, "request body is empty"),
        ({"data": b"{not json", "content_type": "application/json"}, "not valid JSON"),
        ({"json": {"expression": "1 / 0"}}, "division by zero"),
        ({"json": {"expression": "sqrt(-1)"}}, "negative numbers"),
        ({"json": {"expression": "100 + 10%"}}, "ambiguous"),
    ],
)
def test_bad_input_is_400_with_the_reason(
    client: FunctionClient, kwargs: dict[str, Any], expected_message: str
) -> None:
    response = client.post("/", **kwargs)
    message = invalid_request_message(response)
    assert response.content_type == "application/json"
    assert expected_message in message


ESCAPE_ATTEMPTS = [
    "__import__('os').system('id')",
    "__import__",
    "().__class__.__bases__[0].__subclasses__()",
    "(1).__class__",
    "pi.__class__.__mro__",
    "sqrt.__globals__",
    "__builtins__",
    "globals()",
    "open('/etc/passwd').read()",
    "eval('1 + 1')",
    "exec('x = 1')",
    "compile('1', 'f', 'eval')",
    "getattr(1, 'real')",
    "lambda: 1",
    "(lambda x: x)(1)",
    "[x for x in range(3)]",
    "{x for x in (1,)}",
    "sum(x for x in (1, 2))",
    "{1: 2}",
    "f'{1 + 1}'",
    "f'{__import__(\"os\")}'",
    "'a' * 3",
    "b'abc'",
    "(x := 5)",
    "[1, 2][0]",
    "sqrt[0]",
    "max(*[1, 2])",
    "round(number=2.5)",
    "unknown(1)",
    "os.system('id')",
    "1 if 1 else 0",
    "not 1",
    "1 < 2",
    "1 and 2",
    "~1",
    "1 << 100000",
    "True + 1",
    "None",
    "...",
    "1j * 1j",
    "import os",
    "1; 2",
    "\x00",
    "9**9**9",
    "10**10**10",
    "2**2**2**2**2",
    "(10**10)**(10**10)",
    "10.0 ** 10 ** 6",
    "exp(10 ** 6)",
    "factorial(10 ** 6)",
    "factorial(factorial(20))",
    "factorial(100000)",
    "round(1, -10 ** 9)",
    "-" * 999 + "1",
    "(" * 490 + "1" + ")" * 490,
    "sqrt(" * 160 + "4" + ")" * 160,
    "1" * 1001,
]


@pytest.mark.parametrize("expression", ESCAPE_ATTEMPTS, ids=lambda text: repr(text[:40]))
def test_escape_attempts_and_bombs_answer_400_quickly(
    client: FunctionClient, expression: str
) -> None:
    started = time.perf_counter()
    response = client.post("/", json={"expression": expression})
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.get_json()
    assert error_of(response)["message"]
    # Computing any of the bombs would take minutes or exhaust memory; refusing takes ms.
    assert elapsed < 1.0


def strict_json(response: Any) -> Any:
    """The body parsed as strict JSON: ``Infinity``, ``-Infinity`` and ``NaN`` are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(response.data, parse_constant=refuse)


@pytest.mark.parametrize(
    ("expression", "expected_message"),
    [
        ("1e309", "number literal too large"),
        ("-1e309", "number literal too large"),
        ("+1e309", "number literal too large"),
        ("abs(1e309)", "number literal too large"),
        ("max(1e309)", "number literal too large"),
        ("min(1, 1e309)", "number literal too large"),
        ("1e309 - 1e309", "number literal too large"),
        ("1e308 * 10", "the result is not a finite number"),
        ("max(1e308 * 10, 1)", "the result is not a finite number"),
        ("exp(710)", "too large"),
    ],
)
def test_a_non_finite_number_is_400_never_infinity(
    client: FunctionClient, expression: str, expected_message: str
) -> None:
    response = client.post("/", json={"expression": expression})

    assert response.status_code == 400
    body = strict_json(response)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert expected_message in body["error"]["message"]
    assert "Infinity" not in response.get_data(as_text=True)


def test_the_largest_float_is_answered_as_strict_json(client: FunctionClient) -> None:
    # Rounding it to 15 significant digits would overflow to inf; it must come back as itself.
    response = client.post("/", json={"expression": "max(1.7976931348623157e308, 1)"})

    assert response.status_code == 200
    assert strict_json(response)["result"]["value"] == 1.7976931348623157e308


def test_binary_cloudevent(client: FunctionClient) -> None:
    headers, body = to_binary(event({"expression": "6 × 7"}))
    headers["content-type"] = "application/json"
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"]["value"] == 42


def test_binary_cloudevent_without_content_type(client: FunctionClient) -> None:
    headers, body = to_binary(event({"expression": "50%"}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"]["value"] == 0.5


def test_structured_cloudevent(client: FunctionClient) -> None:
    headers, body = to_structured(event({"expression": "2^8 - 1"}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert response.get_json()["result"] == {"expression": "2^8 - 1", "value": 255}


def test_cloudevent_with_bad_data_is_400(client: FunctionClient) -> None:
    headers, body = to_structured(event({"expression": "1 / 0"}))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 400
    assert "division by zero" in error_of(response)["message"]


def test_cloudevent_without_data_is_400(client: FunctionClient) -> None:
    headers, _ = to_binary(event(None))
    response = client.post("/", headers=headers, data=b"")
    assert response.status_code == 400
    assert "no data" in error_of(response)["message"]


def test_health(client: FunctionClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "function": "calculator"}


def test_unknown_path_is_404(client: FunctionClient) -> None:
    response = client.get("/evaluate")
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found_error"


def test_wrong_method_is_405(client: FunctionClient) -> None:
    response = client.get("/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "GET is not allowed" in error_of(response)["message"]


calculator_text = st.text(alphabet="0123456789.eE+-*/%^()×÷, ofpisqrtlogmaxfactorial_", max_size=60)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(st.text(max_size=200), calculator_text))
def test_arbitrary_text_never_causes_a_server_error(
    client: FunctionClient, expression: str
) -> None:
    response = client.post("/", json={"expression": expression})
    assert response.status_code in (200, 400), response.get_json()
    body = strict_json(response)
    if response.status_code == 200:
        assert isinstance(body["result"]["value"], int | float)
    else:
        assert body["error"]["message"]
