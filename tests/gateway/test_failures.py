"""How the gateway fails: credentials an upstream echoes never leave it, a 403 stays one
caller's problem, its own refusals tell clients not to retry, and a 200 that is no JSON
message is a provider failure."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from shared.logs import ROOT_LOGGER, JsonFormatter
from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault
from tests.fakes.bedrock import BedrockWire, anthropic_message
from tests.fakes.server import Reply
from tests.gateway.support import (
    ANTHROPIC,
    ANTHROPIC_MODEL,
    GATEWAY_KEY,
    ServedGateway,
    StartGateway,
    error_of,
    request_body,
    user,
)
from tests.lazy_imports import anthropic

SECRET = "gw-upstream-secret-7f3a9c1e5b"
"""The gateway's own provider key, shaped like no known credential: only configuration can
tell the scrubber it is one."""
DEPLOYMENT = f"anthropic:{ANTHROPIC_MODEL}"
HTML = b"<html><body>502 Bad Gateway (a proxy in the way)</body></html>"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every line the gateway logs during the test, formatted as production writes them."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture
def echoing_upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A fake Anthropic whose key is ``SECRET``, the gateway pointed at it."""
    with FakeAnthropic(api_key=SECRET) as fake:
        for name, value in fake.environ().items():
            monkeypatch.setenv(name, value)
        yield fake


def echo(status: int, fake: FakeAnthropic) -> Fault:
    """An error that quotes the key the upstream received, as some APIs and proxies do."""
    return Fault(status, message=f"request with x-api-key {SECRET!r} refused ({status})")


def create(gateway: ServedGateway, route: str = "anthropic", **options: Any) -> Any:
    return gateway.sdk(**options).messages.with_raw_response.create(
        model=route, max_tokens=64, messages=user("hello")
    )


# -- item 2: the gateway's own key never leaves it ---------------------------------------------


def test_a_key_echoed_by_the_upstream_reaches_no_caller_no_status_and_no_log(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic, log_lines: io.StringIO
) -> None:
    gateway = start_gateway({"retry": {"max_attempts": 1}, "circuit": {"cooldown_s": 60}})
    echoing_upstream.enqueue(echo(400, echoing_upstream), echo(401, echoing_upstream))
    answers: list[Any] = []  # the SDK's responses (httpx or httpx2, by its version)

    for _ in range(3):  # a 400, a 401 that opens the circuit, a caller meeting the open circuit
        with pytest.raises(anthropic.APIStatusError) as caught:
            create(gateway)
        answers.append(caught.value.response)

    assert [a.status_code for a in answers] == [400, 502, 503]
    assert {r.api_key for r in echoing_upstream.requests} == {SECRET}  # it did receive it
    assert "refused (400)" in answers[0].text and "refused (401)" in answers[1].text
    status = gateway.deployment(DEPLOYMENT)
    assert status["circuit"] == "open" and "refused (401)" in status["last_error"]
    shown = [a.text for a in answers] + [json.dumps(gateway.providers()), log_lines.getvalue()]
    assert all(SECRET not in text for text in shown)
    assert all(SECRET[:12] not in text for text in shown)  # not even its start


def test_an_open_circuit_names_the_deployment_and_its_wait_not_anothers_upstream_text(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway({"circuit": {"cooldown_s": 60}})
    echoing_upstream.enqueue(echo(401, echoing_upstream))
    with pytest.raises(anthropic.APIStatusError):
        create(gateway)

    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway)

    message = error_of(caught.value)["message"]
    assert message in (f"{DEPLOYMENT}: circuit open for {s} s more" for s in (59, 60))
    assert len(echoing_upstream.requests) == 1


# -- item 3: a 403 is the caller's problem --------------------------------------------------


