"""The gateway's HTTP contract: auth, bad input, CloudEvents, health/providers/metrics, headers."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import FakeAnthropic, Fault
from tests.gateway.support import (
    ANTHROPIC_MODEL,
    BASE_CONFIG,
    ServedGateway,
    StartGateway,
    request_body,
    user,
)
from tests.lazy_imports import anthropic

if TYPE_CHECKING:  # the SDK loads when a test first uses it (tests/lazy_imports.py)
    from anthropic.types import TextBlock

GATEWAY_HEADERS = ("x-gateway-provider", "x-gateway-attempts", "x-gateway-fallbacks")


@pytest.fixture
def local_gateway(start_gateway: StartGateway) -> ServedGateway:
    """A gateway with no provider credentials: everything routable answers from local."""
    return start_gateway()


def assert_error(response: httpx.Response, status: int, error_type: str, *words: str) -> str:
    """``response`` is Anthropic's error shape with this status and type; return its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    message: str = body["error"]["message"]
    for word in words:
        assert word in message
    return message


# -- inbound auth ------------------------------------------------------------------------------


@pytest.fixture
def keyed_gateway(start_gateway: StartGateway) -> ServedGateway:
    return start_gateway(GATEWAY_API_KEYS="key-one, key-two")


def test_no_key_is_401(keyed_gateway: ServedGateway) -> None:
    response = keyed_gateway.http().post("/v1/messages", json=request_body())

    assert_error(response, 401, "authentication_error", "API key is required")
    assert response.headers["x-request-id"]


def test_wrong_key_is_401(keyed_gateway: ServedGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        keyed_gateway.sdk(api_key="key-three").messages.create(
            model="local", max_tokens=64, messages=user("hi")
        )

    assert "not valid" in caught.value.response.json()["error"]["message"]


def test_x_api_key_is_accepted(keyed_gateway: ServedGateway) -> None:
    response = keyed_gateway.http().post(
        "/v1/messages", json=request_body("local"), headers={"x-api-key": "key-one"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"].startswith(MARK)


def test_bearer_token_is_accepted(keyed_gateway: ServedGateway) -> None:
    # The anthropic SDK sends its api_key as "Authorization: Bearer ...".
    message = keyed_gateway.sdk(api_key="key-two").messages.create(
        model="local", max_tokens=64, messages=user("hi")
    )

    assert cast("TextBlock", message.content[0]).text.startswith(MARK)


def test_health_needs_no_key(keyed_gateway: ServedGateway) -> None:
    response = keyed_gateway.http().get("/health")

    assert response.status_code == 200
    assert response.json()["auth"] is True


def test_providers_page_needs_a_key(keyed_gateway: ServedGateway) -> None:
    # Its last_error fields can quote upstream messages.
    anonymous = keyed_gateway.http().get("/providers")
    keyed = keyed_gateway.http().get("/providers", headers={"x-api-key": "key-two"})

    assert_error(anonymous, 401, "authentication_error", "API key is required")
    assert keyed.status_code == 200
    assert "deployments" in keyed.json()


# -- bad input ---------------------------------------------------------------------------------


def with_body(**changes: Any) -> bytes:
    body = {**request_body("local"), **changes}
    return json.dumps({k: v for k, v in body.items() if v is not MISSING}).encode()


MISSING: Any = object()

BAD_BODIES = {
    "malformed JSON": (b'{"model": "local", ', "not valid JSON"),
    "empty body": (b"", "body is empty"),
    "whitespace body": (b"  \n", "body is empty"),
    "non-object JSON": (b"[1, 2]", "must be a JSON object, got list"),
    "JSON null": (b"null", "must be a JSON object, got null"),
    "missing model": (with_body(model=MISSING), "model: field required"),
    "empty model": (with_body(model=""), "model: field required"),
    "missing max_tokens": (with_body(max_tokens=MISSING), "max_tokens: must be a positive integer"),
    "zero max_tokens": (with_body(max_tokens=0), "max_tokens: must be a positive integer, got 0"),
    "bool max_tokens": (
        with_body(max_tokens=True),
        "max_tokens: must be a positive integer, got True",
    ),
    "str max_tokens": (
        with_body(max_tokens="100"),
        "max_tokens: must be a positive integer, got '100'",
    ),
    "missing messages": (with_body(messages=MISSING), "messages: field required"),
    "empty messages": (with_body(messages=[]), "messages: field required"),
    "message not an object": (with_body(messages=["hi"]), "messages.0: must be an object"),
    "role not a string": (
        with_body(messages=[{"role": 7, "content": "hi"}]),
        "messages.0.role: field required",
    ),
    "missing content": (
        with_body(messages=[{"role": "user"}]),
        "messages.0.content: field required",
    ),
    "content of a bad type": (
        with_body(messages=[{"role": "user", "content": 42}]),
        "messages.0.content: must be a string or a list",
    ),
    "content block without type": (
        with_body(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
        "messages.0.content.0: each content block must be an object with a 'type'",
    ),
    "stream not a bool": (with_body(stream="yes"), "stream: must be bool, got str"),
    "text block without a string": (
        with_body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        "messages.0.content.0.text: must be str",
    ),
    "tool_use id a list": (
        with_body(
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": [1], "name": "calc", "input": {}}],
                },
            ]
        ),
        "messages.1.content.0.id: must be str",
    ),
    "tool_result without its tool_use_id": (
        with_body(messages=[{"role": "user", "content": [{"type": "tool_result"}]}]),
        "messages.0.content.0.tool_use_id: must be str",
    ),
    "a schema the local model cannot read": (
        with_body(
            messages=[{"role": "user", "content": "what is 2+2"}],
            tools=[
                {
                    "name": "calculator",
                    "input_schema": {
                        "properties": {"expression": {"type": "string", "enum": 5}},
                        "required": ["expression"],
                    },
                }
            ],
        ),
        "the local model cannot read this request",
    ),
}


NOT_THE_GATEWAYS_TO_CHECK = {
    "tools not a list": {"tools": {"name": "calc"}},
    "tools entry not an object": {"tools": ["calculator"]},
    "tool without a schema": {"tools": [{"name": "calc"}]},
    "schema properties a list": {"tools": [{"name": "c", "input_schema": {"properties": ["x"]}}]},
    "temperature a string": {"temperature": "hot"},
    "system a number": {"system": 3},
    "a field from next month": {"output_config": {"effort": "high"}, "speed": "fast"},
    "a new block type": {
        "messages": [
            {"role": "user", "content": [{"type": "hologram"}, {"type": "text", "text": "hi"}]}
        ]
    },
    "a mid-conversation system turn": {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is 2+2"},
        ]
    },
}


@pytest.mark.parametrize("extra", NOT_THE_GATEWAYS_TO_CHECK.values(), ids=NOT_THE_GATEWAYS_TO_CHECK)
def test_what_the_gateway_does_not_need_reaches_the_provider_unchanged(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic, extra: dict[str, Any]
) -> None:
    body = {**request_body("anthropic"), **extra}

    gateway.http().post("/v1/messages", json=body)  # the upstream's verdict, whatever it is

    [received] = fake_anthropic.requests
    assert received.body == {**body, "model": ANTHROPIC_MODEL, "stream": False}


@pytest.mark.parametrize("extra", NOT_THE_GATEWAYS_TO_CHECK.values(), ids=NOT_THE_GATEWAYS_TO_CHECK)
def test_the_local_model_answers_past_what_it_does_not_understand(
    local_gateway: ServedGateway, extra: dict[str, Any]
) -> None:
    response = local_gateway.http().post("/v1/messages", json={**request_body("local"), **extra})

    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"].startswith(MARK)


@pytest.mark.parametrize(("body", "problem"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_is_400_naming_the_problem(
    local_gateway: ServedGateway, body: bytes, problem: str
) -> None:
    response = local_gateway.http().post(
        "/v1/messages", content=body, headers={"content-type": "application/json"}
    )

    assert_error(response, 400, "invalid_request_error", problem)
    assert response.headers["x-request-id"]


MALFORMED_LIMITS = {
    "limit=%C2%B2": "'²'",  # a digit to str.isdigit, not to int(): it was a 500
    "limit=" + "9" * 5000: "(5000 characters)",  # past int()'s 4,300 digits: it was a 500
    "limit=-1": "'-1'",
    "limit=0": "'0'",
    "limit=1001": "'1001'",
    "limit=99999999999999999999": "'99999999999999999999'",
    "limit=2.5": "'2.5'",
    "limit=1e3": "'1e3'",
    "limit=": "''",
    "limit=%FF": "'\ufffd'",
    "limit=2&limit=3": "given 2 times",
}


def test_every_malformed_query_value_is_400_naming_the_parameter(
    local_gateway: ServedGateway,
) -> None:
    client = local_gateway.http()

    for query, quoted in MALFORMED_LIMITS.items():
        response = client.get(f"/v1/models?{query}")
        message = assert_error(response, 400, "invalid_request_error", quoted)
        assert message.startswith("limit: "), (query, message)
    for cursor in ("after_id", "before_id"):
        twice = client.get(f"/v1/models?{cursor}=default&{cursor}=local")
        assert_error(twice, 400, "invalid_request_error", f"{cursor}: given 2 times")
    served = [client.get(f"/v1/models?{query}") for query in ("limit=1000", "limit=007", "x=1&x=2")]
    assert [response.status_code for response in served] == [200, 200, 200]
    assert len(served[1].json()["data"]) == 7


def test_oversized_body_is_413(start_gateway: StartGateway) -> None:
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES="2048")
    body = request_body("local", "x" * 4000)

    response = gateway.http().post("/v1/messages", json=body)

    assert_error(response, 413, "request_too_large", "the limit is 2048 bytes")


def test_oversized_chunked_body_is_413(start_gateway: StartGateway) -> None:
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES="2048")
    payload = json.dumps(request_body("local", "x" * 4000)).encode()

    def chunks() -> Any:  # no content-length: the limit must still hold
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    response = gateway.http().post("/v1/messages", content=chunks())

    assert_error(response, 413, "request_too_large", "2048 bytes")


def test_body_under_the_limit_is_served(start_gateway: StartGateway) -> None:
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES="2048")

    response = gateway.http().post("/v1/messages", json=request_body("local", "x" * 500))

    assert response.status_code == 200