def test_a_403_goes_back_to_its_caller_and_the_next_request_is_served_as_before(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway(
        {
            "routes": {"anthropic-then-local": {"fallback_to_local": True}},
            "circuit": {"failure_threshold": 1, "cooldown_s": 60},
        }
    )
    echoing_upstream.enqueue(Fault(403, message="this key may not use that beta"))

    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        create(gateway, "anthropic-then-local", max_retries=2)
    second = create(gateway, "anthropic-then-local")

    headers = caught.value.response.headers
    assert (headers["x-should-retry"], headers["x-gateway-fallbacks"]) == ("false", "0")
    assert error_of(caught.value)["message"] == "anthropic: this key may not use that beta"
    assert second.headers["x-gateway-deployment"] == DEPLOYMENT  # not local: no fallback,
    assert gateway.deployment(DEPLOYMENT)["circuit"] == "closed"  # and no circuit opened
    assert len(echoing_upstream.requests) == 2  # the SDK did not retry the 403


def test_bedrock_credentials_refused_open_its_circuit_access_denied_does_not(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    with BedrockWire() as wire:
        bedrock = {"provider": "bedrock", "model": "anthropic.claude-x-v1:0", "timeout_s": 3}
        gateway = start_gateway(
            {"routes": {"both": [bedrock, ANTHROPIC]}, "circuit": {"cooldown_s": 60}},
            AWS_BEARER_TOKEN_BEDROCK="bedrock-test-token",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=wire.url,
        )
        denied = {"x-amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/"}
        unknown = {"x-amzn-ErrorType": "UnrecognizedClientException:http://internal.amazon.com/"}
        wire.enqueue(
            Reply(403, {"message": "not allowed on this model"}, denied),
            Reply(403, {"message": "The security token is invalid"}, unknown),
        )
        name = "bedrock:anthropic.claude-x-v1:0"

        # Both fall back to anthropic; only the refused credentials open bedrock's circuit.
        assert create(gateway, "both").headers["x-gateway-fallbacks"] == "1"
        assert gateway.deployment(name)["circuit"] == "closed"
        assert create(gateway, "both").headers["x-gateway-fallbacks"] == "1"
        assert gateway.deployment(name)["circuit"] == "open"
        assert len(wire.requests) == 2


# -- item 4: the gateway's own refusals say not to retry -------------------------------------


def test_the_sdk_stops_at_once_on_the_gateways_own_401(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway(GATEWAY_API_KEYS=GATEWAY_KEY)
    sent: list[Any] = []
    counting = anthropic.DefaultHttpxClient(event_hooks={"request": [sent.append]})
    client = anthropic.Anthropic(api_key="wrong-key", base_url=gateway.url, http_client=counting)

    with pytest.raises(anthropic.AuthenticationError) as caught:  # max_retries left at default
        client.messages.create(model="anthropic", max_tokens=64, messages=user("hello"))

    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1 and client.max_retries >= 2
    assert echoing_upstream.requests == []
    counting.close()


def test_the_sdk_does_not_retry_while_every_circuit_is_open(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway({"circuit": {"cooldown_s": 30}})
    echoing_upstream.enqueue(echo(401, echoing_upstream))
    with pytest.raises(anthropic.APIStatusError):
        create(gateway)
    sent: list[Any] = []
    counting = anthropic.DefaultHttpxClient(event_hooks={"request": [sent.append]})
    client = anthropic.Anthropic(api_key="any", base_url=gateway.url, http_client=counting)

    with pytest.raises(anthropic.InternalServerError) as caught:  # max_retries left at default
        client.messages.create(model="anthropic", max_tokens=64, messages=user("hello"))

    headers = caught.value.response.headers
    assert caught.value.status_code == 503 and headers["x-should-retry"] == "false"
    assert headers["retry-after"] in ("29", "30")  # the cool-down left, rounded up
    assert len(sent) == 1
    counting.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/messages", b"{not json", 400),
        ("POST", "/v1/messages", b'{"model": "no-such-route", "max_tokens": 1}', 400),
        ("POST", "/v1/nowhere", b"{}", 404),
        ("GET", "/v1/models/no-such-model", b"", 404),
        ("GET", "/v1/messages", b"", 405),
        ("POST", "/v1/messages", b"x" * 40_000, 413),
    ],
)
def test_every_refusal_of_the_gateways_own_says_not_to_retry(
    start_gateway: StartGateway, method: str, path: str, body: bytes, status: int
) -> None:
    gateway = start_gateway({"max_body_bytes": 32_768})

    answer = gateway.http().request(method, path, content=body)

    assert answer.status_code == status, answer.text
    assert answer.headers["x-should-retry"] == "false"


# -- item 5: a 200 that is no JSON message ------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [HTML, b'["a", "list"]', b'"a string"', b'{"cut": '],
    ids=["html", "list", "string", "truncated"],
)
def test_anthropic_answering_200_with_no_json_message_falls_back(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic, body: bytes
) -> None:
    gateway = start_gateway()
    junk = Reply(200, body, {"content-type": "text/html"})
    echoing_upstream.enqueue(junk, junk)  # both attempts of the test config

    raw = create(gateway, "anthropic-then-local")

    assert (raw.headers["x-gateway-provider"], raw.headers["x-gateway-fallbacks"]) == (
        "local",
        "1",
    )
    assert "not a JSON message" in gateway.deployment(DEPLOYMENT)["last_error"]


def test_anthropic_answering_200_with_html_alone_is_a_502_naming_it(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway()
    echoing_upstream.enqueue(*[Reply(200, HTML, {"content-type": "text/html"})] * 2)

    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway)

    assert caught.value.status_code == 502
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert error_of(caught.value)["message"] == (
        f"anthropic answered 200 with {len(HTML)} bytes that are not a JSON message"
    )


def test_bedrock_answering_200_with_html_falls_back(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    with BedrockWire() as wire:
        bedrock = {"provider": "bedrock", "model": "anthropic.claude-x-v1:0", "timeout_s": 3}
        gateway = start_gateway(
            {"routes": {"both": [bedrock, ANTHROPIC]}},
            AWS_BEARER_TOKEN_BEDROCK="bedrock-test-token",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=wire.url,
        )
        wire.enqueue(*[Reply(200, HTML, {"content-type": "text/html"})] * 2)

        raw = create(gateway, "both")

        assert (raw.headers["x-gateway-provider"], raw.headers["x-gateway-fallbacks"]) == (
            "anthropic",
            "1",
        )
        last_error = gateway.deployment("bedrock:anthropic.claude-x-v1:0")["last_error"]
        assert last_error == (
            f"BadGateway: bedrock answered 200 with {len(HTML)} bytes that are not a JSON message"
        )


# -- upstream text in streams and headers --------------------------------------------------

SHAPED = "sk-ant-api03-Zx9_aB-cD3eFgHiJkLmNoPqRs"
"""A key of someone else's, caught by its shape alone."""


def test_a_key_echoed_in_a_mid_stream_error_event_reaches_no_caller(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway()
    leak = f"overloaded; your x-api-key {SECRET} and {SHAPED}"
    echoing_upstream.enqueue(
        Answer.text("a long answer " * 5, error_after_events=4, error_message=leak)
    )

    response, raw = gateway.stream("anthropic")

    events = [block for block in raw.split("\n\n") if block.strip()]
    assert events[0].startswith("event: message_start")
    assert events[-1].startswith("event: error") and "[redacted]" in events[-1]
    assert SECRET[:12] not in raw and "sk-ant-" not in raw


def test_a_key_echoed_in_upstream_headers_reaches_no_caller(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic
) -> None:
    gateway = start_gateway({"retry": {"max_attempts": 1}})
    headers = {
        "request-id": f"req_{SECRET}",
        "anthropic-ratelimit-requests-remaining": "7",
        "anthropic-ratelimit-note": f"key {SHAPED}",
    }
    message = anthropic_message("hi", model=ANTHROPIC_MODEL)
    refusal = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    echoing_upstream.enqueue(Reply(200, message, headers), Reply(400, refusal, headers))

    answered = create(gateway)
    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway)

    for response in (answered, caught.value.response):
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "7"
        assert response.headers["request-id"] == "req_[redacted]"
        shown = json.dumps(dict(response.headers))
        assert SECRET[:12] not in shown and "sk-ant-" not in shown


# -- item 5 for streams: a 200 that is no event stream ------------------------------------

NOT_SSE = {
    "html": Reply(200, HTML, {"content-type": "text/html"}),
    "json": Reply(200, {"type": "message", "content": []}, {"content-type": "application/json"}),
}


@pytest.mark.parametrize("kind", NOT_SSE)
def test_a_stream_answered_with_no_event_stream_falls_back_before_any_event(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic, kind: str
) -> None:
    gateway = start_gateway()
    echoing_upstream.enqueue(NOT_SSE[kind], NOT_SSE[kind])  # both attempts of the test config

    response, raw = gateway.stream("anthropic-then-local")

    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "local"
    assert raw.startswith("event: message_start") and "event: message_stop" in raw
    assert "event stream" in gateway.deployment(DEPLOYMENT)["last_error"]


@pytest.mark.parametrize("kind", NOT_SSE)
def test_a_stream_answered_with_no_event_stream_alone_is_a_502_error(
    start_gateway: StartGateway, echoing_upstream: FakeAnthropic, kind: str
) -> None:
    gateway = start_gateway()
    echoing_upstream.enqueue(NOT_SSE[kind], NOT_SSE[kind])

    response = gateway.http().post("/v1/messages", json=request_body("anthropic", stream=True))

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == {
        "type": "api_error",
        "message": "anthropic answered 200 with a body that is not an event stream",
    }