def test_unknown_route_is_404_listing_the_routes(local_gateway: ServedGateway) -> None:
    response = local_gateway.http().post("/v1/messages", json=request_body("no-such-route"))

    message = assert_error(response, 404, "not_found_error", "'no-such-route'")
    for route in BASE_CONFIG["routes"]:
        assert route in message


def test_wrong_method_is_405(local_gateway: ServedGateway) -> None:
    response = local_gateway.http().get("/v1/messages")

    assert_error(response, 405, "invalid_request_error", "GET is not allowed on /v1/messages")
    assert response.headers["allow"] == "POST"


def test_unknown_path_is_404(local_gateway: ServedGateway) -> None:
    response = local_gateway.http().post("/v1/complete", json=request_body("local"))

    assert_error(response, 404, "not_found_error", "/v1/complete", "/v1/messages")


# -- CloudEvents -------------------------------------------------------------------------------


def event(data: Any = None) -> CloudEvent:
    return CloudEvent({"type": "com.example.gateway.ask", "source": "/tests"}, data=data)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevent_is_answered_like_plain_json(local_gateway: ServedGateway, mode: str) -> None:
    body = request_body("local", "What is 2 plus 3?")
    headers, payload = (to_binary if mode == "binary" else to_structured)(event(body))

    as_event = local_gateway.http().post("/v1/messages", content=payload, headers=headers)
    as_json = local_gateway.http().post("/v1/messages", json=body)

    assert as_event.status_code == 200, as_event.text
    assert as_event.json() == as_json.json()
    assert as_event.headers["x-gateway-provider"] == "local"


def test_cloudevent_without_data_is_400(local_gateway: ServedGateway) -> None:
    headers, payload = to_binary(event())

    response = local_gateway.http().post("/v1/messages", content=payload or b"", headers=headers)

    assert_error(response, 400, "invalid_request_error")


def test_cloudevent_data_is_validated_like_a_body(local_gateway: ServedGateway) -> None:
    headers, payload = to_structured(event({"model": "local", "messages": user("hi")}))

    response = local_gateway.http().post("/v1/messages", content=payload, headers=headers)

    assert_error(response, 400, "invalid_request_error", "max_tokens")


# -- health, providers, metrics ----------------------------------------------------------------


def test_health_with_no_providers_configured(local_gateway: ServedGateway) -> None:
    response = local_gateway.http().get("/health")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["function"], body["auth"]) == ("ok", "gateway", False)
    assert body["routes"] == sorted(BASE_CONFIG["routes"])


def test_health_calls_no_upstream(gateway: ServedGateway, fake_anthropic: FakeAnthropic) -> None:
    for _ in range(3):
        assert gateway.http().get("/health").status_code == 200

    assert fake_anthropic.requests == []


def test_providers_reports_each_deployment(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(400, message="prompt is too long"))
    client = gateway.http()
    assert client.post("/v1/messages", json=request_body("anthropic")).status_code == 400
    assert client.post("/v1/messages", json=request_body("anthropic")).status_code == 200

    report = gateway.providers()

    assert report["routes"]["anthropic-then-local"] == [
        f"anthropic:{ANTHROPIC_MODEL}",
        "local:local-rules",
    ]
    by_provider = {d["provider"]: d for d in report["deployments"]}
    assert set(by_provider) == {"anthropic", "bedrock", "local"}
    anthropic_status = by_provider["anthropic"]
    assert anthropic_status == {
        "name": f"anthropic:{ANTHROPIC_MODEL}",
        "provider": "anthropic",
        "model": ANTHROPIC_MODEL,
        "configured": True,
        "circuit": "closed",
        "successes": 1,
        "failures": 1,
        "last_error": "UpstreamRejected: anthropic: prompt is too long",
        "last_latency_ms": anthropic_status["last_latency_ms"],
    }
    assert anthropic_status["last_latency_ms"] > 0
    assert by_provider["bedrock"]["configured"] is False
    assert by_provider["local"]["successes"] == 0 and by_provider["local"]["last_error"] is None


def test_metrics_are_prometheus_text(local_gateway: ServedGateway) -> None:
    local_gateway.http().post("/v1/messages", json=request_body("local"))

    response = local_gateway.http().get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE gateway_upstream_attempts_total counter" in text
    assert 'gateway_upstream_attempts_total{deployment="local:local-rules",outcome="ok"}' in text
    assert (
        'agentorch_http_requests_total{function="gateway",route="/v1/messages",status="200"}'
        in text
    )


# -- response headers --------------------------------------------------------------------------


def test_request_id_is_echoed(local_gateway: ServedGateway) -> None:
    response = local_gateway.http().post(
        "/v1/messages", json=request_body("local"), headers={"x-request-id": "req-42.abc"}
    )

    assert response.headers["x-request-id"] == "req-42.abc"


@pytest.mark.parametrize("offered", [None, "not a valid id!", "x" * 200])
def test_request_id_is_created_when_absent_or_unusable(
    local_gateway: ServedGateway, offered: str | None
) -> None:
    headers = {"x-request-id": offered} if offered else {}

    response = local_gateway.http().post("/v1/messages", json={}, headers=headers)

    created = response.headers["x-request-id"]
    assert re.fullmatch(r"[A-Za-z0-9]{12,32}", created)  # functions-framework's execution id
    assert created != offered


def test_outcome_headers_on_success(gateway: ServedGateway) -> None:
    response = gateway.http().post(
        "/v1/messages", json=request_body("anthropic"), headers={"x-request-id": "ok-1"}
    )

    assert response.status_code == 200
    assert [response.headers[h] for h in GATEWAY_HEADERS] == ["anthropic", "1", "0"]
    assert response.headers["x-request-id"] == "ok-1"


def test_outcome_headers_on_an_upstream_error(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(529), Fault(529))

    response = gateway.http().post(
        "/v1/messages", json=request_body("anthropic"), headers={"x-request-id": "err-1"}
    )

    assert_error(response, 529, "overloaded_error", "anthropic")
    assert all(h in response.headers for h in GATEWAY_HEADERS)
    assert response.headers["x-gateway-attempts"] == "2"
    assert response.headers["x-gateway-fallbacks"] == "0"
    assert response.headers["x-request-id"] == "err-1"
